"""Ingest through the REST API: single events, batches, idempotency and bad input."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_event


def test_single_event_created(trailseal_client, tenant):
    resp = trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["seq"] == 1 and len(body["hash"]) == 64
    got = trailseal_client.get(f"/api/v1/events/{body['id']}", headers=tenant.headers).get_json()
    assert got["hash"] == body["hash"]
    assert got["action_details"] == {"amount": 120.5, "reason": "duplicate"}
    assert got["ip_address"] == "203.0.113.7"
    assert got["occurred_at"] == "2026-11-20T10:00:00.000000Z"


def test_batch_is_gapless_and_linked(trailseal_client, tenant):
    events = [make_event(entity={"type": "invoice", "id": f"INV-{i}"}) for i in range(25)]
    resp = trailseal_client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
    assert resp.status_code == 201
    body = resp.get_json()
    assert (body["first_seq"], body["last_seq"], len(body["ids"])) == (1, 25, 25)
    page = trailseal_client.get("/api/v1/timeline?limit=500", headers=tenant.headers).get_json()
    by_seq = sorted(page["events"], key=lambda e: e["seq"])
    assert [e["seq"] for e in by_seq] == list(range(1, 26))
    for prev, cur in zip(by_seq, by_seq[1:], strict=False):
        assert cur["previous_hash"] == prev["hash"]


def test_invalid_event_in_batch_writes_nothing(trailseal_client, tenant):
    good = make_event()
    trailseal_client.post("/api/v1/events", json=good, headers=tenant.headers)
    head = trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    batch = [good, good, make_event(severity="urgent"), good]
    resp = trailseal_client.post("/api/v1/events/batch", json={"events": batch}, headers=tenant.headers)
    assert resp.status_code == 422
    err = resp.get_json()["error"]
    assert err["details"]["index"] == 2 and "event 2" in err["message"]
    after = trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    assert (after["head_seq"], after["head_hash"]) == (head["head_seq"], head["head_hash"])


def test_batch_limits(trailseal_client, tenant):
    too_many = {"events": [make_event()] * 1001}
    resp = trailseal_client.post("/api/v1/events/batch", json=too_many, headers=tenant.headers)
    assert resp.status_code in (413, 422)
    assert trailseal_client.post("/api/v1/events/batch", json={"events": []},
                                 headers=tenant.headers).status_code == 422
    assert trailseal_client.post("/api/v1/events/batch", json=[make_event()],
                                 headers=tenant.headers).status_code == 422


def test_idempotency_key_replays_and_conflicts(trailseal_client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "order-42"}
    first = trailseal_client.post("/api/v1/events", json=make_event(), headers=headers)
    again = trailseal_client.post("/api/v1/events", json=make_event(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = trailseal_client.post("/api/v1/events", json=make_event(severity="high"), headers=headers)
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "conflict"
    report = trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    assert report["head_seq"] == 1


def test_idempotency_key_on_batches(trailseal_client, tenant):
    headers = {**tenant.headers, "Idempotency-Key": "batch-1"}
    body = {"events": [make_event(), make_event()]}
    a = trailseal_client.post("/api/v1/events/batch", json=body, headers=headers).get_json()
    b = trailseal_client.post("/api/v1/events/batch", json=body, headers=headers).get_json()
    assert a == b and a["last_seq"] == 2


@pytest.mark.parametrize("data,content_type,status", [
    (b'{"event_type": ', "application/json", 400),
    (b"not json", "application/json", 400),
    (json.dumps(make_event()).encode(), "text/plain", 415),
    (json.dumps(make_event()).encode(), "application/x-www-form-urlencoded", 415),
    (b"[" * 100 + b"]" * 100, "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    (json.dumps(make_event(source="a\u0000b")).encode(), "application/json", 422),
    (json.dumps(make_event(actor={"id": "x\u0000", "type": "user"})).encode(), "application/json", 422),
    (json.dumps({**make_event(), "extra": 1}).encode(), "application/json", 422),
    (json.dumps(make_event(occurred_at="yesterday")).encode(), "application/json", 422),
    (json.dumps(make_event(occurred_at="2026-01-01T00:00:00")).encode(), "application/json", 422),
    (json.dumps(make_event(ip_address="999.1.1.1")).encode(), "application/json", 422),
    (json.dumps(make_event(action_details={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": 1}}}}}}}}}}}}}}}}})).encode(), "application/json", 422),
    (b"null", "application/json", 422),
    (b"12", "application/json", 422),
    (json.dumps(make_event(occurred_at="0001-01-01T00:00:00+01:00")).encode(), "application/json", 422),
    (json.dumps(make_event(action_details={"n": -(2**63) - 1})).encode(), "application/json", 422),
    (json.dumps(make_event(action_details={"n": [1, 10**30]})).encode(), "application/json", 422),
    (json.dumps(make_event(actor={"id": "a\u001fb", "type": "user"})).encode(), "application/json", 422),
])
def test_bad_input_is_a_clear_client_error(trailseal_client, tenant, data, content_type, status):
    resp = trailseal_client.post("/api/v1/events", data=data, content_type=content_type,
                                 headers=tenant.headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    assert set(err) == {"code", "message", "details"} and err["message"]


def test_oversized_body_is_413(trailseal_client, tenant):
    big = make_event(action_details={"blob": "x" * (1024 * 1024 + 10)})
    resp = trailseal_client.post("/api/v1/events", json=big, headers=tenant.headers)
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "payload_too_large"


def test_no_update_or_delete_routes(trailseal_client, tenant):
    created = trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers).get_json()
    for method in ("put", "patch", "delete"):
        resp = getattr(trailseal_client, method)(f"/api/v1/events/{created['id']}", json={},
                                                 headers=tenant.headers)
        assert resp.status_code == 405
        assert resp.get_json()["error"]["code"] == "method_not_allowed"


def test_control_characters_get_a_plain_message(trailseal_client, tenant):
    body = make_event(entity={"type": "invoice", "id": "INV\u001e1"})
    resp = trailseal_client.post("/api/v1/events/batch", json={"events": [make_event(), body]},
                                 headers=tenant.headers)
    assert resp.status_code == 422
    err = resp.get_json()["error"]
    assert err["details"]["index"] == 1
    assert "separator control characters" in err["message"] and "entity.id" in err["message"]
