"""Properties 3, 4, 30: chronological ordering, filter correctness, tenant isolation."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY, SEVERITIES, event_type, events, name, tag
from trailseal.testing import make_tenant


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@st.composite
def filters(draw):
    f = {}
    if draw(st.booleans()):
        f["event_type"] = draw(st.lists(event_type, min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        f["actor"] = draw(name)
    if draw(st.booleans()):
        f["entity_type"] = draw(st.sampled_from(["invoice", "user", "report"]))
    if draw(st.booleans()):
        f["entity_id"] = draw(st.sampled_from(["1", "2", "3"]))
    if draw(st.booleans()):
        f["severity"] = draw(st.lists(st.sampled_from(SEVERITIES), min_size=1, max_size=3, unique=True))
    if draw(st.booleans()):
        f["tag"] = [draw(tag)]
    if draw(st.booleans()):
        f["start"] = "2026-05-10T00:00:00Z"
    if draw(st.booleans()):
        f["end"] = "2026-05-25T00:00:00Z"
    return f


def _matches(ev: dict, f: dict) -> bool:
    t = _parse(ev["occurred_at"])
    return all([
        "event_type" not in f or ev["event_type"] in f["event_type"],
        "actor" not in f or ev["actor"]["id"] == f["actor"],
        "entity_type" not in f or ev["entity"]["type"] == f["entity_type"],
        "entity_id" not in f or ev["entity"]["id"] == f["entity_id"],
        "severity" not in f or ev["severity"] in f["severity"],
        "tag" not in f or f["tag"][0] in ev.get("tags", []),
        "start" not in f or t >= _parse(f["start"]),
        "end" not in f or t < _parse(f["end"]),
    ])


def _all_pages(client, path, headers, params, limit):
    seen, cursor = [], None
    for _ in range(200):
        q = dict(params, limit=limit)
        if cursor:
            q["cursor"] = cursor
        body = client.get(path, query_string=q, headers=headers).get_json()
        seen += body["events"]
        cursor = body["next_cursor"]
        if not cursor:
            return seen
    raise AssertionError("pagination did not end")


@PROPERTY
@given(mine=st.lists(events(), min_size=0, max_size=15), theirs=st.lists(events(), min_size=1, max_size=5),
       f=filters(), limit=st.integers(min_value=1, max_value=7))
def test_property_4_and_30_filters_and_isolation(trailseal_app, trailseal_services, mine, theirs, f, limit):
    """Every filter combination returns exactly the tenant's matching events, never another's."""
    client = trailseal_app.test_client()
    me, other = make_tenant(trailseal_services), make_tenant(trailseal_services)
    my_ids = []
    if mine:
        my_ids = client.post("/api/v1/events/batch", json={"events": mine}, headers=me.headers).get_json()["ids"]
    their_ids = client.post("/api/v1/events/batch", json={"events": theirs}, headers=other.headers).get_json()["ids"]
    got = _all_pages(client, "/api/v1/events", me.headers, f, limit)
    expected = {i for i, ev in zip(my_ids, mine, strict=True) if _matches(ev, f)}
    got_ids = [e["id"] for e in got]
    assert len(got_ids) == len(set(got_ids))
    assert set(got_ids) == expected
    assert not set(got_ids) & set(their_ids)
    keys = [(_parse(e["occurred_at"]), e["seq"]) for e in got]
    assert keys == sorted(keys, reverse=True)


@PROPERTY
@given(batch=st.lists(events(), min_size=1, max_size=20), limit=st.integers(min_value=1, max_value=6))
def test_property_3_chronological_timeline(trailseal_app, trailseal_services, batch, limit):
    """The timeline lists every event once, oldest first (ties by seq), across pages."""
    client = trailseal_app.test_client()
    me = make_tenant(trailseal_services)
    ids = client.post("/api/v1/events/batch", json={"events": batch}, headers=me.headers).get_json()["ids"]
    got = _all_pages(client, "/api/v1/timeline", me.headers, {}, limit)
    assert sorted(e["id"] for e in got) == sorted(ids)
    keys = [(_parse(e["occurred_at"]), e["seq"]) for e in got]
    assert keys == sorted(keys)
