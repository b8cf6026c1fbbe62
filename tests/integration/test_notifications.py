"""Notifications end to end on real PostgreSQL, Redis and receivers on 127.0.0.1: channels
configured through the API, alerts delivered through RQ with retries over (simulated)
hours, dead letters and redelivery, secrets encrypted at rest, tenancy and permissions."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import owner_connection
from trailseal.services.alerts import record_alert
from trailseal.services.deliveries import deliver_due, delivery_id, retry_schedule
from trailseal.testing import make_tenant

SECRET = "whsec_" + "k" * 40
URL = "/api/v1/integrations"


def _create(client, tenant, body, expect=201):
    resp = client.post(URL, json=body, headers=tenant.headers)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def _webhook(receiver, name="hook", min_severity="low", path="/hook"):
    return {"type": "webhook", "name": name, "min_severity": min_severity,
            "config": {"url": receiver.url + path, "secret": SECRET}}


def _alert(svc, tenant, severity="high", title="Unusual export"):
    return record_alert(svc, tenant.id, kind="anomaly", severity=severity, title=title,
                        details={"score": 0.97, "actor": "u-1"})


def _accepted(receiver):
    """Requests the receiver answered 2xx (after its fail_first ones)."""
    return receiver.requests[receiver.fail_first:]


def test_channels_render_their_formats(client, tenant, http_receiver, run_jobs,
                                       trailseal_services):
    for kind in ("slack", "teams", "zapier"):
        _create(client, tenant, {"type": kind, "name": kind, "min_severity": "low",
                                 "config": {"webhook_url": f"{http_receiver.url}/{kind}"}})
    _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    run_jobs()
    by_path = {r.path: r for r in http_receiver.requests}
    assert set(by_path) == {"/slack", "/teams", "/zapier", "/hook"}
    slack = by_path["/slack"].json()
    assert slack["blocks"][0]["type"] == "header" and "Unusual export" in slack["text"]
    assert any("0.97" in f["text"] for f in slack["blocks"][1]["fields"])
    teams = by_path["/teams"].json()
    assert teams["type"] == "message"
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert {"title": "Severity", "value": "high"} in card["content"]["body"][1]["facts"]
    zap = by_path["/zapier"].json()
    assert zap["alert_id"] == alert.id and zap["severity"] == "high"
    assert zap["details"] == {"score": 0.97, "actor": "u-1"}
    hook = by_path["/hook"]
    assert hook.json()["alert"]["id"] == alert.id
    assert hook.headers["trailseal-signature"].startswith("t=")
    assert hook.headers["trailseal-event"] == "alert"
    # Each channel got its own stable delivery id.
    assert len({r.json().get("delivery_id") for r in (by_path["/zapier"], hook)}) == 2


def test_email_channel_mails_the_alert(client, tenant, smtp_receiver, run_jobs,
                                       trailseal_services, monkeypatch):
    body = {"type": "email", "name": "mail", "min_severity": "low",
            "config": {"recipients": ["soc@example.test"]}}
    refused = _create(client, tenant, body, expect=422)
    assert "TRAILSEAL_SMTP_HOST" in refused["error"]["message"]
    for key, value in smtp_receiver.config().items():
        monkeypatch.setitem(trailseal_services.config, key, value)
    _create(client, tenant, body)
    alert = _alert(trailseal_services, tenant, severity="critical", title="Chain gap")
    run_jobs()
    (mail,) = smtp_receiver.wait_for(1)
    assert mail.recipients == ["soc@example.test"]
    assert "Chain gap" in mail.subject and "CRITICAL" in mail.subject
    assert alert.id in mail.text()
    assert mail.message["X-Trailseal-Delivery"] == str(
        delivery_id(alert.id, client.get(URL, headers=tenant.headers)
                    .get_json()["integrations"][0]["id"]))


def test_fails_twice_then_succeeds_is_delivered_once(client, tenant, http_receiver, run_jobs,
                                                     trailseal_services):
    http_receiver.fail_first = 2
    integration = _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    run_jobs()  # first attempt: 503
    did = str(delivery_id(alert.id, integration["id"]))
    listed = client.get(f"{URL}/{integration['id']}/deliveries", headers=tenant.headers)
    (delivery,) = listed.get_json()["deliveries"]
    assert delivery["id"] == did and delivery["status"] == "failed"
    assert delivery["attempts"] == 1 and "503" in delivery["last_error"]
    schedule = retry_schedule(trailseal_services.config)
    now = datetime.now(UTC)
    # Not due yet: nothing is sent.
    deliver_due(trailseal_services, now + timedelta(seconds=schedule[0] - 5))
    assert len(http_receiver.requests) == 1
    now += timedelta(seconds=schedule[0] + 1)
    deliver_due(trailseal_services, now)  # second attempt: 503
    now += timedelta(seconds=schedule[1] + 1)
    deliver_due(trailseal_services, now)  # third: accepted
    from trailseal.services.alerts import announce_alert

    announce_alert(trailseal_services, alert)  # announced again: no second delivery
    for hours in (1, 5, 24, 72):  # later sweeps send nothing either
        deliver_due(trailseal_services, now + timedelta(hours=hours))
    run_jobs()
    assert len(http_receiver.requests) == 3
    assert len(_accepted(http_receiver)) == 1
    assert {r.headers["trailseal-delivery"] for r in http_receiver.requests} == {did}
    assert _accepted(http_receiver)[0].json()["alert"]["id"] == alert.id
    (delivery,) = client.get(f"{URL}/{integration['id']}/deliveries?status=delivered",
                             headers=tenant.headers).get_json()["deliveries"]
    assert delivery["attempts"] == 3 and delivery["delivered_at"]


def test_receiver_down_for_the_whole_window_is_dead_then_redelivered(
        client, tenant, http_receiver, run_jobs, trailseal_services):
    schedule = retry_schedule(trailseal_services.config)
    http_receiver.fail_first = len(schedule) + 1
    integration = _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    run_jobs()
    now = datetime.now(UTC)
    for wait in schedule:
        now += timedelta(seconds=wait + 1)
        deliver_due(trailseal_services, now)
    assert len(http_receiver.requests) == len(schedule) + 1
    dead = client.get(f"{URL}/{integration['id']}/deliveries?status=dead",
                      headers=tenant.headers).get_json()["deliveries"]
    assert [d["alert_id"] for d in dead] == [alert.id]
    assert dead[0]["attempts"] == len(schedule) + 1 and dead[0]["next_attempt_at"] is None
    deliver_due(trailseal_services, now + timedelta(days=30))  # dead stays dead
    assert len(http_receiver.requests) == len(schedule) + 1
    # The receiver is back: redeliver.
    resp = client.post(f"{URL}/{integration['id']}/deliveries/{dead[0]['id']}/redeliver",
                       headers=tenant.headers)
    assert resp.status_code == 202 and resp.get_json()["status"] == "pending"
    run_jobs()
    assert len(_accepted(http_receiver)) == 1
    assert _accepted(http_receiver)[0].headers["trailseal-delivery"] == dead[0]["id"]
    again = client.post(f"{URL}/{integration['id']}/deliveries/{dead[0]['id']}/redeliver",
                        headers=tenant.headers)
    assert again.status_code == 409
    assert client.get(f"{URL}/{integration['id']}/deliveries?status=dead",
                      headers=tenant.headers).get_json()["deliveries"] == []


def test_min_severity_filters_and_duplicates_are_not_sent(client, tenant, http_receiver,
                                                          run_jobs, trailseal_services):
    _create(client, tenant, _webhook(http_receiver, "only-high", "high", "/high"))
    _alert(trailseal_services, tenant, severity="medium", title="m")
    first = _alert(trailseal_services, tenant, severity="critical", title="c")
    from trailseal.services.alerts import announce_alert

    announce_alert(trailseal_services, first)  # announced twice: still one delivery
    run_jobs()
    assert [r.json()["alert"]["title"] for r in http_receiver.requests] == ["c"]


def test_chain_break_alert_reaches_channels(client, tenant, http_receiver, run_jobs,
                                            trailseal_services, event_factory):
    from tests.conftest import ingest

    _create(client, tenant, _webhook(http_receiver))
    ingest(client, tenant, [event_factory(), event_factory()])
    with owner_connection(trailseal_services) as owner:
        owner.execute("UPDATE audit_logs SET event_type = 'tampered' WHERE tenant_id = %s "
                      "AND seq = 1", (tenant.id,))
    client.get("/api/v1/chain/verify", headers=tenant.headers)
    run_jobs()
    kinds = [r.json()["alert"]["kind"] for r in http_receiver.requests]
    assert "chain_broken" in kinds


def test_secrets_are_encrypted_and_never_returned(client, tenant, http_receiver,
                                                  trailseal_services):
    url = http_receiver.url + "/hooks/T000/B000/tok3nSECRETvalue"
    created = _create(client, tenant, {"type": "webhook", "name": "signed",
                                       "config": {"url": url, "secret": SECRET}})
    listed = client.get(URL, headers=tenant.headers)
    for shown in (json.dumps(created), listed.get_data(as_text=True)):
        assert SECRET not in shown and "tok3nSECRETvalue" not in shown
    assert created["config"]["url"] == "http://127.0.0.1/********"
    assert created["config"]["secret"] == "********"
    assert created["min_severity"] == "medium"
    with owner_connection(trailseal_services) as owner:
        row = owner.execute("SELECT config::text, secrets FROM audit_integrations "
                            "WHERE id = %s", (created["id"],)).fetchone()
    assert SECRET not in row[0] and "tok3n" not in row[0]
    assert SECRET.encode() not in bytes(row[1]) and b"tok3n" not in bytes(row[1])
    assert len(bytes(row[1])) > len(SECRET)


def test_test_endpoint_sends_and_reports(client, tenant, http_receiver):
    integration = _create(client, tenant, _webhook(http_receiver))
    resp = client.post(f"{URL}/{integration['id']}/test", headers=tenant.headers)
    assert resp.status_code == 200 and resp.get_json()["delivered"] is True
    (req,) = http_receiver.requests
    assert req.json()["type"] == "test" and req.headers["trailseal-event"] == "test"
    http_receiver.fail_first = 10
    failed = client.post(f"{URL}/{integration['id']}/test", json={}, headers=tenant.headers)
    assert failed.get_json()["delivered"] is False and "503" in failed.get_json()["error"]


def test_delete_removes_the_channel(client, tenant, http_receiver, run_jobs,
                                    trailseal_services):
    integration = _create(client, tenant, _webhook(http_receiver))
    assert client.delete(f"{URL}/{integration['id']}", headers=tenant.headers).status_code == 204
    assert client.get(URL, headers=tenant.headers).get_json() == {"integrations": []}
    assert client.delete(f"{URL}/{integration['id']}", headers=tenant.headers).status_code == 404
    _alert(trailseal_services, tenant)
    run_jobs()
    assert http_receiver.requests == []


def test_other_tenant_gets_404(client, tenant, http_receiver, trailseal_services):
    integration = _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    did = delivery_id(alert.id, integration["id"])
    other = make_tenant(trailseal_services)
    iid = integration["id"]
    for method, path in (("delete", f"{URL}/{iid}"), ("post", f"{URL}/{iid}/test"),
                         ("get", f"{URL}/{iid}/deliveries"),
                         ("post", f"{URL}/{iid}/deliveries/{did}/redeliver")):
        resp = client.open(path, method=method.upper(), headers=other.headers)
        assert resp.status_code == 404, (method, path, resp.get_json())
    assert client.get(URL, headers=other.headers).get_json() == {"integrations": []}
    assert http_receiver.requests == []


def test_non_admin_gets_403(client, http_receiver, trailseal_services):
    reader = make_tenant(trailseal_services, ("audit:read", "audit:write", "audit:export"))
    iid = str(uuid.uuid4())
    for method, path in (("post", URL), ("get", URL), ("delete", f"{URL}/{iid}"),
                         ("post", f"{URL}/{iid}/test"), ("get", f"{URL}/{iid}/deliveries"),
                         ("post", f"{URL}/{iid}/deliveries/{iid}/redeliver")):
        kwargs = {"json": _webhook(http_receiver)} if path == URL and method == "post" else {}
        resp = client.open(path, method=method.upper(), headers=reader.headers, **kwargs)
        assert resp.status_code == 403, (method, path)


def test_send_time_check_refuses_a_host_no_longer_allowed(client, tenant, http_receiver,
                                                          run_jobs, trailseal_services,
                                                          monkeypatch):
    integration = _create(client, tenant, _webhook(http_receiver))
    monkeypatch.setitem(trailseal_services.config, "WEBHOOK_ALLOW_HOSTS", "")
    _alert(trailseal_services, tenant)
    run_jobs()
    assert http_receiver.requests == []
    (delivery,) = client.get(f"{URL}/{integration['id']}/deliveries",
                             headers=tenant.headers).get_json()["deliveries"]
    # Checked again when sending: the host is no longer allowed, so neither http nor its
    # loopback address is.
    assert delivery["status"] == "failed"
    assert "TRAILSEAL_WEBHOOK_ALLOW_HOSTS" in delivery["last_error"]


def test_redirects_are_not_followed(client, tenant, http_receiver, run_jobs,
                                    trailseal_services):
    from tests.receivers import HTTPReceiver

    target = HTTPReceiver()
    try:
        http_receiver.respond = lambda req: (302, {"Location": target.url + "/x"}, b"")
        integration = _create(client, tenant, _webhook(http_receiver))
        _alert(trailseal_services, tenant)
        run_jobs()
        assert target.requests == []
        (delivery,) = client.get(f"{URL}/{integration['id']}/deliveries",
                                 headers=tenant.headers).get_json()["deliveries"]
        assert delivery["status"] == "failed" and "redirect" in delivery["last_error"]
        assert delivery["last_status_code"] == 302
    finally:
        target.close()


KEY = "k" * 40
INVALID = [
    ("unknown type", {"type": "pager", "name": "x", "config": {}}, "type must be one of"),
    ("missing config", {"type": "slack", "name": "x"}, "config is required"),
    ("unknown field", {"type": "slack", "name": "x", "config": {}, "colour": 1},
     "unknown field"),
    ("empty name", {"type": "slack", "name": " ", "config": {"webhook_url": "x"}}, "name must"),
    ("bad min_severity", {"type": "slack", "name": "x", "min_severity": "urgent",
                          "config": {"webhook_url": "https://8.8.8.8/x"}}, "min_severity"),
    ("config not an object", {"type": "slack", "name": "x", "config": []},
     "config must be a JSON object"),
    ("slack without url", {"type": "slack", "name": "x", "config": {}},
     "'webhook_url' is a required property"),
    ("slack extra key", {"type": "slack", "name": "x",
                         "config": {"webhook_url": "https://8.8.8.8/x", "chan": "#x"}},
     "Additional properties"),
    ("slack http", {"type": "slack", "name": "x", "config": {"webhook_url": "http://8.8.8.8/x"}},
     "must use https"),
    ("teams ftp", {"type": "teams", "name": "x", "config": {"webhook_url": "ftp://8.8.8.8/x"}},
     "must use https"),
    ("zapier private", {"type": "zapier", "name": "x",
                        "config": {"webhook_url": "https://10.1.2.3/x"}}, "private"),
    ("webhook metadata", {"type": "webhook", "name": "x",
                          "config": {"url": "https://169.254.169.254/latest", "secret": KEY}},
     "metadata"),
    ("webhook decimal loopback", {"type": "webhook", "name": "x",
                                  "config": {"url": "https://2130706433/", "secret": KEY}},
     "loopback"),
    ("webhook short secret", {"type": "webhook", "name": "x",
                              "config": {"url": "https://8.8.8.8/x", "secret": "short"}},
     "config.secret"),
    ("webhook no secret", {"type": "webhook", "name": "x", "config": {"url": "https://8.8.8.8/"}},
     "'secret' is a required property"),
    ("webhook url with credentials", {"type": "webhook", "name": "x",
                                      "config": {"url": "https://a:b@8.8.8.8/", "secret": KEY}},
     "user name or password"),
    ("webhook unresolvable host", {"type": "webhook", "name": "x",
                                   "config": {"url": "https://no-such-host.invalid/",
                                              "secret": KEY}}, "does not resolve"),
    ("email bad address", {"type": "email", "name": "x",
                           "config": {"recipients": ["not an address"]}}, "config.recipients.0"),
    ("email no recipients", {"type": "email", "name": "x", "config": {"recipients": []}},
     "config.recipients"),
    ("email subject header injection", {"type": "email", "name": "x",
                                        "config": {"recipients": ["a@b.test"],
                                                   "subject_prefix": "x\r\nBcc: e@v.il"}},
     "config.subject_prefix"),
    ("dollar key", {"type": "slack", "name": "x", "config": {"$redacted": {}}}, "may not start"),
]


@pytest.mark.parametrize("name,body,reason", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_configurations_are_refused_with_the_reason(client, tenant, name, body, reason):
    resp = client.post(URL, json=body, headers=tenant.headers)
    assert resp.status_code == 422, (name, resp.get_json())
    error = resp.get_json()["error"]
    assert reason in error["message"] or reason in json.dumps(error["details"]), error
    assert KEY not in json.dumps(error)  # a refused secret is not echoed
    assert client.get(URL, headers=tenant.headers).get_json() == {"integrations": []}


def test_duplicate_name_is_409(client, tenant, http_receiver):
    _create(client, tenant, _webhook(http_receiver))
    _create(client, tenant, _webhook(http_receiver), expect=409)


@pytest.fixture
def client(trailseal_client):
    return trailseal_client


def test_bias_alerts_raised_by_plugins_are_delivered(client, tenant, http_receiver, run_jobs,
                                                     trailseal_services):
    integration = client.post(URL, json=_webhook(http_receiver), headers=tenant.headers)
    assert integration.headers["Location"] == f"{URL}/{integration.get_json()['id']}"
    # The way the anomaly plugin raises a bias alert.
    alert = trailseal_services.raise_alert(
        tenant.id, kind="bias", severity="medium", title="Flags finance more often",
        details={"dimension": "department", "group": "finance"}, dedupe_key="bias:x")
    run_jobs()
    (req,) = http_receiver.requests
    assert req.json()["alert"]["id"] == alert.id and req.json()["alert"]["kind"] == "bias"


def test_web_sessions_cannot_change_channels(trailseal_app, trailseal_services, http_receiver):
    admin = make_tenant(trailseal_services)
    trailseal_services.create_user(admin.id, f"admin@{admin.slug}.test", "correct horse 123", "admin")
    browser = trailseal_app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = browser.post("/login", data={"email": f"admin@{admin.slug}.test",
                                             "password": "correct horse 123",
                                             "csrf_token": token})
    assert signed_in.status_code == 302
    assert browser.get(URL).status_code == 200  # reads: sessions are fine
    assert browser.post(URL, json=_webhook(http_receiver)).status_code == 401


def test_secrets_stay_readable_after_a_data_key_rotation(client, tenant, http_receiver,
                                                         run_jobs, trailseal_services):
    from trailseal.services.tenancy import rotate_data_key

    integration = _create(client, tenant, _webhook(http_receiver))
    rotate_data_key(trailseal_services, tenant.id)
    trailseal_services.keyring.forget_active_keys()
    later = _create(client, tenant, _webhook(http_receiver, name="after", path="/after"))
    with owner_connection(trailseal_services) as owner:
        keys = dict(owner.execute("SELECT id::text, key_id FROM audit_integrations "
                                  "WHERE tenant_id = %s", (tenant.id,)).fetchall())
    assert keys[integration["id"]] != keys[later["id"]]
    _alert(trailseal_services, tenant)
    run_jobs()
    assert sorted(r.path for r in http_receiver.requests) == ["/after", "/hook"]


def test_a_third_party_channel_plugs_in(client, tenant, http_receiver, run_jobs,
                                        register_plugin, trailseal_services):
    """The docs/plugins.md recipe: two hooks make a channel, with validation, encrypted
    secrets, SSRF checks and retries from the core."""
    from trailseal import hookimpl
    from trailseal.types import NotificationChannel

    schema = {"type": "object", "additionalProperties": False, "required": ["webhook_url"],
              "properties": {"webhook_url": {"type": "string", "format": "uri",
                                             "writeOnly": True, "maxLength": 2048}}}

    class Mattermost:
        @hookimpl
        def notification_channels(self):
            return [NotificationChannel("mattermost", schema, "Mattermost"), "junk"]

        @hookimpl
        def notify(self, kind, config, message, outbound):
            if kind != "mattermost":
                return None
            alert = message["alert"]
            outbound.post_json(config["webhook_url"],
                               {"text": f"**{alert['severity'].upper()}** {alert['title']}"})
            return True

    register_plugin(Mattermost())
    refused = _create(client, tenant, {"type": "mattermost", "name": "mm",
                                       "config": {"webhook_url": "https://192.168.0.9/h"}}, 422)
    assert "private" in refused["error"]["message"]
    created = _create(client, tenant, {"type": "mattermost", "name": "mm", "min_severity": "low",
                                       "config": {"webhook_url": http_receiver.url + "/mm"}})
    assert created["config"]["webhook_url"] == "http://127.0.0.1/********"
    http_receiver.fail_first = 1
    _alert(trailseal_services, tenant, title="Night-time export")
    run_jobs()
    deliver_due(trailseal_services, datetime.now(UTC) + timedelta(minutes=5))
    assert [r.json() for r in _accepted(http_receiver)] == [
        {"text": "**HIGH** Night-time export"}]


def test_concurrent_attempts_send_once(client, tenant, http_receiver, trailseal_services):
    """A job and a sweep attempting the same delivery at once: the row lock lets one send."""
    import threading

    from trailseal.services.deliveries import attempt_delivery

    http_receiver.delay = 0.5
    integration = _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    did = delivery_id(alert.id, integration["id"])
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        attempt_delivery(trailseal_services, tenant.id, did))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(http_receiver.requests) == 1
    assert "delivered" in results
    assert attempt_delivery(trailseal_services, tenant.id, did) == "delivered"
    assert len(http_receiver.requests) == 1


def test_the_sweep_sends_what_a_lost_job_did_not(client, tenant, http_receiver,
                                                 trailseal_services):
    from rq.job import Job

    _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    queue = trailseal_services.queues["default"]
    for job_id in queue.get_job_ids():  # the queue lost the delivery's job
        job = Job.fetch(job_id, connection=trailseal_services.redis)
        if job.func_name.endswith("deliver_notification") and job.args[0] == str(tenant.id):
            queue.remove(job)
    assert deliver_due(trailseal_services).get("delivered") == 1
    assert [r.json()["alert"]["id"] for r in http_receiver.requests] == [alert.id]


def test_a_slow_receiver_times_out_and_is_retried(client, tenant, http_receiver, run_jobs,
                                                  trailseal_services, monkeypatch):
    monkeypatch.setitem(trailseal_services.config, "NOTIFY_TIMEOUT", 0.3)
    http_receiver.delay = 1.0
    integration = _create(client, tenant, _webhook(http_receiver))
    _alert(trailseal_services, tenant)
    run_jobs()
    (delivery,) = client.get(f"{URL}/{integration['id']}/deliveries",
                             headers=tenant.headers).get_json()["deliveries"]
    assert delivery["status"] == "failed" and "timed out" in delivery["last_error"]


def test_reads_of_channels_are_in_the_access_log(client, tenant, http_receiver):
    integration = _create(client, tenant, _webhook(http_receiver))
    client.get(URL, headers=tenant.headers)
    client.get(f"{URL}/{integration['id']}/deliveries?status=dead", headers=tenant.headers)
    entries = client.get("/api/v1/access-log", headers=tenant.headers).get_json()["entries"]
    logged = {(e["endpoint"], json.dumps(e["query"])) for e in entries}
    assert (URL, "{}") in logged
    assert (f"{URL}/{integration['id']}/deliveries", json.dumps({"status": "dead"})) in logged


@pytest.mark.parametrize("schedule", ["30,soon", "-5", "1e999"])
def test_a_bad_retry_schedule_fails_before_sending(client, tenant, http_receiver,
                                                   trailseal_services, monkeypatch, schedule):
    from trailseal.errors import ConfigurationError
    from trailseal.services.deliveries import attempt_delivery

    integration = _create(client, tenant, _webhook(http_receiver))
    alert = _alert(trailseal_services, tenant)
    monkeypatch.setitem(trailseal_services.config, "NOTIFY_RETRY_SCHEDULE", schedule)
    with pytest.raises(ConfigurationError, match="TRAILSEAL_NOTIFY_RETRY_SCHEDULE"):
        attempt_delivery(trailseal_services, tenant.id, delivery_id(alert.id, integration["id"]))
    assert http_receiver.requests == []
