"""Properties 16, 17, 18, 21, 22: immutability, chain integrity and verification,
encryption round trip, batch atomicity — against the real database."""

from __future__ import annotations

import base64

import orjson
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import owner_connection
from tests.property.strategies import PROPERTY, events, safe_text
from trailseal.testing import make_tenant

STORED_COLUMNS = ("id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
                  "actor_type", "actor_role", "actor_department", "entity_type", "entity_id",
                  "severity", "source", "tags", "key_id", "idempotency_key", "previous_hash",
                  "hash", "record")

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
MUTABLE = ["occurred_at = occurred_at + interval '1 second'", "event_type = event_type || 'x'",
           "actor_id = 'mallory'", "entity_id = entity_id || '0'",
           "severity = CASE severity WHEN 'critical' THEN 'info' ELSE 'critical' END",
           "tags = array_append(tags, 'x')", "key_id = 'k0'", "previous_hash = repeat('1', 64)",
           "received_at = received_at - interval '1 day'", "source = 'forged'",
           "record = record || '\\x20'::bytea", "hash = repeat('2', 64)",
           "actor_role = 'root'", "idempotency_key = 'replayed'"]


@PROPERTY
@given(batches=st.lists(st.lists(events(), min_size=1, max_size=6), min_size=1, max_size=4))
def test_property_17_hash_chain_integrity(trailseal_app, trailseal_services, batches):
    """Any sequence of appends yields seq 1..N, each event linked to the one before."""
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    for batch in batches:
        assert client.post("/api/v1/events/batch", json={"events": batch},
                           headers=tenant.headers).status_code == 201
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT seq, previous_hash, hash FROM audit_logs ORDER BY seq")
        rows = cur.fetchall()
    total = sum(len(b) for b in batches)
    assert [r[0] for r in rows] == list(range(1, total + 1))
    assert rows[0][1] == "0" * 64
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    report = client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    assert report["intact"] and report["events_checked"] == total and report["head_hash"] == rows[-1][2]


@PROPERTY
@given(batch=st.lists(events(), min_size=2, max_size=10), data=st.data())
def test_property_18_verification_names_first_tampered_event(trailseal_app, trailseal_services, batch, data):
    """Editing any stored field of any event is detected at exactly that event."""
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    ids = client.post("/api/v1/events/batch", json={"events": batch}, headers=tenant.headers).get_json()["ids"]
    seq = data.draw(st.integers(min_value=1, max_value=len(batch)))
    change = data.draw(st.sampled_from(MUTABLE))
    with owner_connection(trailseal_services) as owner:
        owner.execute(f"UPDATE audit_logs SET {change} WHERE tenant_id = %s AND seq = %s", (tenant.id, seq))
    report = client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    assert report["intact"] is False
    assert (report["broken_seq"], report["broken_event_id"]) == (seq, ids[seq - 1])
    assert report["reason"] == "modified"


@PROPERTY
@given(column=st.sampled_from(STORED_COLUMNS), as_owner=st.booleans(), delete=st.booleans())
def test_property_16_append_only_immutability(trailseal_app, trailseal_services, column, as_owner, delete):
    """No UPDATE of any column and no DELETE succeeds, for the app role or the owner."""
    tenant = _shared_tenant(trailseal_app, trailseal_services)
    statement = ("DELETE FROM audit_logs WHERE tenant_id = %s" if delete
                 else f"UPDATE audit_logs SET {column} = {column} WHERE tenant_id = %s")
    if as_owner:
        dsn = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
        with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement, (tenant.id,))
    else:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with trailseal_services.db.cursor(tenant.id) as cur:
                cur.execute(statement, (tenant.id,))
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs")
        assert cur.fetchone()[0] == 3


_SHARED = {}


def _shared_tenant(app, services):
    if "t" not in _SHARED:
        t = make_tenant(services)
        from tests.conftest import make_event

        app.test_client().post("/api/v1/events/batch", json={"events": [make_event()] * 3}, headers=t.headers)
        _SHARED["t"] = t
    return _SHARED["t"]


@PROPERTY
@given(ip=st.ip_addresses(), ua=safe_text, details=st.dictionaries(
    st.text(min_size=1, max_size=10), st.one_of(INT64, safe_text, st.none(),
                                               st.lists(INT64, max_size=3)), max_size=4))
def test_property_21_sensitive_field_encryption(trailseal_app, trailseal_services, ip, ua, details):
    """Sensitive fields round-trip exactly and are never stored in plaintext."""
    tenant = _shared_tenant(trailseal_app, trailseal_services)
    client = trailseal_app.test_client()
    from tests.conftest import make_event

    body = make_event(ip_address=str(ip), user_agent="UA:" + ua, action_details=details)
    created = client.post("/api/v1/events", json=body, headers=tenant.headers).get_json()
    got = client.get(f"/api/v1/events/{created['id']}", headers=tenant.headers).get_json()
    assert got["ip_address"] == str(ip) and got["user_agent"] == "UA:" + ua
    assert got["action_details"] == details
    with owner_connection(trailseal_services) as owner:
        record = owner.execute("SELECT record FROM audit_logs WHERE id = %s",
                               (created["id"],)).fetchone()[0]
    rec = orjson.loads(record)
    stored = b"".join(base64.b64decode(rec[f]) for f in ("ip_address", "user_agent", "action_details"))
    assert ("UA:" + ua).encode() not in stored and ("UA:" + ua).encode() not in bytes(record)
    if len(str(ip)) >= 6:  # "::" can turn up in random ciphertext by chance (~1 in 500)
        assert str(ip).encode() not in stored


@PROPERTY
@given(batch=st.lists(events(), min_size=1, max_size=8), data=st.data())
def test_property_22_batch_atomicity(trailseal_app, trailseal_services, batch, data):
    """A batch with one invalid event writes nothing, names the index, keeps the head."""
    tenant = _shared_tenant(trailseal_app, trailseal_services)
    client = trailseal_app.test_client()
    index = data.draw(st.integers(min_value=0, max_value=len(batch)))
    breakage = data.draw(st.sampled_from([
        {"severity": "bad"}, {"occurred_at": "nope"}, {"actor": {"id": "x"}}, {"unknown": 1},
        {"event_type": ""}, {"tags": ["\x01"]}, {"source": "a\x00"},
    ]))
    bad = list(batch)
    bad.insert(index, {**batch[0], **breakage})
    before = client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    resp = client.post("/api/v1/events/batch", json={"events": bad}, headers=tenant.headers)
    assert resp.status_code == 422
    assert resp.get_json()["error"]["details"]["index"] == index
    after = client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()
    assert (after["head_seq"], after["head_hash"]) == (before["head_seq"], before["head_hash"])
