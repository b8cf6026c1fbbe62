"""Summaries and explanations against real PostgreSQL and Valkey: the tenant time zone
setting, exact summary windows with real events at the boundary instants, totals counted by
hand, grounded citations, stored summaries served from ``audit_summaries``, the scheduled
job, event explanations with an anomaly, tenancy and the access log."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ingest, make_event, owner_connection
from trailseal import hookimpl
from trailseal.jobs.summaries import store_summaries_all_tenants
from trailseal.services.summaries import delete_stored_summaries
from trailseal.testing import make_tenant
from trailseal.types import Finding
from trailseal_plugins.demo.loader import event_to_explain

CITED = re.compile(r"\[([0-9a-f-]{36})\]")


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _set_zone(client, tenant, zone: str):
    resp = client.put("/api/v1/settings", json={"timezone": zone}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _summary(client, tenant, period: str, day: str | None = None) -> dict:
    url = f"/api/v1/summary/{period}" + (f"?date={day}" if day else "")
    resp = client.get(url, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _cited(summary_or_explanation: dict) -> set[str]:
    return set(CITED.findall(summary_or_explanation["narrative"]))


# --- the time zone setting ---------------------------------------------------------------


def test_time_zone_setting_defaults_to_utc_and_validates(trailseal_client, trailseal_services,
                                                         tenant):
    shown = trailseal_client.get("/api/v1/settings", headers=tenant.headers).get_json()
    assert shown["timezone"] == {"value": "UTC", "default": "UTC", "updated_by": None,
                                 "updated_at": None}
    changed = _set_zone(trailseal_client, tenant, "Australia/Lord_Howe")
    assert changed["timezone"]["value"] == "Australia/Lord_Howe"
    assert changed["timezone"]["updated_by"].startswith("api_key:")
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "europe/berlin", 42, None):
        resp = trailseal_client.put("/api/v1/settings", json={"timezone": bad},
                                    headers=tenant.headers)
        assert resp.status_code == 422, (bad, resp.get_json())
        assert resp.get_json()["error"]["message"]
    null = trailseal_client.put("/api/v1/settings", json={"timezone": None},
                                headers=tenant.headers)
    assert null.get_json()["error"]["message"].startswith("timezone: timezone must be an IANA")
    for body in ({}, {"zone": "UTC"}):
        resp = trailseal_client.put("/api/v1/settings", json=body, headers=tenant.headers)
        assert resp.status_code == 422, body
    # nothing half-written: the last good value stands
    shown = trailseal_client.get("/api/v1/settings", headers=tenant.headers).get_json()
    assert shown["timezone"]["value"] == "Australia/Lord_Howe"
    reader = make_tenant(trailseal_services, permissions=("audit:read",))
    assert trailseal_client.put("/api/v1/settings", json={"timezone": "UTC"},
                                headers=reader.headers).status_code == 403
    assert trailseal_client.get("/api/v1/settings", headers=reader.headers).status_code == 200


# --- windows with real events at the boundary instants -------------------------------------

BOUNDARY_CASES = [
    # zone, period, date, expected local start, hours
    ("Europe/Berlin", "daily", "2026-03-29", "2026-03-29T00:00:00+01:00", 23.0),
    ("America/New_York", "daily", "2026-11-01", "2026-11-01T00:00:00-04:00", 25.0),
    ("Australia/Lord_Howe", "daily", "2026-10-04", "2026-10-04T00:00:00+10:30", 23.5),
    ("Asia/Kolkata", "weekly", "2026-11-18", "2026-11-16T00:00:00+05:30", 168.0),
    ("Pacific/Chatham", "monthly", "2026-04-15", "2026-04-01T00:00:00+13:45", 721.0),
]


@pytest.mark.parametrize("zone,period,day,local_start,hours", BOUNDARY_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in BOUNDARY_CASES])
def test_window_is_exact_and_boundary_events_fall_on_the_right_side(
        trailseal_client, trailseal_services, zone, period, day, local_start, hours):
    tenant = make_tenant(trailseal_services)
    _set_zone(trailseal_client, tenant, zone)
    probe = _summary(trailseal_client, tenant, period, day)
    w = probe["window"]
    assert w["start_local"] == local_start
    assert w["hours"] == hours
    start, end = _parse(w["start"]), _parse(w["end"])
    assert end.astimezone(ZoneInfo(zone)).time().isoformat() == "00:00:00"
    assert start.astimezone(ZoneInfo(zone)).isoformat() == local_start
    tick = timedelta(microseconds=1)
    inside = {"at start": start, "just before end": end - tick}
    outside = {"just before start": start - tick, "at end": end}
    created = ingest(trailseal_client, tenant, [
        make_event(occurred_at=_z(t), event_type=f"probe.{name.replace(' ', '_')}",
                   actor={"id": "boundary", "type": "user"})
        for name, t in {**inside, **outside}.items()])
    ids = dict(zip([*inside, *outside], created["ids"], strict=True))
    summary = _summary(trailseal_client, tenant, period, day)
    assert summary["stored"] is False and summary["complete"] is True
    assert summary["totals"]["events"] == 2
    assert summary["totals"]["first_event_id"] == ids["at start"]
    assert summary["totals"]["last_event_id"] == ids["just before end"]
    assert _cited(summary) <= {ids["at start"], ids["just before end"]}
    assert _cited(summary), summary["narrative"]
    # the previous period ends where this one starts and holds the event just before it
    assert summary["previous"]["window"]["end"] == w["start"]
    assert summary["previous"]["events"] == 1


# --- totals by hand, citations, storage -------------------------------------------------------


def _trail(day: date, zone: ZoneInfo) -> list[dict]:
    """Events spread over the local day before ``day``, ``day`` itself and the day after,
    with failures, deletions, role changes and various actors and severities."""
    base = datetime(day.year, day.month, day.day, tzinfo=zone)
    events = []
    kinds = [("invoice.deleted", "medium", [], "ana"), ("iam.AttachRolePolicy", "high", [], "bob"),
             ("signin.ConsoleLogin", "low", ["failed"], "eve"),
             ("report.viewed", "info", [], "ana"), ("bucket.DeleteBucket", "critical", [], "bob"),
             ("user.role_changed", "medium", [], "carl")]
    for hour in range(-6, 31, 2):
        kind, severity, tags, actor = kinds[(hour + 6) // 2 % len(kinds)]
        events.append(make_event(occurred_at=_z(base + timedelta(hours=hour, minutes=7)),
                                 event_type=kind, severity=severity, tags=tags,
                                 actor={"id": actor, "type": "user", "role": "staff"},
                                 entity={"type": "thing", "id": f"T-{hour % 3}"}))
    return events


def test_summary_totals_equal_counting_by_hand_and_citations_stay_in_the_window(
        trailseal_client, trailseal_services, run_jobs):
    tenant = make_tenant(trailseal_services)
    zone = ZoneInfo("America/New_York")
    _set_zone(trailseal_client, tenant, zone.key)
    day = date(2026, 11, 1)  # 25 hours long
    created = ingest(trailseal_client, tenant, _trail(day, zone))
    run_jobs()
    events = [trailseal_client.get(f"/api/v1/events/{eid}", headers=tenant.headers).get_json()
              for eid in created["ids"]]
    summary = _summary(trailseal_client, tenant, "daily", day.isoformat())
    start, end = _parse(summary["window"]["start"]), _parse(summary["window"]["end"])
    # by hand: the local date of each event in the tenant's zone
    inside = [e for e in events if _parse(e["occurred_at"]).astimezone(zone).date() == day]
    assert all(start <= _parse(e["occurred_at"]) < end for e in inside)
    totals = summary["totals"]
    assert totals["events"] == len(inside) > 0
    failed = [e for e in inside if "failed" in e["tags"]
              or "failed-action" in (e["insights"] or {}).get("tags", [])]
    assert totals["failures"] == len(failed)
    severity = Counter(e["severity"] for e in inside)
    assert {k: v for k, v in totals["by_severity"].items() if v} == dict(severity)
    categories = Counter((e["insights"] or {}).get("category") or "uncategorized"
                         for e in inside)
    assert totals["by_category"] == dict(categories)
    before = [e for e in events
              if _parse(e["occurred_at"]).astimezone(zone).date() == day - timedelta(days=1)]
    assert summary["previous"]["events"] == len(before)
    assert summary["change"]["events"]["difference"] == len(inside) - len(before)
    anomalies = [e for e in inside if (e["insights"] or {}).get("is_anomaly")]
    assert summary["anomalies"]["count"] == len(anomalies)
    actors = Counter(e["actor"]["id"] for e in inside)
    top = summary["top_actors"][0]
    assert top["events"] == max(actors.values()) and actors[top["actor"]] == top["events"]
    by_id = {e["id"]: e for e in inside}
    assert set(top["event_ids"]) <= set(by_id)
    # critical changes: the deletions and role changes of the day are all among them
    critical_ids = {e["id"] for e in summary["critical_changes"]["events"]}
    deletions = {e["id"] for e in inside if "Delete" in e["event_type"]
                 or "deleted" in e["event_type"]}
    assert deletions <= critical_ids
    assert summary["critical_changes"]["count"] >= len(deletions)
    # every citation (narrative and sources) is an event of this tenant in the window
    assert summary["sources"] and _cited(summary)
    assert _cited(summary) == {s["id"] for s in summary["sources"]}
    assert _cited(summary) <= set(by_id)
    for source in summary["sources"]:
        assert source["seq"] == by_id[source["id"]]["seq"]


def _stored_rows(services, tenant_id) -> list[dict]:
    with services.db.transaction(tenant_id) as conn:
        return [dict(r) for r in conn.exec_driver_sql(
            "SELECT period, period_start, timezone, head_seq FROM audit_summaries "
            "ORDER BY period").mappings()]


def test_a_complete_summary_is_stored_and_served_from_the_table(trailseal_client,
                                                                trailseal_services):
    tenant = make_tenant(trailseal_services)
    _set_zone(trailseal_client, tenant, "Europe/Berlin")
    ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-20T10:00:00Z"),
                                      make_event(occurred_at="2026-11-20T11:00:00Z")])
    first = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert first["stored"] is False and first["totals"]["events"] == 2
    rows = _stored_rows(trailseal_services, tenant.id)
    assert [(r["period"], r["timezone"]) for r in rows] == [("daily", "Europe/Berlin")]
    # mark the stored row: the next read must show the mark, so it came from the table
    with owner_connection(trailseal_services) as conn:
        conn.execute("UPDATE audit_summaries SET content = jsonb_set(content, '{narrative}', "
                     "'\"from the table\"') WHERE tenant_id = %s", (tenant.id,))
    second = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert second["stored"] is True and second["narrative"] == "from the table"
    assert {k: v for k, v in second.items() if k not in ("stored", "narrative")} == \
        {k: v for k, v in first.items() if k not in ("stored", "narrative")}
    # any other day of the same week reads the same stored weekly summary once computed
    _summary(trailseal_client, tenant, "weekly", "2026-11-16")
    assert _summary(trailseal_client, tenant, "weekly", "2026-11-22")["stored"] is True
    # events appended outside the window leave it standing (its head moves up)
    ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-25T12:00:00Z")])
    assert _summary(trailseal_client, tenant, "daily", "2026-11-20")["narrative"] == \
        "from the table"
    daily_row = [r for r in _stored_rows(trailseal_services, tenant.id)
                 if r["period"] == "daily"]
    assert daily_row[0]["head_seq"] == 3
    # an event of the window appended later makes the stored summary stale: recomputed
    ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-20T12:00:00Z")])
    third = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert third["stored"] is False and third["totals"]["events"] == 3
    assert third["narrative"] != "from the table"
    assert _summary(trailseal_client, tenant, "daily", "2026-11-20")["stored"] is True
    # erasure deletes stored summaries (all, or those of windows before a date)
    with trailseal_services.db.transaction(tenant.id) as conn:
        assert delete_stored_summaries(conn, before=datetime(2026, 11, 1, tzinfo=UTC)) == 0
        assert delete_stored_summaries(conn) == 2  # the day and the week
    assert _stored_rows(trailseal_services, tenant.id) == []
    assert _summary(trailseal_client, tenant, "daily", "2026-11-20")["stored"] is False
    # another time zone cuts other windows: not served from the Berlin rows
    _set_zone(trailseal_client, tenant, "Asia/Kolkata")
    kolkata = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert kolkata["stored"] is False and kolkata["timezone"] == "Asia/Kolkata"


def test_a_period_under_way_is_computed_live_and_never_stored(trailseal_client,
                                                              trailseal_services):
    tenant = make_tenant(trailseal_services)
    now = datetime.now(UTC)
    ingest(trailseal_client, tenant, [make_event(occurred_at=_z(now - timedelta(seconds=5)))])
    for period in ("daily", "weekly", "monthly"):
        summary = _summary(trailseal_client, tenant, period, now.date().isoformat())
        assert summary["complete"] is False and summary["stored"] is False
        assert summary["totals"]["events"] == 1
    assert _stored_rows(trailseal_services, tenant.id) == []


def test_default_date_is_the_last_complete_period(trailseal_client, trailseal_services):
    tenant = make_tenant(trailseal_services)
    zone = ZoneInfo("Pacific/Chatham")
    _set_zone(trailseal_client, tenant, zone.key)
    today = datetime.now(zone).date()
    daily = _summary(trailseal_client, tenant, "daily")
    assert daily["window"]["first_day"] == (today - timedelta(days=1)).isoformat()
    weekly = _summary(trailseal_client, tenant, "weekly")
    monday = today - timedelta(days=today.weekday())
    assert weekly["window"]["first_day"] == (monday - timedelta(days=7)).isoformat()
    monthly = _summary(trailseal_client, tenant, "monthly")
    assert monthly["window"]["last_day"] == (today.replace(day=1)
                                             - timedelta(days=1)).isoformat()
    assert all(s["complete"] for s in (daily, weekly, monthly))


def test_the_scheduled_job_stores_the_last_complete_periods(trailseal_app, trailseal_client,
                                                            trailseal_services):
    tenant = make_tenant(trailseal_services)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    ingest(trailseal_client, tenant, [make_event(occurred_at=_z(yesterday))])
    with trailseal_app.app_context():
        done = store_summaries_all_tenants()
        assert done[str(tenant.id)] == ["daily", "weekly", "monthly"]
        assert str(tenant.id) not in store_summaries_all_tenants()  # idempotent
    assert sorted(r["period"] for r in _stored_rows(trailseal_services, tenant.id)) == [
        "daily", "monthly", "weekly"]
    served = _summary(trailseal_client, tenant, "daily")
    assert served["stored"] is True and served["totals"]["events"] == 1


class ForeignNarrator:
    """A narrator that cites an event of another tenant, one of this tenant outside the
    window, a made-up id, one valid event the figures list and one they do not."""

    def __init__(self, foreign: str, outside: str, unlisted: str):
        self.foreign, self.outside, self.unlisted = foreign, outside, unlisted

    @hookimpl(tryfirst=True)
    def narrate(self, kind, context):
        if kind != "summary":
            return None
        valid = context["totals"]["first_event_id"]
        return "\n".join([f"Everything happened [{self.foreign}]",
                          f"Also yesterday [{self.outside}]",
                          f"Made up [{uuid.uuid4()}]",
                          f"Real [{valid}][{self.foreign}]",
                          f"Also in the window [{self.unlisted}]",
                          "A line of figures"])


def test_citations_outside_the_window_or_tenant_are_dropped(trailseal_client,
                                                            trailseal_services,
                                                            register_plugin):
    tenant, other = make_tenant(trailseal_services), make_tenant(trailseal_services)
    foreign = ingest(trailseal_client, other, [make_event(occurred_at="2026-11-20T10:00:00Z")])
    quiet = {"event_type": "report.viewed", "severity": "low", "tags": []}
    mine = ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-19T10:00:00Z")] + [
        make_event(occurred_at=f"2026-11-20T1{h}:00:00Z", **quiet) for h in range(5)])
    first, unlisted = mine["ids"][1], mine["ids"][2]
    register_plugin(ForeignNarrator(foreign["ids"][0], mine["ids"][0], unlisted))
    summary = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    listed = {x for actor in summary["top_actors"] for x in actor["event_ids"]} | {
        summary["totals"]["first_event_id"], summary["totals"]["last_event_id"]} | {
        e["id"] for e in summary["critical_changes"]["events"] + summary["notable_events"]}
    assert unlisted not in listed  # any event of the window may be cited
    assert summary["narrative"] == (f"Real [{first}]\nAlso in the window [{unlisted}]\n"
                                    "A line of figures")
    assert [s["id"] for s in summary["sources"]] == [first, unlisted]


# --- explanations ------------------------------------------------------------------------------


class FlagOne:
    """A detector that flags one event type, with a SHAP-style explanation."""

    name = "flag-one"

    def score(self, events):
        for e in events:
            if e.event_type == "payroll.exported":
                yield Finding(e.id, score=0.999, is_anomaly=True, model_version="t1",
                              explanation={
                                  "summary": "first payroll.exported by mia in 90 days, at "
                                             "03:10 UTC",
                                  "contributions": [
                                      {"feature": "new_action_for_actor",
                                       "label": "new action for actor", "value": 1.0,
                                       "contribution": 0.31},
                                      {"feature": "hours_from_usual", "label": "hours from usual",
                                       "value": 6.0, "contribution": 0.12}]})
            else:
                yield Finding(e.id, score=0.1, is_anomaly=False, model_version="t1")


class FlagOnePlugin:
    @hookimpl
    def register_detectors(self):
        return [FlagOne()]


def test_explain_an_anomalous_event(trailseal_client, trailseal_services, register_plugin,
                                    run_jobs):
    register_plugin(FlagOnePlugin())
    tenant = make_tenant(trailseal_services)
    mia = {"id": "mia", "type": "user", "role": "payroll clerk", "department": "finance"}
    base = datetime(2026, 11, 20, 3, 10, tzinfo=UTC)
    created = ingest(trailseal_client, tenant, [
        make_event(occurred_at=_z(base - timedelta(hours=30)), actor=mia,
                   event_type="payroll.viewed", entity={"type": "payroll", "id": "P-11"}),
        make_event(occurred_at=_z(base - timedelta(hours=5)), actor=mia,
                   event_type="payroll.viewed", entity={"type": "payroll", "id": "P-11"}),
        make_event(occurred_at=_z(base - timedelta(hours=1)), actor=mia,
                   event_type="report.viewed", entity={"type": "report", "id": "R-1"}),
        make_event(occurred_at=_z(base), actor=mia, event_type="payroll.exported",
                   entity={"type": "payroll", "id": "P-11"}, severity="high"),
        make_event(occurred_at=_z(base + timedelta(hours=2)),
                   actor={"id": "sam", "type": "user"}, event_type="payroll.approved",
                   entity={"type": "payroll", "id": "P-11"}),
        make_event(occurred_at=_z(base + timedelta(hours=30)),
                   actor={"id": "sam", "type": "user"}, event_type="payroll.approved",
                   entity={"type": "payroll", "id": "P-11"}),
    ])
    run_jobs()
    old_view, view, report, export, approve, late = created["ids"]
    resp = trailseal_client.get(f"/api/v1/events/{export}/explain", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    x = resp.get_json()
    assert x["event"]["id"] == export
    assert "mia" in x["what_happened"] and "payroll.exported" in x["what_happened"]
    assert x["who"]["role"] == "payroll clerk"
    ctx = x["actor_context"]
    assert ctx["events"] == 2 and ctx["first_time_this_type"] is True
    assert {e["id"] for e in ctx["recent_events"]} == {view, report}
    assert {t["event_type"]: t["count"] for t in ctx["event_types"]} == {
        "payroll.viewed": 1, "report.viewed": 1}
    related = x["related_events"]
    assert related["count"] == 2 and [e["id"] for e in related["events"]] == [view, approve]
    anomaly = x["anomaly"]
    assert anomaly["summary"].startswith("first payroll.exported by mia")
    assert anomaly["contributions"][0]["feature"] == "new_action_for_actor"
    assert anomaly["alert_id"] and anomaly["detector"] == "flag-one"
    assert anomaly["score"] >= 0.999
    assert x["insights"]["is_anomaly"] is True
    assert x["impact"]["level"] in ("low", "medium", "high", "critical")
    assert x["impact"]["statements"]
    # narrated and cited: only the event, the actor's recent events and related events
    shown = {export, view, report, approve}
    assert _cited(x) and _cited(x) <= shown
    assert {s["id"] for s in x["sources"]} == _cited(x)
    assert "first payroll.exported by mia" in x["narrative"]
    assert old_view not in x["narrative"] and late not in x["narrative"]
    # the demo prints this request for its strongest anomaly
    assert event_to_explain(trailseal_services, str(tenant.id)) == export
    # an event that is no anomaly has none; its actor has done it before
    again = trailseal_client.get(f"/api/v1/events/{view}/explain",
                                 headers=tenant.headers).get_json()
    assert again["anomaly"] is None and again["actor_context"]["first_time_this_type"] is False


def test_explain_and_summary_stay_in_their_tenant_and_are_access_logged(trailseal_client,
                                                                        trailseal_services):
    tenant, other = make_tenant(trailseal_services), make_tenant(trailseal_services)
    created = ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-20T10:00:00Z")])
    eid = created["ids"][0]
    resp = trailseal_client.get(f"/api/v1/events/{eid}/explain", headers=other.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert _summary(trailseal_client, other, "daily", "2026-11-20")["totals"]["events"] == 0
    assert _summary(trailseal_client, tenant, "daily", "2026-11-20")["totals"]["events"] == 1
    assert trailseal_client.get(f"/api/v1/events/{eid}/explain",
                                headers=tenant.headers).status_code == 200
    log = trailseal_client.get("/api/v1/access-log", headers=tenant.headers).get_json()
    seen = {(e["endpoint"], tuple(sorted(e["query"].items()))) for e in log["entries"]}
    assert (f"/api/v1/events/{eid}/explain", ()) in seen
    assert ("/api/v1/summary/daily", (("date", "2026-11-20"),)) in seen
    other_log = trailseal_client.get("/api/v1/access-log", headers=other.headers).get_json()
    assert f"/api/v1/events/{eid}/explain" in {e["endpoint"] for e in other_log["entries"]}


@pytest.mark.parametrize("url,status", [
    ("/api/v1/summary/yearly", 422),
    ("/api/v1/summary/daily?date=2026-02-30", 422),
    ("/api/v1/summary/daily?date=20261120", 422),
    ("/api/v1/summary/daily?date=0001-01-01", 422),
    ("/api/v1/summary/weekly?date=9999-12-31", 422),
    ("/api/v1/summary/monthly?date=%D9%A2026-01-01", 422),
    ("/api/v1/summary/daily?day=2026-11-20", 422),
])
def test_bad_summary_requests(trailseal_client, tenant, url, status):
    resp = trailseal_client.get(url, headers=tenant.headers)
    assert resp.status_code == status, resp.get_json()
    assert resp.get_json()["error"]["message"]


class BrokenNarrator:
    @hookimpl(tryfirst=True)
    def narrate(self, kind, context):
        raise RuntimeError("the model server is down")


def test_a_failing_narrator_never_fails_the_read(trailseal_client, trailseal_services,
                                                 register_plugin):
    tenant = make_tenant(trailseal_services)
    created = ingest(trailseal_client, tenant, [make_event(occurred_at="2026-11-20T10:00:00Z")])
    broken = register_plugin(BrokenNarrator())
    summary = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert summary["narrative"] == ("No narrative could be composed; 1 event(s) in this "
                                    "period.") and summary["sources"] == []
    assert summary["totals"]["events"] == 1
    # a summary without its narrative is not stored: the next read narrates it
    assert _stored_rows(trailseal_services, tenant.id) == []
    resp = trailseal_client.get(f"/api/v1/events/{created['ids'][0]}/explain",
                                headers=tenant.headers)
    assert resp.status_code == 200
    x = resp.get_json()
    assert x["narrative"] == f"{x['what_happened']} [{created['ids'][0]}]"
    assert [s["id"] for s in x["sources"]] == created["ids"]
    trailseal_services.pm.unregister(broken)
    again = _summary(trailseal_client, tenant, "daily", "2026-11-20")
    assert again["stored"] is False and again["sources"]
    assert _summary(trailseal_client, tenant, "daily", "2026-11-20")["stored"] is True
