"""The REST contract integrators build on: cursor paging on every list, cursors bound to
their list and filters, one timestamp format, one boolean syntax."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_event
from trailseal.errors import BadRequest
from trailseal.services.alerts import record_alert
from trailseal.services.paging import decode_cursor, encode_cursor, seq_part, time_part

Z_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _pages(client, url, headers, key):
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in url else "?"
        resp = client.get(url + (f"{sep}cursor={cursor}" if cursor else ""), headers=headers)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        items += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_alerts_page_with_cursors(trailseal_client, trailseal_services, tenant):
    made = [record_alert(trailseal_services, tenant.id, kind="test", severity="low",
                         title=f"alert {n}", details={"n": n}).id for n in range(7)]
    alerts, pages = _pages(trailseal_client, "/api/v1/alerts?limit=3", tenant.headers, "alerts")
    assert pages == 3 and sorted(a["id"] for a in alerts) == sorted(made)
    assert [a["created_at"] for a in alerts] == sorted((a["created_at"] for a in alerts),
                                                       reverse=True)
    for alert in alerts:
        assert Z_TIME.match(alert["created_at"])
        assert set(alert) >= {"status_changed_by", "status_changed_at"}
    # a status filter pages too, and its cursor does not fit the unfiltered list
    trailseal_client.patch(f"/api/v1/alerts/{made[0]}", json={"status": "resolved"},
                           headers=tenant.headers)
    first = trailseal_client.get("/api/v1/alerts?limit=2&status=open",
                                 headers=tenant.headers).get_json()
    assert len(first["alerts"]) == 2 and first["next_cursor"]
    other = trailseal_client.get(f"/api/v1/alerts?limit=2&cursor={first['next_cursor']}",
                                 headers=tenant.headers)
    assert other.status_code == 400 and "another list or filter set" in \
        other.get_json()["error"]["message"]
    resolved = trailseal_client.get("/api/v1/alerts?status=resolved",
                                    headers=tenant.headers).get_json()["alerts"]
    assert [a["id"] for a in resolved] == [made[0]]
    assert Z_TIME.match(resolved[0]["status_changed_at"])


def test_access_log_pages_with_cursors(trailseal_client, tenant):
    for _ in range(4):
        trailseal_client.get("/api/v1/events?limit=1", headers=tenant.headers)
    entries, pages = _pages(trailseal_client, "/api/v1/access-log?limit=2", tenant.headers,
                            "entries")
    ids = [e["id"] for e in entries]
    assert pages >= 3 and ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
    assert all(Z_TIME.match(e["accessed_at"]) for e in entries)


def test_event_cursors_are_bound_to_their_endpoint_and_filters(trailseal_client, tenant):
    trailseal_client.post("/api/v1/events/batch", headers=tenant.headers,
                          json={"events": [make_event(severity="high") for _ in range(3)]})
    page = trailseal_client.get("/api/v1/events?limit=1&severity=high",
                                headers=tenant.headers).get_json()
    cursor = page["next_cursor"]
    same = trailseal_client.get(f"/api/v1/events?limit=1&severity=high&cursor={cursor}",
                                headers=tenant.headers)
    assert same.status_code == 200 and len(same.get_json()["events"]) == 1
    for url in (f"/api/v1/events?limit=1&cursor={cursor}",
                f"/api/v1/events?limit=1&severity=low&cursor={cursor}",
                f"/api/v1/timeline?limit=1&severity=high&cursor={cursor}",
                f"/api/v1/alerts?cursor={cursor}", f"/api/v1/access-log?cursor={cursor}"):
        resp = trailseal_client.get(url, headers=tenant.headers)
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["code"] == "bad_request"
    # the page size is not part of the binding: a client may change it between pages
    bigger = trailseal_client.get(f"/api/v1/events?limit=5&severity=high&cursor={cursor}",
                                  headers=tenant.headers)
    assert bigger.status_code == 200 and len(bigger.get_json()["events"]) == 2


@pytest.mark.parametrize("word,full", [("true", True), ("TRUE", True), ("1", True),
                                       ("yes", True), ("on", True), ("false", False),
                                       ("0", False), ("No", False), ("off", False)])
def test_boolean_parameters_accept_the_same_words(trailseal_client, tenant, word, full):
    trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    resp = trailseal_client.get(f"/api/v1/chain/verify?full={word}", headers=tenant.headers)
    assert resp.status_code == 200 and resp.get_json()["intact"] is True


def test_every_response_time_uses_z(trailseal_client, trailseal_services, tenant):
    created = trailseal_client.post("/api/v1/events", json=make_event(
        occurred_at="2026-11-20T12:00:00+02:00"), headers=tenant.headers).get_json()
    record_alert(trailseal_services, tenant.id, kind="test", severity="low", title="t",
                 details={}, event_id=created["id"])
    bodies = [trailseal_client.get(url, headers=tenant.headers).get_json() for url in (
        f"/api/v1/events/{created['id']}", "/api/v1/events", "/api/v1/timeline",
        "/api/v1/alerts", "/api/v1/access-log", "/api/v1/dashboard/stats")]
    times = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and (key.endswith("_at") or key == "as_of"):
            times.append(value)

    walk(bodies)
    assert len(times) >= 8
    assert all(Z_TIME.match(t) for t in times), [t for t in times if not Z_TIME.match(t)]
    assert bodies[0]["occurred_at"] == "2026-11-20T10:00:00.000000Z"


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=12))
def test_any_json_as_a_cursor_is_a_400_or_a_position(value):
    cursor = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    for candidate in (cursor, cursor + "!", cursor[: len(cursor) // 2]):
        try:
            position = decode_cursor(candidate, "events", {}, (time_part, seq_part))
        except BadRequest:
            continue
        assert position[0].tzinfo is not None and 0 <= position[1] < 2**63


@settings(max_examples=100, deadline=None)
@given(st.datetimes(timezones=st.just(__import__("datetime").UTC)),
       st.integers(min_value=0, max_value=2**63 - 1),
       st.dictionaries(st.sampled_from(["actor", "severity", "tag"]),
                       st.text(max_size=8) | st.lists(st.text(max_size=4), max_size=3)))
def test_a_cursor_round_trips_only_with_its_own_filters(moment, seq, filters):
    from trailseal.services.chain import format_ts

    cursor = encode_cursor("events", filters, [format_ts(moment), seq])
    assert decode_cursor(cursor, "events", filters, (time_part, seq_part)) == [moment, seq]
    with pytest.raises(BadRequest):
        decode_cursor(cursor, "events", {**filters, "entity_id": "x"}, (time_part, seq_part))
    with pytest.raises(BadRequest):
        decode_cursor(cursor, "timeline", filters, (time_part, seq_part))
