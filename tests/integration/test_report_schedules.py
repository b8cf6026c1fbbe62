"""Scheduled reports: the schedules API (validation with the reason, tenancy, permissions)
and the scheduler with an injected clock against a real SMTP server (aiosmtpd): due reports
are mailed with the file attached, a missed run is sent once, two schedulers send once, a
failed send is recorded and its period covered by the next report."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ingest, make_event
from trailseal import hookimpl
from trailseal.schemas import ReportScheduleIn
from trailseal.services.report_runs import claim_schedule, due_schedules, run_due_reports
from trailseal.services.reports import create_schedule
from trailseal.services.tenancy import Principal, create_api_key
from trailseal.testing import make_tenant

URL = "/api/v1/reports/schedules"


@pytest.fixture
def mail(smtp_receiver, monkeypatch, trailseal_services):
    """Outgoing mail of the app goes to ``smtp_receiver`` for this test."""
    for key, value in smtp_receiver.config().items():
        monkeypatch.setitem(trailseal_services.config, key, value)
    return smtp_receiver


def _body(**overrides) -> dict:
    body = {"name": "Daily finance", "cron": "0 9 * * *", "timezone": "Europe/Berlin",
            "filters": {"tag": ["finance"]}, "format": "csv",
            "recipients": ["ciso@example.com"]}
    body.update(overrides)
    return body


def _admin(tenant) -> Principal:
    return Principal("api_key", "test", tenant.id, frozenset({"audit:admin"}))


def _schedule(svc, tenant, now: datetime, **overrides) -> dict:
    """A schedule created as if at ``now`` (so its slots are in a known past)."""
    body = ReportScheduleIn.model_validate(_body(**overrides))
    return create_schedule(svc, _admin(tenant), body, now=now)


def _mine(outcomes, schedule) -> list[dict]:
    return [o for o in outcomes if o["schedule_id"] == schedule["id"]]


def _to(mails, address) -> list:
    return [m for m in mails if address in m.recipients]


def _csv_ids(content: bytes) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))
    return [r["id"] for r in rows]


def _show(client, tenant, schedule_id) -> dict:
    resp = client.get(f"{URL}/{schedule_id}", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


# --- the API --------------------------------------------------------------------------------


def test_create_list_show_delete(trailseal_client, tenant, mail):
    resp = trailseal_client.post(URL, json=_body(recipients=["a@example.com", "A@example.com",
                                                             "b@example.org"]),
                                 headers=tenant.headers)
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert resp.headers["Location"] == f"{URL}/{created['id']}"
    assert created["recipients"] == ["a@example.com", "b@example.org"]  # duplicates dropped
    assert created["filters"] == {"tag": ["finance"]}
    assert created["created_by"].startswith("api_key:")
    assert created["last_status"] is None and created["runs"] == 0
    next_run = datetime.fromisoformat(created["next_run"])
    assert next_run > datetime.now(UTC)
    # 09:00 on the wall clock in Berlin, whatever the season
    from zoneinfo import ZoneInfo
    local = next_run.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)

    listed = trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"]
    assert [s["id"] for s in listed] == [created["id"]]
    assert _show(trailseal_client, tenant, created["id"]) == created

    assert trailseal_client.delete(f"{URL}/{created['id']}",
                                   headers=tenant.headers).status_code == 204
    assert trailseal_client.get(f"{URL}/{created['id']}",
                                headers=tenant.headers).status_code == 404
    assert trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"] == []


BAD_BODIES = [
    ("cron with 4 fields", {"cron": "0 9 * *"}, "5 fields", "cron"),
    ("cron with seconds", {"cron": "0 0 9 * * *"}, "5 fields", "cron"),
    ("cron out of range", {"cron": "0 25 * * *"}, "invalid cron", "cron"),
    ("cron that is words", {"cron": "every monday"}, "5 fields", "cron"),
    ("cron every 5 minutes", {"cron": "*/5 * * * *"}, "at most every 15 minutes", "cron"),
    ("cron at 0 and 10", {"cron": "0,10 9 * * *"}, "every 10 minute", "cron"),
    ("cron that never runs", {"cron": "0 0 30 2 *"}, "never runs", "cron"),
    ("unknown zone", {"timezone": "Mars/Olympus"}, "unknown time zone", "timezone"),
    ("zone as a path", {"timezone": "../../etc/passwd"}, "unknown time zone", "timezone"),
    ("zone as an offset", {"timezone": "+02:00"}, "unknown time zone", "timezone"),
    ("unknown format", {"format": "xlsx"}, "unknown report format 'xlsx'", "format"),
]


@pytest.mark.parametrize("name,change,reason,field", BAD_BODIES,
                         ids=[c[0] for c in BAD_BODIES])
def test_invalid_schedules_are_refused_with_the_reason(trailseal_client, tenant, mail, name,
                                                       change, reason, field):
    resp = trailseal_client.post(URL, json=_body(**change), headers=tenant.headers)
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert reason in error["message"], error
    assert error["details"]["field"] == field
    if field == "format":
        assert {"csv", "pdf"} <= set(error["details"]["formats"])
    assert trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"] == []


BAD_FIELDS = [
    ("no recipients", {"recipients": []}, "recipients"),
    ("21 recipients", {"recipients": [f"r{n}@example.com" for n in range(21)]}, "recipients"),
    ("not an address", {"recipients": ["ciso"]}, "recipients.0"),
    ("no domain dot", {"recipients": ["ciso@localhost"]}, "recipients.0"),
    ("header injection", {"recipients": ["a@example.com\r\nBcc: x@evil.com"]}, "recipients.0"),
    ("two in one", {"recipients": ["a@example.com, b@example.com"]}, "recipients.0"),
    ("display name", {"recipients": ["CISO <ciso@example.com>"]}, "recipients.0"),
    ("a number", {"recipients": [42]}, "recipients.0"),
    ("recipients a string", {"recipients": "a@example.com"}, "recipients"),
    ("bad filter", {"filters": {"severity": ["apocalyptic"]}}, "filters.severity.0"),
    ("unknown filter", {"filters": {"limit": 5}}, "filters.limit"),
    ("unknown field", {"owner": "me"}, "owner"),
    ("empty name", {"name": ""}, "name"),
    ("no cron", {"cron": None}, "cron"),
    ("zone not text", {"timezone": 2}, "timezone"),
]


@pytest.mark.parametrize("name,change,loc", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_invalid_fields_are_refused_naming_them(trailseal_client, tenant, mail, name, change,
                                                loc):
    resp = trailseal_client.post(URL, json=_body(**change), headers=tenant.headers)
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert f"at {loc}" in error["message"], error
    assert trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"] == []


def test_refused_while_outgoing_mail_is_not_configured(trailseal_client, tenant, monkeypatch,
                                                       trailseal_services):
    monkeypatch.setitem(trailseal_services.config, "SMTP_HOST", "")
    resp = trailseal_client.post(URL, json=_body(), headers=tenant.headers)
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert "sent by mail" in error["message"] and "TRAILSEAL_SMTP_HOST" in error["message"]
    assert trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"] == []
    monkeypatch.setitem(trailseal_services.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(trailseal_services.config, "SMTP_SECURITY", "tls13")
    resp = trailseal_client.post(URL, json=_body(), headers=tenant.headers)
    assert resp.status_code == 422 and "SMTP_SECURITY" in resp.get_json()["error"]["message"]


def test_another_tenants_schedule_is_not_found(trailseal_client, trailseal_services, tenant,
                                               mail):
    created = trailseal_client.post(URL, json=_body(), headers=tenant.headers).get_json()
    other = make_tenant(trailseal_services)
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/run")):
        resp = trailseal_client.open(f"{URL}/{created['id']}{path}", method=method,
                                     headers=other.headers)
        assert resp.status_code == 404, (method, path, resp.get_json())
    assert trailseal_client.get(URL, headers=other.headers).get_json()["schedules"] == []
    assert _show(trailseal_client, tenant, created["id"])["id"] == created["id"]  # still there


def test_permissions(trailseal_client, trailseal_services, tenant, mail):
    created = trailseal_client.post(URL, json=_body(), headers=tenant.headers).get_json()

    def key(*permissions):
        token = create_api_key(trailseal_services, tenant.id, list(permissions))["token"]
        return {"Authorization": f"Bearer {token}"}

    reader, exporter = key("audit:read"), key("audit:read", "audit:export")
    assert trailseal_client.get(URL, headers=reader).status_code == 403
    assert trailseal_client.get(f"{URL}/{created['id']}", headers=reader).status_code == 403
    assert trailseal_client.get(URL, headers=exporter).status_code == 200
    assert trailseal_client.get(f"{URL}/{created['id']}", headers=exporter).status_code == 200
    for method, path, body in (("POST", "", _body()), ("DELETE", f"/{created['id']}", None),
                               ("POST", f"/{created['id']}/run", None)):
        resp = trailseal_client.open(f"{URL}{path}", method=method, json=body,
                                     headers=exporter)
        assert resp.status_code == 403, (method, path)
        assert resp.get_json()["error"]["details"] == {"required": "audit:admin"}
    assert len(trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"]) == 1


# --- the scheduler ---------------------------------------------------------------------------

# 2026-11-01 is winter time in Berlin (UTC+1): 09:00 local is 08:00 UTC.
CREATED = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
FIRST_SLOT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _events_around_first_slot(client, tenant) -> dict[str, list[str]]:
    """Events just inside and just outside the first report's period [slot - 1 day, slot)."""
    def at(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    inside = [make_event(occurred_at=at(FIRST_SLOT - timedelta(days=1))),
              make_event(occurred_at=at(FIRST_SLOT - timedelta(hours=2)),
                         entity={"type": "invoice", "id": "INV-2"}),
              make_event(occurred_at=at(FIRST_SLOT - timedelta(microseconds=1)))]
    outside = [make_event(occurred_at=at(FIRST_SLOT - timedelta(days=1, seconds=1))),
               make_event(occurred_at=at(FIRST_SLOT)),
               make_event(occurred_at=at(FIRST_SLOT - timedelta(hours=1)), tags=["hr"])]
    ids = ingest(client, tenant, inside + outside)["ids"]
    return {"inside": ids[:3], "outside": ids[3:]}


def test_a_due_report_is_mailed_with_its_csv_and_the_next_run_moves_on(
        trailseal_client, trailseal_services, tenant, mail):
    svc = trailseal_services
    events = _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, recipients=["csv-due@example.com"])
    assert schedule["next_run"] == "2026-11-01T08:00:00.000000Z"

    # not due a second before its slot
    assert _mine(run_due_reports(svc, now=FIRST_SLOT - timedelta(seconds=1)), schedule) == []
    outcomes = _mine(run_due_reports(svc, now=FIRST_SLOT + timedelta(seconds=20)), schedule)
    assert [o["status"] for o in outcomes] == ["sent"], outcomes

    [message] = _to(mail.wait_for(1), "csv-due@example.com")
    assert message.message["X-Trailseal-Report-Schedule"] == schedule["id"]
    assert "Daily finance" in message.subject
    assert "2026-10-31T08:00:00.000000Z to 2026-11-01T08:00:00.000000Z" in message.text()
    [(filename, content)] = message.attachments()
    assert filename.endswith("-daily-finance-20261101-0800.csv")
    assert sorted(_csv_ids(content)) == sorted(events["inside"])

    state = _show(trailseal_client, tenant, schedule["id"])
    assert state["next_run"] == "2026-11-02T08:00:00.000000Z"
    assert state["last_status"] == "sent" and state["last_error"] is None
    assert state["last_run"] == "2026-11-01T08:00:20.000000Z"
    assert state["covered_until"] == "2026-11-01T08:00:00.000000Z"
    assert state["runs"] == 1
    # the run read the trail: it is in the access log, as the system
    log = trailseal_client.get("/api/v1/access-log?limit=50",
                               headers=tenant.headers).get_json()["entries"]
    runs = [e for e in log if e["principal_type"] == "system"]
    assert runs and runs[0]["principal_id"] == f"report-schedule:{schedule['id']}"
    assert runs[0]["query"]["tag"] == ["finance"]


def test_after_downtime_a_missed_report_is_sent_once(trailseal_client, trailseal_services,
                                                     tenant, mail):
    svc = trailseal_services
    events = _events_around_first_slot(trailseal_client, tenant)
    later = ingest(trailseal_client, tenant, [
        make_event(occurred_at="2026-11-03T12:00:00Z"),
        make_event(occurred_at="2026-11-06T07:59:00Z")])["ids"]
    schedule = _schedule(svc, tenant, CREATED, recipients=["downtime@example.com"])
    run_due_reports(svc, now=FIRST_SLOT + timedelta(seconds=5))
    assert len(_to(mail.wait_for(1), "downtime@example.com")) == 1

    # nothing ran for five slots (Nov 2 to Nov 6 08:00 UTC); the clock is now Nov 6 10:00
    after = datetime(2026, 11, 6, 10, 0, tzinfo=UTC)
    assert [o["status"] for o in _mine(run_due_reports(svc, now=after), schedule)] == ["sent"]
    assert _mine(run_due_reports(svc, now=after + timedelta(minutes=1)), schedule) == []
    mails = _to(mail.wait_for(2), "downtime@example.com")
    assert len(mails) == 2
    # the one report covers everything since the last one, up to the latest slot passed
    assert "2026-11-01T08:00:00.000000Z to 2026-11-06T08:00:00.000000Z" in mails[1].text()
    # (the event at exactly Nov 1 08:00 was after the first report's period: it is here)
    assert sorted(_csv_ids(mails[1].attachments()[0][1])) == sorted(later
                                                                    + events["outside"][1:2])
    state = _show(trailseal_client, tenant, schedule["id"])
    assert state["next_run"] == "2026-11-07T08:00:00.000000Z"
    assert state["runs"] == 2


def test_a_pdf_report_is_attached(trailseal_client, trailseal_services, tenant, mail):
    svc = trailseal_services
    _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, format="pdf", cron="@daily",
                         timezone="UTC", recipients=["pdf@example.com"])
    outcomes = _mine(run_due_reports(svc, now=datetime(2026, 11, 1, 0, 1, tzinfo=UTC)),
                     schedule)
    # created at midnight UTC exactly: its first slot is the next midnight
    assert outcomes == []
    outcomes = _mine(run_due_reports(svc, now=datetime(2026, 11, 2, 0, 1, tzinfo=UTC)),
                     schedule)
    assert [o["status"] for o in outcomes] == ["sent"], outcomes
    [message] = _to(mail.wait_for(1), "pdf@example.com")
    [(filename, content)] = message.attachments()
    assert filename.endswith(".pdf") and content.startswith(b"%PDF")
    assert message.message.get_payload()[1].get_content_type() == "application/pdf"
    # tagged finance in [Nov 1 00:00, Nov 2 00:00): 06:00, 07:59:59.999999 and 08:00
    assert "Events: 3" in message.text()


def test_a_failed_send_is_recorded_and_its_period_covered_next_time(
        trailseal_client, trailseal_services, tenant, mail, monkeypatch):
    svc = trailseal_services
    events = _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, recipients=["retry@example.com"])
    monkeypatch.setitem(svc.config, "SMTP_PORT", 1)  # nothing listens there
    [outcome] = _mine(run_due_reports(svc, now=FIRST_SLOT + timedelta(seconds=5)), schedule)
    assert outcome["status"] == "failed" and "127.0.0.1:1" in outcome["error"]
    state = _show(trailseal_client, tenant, schedule["id"])
    assert state["last_status"] == "failed" and "127.0.0.1:1" in state["last_error"]
    assert state["covered_until"] == "2026-10-31T08:00:00.000000Z"  # nothing was sent
    assert state["next_run"] == "2026-11-02T08:00:00.000000Z"  # retried at the next slot
    assert _to(mail.messages, "retry@example.com") == []

    monkeypatch.setitem(svc.config, "SMTP_PORT", mail.port)
    [outcome] = _mine(run_due_reports(svc, now=datetime(2026, 11, 2, 8, 0, 5, tzinfo=UTC)),
                      schedule)
    assert outcome["status"] == "sent"
    [message] = _to(mail.wait_for(1), "retry@example.com")
    # the failed period is in this report
    assert "2026-10-31T08:00:00.000000Z to 2026-11-02T08:00:00.000000Z" in message.text()
    ids = _csv_ids(message.attachments()[0][1])
    assert set(events["inside"]) <= set(ids)
    state = _show(trailseal_client, tenant, schedule["id"])
    assert state["last_status"] == "sent" and state["last_error"] is None


def test_too_large_a_pdf_fails_with_the_reason(trailseal_client, trailseal_services, tenant,
                                               mail, monkeypatch):
    svc = trailseal_services
    _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, format="pdf", filters={},
                         recipients=["big@example.com"])
    monkeypatch.setitem(svc.config, "EXPORT_MAX_EVENTS", 2)
    [outcome] = _mine(run_due_reports(svc, now=FIRST_SLOT), schedule)
    assert outcome["status"] == "failed"
    assert "a pdf report holds at most 2" in outcome["error"]
    assert _show(trailseal_client, tenant, schedule["id"])["last_error"] == outcome["error"]


def test_two_schedulers_send_a_slot_once(trailseal_client, trailseal_services, tenant, mail):
    svc = trailseal_services
    schedule = _schedule(svc, tenant, CREATED, recipients=["once@example.com"])
    now = FIRST_SLOT + timedelta(seconds=1)
    seen = {row[1]: row[2] for row in due_schedules(svc, now, limit=10_000)}
    sid = uuid.UUID(schedule["id"])
    assert sid in seen

    # the same read claimed twice: the second compare-and-set finds next_run moved
    results = []
    start = threading.Barrier(4)

    def claim():
        start.wait()
        results.append(claim_schedule(svc, tenant.id, sid, seen[sid], now))

    def scheduler():
        start.wait()
        results.append(run_due_reports(svc, now=now))

    threads = [threading.Thread(target=claim), threading.Thread(target=claim),
               threading.Thread(target=scheduler), threading.Thread(target=scheduler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    claims = [r for r in results if not isinstance(r, list) and r is not None]
    sends = [o for r in results if isinstance(r, list) for o in _mine(r, schedule)]
    assert len(claims) + len(sends) == 1, (claims, sends)
    mail.wait_for(1, timeout=2)
    assert len(_to(mail.messages, "once@example.com")) == len(sends)
    assert _show(trailseal_client, tenant, schedule["id"])["runs"] == 1


def test_run_now_sends_without_moving_the_schedule(trailseal_client, trailseal_services,
                                                   tenant, mail, run_jobs):
    ingest(trailseal_client, tenant, [make_event(
        occurred_at=(datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))])
    created = trailseal_client.post(URL, json=_body(recipients=["now@example.com"],
                                                    cron="0 0 1 1 *"),
                                    headers=tenant.headers).get_json()
    resp = trailseal_client.post(f"{URL}/{created['id']}/run", headers=tenant.headers)
    assert resp.status_code == 202, resp.get_json()
    run_jobs()
    [message] = _to(mail.wait_for(1), "now@example.com")
    assert len(_csv_ids(message.attachments()[0][1])) == 1
    state = _show(trailseal_client, tenant, created["id"])
    assert state["last_status"] == "sent" and state["runs"] == 1
    assert state["next_run"] == created["next_run"]
    assert state["covered_until"] > created["covered_until"]


def test_dst_daily_nine_in_berlin_stays_nine_local(trailseal_services, tenant, mail):
    svc = trailseal_services
    spring = _schedule(svc, tenant, datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
                       recipients=["spring@example.com"], filters={})
    assert spring["next_run"] == "2026-03-29T07:00:00.000000Z"  # 09:00 CEST, the change day
    run_due_reports(svc, now=datetime(2026, 3, 29, 7, 0, 30, tzinfo=UTC))
    autumn = _schedule(svc, tenant, datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
                       recipients=["autumn@example.com"], filters={})
    assert autumn["next_run"] == "2026-10-25T08:00:00.000000Z"  # 09:00 CET, the change day
    with svc.db.transaction(tenant.id) as conn:
        next_run = conn.exec_driver_sql(
            "SELECT next_run FROM audit_scheduled_reports WHERE id = %s",
            (uuid.UUID(spring["id"]),)).scalar_one()
    assert next_run == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST the day after


def test_a_tenant_holds_at_most_100_schedules(trailseal_client, trailseal_services, tenant,
                                               mail, monkeypatch):
    from trailseal.services import reports

    monkeypatch.setattr(reports, "SCHEDULES_MAX", 2)
    for n in range(2):
        assert trailseal_client.post(URL, json=_body(name=f"r{n}"),
                                     headers=tenant.headers).status_code == 201
    resp = trailseal_client.post(URL, json=_body(name="r2"), headers=tenant.headers)
    assert resp.status_code == 422 and "at most 2 report schedules" in \
        resp.get_json()["error"]["message"]
    assert len(trailseal_client.get(URL, headers=tenant.headers).get_json()["schedules"]) == 2


class _Outbox:
    """A report mailer of a third-party plugin: keeps what it is given."""

    name = "outbox"

    def __init__(self):
        self.sent = []

    def problem(self, config):
        return None

    def send(self, config, report):
        self.sent.append(report)
        return f"outbox-{len(self.sent)}"


class _OutboxPlugin:
    def __init__(self, mailer):
        self.mailer = mailer

    @hookimpl
    def report_mailer(self):
        return self.mailer


def test_an_installed_report_mailer_replaces_smtp(trailseal_client, trailseal_services,
                                                  tenant, register_plugin, monkeypatch):
    svc = trailseal_services
    monkeypatch.setitem(svc.config, "SMTP_HOST", "")  # the built-in mailer could not send
    outbox = _Outbox()
    register_plugin(_OutboxPlugin(outbox))
    events = _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, recipients=["outbox@example.com"])
    [outcome] = _mine(run_due_reports(svc, now=FIRST_SLOT), schedule)
    assert outcome["status"] == "sent" and outcome["error"] is None
    # (schedules of earlier tests that are due at this hour went to the outbox too)
    [report] = [r for r in outbox.sent if r.schedule_id == schedule["id"]]
    assert outcome["message_id"] == f"outbox-{outbox.sent.index(report) + 1}"
    assert report.recipients == ("outbox@example.com",)
    assert report.media_type.startswith("text/csv")
    assert report.period_start == "2026-10-31T08:00:00.000000Z"
    assert report.period_end == "2026-11-01T08:00:00.000000Z"
    assert sorted(_csv_ids(report.content)) == sorted(events["inside"])


def test_without_a_report_mailer_schedules_are_refused_and_due_ones_fail(
        trailseal_client, trailseal_services, tenant, mail):
    svc = trailseal_services
    schedule = _schedule(svc, tenant, CREATED, recipients=["nomailer@example.com"])
    plugin = svc.pm.get_plugin("reports")
    assert plugin is not None
    svc.pm.unregister(plugin)
    try:
        resp = trailseal_client.post(URL, json=_body(), headers=tenant.headers)
        assert resp.status_code == 422
        assert "no report mailer is installed" in resp.get_json()["error"]["message"]
        [outcome] = _mine(run_due_reports(svc, now=FIRST_SLOT), schedule)
        assert outcome["status"] == "failed" and "no report mailer" in outcome["error"]
    finally:
        svc.pm.register(plugin, name="reports")
    assert _to(mail.messages, "nomailer@example.com") == []


def test_the_scheduler_job_sends_due_reports_on_a_worker(trailseal_services, tenant, mail,
                                                         run_jobs):
    from trailseal.jobs.runtime import collect_jobs

    [spec] = [s for s in collect_jobs(trailseal_services.pm) if s.name == "scheduled-reports"]
    assert spec.cron == "* * * * *" and spec.queue == "default"
    # created two days ago (by its clock): a slot has passed since, so it is due now
    schedule = _schedule(trailseal_services, tenant, datetime.now(UTC) - timedelta(days=2),
                         recipients=["worker@example.com"])
    trailseal_services.queues[spec.queue].enqueue(spec.func, job_timeout=spec.timeout)
    run_jobs()
    [message] = _to(mail.wait_for(1), "worker@example.com")
    assert message.attachments()[0][0].endswith(".csv")
    with trailseal_services.db.transaction(tenant.id) as conn:
        state = conn.exec_driver_sql(
            "SELECT last_status, runs, next_run FROM audit_scheduled_reports WHERE id = %s",
            (uuid.UUID(schedule["id"]),)).one()
    assert state[0] == "sent" and state[1] == 1
    assert state[2] > datetime.now(UTC)  # the next slot, after one report for both days


def test_a_report_over_the_attachment_limit_fails_with_the_reason(
        trailseal_client, trailseal_services, tenant, mail, monkeypatch):
    svc = trailseal_services
    _events_around_first_slot(trailseal_client, tenant)
    schedule = _schedule(svc, tenant, CREATED, recipients=["huge@example.com"])
    monkeypatch.setitem(svc.config, "REPORT_MAX_BYTES", 500)
    [outcome] = _mine(run_due_reports(svc, now=FIRST_SLOT), schedule)
    assert outcome["status"] == "failed"
    assert "over 500 bytes" in outcome["error"] and "TRAILSEAL_REPORT_MAX_BYTES" in \
        outcome["error"]
    assert _to(mail.messages, "huge@example.com") == []


def test_a_web_session_reads_schedules_but_never_changes_them(trailseal_app,
                                                              trailseal_services, tenant,
                                                              mail):
    import re

    from trailseal.services.tenancy import create_user

    api = trailseal_app.test_client()
    created = api.post(URL, json=_body(), headers=tenant.headers).get_json()
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "admin")
    browser = trailseal_app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = browser.post("/login", data={"email": email, "csrf_token": token,
                                             "password": "correct horse battery"})
    assert signed_in.status_code in (302, 303)
    assert browser.get(URL).get_json()["schedules"][0]["id"] == created["id"]
    for method, path, body in (("POST", "", _body()), ("DELETE", f"/{created['id']}", None),
                               ("POST", f"/{created['id']}/run", None)):
        resp = browser.open(f"{URL}{path}", method=method, json=body)
        assert resp.status_code == 401, (method, path, resp.get_json())
    assert len(api.get(URL, headers=tenant.headers).get_json()["schedules"]) == 1
