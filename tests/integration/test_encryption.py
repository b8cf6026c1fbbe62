"""Encryption at rest and key rotation."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import make_event


def test_sensitive_fields_are_ciphertext_at_rest(trailseal_client, trailseal_services, tenant, owner):
    body = make_event(ip_address="198.51.100.23", user_agent="SecretAgent/1.0",
                      action_details={"ssn_last4": "6789"})
    created = trailseal_client.post("/api/v1/events", json=body, headers=tenant.headers).get_json()
    row = owner.execute("SELECT record, key_id FROM audit_logs WHERE id = %s",
                        (created["id"],)).fetchone()
    rec = orjson.loads(row[0])
    for field in ("ip_address", "user_agent", "action_details"):
        blob = base64.b64decode(rec[field])
        assert len(blob) > 12 + 16  # nonce + ciphertext + tag
    for secret in (b"198.51.100.23", b"SecretAgent", b"6789", b"ssn_last4"):
        assert secret not in bytes(row[0])
        assert all(secret not in base64.b64decode(rec[f]) for f in ("ip_address", "user_agent", "action_details"))
    assert row[1] == rec["key_id"]
    # and the whole database page holds no plaintext either: search the table's text form
    text = owner.execute("SELECT t::text FROM audit_logs t WHERE id = %s", (created["id"],)).fetchone()[0]
    assert "SecretAgent" not in text and "198.51.100.23" not in text
    got = trailseal_client.get(f"/api/v1/events/{created['id']}", headers=tenant.headers).get_json()
    assert (got["ip_address"], got["user_agent"], got["action_details"]) == (
        "198.51.100.23", "SecretAgent/1.0", {"ssn_last4": "6789"})


def test_data_keys_are_stored_wrapped(trailseal_services, tenant, owner):
    wrapped = owner.execute("SELECT wrapped_key FROM tenant_keys WHERE tenant_id = %s",
                            (tenant.id,)).fetchone()[0]
    # nonce + 32-byte key + 16-byte tag, prefixed by the master key id
    assert len(bytes(wrapped)) == len(trailseal_services.keyring.master_key_id) + 1 + 12 + 32 + 16


def test_key_rotation_keeps_old_rows_readable(trailseal_client, trailseal_services, tenant):
    first = trailseal_client.post("/api/v1/events", json=make_event(user_agent="old-key"),
                                  headers=tenant.headers).get_json()
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    out = subprocess.run([sys.executable, "-m", "trailseal", "keys", "rotate", "--tenant", tenant.slug],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    new_key = out.stdout.strip().rsplit(" ", 1)[-1]
    trailseal_services.keyring.forget_active_keys()  # this process picks up the rotation now
    second = trailseal_client.post("/api/v1/events", json=make_event(user_agent="new-key"),
                                   headers=tenant.headers).get_json()
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT seq, key_id FROM audit_logs ORDER BY seq")
        keys = cur.fetchall()
    # an event's key_id is its tenant data key's id, then which subject keys went in
    assert keys[1][1].split(":")[0] == new_key and keys[0][1].split(":")[0] != new_key
    a = trailseal_client.get(f"/api/v1/events/{first['id']}", headers=tenant.headers).get_json()
    b = trailseal_client.get(f"/api/v1/events/{second['id']}", headers=tenant.headers).get_json()
    assert (a["user_agent"], b["user_agent"]) == ("old-key", "new-key")
    assert trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()["intact"]


def test_a_key_created_in_a_rolled_back_transaction_is_never_used(trailseal_client,
                                                                  trailseal_services, tenant):
    with pytest.raises(RuntimeError):
        with trailseal_services.db.cursor(tenant.id) as cur:
            trailseal_services.keyring.create_data_key(cur, tenant.id)
            raise RuntimeError("the transaction rolls back")
    created = trailseal_client.post("/api/v1/events", json=make_event(),
                                    headers=tenant.headers).get_json()
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs a JOIN tenant_keys k "
                    "ON k.tenant_id = a.tenant_id AND k.key_id = split_part(a.key_id, ':', 1) "
                    "WHERE a.id = %s",
                    (created["id"],))
        assert cur.fetchone()[0] == 1  # encrypted with a key that was stored
