"""Tamper tests: the database owner edits, deletes, reorders and inserts rows; verification
names the first broken event, records a critical alert and fires ``anomaly_detected``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import orjson
import pytest

from tests.conftest import make_event
from trailseal import hookimpl
from trailseal.services.chain import record_hash

STORED_COLUMNS = ("id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
                  "actor_type", "actor_role", "actor_department", "entity_type", "entity_id",
                  "severity", "source", "tags", "key_id", "idempotency_key", "previous_hash",
                  "hash", "record")


def _fill(client, tenant, n=12):
    events = [make_event(entity={"type": "invoice", "id": f"INV-{i}"}) for i in range(n)]
    resp = client.post("/api/v1/events/batch", json={"events": events}, headers=tenant.headers)
    assert resp.status_code == 201
    return resp.get_json()["ids"]


def _verify(client, tenant):
    resp = client.get("/api/v1/chain/verify", headers=tenant.headers)
    assert resp.status_code == 200
    return resp.get_json()


def test_intact_chain_verifies(trailseal_client, tenant):
    _fill(trailseal_client, tenant)
    report = _verify(trailseal_client, tenant)
    assert report["intact"] and report["events_checked"] == 12 and report["broken_seq"] is None


def test_edited_row_is_named(trailseal_client, tenant, owner):
    ids = _fill(trailseal_client, tenant)
    owner.execute("UPDATE audit_logs SET severity = 'info' WHERE tenant_id = %s AND seq = 5", (tenant.id,))
    report = _verify(trailseal_client, tenant)
    assert (report["intact"], report["broken_seq"], report["reason"]) == (False, 5, "modified")
    assert report["broken_event_id"] == ids[4]


def _record(owner, tenant, seq):
    raw = owner.execute("SELECT record FROM audit_logs WHERE tenant_id = %s AND seq = %s",
                        (tenant.id, seq)).fetchone()[0]
    return orjson.loads(raw)


def _dump(rec) -> bytes:
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


def test_edited_ciphertext_is_named(trailseal_client, tenant, owner):
    _fill(trailseal_client, tenant)
    rec = _record(owner, tenant, 3)
    rec["ip_address"] = None
    owner.execute("UPDATE audit_logs SET record = %s WHERE tenant_id = %s AND seq = 3",
                  (_dump(rec), tenant.id))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (3, "modified")


def test_edited_and_rehashed_row_is_named(trailseal_client, trailseal_services, tenant, owner):
    _fill(trailseal_client, tenant)
    rec = _record(owner, tenant, 7)
    rec["severity"] = "info"
    raw = _dump(rec)
    owner.execute("UPDATE audit_logs SET severity = 'info', record = %s, hash = %s "
                  "WHERE tenant_id = %s AND seq = 7", (raw, record_hash(raw), tenant.id))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (7, "modified")


def test_reads_show_the_hashed_record_not_edited_columns(trailseal_client, tenant, owner):
    ids = _fill(trailseal_client, tenant, 3)
    owner.execute("UPDATE audit_logs SET actor_id = 'mallory' WHERE tenant_id = %s AND seq = 2", (tenant.id,))
    shown = trailseal_client.get(f"/api/v1/events/{ids[1]}", headers=tenant.headers).get_json()
    assert shown["actor"]["id"] == "u-1"
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (2, "modified")


def test_deleted_row_is_missing(trailseal_client, tenant, owner):
    ids = _fill(trailseal_client, tenant)
    owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = 4", (tenant.id,))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (4, "missing")
    assert report["broken_event_id"] == ids[4]  # the event after the gap


def test_deleted_last_row_is_missing(trailseal_client, tenant, owner):
    _fill(trailseal_client, tenant)
    owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = 12", (tenant.id,))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (12, "missing")


def test_reordered_rows_are_named(trailseal_client, tenant, owner):
    ids = _fill(trailseal_client, tenant)
    owner.execute("UPDATE audit_logs SET seq = seq + 1000 WHERE tenant_id = %s AND seq IN (3, 9)", (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = 9 WHERE tenant_id = %s AND seq = 1003", (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = 3 WHERE tenant_id = %s AND seq = 1009", (tenant.id,))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (3, "reordered")
    assert report["broken_event_id"] == ids[8]


def test_inserted_row_is_named(trailseal_client, tenant, owner):
    _fill(trailseal_client, tenant, 6)
    cols = [c for c in STORED_COLUMNS if c not in ("id", "entity_id", "hash", "record")]
    base = owner.execute(f"SELECT {', '.join(cols)} FROM audit_logs WHERE tenant_id = %s AND seq = 3",
                         (tenant.id,)).fetchone()
    rec = _record(owner, tenant, 3)
    forged_id = uuid.uuid4()
    rec.update(id=str(forged_id), entity_id="INV-FORGED")
    raw = _dump(rec)
    owner.execute("UPDATE audit_logs SET seq = seq + 1000 WHERE tenant_id = %s AND seq >= 3", (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = seq - 999 WHERE tenant_id = %s AND seq > 1000", (tenant.id,))
    all_cols = cols + ["id", "entity_id", "hash", "record"]
    owner.execute(f"INSERT INTO audit_logs ({', '.join(all_cols)}) VALUES ({', '.join(['%s'] * len(all_cols))})",
                  (*base, forged_id, "INV-FORGED", record_hash(raw), raw))
    report = _verify(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (3, "inserted")
    assert report["broken_event_id"] == str(forged_id)


def test_break_records_one_critical_alert_and_fires_hook(trailseal_client, tenant, owner, register_plugin):
    seen = []

    class Listener:
        @hookimpl
        def anomaly_detected(self, alert):
            seen.append(alert)

    register_plugin(Listener())
    _fill(trailseal_client, tenant)
    owner.execute("UPDATE audit_logs SET actor_id = 'mallory' WHERE tenant_id = %s AND seq = 2", (tenant.id,))
    _verify(trailseal_client, tenant)
    _verify(trailseal_client, tenant)  # the same break is not alerted twice
    alerts = trailseal_client.get("/api/v1/alerts", headers=tenant.headers).get_json()["alerts"]
    assert len(alerts) == 1
    assert alerts[0]["kind"] == "chain_broken" and alerts[0]["severity"] == "critical"
    assert alerts[0]["details"]["broken_seq"] == 2
    assert len(seen) == 1 and seen[0].tenant_id == str(tenant.id)


def test_cli_verify_exit_codes(trailseal_client, trailseal_services, tenant, owner):
    _fill(trailseal_client, tenant, 5)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    cmd = [sys.executable, "-m", "trailseal", "verify", "--tenant", tenant.slug, "--json"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["intact"] is True
    owner.execute("UPDATE audit_logs SET event_type = 'x.y' WHERE tenant_id = %s AND seq = 2", (tenant.id,))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["broken_seq"] == 2
    missing = subprocess.run(cmd[:-3] + ["--tenant", "no-such-tenant"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no tenant" in missing.stderr


@pytest.mark.parametrize("range_min", [100, 2])  # two ranges; six ranges of two events
@pytest.mark.parametrize("tamper_seq", [None, 2, 3, 6, 7, 12])
def test_ranged_verification_matches_the_sequential_walk(trailseal_client, trailseal_services,
                                                         tenant, owner, tamper_seq, range_min):
    from trailseal.services.integrity import verify_chain

    ids = _fill(trailseal_client, tenant, 12)
    if tamper_seq is not None:
        owner.execute("UPDATE audit_logs SET actor_id = 'mallory' WHERE tenant_id = %s AND seq = %s",
                      (tenant.id, tamper_seq))
    parallel = verify_chain(trailseal_services, tenant.id, parallel_min=4, range_min=range_min,
                            raise_alert=False)
    sequential = verify_chain(trailseal_services, tenant.id, raise_alert=False)
    assert parallel == sequential
    if tamper_seq is None:
        assert parallel.intact and parallel.events_checked == 12
    else:
        assert (parallel.broken_seq, parallel.broken_event_id, parallel.reason) == (
            tamper_seq, ids[tamper_seq - 1], "modified")


def test_an_intact_chain_is_settled_by_the_ranges_alone(trailseal_client, trailseal_services,
                                                        tenant, monkeypatch):
    from trailseal.services import integrity

    _fill(trailseal_client, tenant, 12)

    def no_sequential_walk(*args, **kwargs):
        raise AssertionError("fell back to the sequential walk")

    monkeypatch.setattr(integrity, "_walk", no_sequential_walk)
    report = integrity.verify_chain(trailseal_services, tenant.id, parallel_min=4, range_min=2,
                                    raise_alert=False)
    assert report.intact and report.events_checked == 12


@pytest.mark.parametrize("damage", ["delete 5", "delete 12", "past head", "head hash", "relink 7"])
def test_ranged_verification_catches_breaks_at_seams(trailseal_client, trailseal_services,
                                                     tenant, owner, damage):
    from tests.records import rehash_with_seq
    from trailseal.services.integrity import verify_chain

    _fill(trailseal_client, tenant, 12)
    tid = tenant.id
    if damage.startswith("delete"):
        owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = %s",
                      (tid, int(damage.split()[1])))
    elif damage == "past head":
        row = owner.execute("SELECT record FROM audit_logs WHERE tenant_id = %s AND seq = 12",
                            (tid,)).fetchone()
        record, digest = rehash_with_seq(bytes(row[0]), 13)
        owner.execute(
            "INSERT INTO audit_logs SELECT gen_random_uuid(), tenant_id, 13, occurred_at, "
            "received_at, event_type, actor_id, actor_type, actor_role, actor_department, "
            "entity_type, entity_id, severity, source, tags, key_id, idempotency_key, "
            "previous_hash, %s, %s FROM audit_logs WHERE tenant_id = %s AND seq = 12",
            (digest, record, tid))
    elif damage == "head hash":
        owner.execute("UPDATE chain_heads SET last_hash = repeat('3', 64) WHERE tenant_id = %s",
                      (tid,))
    else:  # row 7 re-hashed with another previous_hash: consistent with itself, not linked
        row = owner.execute("SELECT record FROM audit_logs WHERE tenant_id = %s AND seq = 7",
                            (tid,)).fetchone()
        rec = orjson.loads(bytes(row[0]))
        rec["previous_hash"] = "4" * 64
        raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
        owner.execute("UPDATE audit_logs SET record = %s, hash = %s, previous_hash = %s "
                      "WHERE tenant_id = %s AND seq = 7", (raw, record_hash(raw), "4" * 64, tid))
    ranged = verify_chain(trailseal_services, tid, parallel_min=4, range_min=2, raise_alert=False)
    sequential = verify_chain(trailseal_services, tid, raise_alert=False)
    assert not ranged.intact
    assert ranged == sequential


def test_ranged_verification_catches_a_missing_event(trailseal_client, trailseal_services,
                                                     tenant, owner):
    from trailseal.services.integrity import verify_chain

    _fill(trailseal_client, tenant, 10)
    owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = 6", (tenant.id,))
    report = verify_chain(trailseal_services, tenant.id, parallel_min=4, raise_alert=False)
    assert (report.intact, report.broken_seq, report.reason) == (False, 6, "missing")


@pytest.mark.parametrize("record", [b"not json", b"[1, 2]", b'{"seq": 2}', b'{"v": 1}'])
def test_a_rehashed_record_that_is_no_event_is_named(trailseal_client, trailseal_services, tenant,
                                                    owner, record):
    from trailseal.services.integrity import verify_chain

    ids = _fill(trailseal_client, tenant, 4)
    owner.execute("UPDATE audit_logs SET record = %s, hash = %s WHERE tenant_id = %s AND seq = 2",
                  (record, record_hash(record), tenant.id))
    report = verify_chain(trailseal_services, tenant.id, raise_alert=False)
    assert (report.intact, report.broken_seq, report.reason) == (False, 2, "modified")
    assert report.broken_event_id == ids[1]


@pytest.mark.parametrize("edit", [
    "actor_role = chr(30)",                      # NULL in the record: a value that looks like NULL
    "tags = ARRAY[tags[1] || chr(29) || 'b']",   # two tags merged into one with a separator
    "tags = tags || NULL::text",                 # a NULL element
    "tags = ARRAY['']::text[]",                  # one empty tag where there were some
])
def test_column_edits_that_look_alike_are_caught(trailseal_client, trailseal_services, tenant,
                                                 owner, edit):
    from trailseal.services.integrity import verify_chain

    body = make_event(actor={"id": "u-1", "type": "user"}, tags=["a", "b"])
    resp = trailseal_client.post("/api/v1/events/batch", json={"events": [body] * 3},
                                 headers=tenant.headers)
    assert resp.status_code == 201
    if "tags[1]" in edit:
        owner.execute("UPDATE audit_logs SET tags = ARRAY['a' || chr(29) || 'b'] "
                      "WHERE tenant_id = %s AND seq = 2", (tenant.id,))
    else:
        owner.execute(f"UPDATE audit_logs SET {edit} WHERE tenant_id = %s AND seq = 2",
                      (tenant.id,))
    for full in (False, True):
        report = verify_chain(trailseal_services, tenant.id, full=full, raise_alert=False)
        assert (report.intact, report.broken_seq, report.reason) == (False, 2, "modified")


def test_a_rewritten_first_row_in_ranged_mode_is_reported_not_raised(
        trailseal_client, trailseal_services, tenant, owner):
    from trailseal.services.integrity import verify_chain

    _fill(trailseal_client, tenant, 12)
    for record in (b'{"v": 2}', b'{"previous_hash": 5}', b"[]"):
        owner.execute("UPDATE audit_logs SET record = %s, hash = %s WHERE tenant_id = %s AND seq = 1",
                      (record, record_hash(record), tenant.id))
        report = verify_chain(trailseal_services, tenant.id, parallel_min=4, range_min=2,
                              raise_alert=False)
        assert (report.intact, report.broken_seq, report.reason) == (False, 1, "modified")


def test_full_verification_also_decodes_records_with_a_matching_columns_hash(
        trailseal_client, trailseal_services, tenant, owner):
    """The fast check trusts a record's columns_hash; a record rewritten with its hash and the
    chain head (which nothing inside the database can tell from a genuine one) but left
    with its old columns_hash is caught by --full."""
    from trailseal.services.integrity import verify_chain

    _fill(trailseal_client, tenant, 3)
    row = owner.execute("SELECT record FROM audit_logs WHERE tenant_id = %s AND seq = 3",
                        (tenant.id,)).fetchone()
    rec = orjson.loads(bytes(row[0]))
    rec["actor_id"] = "mallory"  # columns and columns_hash still say otherwise
    raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
    owner.execute("UPDATE audit_logs SET record = %s, hash = %s WHERE tenant_id = %s AND seq = 3",
                  (raw, record_hash(raw), tenant.id))
    owner.execute("UPDATE chain_heads SET last_hash = %s WHERE tenant_id = %s",
                  (record_hash(raw), tenant.id))
    assert verify_chain(trailseal_services, tenant.id, raise_alert=False).intact
    full = verify_chain(trailseal_services, tenant.id, full=True, raise_alert=False)
    assert (full.intact, full.broken_seq, full.reason) == (False, 3, "modified")
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    cli = subprocess.run([sys.executable, "-m", "trailseal", "verify", "--tenant", tenant.slug,
                          "--full", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and json.loads(cli.stdout)["broken_seq"] == 3


def test_api_full_parameter(trailseal_client, tenant):
    _fill(trailseal_client, tenant, 3)
    for value in ("true", "false", "1", "0", "TRUE"):
        resp = trailseal_client.get(f"/api/v1/chain/verify?full={value}", headers=tenant.headers)
        assert resp.status_code == 200 and resp.get_json()["intact"] is True
    bad = trailseal_client.get("/api/v1/chain/verify?full=maybe", headers=tenant.headers)
    assert bad.status_code == 422 and "full" in bad.get_json()["error"]["message"]
    other = trailseal_client.get("/api/v1/chain/verify?fast=1", headers=tenant.headers)
    assert other.status_code == 422
