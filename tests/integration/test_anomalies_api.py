"""The anomalies API: anomaly alerts with their events and related events, analyst verdicts,
the anomaly threshold, the model registry and the fairness figures."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from tests.conftest import ingest, make_event
from trailseal.services.alerts import insert_alert, record_alert
from trailseal.services.settings import ANOMALY_THRESHOLD, DEFAULT_ANOMALY_THRESHOLD
from trailseal.services.tenancy import create_api_key, create_user
from trailseal.tables import anomaly_feedback, audit_anomalies, bias_metrics
from trailseal.testing import make_tenant

Z_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _details(score: float, event_seq: int = 1, **extra) -> dict:
    details = {
        "event_seq": event_seq, "occurred_at": "2026-11-20T10:00:00.000000Z",
        "anomaly_score": score, "detector": "isolation-forest", "model_version": "if-3",
        "confidence": 0.8, "detected_at": "2026-11-20T10:05:00.000000Z",
        "explanation": {"summary": "deleted at an unusual hour",
                        "contributions": [{"feature": "hour", "label": "Hour of day",
                                           "value": 3, "contribution": 0.4}]},
        "affected_entities": [{"type": "actor", "id": "u-1"},
                              {"type": "invoice", "id": "INV-1"}],
        "suggested_actions": ["Confirm with u-1 that this was intended."],
        "detectors": {"isolation-forest": {"score": score, "is_anomaly": True}},
    }
    details.update(extra)
    return details


def _anomaly(svc, tenant_id, event_id: str | None, *, score: float = 0.9,
             severity: str = "high", kind: str = "anomaly", **extra) -> str:
    """An anomaly alert as enrichment stores it (``insert_alert`` in a tenant transaction)."""
    with svc.db.transaction(tenant_id) as conn:
        alert = insert_alert(conn, tenant_id, kind=kind, severity=severity,
                             title=f"Anomalous event {event_id}", event_id=event_id,
                             details=_details(score, **extra),
                             dedupe_key=f"test:{uuid.uuid4()}")
    return alert.id


def _set_created(owner, alert_id: str, moment: datetime) -> None:
    owner.execute("UPDATE audit_anomalies SET created_at = %s WHERE id = %s",
                  (moment, uuid.UUID(alert_id)))


def _key(svc, tenant, permissions) -> tuple[str, dict]:
    key = create_api_key(svc, tenant.id, list(permissions))
    return key["id"], {"Authorization": f"Bearer {key['token']}"}


def _get(client, url, headers) -> dict:
    resp = client.get(url, headers=headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --- listing ------------------------------------------------------------------------------

def test_an_anomaly_carries_its_event_related_events_and_explanation(trailseal_client,
                                                                      trailseal_services,
                                                                      tenant):
    at = "2026-11-20T{}Z"
    ids = ingest(trailseal_client, tenant, [
        make_event(occurred_at=at.format("10:00:00")),  # the anomalous event: u-1 on INV-1
        make_event(occurred_at=at.format("10:30:00"),  # same actor, other entity
                   entity={"type": "invoice", "id": "INV-9"}),
        make_event(occurred_at=at.format("09:15:00"),  # same entity, other actor
                   actor={"id": "u-2", "type": "user"}),
        make_event(occurred_at=at.format("11:00:00"),  # same actor, exactly an hour later
                   entity={"type": "customer", "id": "C-1"}),
        make_event(occurred_at=at.format("11:30:00")),  # same actor and entity, too late
        make_event(occurred_at=at.format("08:59:59")),  # too early
        make_event(occurred_at=at.format("10:05:00"),  # neither actor nor entity
                   actor={"id": "u-3", "type": "user"},
                   entity={"type": "invoice", "id": "INV-2"}),
        make_event(occurred_at=at.format("10:10:00"),  # same entity id, another entity type
                   actor={"id": "u-4", "type": "user"},
                   entity={"type": "customer", "id": "INV-1"}),
    ])["ids"]
    alert_id = _anomaly(trailseal_services, tenant.id, ids[0], score=0.87)

    page = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)
    assert page["next_cursor"] is None
    [item] = page["anomalies"]
    assert item["id"] == alert_id and item["kind"] == "anomaly" and item["status"] == "open"
    assert item["score"] == 0.87 and item["event_id"] == ids[0]
    assert Z_TIME.match(item["created_at"])
    # the event exactly as GET /events/{id} shows it
    assert item["event"] == _get(trailseal_client, f"/api/v1/events/{ids[0]}", tenant.headers)
    # same actor or same entity (type and id) within an hour either side, oldest first
    assert [e["id"] for e in item["related_events"]] == [ids[2], ids[1], ids[3]]
    assert item["related_events"][0] == _get(trailseal_client, f"/api/v1/events/{ids[2]}",
                                             tenant.headers)
    details = item["details"]
    assert item["explanation"] == details["explanation"]
    assert item["affected_entities"] == details["affected_entities"]
    assert item["suggested_actions"] == details["suggested_actions"]
    assert item["model_version"] == "if-3"
    assert item["detected_at"] == "2026-11-20T10:05:00.000000Z"
    assert item["feedback"] is None


def test_related_events_are_capped_at_20(trailseal_client, trailseal_services, tenant):
    base = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    events = [make_event(occurred_at=base.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    events += [make_event(occurred_at=(base + timedelta(minutes=n)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"), entity={"type": "doc", "id": f"D-{n}"}) for n in range(1, 26)]
    ids = ingest(trailseal_client, tenant, events)["ids"]
    _anomaly(trailseal_services, tenant.id, ids[0])
    [item] = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"]
    assert [e["id"] for e in item["related_events"]] == ids[1:21]


def test_only_anomaly_alerts_are_listed_and_odd_details_do_not_break_it(trailseal_client,
                                                                         trailseal_services,
                                                                         tenant):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    record_alert(trailseal_services, tenant.id, kind="test", severity="low", title="other",
                 details={"anomaly_score": 0.99})
    # a plugin may raise "anomaly" alerts with details of its own shape
    odd = trailseal_services.raise_alert(
        tenant.id, kind="anomaly", title="odd", severity="medium", event_id=event_id,
        details={"anomaly_score": "very", "explanation": "text", "suggested_actions": [1, "x"]})
    items = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"]
    assert [i["id"] for i in items] == [odd.id]
    assert items[0]["score"] is None and items[0]["explanation"] is None
    assert items[0]["suggested_actions"] == ["x"] and items[0]["affected_entities"] == []
    assert _get(trailseal_client, "/api/v1/anomalies?min_score=0", tenant.headers)[
        "anomalies"] == []


def test_an_anomaly_without_an_event(trailseal_client, trailseal_services, tenant):
    alert_id = _anomaly(trailseal_services, tenant.id, None)
    [item] = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"]
    assert item["id"] == alert_id and item["event"] is None and item["related_events"] == []


@pytest.fixture
def four(trailseal_client, trailseal_services, tenant, owner):
    """Four anomalies, detected a day apart (a oldest), of different scores, severities and
    statuses, plus an alert of another kind."""
    ids = ingest(trailseal_client, tenant, [make_event() for _ in range(4)])["ids"]
    specs = [("a", 0.95, "critical"), ("b", 0.70, "high"), ("c", 0.55, "medium"),
             ("d", 0.30, "low")]
    made = {}
    for n, (name, score, severity) in enumerate(specs):
        made[name] = _anomaly(trailseal_services, tenant.id, ids[n], score=score,
                              severity=severity)
        _set_created(owner, made[name], datetime(2026, 11, 1 + n, 12, tzinfo=UTC))
    trailseal_client.patch(f"/api/v1/alerts/{made['b']}", json={"status": "resolved"},
                           headers=tenant.headers)
    trailseal_client.patch(f"/api/v1/alerts/{made['c']}", json={"status": "acknowledged"},
                           headers=tenant.headers)
    record_alert(trailseal_services, tenant.id, kind="test", severity="high", title="not one",
                 details={"anomaly_score": 0.99})
    return made


@pytest.mark.parametrize("query,expected", [
    ("", "dcba"),
    ("min_score=0.6", "ba"),
    ("min_score=0.55", "cba"),
    ("min_score=1", ""),
    ("status=open", "da"),
    ("status=resolved", "b"),
    ("status=acknowledged", "c"),
    ("severity=high", "b"),
    ("severity=low&severity=critical", "da"),
    ("start=2026-11-02T12:00:00Z", "dcb"),
    ("end=2026-11-02T12:00:00Z", "a"),
    ("start=2026-11-02T00:00:00Z&end=2026-11-04T00:00:00Z", "cb"),
    ("start=2026-11-02T13:00:00%2B01:00&end=2026-11-03T12:00:00.000001Z", "cb"),
    ("status=open&min_score=0.5&severity=critical&severity=high", "a"),
])
def test_filters(trailseal_client, tenant, four, query, expected):
    items = _get(trailseal_client, f"/api/v1/anomalies?{query}", tenant.headers)["anomalies"]
    names = {v: k for k, v in four.items()}
    assert "".join(names[i["id"]] for i in items) == expected


@pytest.mark.parametrize("query,message", [
    ("min_score=1.5", "min_score"), ("min_score=-0.1", "min_score"),
    ("min_score=nan", "min_score"), ("min_score=high", "min_score"),
    ("status=closed", "status"), ("severity=info", "severity"),
    ("severity=high&severity=urgent", "severity"), ("limit=0", "limit"),
    ("limit=101", "limit"), ("start=yesterday", "start"),
    ("end=2026-11-02T00:00:00", "end"), ("start=1700000000", "start"),
])
def test_bad_filters_are_422(trailseal_client, tenant, query, message):
    resp = trailseal_client.get(f"/api/v1/anomalies?{query}", headers=tenant.headers)
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["code"] == "validation_failed" and message in error["message"]


def test_pages_with_cursors_bound_to_the_filters(trailseal_client, trailseal_services, tenant,
                                                 owner):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    made = []
    for n in range(7):
        made.append(_anomaly(trailseal_services, tenant.id, event_id, score=0.5 + n / 100))
        _set_created(owner, made[-1], datetime(2026, 11, 1, n, tzinfo=UTC))
    # two with the same detection time: the id breaks the tie
    extra = _anomaly(trailseal_services, tenant.id, event_id, score=0.9)
    _set_created(owner, extra, datetime(2026, 11, 1, 3, tzinfo=UTC))
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/anomalies?limit=3&min_score=0.5" + (f"&cursor={cursor}" if cursor else "")
        page = _get(trailseal_client, url, tenant.headers)
        seen += page["anomalies"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 8
    assert sorted(i["id"] for i in seen) == sorted([*made, extra])
    keys = [(i["created_at"], i["id"]) for i in seen]
    assert keys == sorted(keys, reverse=True)

    first = _get(trailseal_client, "/api/v1/anomalies?limit=3&min_score=0.5", tenant.headers)
    cursor = first["next_cursor"]
    # the page size may change between pages; the filters may not
    assert _get(trailseal_client, f"/api/v1/anomalies?limit=50&min_score=0.5&cursor={cursor}",
                tenant.headers)["next_cursor"] is None
    for url in (f"/api/v1/anomalies?cursor={cursor}",
                f"/api/v1/anomalies?min_score=0.6&cursor={cursor}",
                f"/api/v1/anomalies?min_score=0.5&status=open&cursor={cursor}",
                f"/api/v1/alerts?cursor={cursor}",
                "/api/v1/anomalies?cursor=" + _cursor(["anomalies", "x", "y", "z"]),
                "/api/v1/anomalies?cursor=not-a-cursor"):
        resp = trailseal_client.get(url, headers=tenant.headers)
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["code"] == "bad_request"
    # an alerts cursor does not page anomalies either
    record_alert(trailseal_services, tenant.id, kind="test", severity="low", title="t",
                 details={})
    alerts_cursor = _get(trailseal_client, "/api/v1/alerts?limit=1",
                         tenant.headers)["next_cursor"]
    resp = trailseal_client.get(f"/api/v1/anomalies?cursor={alerts_cursor}",
                                headers=tenant.headers)
    assert resp.status_code == 400


def test_a_page_is_cut_by_the_size_of_its_events(trailseal_client, trailseal_services, tenant):
    big = {"blob": "x" * 200_000}  # a record of about 270 kB (encrypted, base64)
    ids = ingest(trailseal_client, tenant,
                 [make_event(action_details=big, actor={"id": f"u-{n}", "type": "user"},
                             entity={"type": "doc", "id": f"D-{n}"}) for n in range(3)])["ids"]
    for event_id in ids:
        _anomaly(trailseal_services, tenant.id, event_id)
    old = trailseal_services.config["PAGE_MAX_BYTES"]
    trailseal_services.config["PAGE_MAX_BYTES"] = 500_000
    try:
        first = _get(trailseal_client, "/api/v1/anomalies?limit=3", tenant.headers)
        assert len(first["anomalies"]) == 2 and first["next_cursor"]
        rest = _get(trailseal_client, f"/api/v1/anomalies?limit=3&cursor={first['next_cursor']}",
                    tenant.headers)
        assert len(rest["anomalies"]) == 1 and rest["next_cursor"] is None
    finally:
        trailseal_services.config["PAGE_MAX_BYTES"] = old


def test_another_tenants_anomalies_are_not_listed(trailseal_client, trailseal_services, tenant):
    other = make_tenant(trailseal_services)
    event_id = ingest(trailseal_client, other, [make_event()])["ids"][0]
    _anomaly(trailseal_services, other.id, event_id)
    assert _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"] == []
    assert len(_get(trailseal_client, "/api/v1/anomalies", other.headers)["anomalies"]) == 1


def test_the_page_matches_the_openapi_document(trailseal_client, trailseal_services, tenant):
    from jsonschema import Draft202012Validator

    ids = ingest(trailseal_client, tenant, [make_event(), make_event()])["ids"]
    alert_id = _anomaly(trailseal_services, tenant.id, ids[0])
    trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback",
                          json={"is_false_positive": False}, headers=tenant.headers)
    _anomaly(trailseal_services, tenant.id, None)
    spec = trailseal_client.get("/api/v1/openapi.json").get_json()
    body = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)
    assert len(body["anomalies"]) == 2 and body["anomalies"][1]["feedback"]
    schema = {"$ref": "#/components/schemas/AnomalyPage", "components": spec["components"]}
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert errors == []


# --- feedback -----------------------------------------------------------------------------

def _feedback_rows(svc, tenant_id) -> list[dict]:
    with svc.db.transaction(tenant_id) as conn:
        return [dict(r) for r in conn.execute(
            select(anomaly_feedback).order_by(anomaly_feedback.c.id)).mappings()]


def test_a_false_positive_is_stored_and_resolves_the_alert(trailseal_client,
                                                            trailseal_services, tenant):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    alert_id = _anomaly(trailseal_services, tenant.id, event_id)
    key_id, headers = _key(trailseal_services, tenant, ["audit:read", "audit:review"])
    before = datetime.now(UTC)
    resp = trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback", headers=headers,
                                 json={"is_false_positive": True, "notes": "month-end close"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    assert body["alert"]["id"] == alert_id and body["alert"]["status"] == "resolved"
    assert body["alert"]["status_changed_by"] == f"api_key:{key_id}"
    assert body["feedback"]["is_false_positive"] is True
    assert body["feedback"]["notes"] == "month-end close"
    assert body["feedback"]["given_by"] == f"api_key:{key_id}"
    assert Z_TIME.match(body["feedback"]["given_at"])
    [row] = _feedback_rows(trailseal_services, tenant.id)
    assert row["alert_id"] == uuid.UUID(alert_id) and row["event_id"] == uuid.UUID(event_id)
    assert row["is_false_positive"] is True and row["given_by"] == f"api_key:{key_id}"
    assert before - timedelta(seconds=5) <= row["given_at"] <= datetime.now(UTC)
    # the listing shows the verdict and the new status
    [item] = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"]
    assert item["status"] == "resolved" and item["feedback"] == body["feedback"]


def test_a_confirmation_acknowledges_an_open_alert_and_the_latest_verdict_counts(
        trailseal_client, trailseal_services, tenant):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    alert_id = _anomaly(trailseal_services, tenant.id, event_id)
    url = f"/api/v1/anomalies/{alert_id}/feedback"
    first = trailseal_client.post(url, json={"is_false_positive": False},
                                  headers=tenant.headers).get_json()
    assert first["alert"]["status"] == "acknowledged" and first["feedback"]["notes"] == ""
    # a false positive after all: resolved; confirming again leaves it resolved
    second = trailseal_client.post(url, json={"is_false_positive": True, "notes": "after all"},
                                   headers=tenant.headers).get_json()
    assert second["alert"]["status"] == "resolved"
    third = trailseal_client.post(url, json={"is_false_positive": False, "notes": "no, real"},
                                  headers=tenant.headers)
    assert third.status_code == 201 and third.get_json()["alert"]["status"] == "resolved"
    assert third.get_json()["alert"]["status_changed_at"] == second["alert"]["status_changed_at"]
    assert len(_feedback_rows(trailseal_services, tenant.id)) == 3
    [item] = _get(trailseal_client, "/api/v1/anomalies", tenant.headers)["anomalies"]
    assert item["feedback"]["notes"] == "no, real" and item["feedback"]["is_false_positive"] is False


def test_feedback_on_another_tenants_anomaly_is_404(trailseal_client, trailseal_services,
                                                    tenant):
    other = make_tenant(trailseal_services)
    event_id = ingest(trailseal_client, other, [make_event()])["ids"][0]
    alert_id = _anomaly(trailseal_services, other.id, event_id)
    resp = trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback",
                                 json={"is_false_positive": True}, headers=tenant.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert _feedback_rows(trailseal_services, other.id) == []
    [item] = _get(trailseal_client, "/api/v1/anomalies", other.headers)["anomalies"]
    assert item["status"] == "open" and item["feedback"] is None


def test_feedback_on_other_alerts_or_ids_is_404(trailseal_client, trailseal_services, tenant):
    other_kind = record_alert(trailseal_services, tenant.id, kind="test", severity="low",
                              title="t", details={})
    for alert_id in (other_kind.id, str(uuid.uuid4()), "not-an-id"):
        resp = trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback",
                                     json={"is_false_positive": False}, headers=tenant.headers)
        assert resp.status_code == 404, alert_id
    assert _feedback_rows(trailseal_services, tenant.id) == []
    with trailseal_services.db.transaction(tenant.id) as conn:
        status = conn.execute(select(audit_anomalies.c.status).where(
            audit_anomalies.c.id == uuid.UUID(other_kind.id))).scalar_one()
    assert status == "open"


def test_feedback_needs_the_analyst_permission_and_an_api_key(trailseal_app, trailseal_client,
                                                               trailseal_services, tenant):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    alert_id = _anomaly(trailseal_services, tenant.id, event_id)
    url = f"/api/v1/anomalies/{alert_id}/feedback"
    _, viewer = _key(trailseal_services, tenant, ["audit:read"])
    resp = trailseal_client.post(url, json={"is_false_positive": True}, headers=viewer)
    assert resp.status_code == 403
    assert resp.get_json()["error"]["details"] == {"required": "audit:review"}
    _, writer = _key(trailseal_services, tenant, ["audit:write"])
    assert trailseal_client.post(url, json={"is_false_positive": True},
                                 headers=writer).status_code == 403
    _, admin = _key(trailseal_services, tenant, ["audit:admin"])
    assert trailseal_client.post(url, json={"is_false_positive": False},
                                 headers=admin).status_code == 201
    # a signed-in analyst reads the anomalies but cannot write with the session alone
    email = f"analyst-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "analyst")
    browser = trailseal_app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert browser.post("/login", data={"email": email, "password": "correct horse battery",
                                        "csrf_token": token}).status_code == 302
    assert browser.get("/api/v1/anomalies").status_code == 200
    assert browser.post(url, json={"is_false_positive": True}).status_code == 401
    assert len(_feedback_rows(trailseal_services, tenant.id)) == 1


@pytest.mark.parametrize("body", [
    {},
    {"notes": "x"},
    {"is_false_positive": "true"},
    {"is_false_positive": 1},
    {"is_false_positive": None},
    {"is_false_positive": True, "notes": "x" * 2001},
    {"is_false_positive": True, "notes": "a\u0000b"},
    {"is_false_positive": True, "notes": 5},
    {"is_false_positive": True, "status": "resolved"},
    [{"is_false_positive": True}],
])
def test_bad_feedback_bodies_are_422(trailseal_client, trailseal_services, tenant, body):
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    alert_id = _anomaly(trailseal_services, tenant.id, event_id)
    resp = trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback", json=body,
                                 headers=tenant.headers)
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["error"]["code"] == "validation_failed"
    assert _feedback_rows(trailseal_services, tenant.id) == []


def test_notes_of_2000_characters_with_newlines_are_kept(trailseal_client, trailseal_services,
                                                         tenant):
    alert_id = _anomaly(trailseal_services, tenant.id, None)
    notes = ("line\n" * 400)[:2000]
    resp = trailseal_client.post(f"/api/v1/anomalies/{alert_id}/feedback",
                                 json={"is_false_positive": True, "notes": notes},
                                 headers=tenant.headers)
    assert resp.status_code == 201 and resp.get_json()["feedback"]["notes"] == notes


# --- settings -----------------------------------------------------------------------------

def test_threshold_get_and_put(trailseal_client, trailseal_services, tenant):
    url = "/api/v1/anomalies/settings"
    assert _get(trailseal_client, url, tenant.headers) == {
        "threshold": DEFAULT_ANOMALY_THRESHOLD, "default": DEFAULT_ANOMALY_THRESHOLD,
        "updated_by": None, "updated_at": None}
    key_id, admin = _key(trailseal_services, tenant, ["audit:admin"])
    resp = trailseal_client.put(url, json={"threshold": 0.75}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["threshold"] == 0.75 and body["default"] == DEFAULT_ANOMALY_THRESHOLD
    assert body["updated_by"] == f"api_key:{key_id}" and Z_TIME.match(body["updated_at"])
    _, viewer = _key(trailseal_services, tenant, ["audit:read"])
    assert _get(trailseal_client, url, viewer) == body
    assert trailseal_services.get_setting(tenant.id, ANOMALY_THRESHOLD) == 0.75
    # only this tenant's
    other = make_tenant(trailseal_services)
    assert _get(trailseal_client, url, other.headers)["threshold"] == DEFAULT_ANOMALY_THRESHOLD


@pytest.mark.parametrize("body", [
    {"threshold": 0}, {"threshold": 1}, {"threshold": -0.2}, {"threshold": 1.5},
    {"threshold": "0.5"}, {"threshold": True}, {"threshold": None}, {},
    {"threshold": 0.5, "other": 1}, {"value": 0.5}, [0.5], {"threshold": 1e400},
])
def test_bad_thresholds_are_422(trailseal_client, trailseal_services, tenant, body):
    resp = trailseal_client.put("/api/v1/anomalies/settings", json=body,
                                headers=tenant.headers)
    assert resp.status_code in (400, 422), resp.get_json()
    assert resp.get_json()["error"]["code"] in ("validation_failed", "bad_request")
    assert trailseal_services.get_setting(tenant.id, ANOMALY_THRESHOLD) == \
        DEFAULT_ANOMALY_THRESHOLD


def test_only_admins_set_the_threshold(trailseal_client, trailseal_services, tenant):
    for permissions in (["audit:read"], ["audit:read", "audit:review"], ["audit:write"]):
        _, headers = _key(trailseal_services, tenant, permissions)
        resp = trailseal_client.put("/api/v1/anomalies/settings", json={"threshold": 0.7},
                                    headers=headers)
        assert resp.status_code == 403, permissions
    _, writer = _key(trailseal_services, tenant, ["audit:write"])
    assert trailseal_client.get("/api/v1/anomalies/settings", headers=writer).status_code == 403


# --- models and bias metrics --------------------------------------------------------------

def test_models_newest_first_without_artifacts(trailseal_client, trailseal_services, tenant):
    for version, model_type in (("if-1", "isolation_forest"), ("if-2", "isolation_forest"),
                                ("km-1", "kmeans")):
        trailseal_services.save_model(
            tenant.id, model_type=model_type, version=version, artifact=b"\x00npz",
            artifact_format="npz", features=["hour", "weekday"], training_events=500,
            created_by="system:trainer", metrics={"contamination": 0.01})
    models = _get(trailseal_client, "/api/v1/models", tenant.headers)["models"]
    assert [m["version"] for m in models] == ["km-1", "if-2", "if-1"]
    assert all("artifact" not in m for m in models)
    assert [m["is_active"] for m in models] == [True, True, False]
    assert models[0]["features"] == ["hour", "weekday"] and Z_TIME.match(models[0]["created_at"])
    only = _get(trailseal_client, "/api/v1/models?model_type=isolation_forest&limit=1",
                tenant.headers)["models"]
    assert [m["version"] for m in only] == ["if-2"]
    assert _get(trailseal_client, "/api/v1/models",
                make_tenant(trailseal_services).headers)["models"] == []
    for query in ("limit=0", "limit=101", "model_type=", "other=1"):
        assert trailseal_client.get(f"/api/v1/models?{query}",
                                    headers=tenant.headers).status_code == 422, query


def test_bias_metrics_newest_first(trailseal_client, trailseal_services, tenant):
    run_old, run_new = uuid.uuid4(), uuid.uuid4()
    window = {"window_start": datetime(2026, 11, 1, tzinfo=UTC),
              "window_end": datetime(2026, 11, 8, tzinfo=UTC)}
    rows = [
        (run_old, "overall", "all", datetime(2026, 11, 8, 1, tzinfo=UTC), "ok"),
        (run_old, "actor_role", "accountant", datetime(2026, 11, 8, 1, tzinfo=UTC), "ok"),
        (run_new, "overall", "all", datetime(2026, 11, 9, 1, tzinfo=UTC), "ok"),
        (run_new, "actor_role", "intern", datetime(2026, 11, 9, 1, tzinfo=UTC), "alert"),
    ]
    with trailseal_services.db.transaction(tenant.id) as conn:
        conn.execute(insert(bias_metrics), [
            {"tenant_id": tenant.id, "run_id": run, "model_version": "if-2", **window,
             "dimension": dim, "grp": grp, "events": 120, "flagged": 6, "rate": 0.05,
             "overall_rate": 0.02, "ci_low": 0.02, "ci_high": 0.1, "status": status,
             "computed_at": at} for run, dim, grp, at, status in rows])
    metrics = _get(trailseal_client, "/api/v1/bias-metrics", tenant.headers)["metrics"]
    assert [(m["dimension"], m["group"]) for m in metrics] == [
        ("actor_role", "intern"), ("overall", "all"), ("actor_role", "accountant"),
        ("overall", "all")]
    first = metrics[0]
    assert first["run_id"] == str(run_new) and first["status"] == "alert"
    assert first["window_start"] == "2026-11-01T00:00:00.000000Z"
    assert set(first) == {"id", "run_id", "model_version", "window_start", "window_end",
                          "dimension", "group", "events", "flagged", "rate", "overall_rate",
                          "ci_low", "ci_high", "status", "computed_at"}
    roles = _get(trailseal_client, "/api/v1/bias-metrics?dimension=actor_role&limit=1",
                 tenant.headers)["metrics"]
    assert [m["group"] for m in roles] == ["intern"]
    assert _get(trailseal_client, "/api/v1/bias-metrics",
                make_tenant(trailseal_services).headers)["metrics"] == []
    for query in ("limit=0", "limit=501", "grp=all"):
        assert trailseal_client.get(f"/api/v1/bias-metrics?{query}",
                                    headers=tenant.headers).status_code == 422, query


# --- reads are audited, and need audit:read -------------------------------------------------

def test_every_read_is_in_the_access_log(trailseal_client, trailseal_services, tenant):
    ids = ingest(trailseal_client, tenant, [make_event(), make_event()])["ids"]
    for event_id in ids:
        _anomaly(trailseal_services, tenant.id, event_id)
    key_id, reader = _key(trailseal_services, tenant, ["audit:read"])
    for url in ("/api/v1/anomalies?min_score=0.5&severity=high", "/api/v1/anomalies/settings",
                "/api/v1/models?model_type=kmeans", "/api/v1/bias-metrics?limit=5"):
        _get(trailseal_client, url, reader)
    # rejected requests and writes are not reads
    trailseal_client.get("/api/v1/anomalies?min_score=7", headers=reader)
    trailseal_client.put("/api/v1/anomalies/settings", json={"threshold": 0.7},
                         headers=tenant.headers)
    entries = _get(trailseal_client, "/api/v1/access-log?limit=20",
                   tenant.headers)["entries"][1:]
    mine = [(e["endpoint"], e["query"]) for e in reversed(entries)
            if e["principal_id"] == key_id]
    assert mine == [
        ("/api/v1/anomalies", {"min_score": "0.5", "severity": ["high"]}),
        ("/api/v1/anomalies/settings", {}),
        ("/api/v1/models", {"model_type": "kmeans"}),
        ("/api/v1/bias-metrics", {"limit": "5"}),
    ]


@pytest.mark.parametrize("url", ["/api/v1/anomalies", "/api/v1/anomalies/settings",
                                 "/api/v1/models", "/api/v1/bias-metrics"])
def test_reads_need_audit_read(trailseal_client, trailseal_services, tenant, url):
    assert trailseal_client.get(url).status_code == 401
    _, writer = _key(trailseal_services, tenant, ["audit:write"])
    resp = trailseal_client.get(url, headers=writer)
    assert resp.status_code == 403
    assert resp.get_json()["error"]["details"] == {"required": "audit:read"}
