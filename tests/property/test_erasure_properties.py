"""GDPR erasure: for random events and a random set of erased subjects, exactly the events by
or about an erased subject read ``[erased]``, every other event decrypts unchanged, and the
chain still verifies — against the real database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY, SEVERITIES, safe_text
from trailseal.testing import make_tenant

PEOPLE = ["alice", "bob", "carol", "dave", "erin"]
PERSON_TYPES = {"user", "customer"}  # among the default PERSON_ENTITY_TYPES


@st.composite
def subject_events(draw):
    entity_type = draw(st.sampled_from(["user", "customer", "invoice", "report"]))
    body = {
        "event_type": "record.changed",
        "occurred_at": "2026-06-01T10:00:00Z",
        "actor": {"id": draw(st.sampled_from(PEOPLE)), "type": "user"},
        # entity ids share the people's names: an invoice called "bob" is not about bob
        "entity": {"type": entity_type, "id": draw(st.sampled_from(PEOPLE))},
        "severity": draw(st.sampled_from(SEVERITIES)),
    }
    if draw(st.booleans()):
        body["ip_address"] = draw(st.ip_addresses()).exploded
    if draw(st.booleans()):
        body["user_agent"] = draw(safe_text)
    body["action_details"] = {"v": draw(safe_text)}
    return body


@PROPERTY
@given(batch=st.lists(subject_events(), min_size=1, max_size=12),
       erased=st.sets(st.sampled_from(PEOPLE), max_size=3))
def test_exactly_the_erased_subjects_events_read_erased(trailseal_app, trailseal_services,
                                                        batch, erased):
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    resp = client.post("/api/v1/events/batch", json={"events": batch}, headers=tenant.headers)
    assert resp.status_code == 201
    ids = resp.get_json()["ids"]
    named = {e["actor"]["id"] for e in batch} | {e["entity"]["id"] for e in batch}
    for subject in sorted(erased):
        r = client.post(f"/api/v1/subjects/{subject}/erase", json={"reason": "property"},
                        headers=tenant.headers)
        assert r.status_code == (200 if subject in named else 404), r.get_json()
    listed = client.get("/api/v1/events?limit=100", headers=tenant.headers).get_json()["events"]
    shown = {e["id"]: e for e in listed}
    assert set(shown) == set(ids)
    for event_id, sent in zip(ids, batch, strict=True):
        got = shown[event_id]
        about = (sent["actor"]["id"] in erased
                 or (sent["entity"]["type"] in PERSON_TYPES and sent["entity"]["id"] in erased))
        for field in ("ip_address", "user_agent", "action_details"):
            if sent.get(field) is None:
                assert got[field] is None
            elif about:
                assert got[field] == "[erased]", (field, sent, erased)
            else:
                assert got[field] == sent[field], (field, sent, erased)
        assert (got["actor"]["id"], got["entity"]) == (sent["actor"]["id"], sent["entity"])
    report = client.get("/api/v1/chain/verify?full=true", headers=tenant.headers).get_json()
    assert report["intact"] is True and report["events_checked"] == len(batch)
