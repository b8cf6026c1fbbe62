"""The tamper matrix: the database owner changes the stored log behind the application's
back; the server's verification (``GET /chain/verify``, proofs) and ``trailseal-verify`` on
an export bundle must both notice, and name the first problem.

Each case starts from 12 events with signed checkpoints at tree sizes 6 and 12."""

from __future__ import annotations

import json

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ingest, make_event
from trailseal_verify.bundle import Problem, check_bundle
from trailseal_verify.cli import main as verify_main
from trailseal_verify.note import checkpoint_text, parse_verifier_key, sign_note
from trailseal_verify.records import record_columns_hash, record_hash


@pytest.fixture
def trail(trailseal_client, tenant):
    ids = []
    for half in range(2):
        ids += ingest(trailseal_client, tenant, [
            make_event(entity={"type": "invoice", "id": f"INV-{half}-{i}"}) for i in range(6)
        ])["ids"]
        resp = trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers)
        assert resp.status_code == 201
    vkey = trailseal_client.get("/api/v1/checkpoints/public-key",
                                headers=tenant.headers).get_json()["vkey"]
    return {"ids": ids, "vkey": vkey, "key": parse_verifier_key(vkey)}


def _server(client, tenant) -> dict:
    resp = client.get("/api/v1/chain/verify", headers=tenant.headers)
    assert resp.status_code == 200
    return resp.get_json()


def _bundle(client, tenant, query: str = "") -> dict:
    resp = client.get(f"/api/v1/chain/bundle{query}", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return json.loads(resp.get_data())


def _verifier_problem(bundle: dict, key) -> Problem:
    with pytest.raises(Problem) as caught:
        check_bundle(bundle, key)
    return caught.value


def _flip_text(col: str) -> str:
    return f"{col} = overlay({col} placing chr(ascii(substr({col}, 1, 1)) # 1) from 1 for 1)"


def _flip_hex(col: str) -> str:
    return (f"{col} = overlay({col} placing CASE WHEN left({col}, 1) = '0' THEN '1' ELSE '0' "
            f"END from 1 for 1)")


def _flip_uuid(col: str) -> str:
    return (f"{col} = (left({col}::text, 35) || CASE WHEN right({col}::text, 1) = '0' "
            f"THEN '1' ELSE '0' END)::uuid")


# One change of one stored field of event seq 5 (a single byte where the column's
# constraints allow it).
FIELD_CHANGES = {
    "id": _flip_uuid("id"),
    "tenant_id": _flip_uuid("tenant_id"),
    "seq": "seq = 1005",
    "occurred_at": "occurred_at = occurred_at + interval '1 microsecond'",
    "received_at": "received_at = received_at + interval '1 microsecond'",
    "event_type": _flip_text("event_type"),
    "actor_id": _flip_text("actor_id"),
    "actor_type": _flip_text("actor_type"),
    "actor_role": _flip_text("actor_role"),
    "actor_department": _flip_text("actor_department"),
    "entity_type": _flip_text("entity_type"),
    "entity_id": _flip_text("entity_id"),
    "severity": "severity = 'high'",  # a CHECK allows only the five names
    "source": _flip_text("source"),
    "tags": "tags[1] = overlay(tags[1] placing chr(ascii(substr(tags[1], 1, 1)) # 1) from 1 for 1)",
    "key_id": _flip_text("key_id"),
    "idempotency_key": "idempotency_key = 'x'",  # NULL before
    "previous_hash": _flip_hex("previous_hash"),
    "hash": _flip_hex("hash"),
    "record": "record = convert_to(replace(convert_from(record, 'UTF8'), '\"medium\"', "
              "'\"mediun\"'), 'UTF8')",
}


@pytest.mark.parametrize("field", list(FIELD_CHANGES))
def test_one_changed_field(trailseal_client, tenant, owner, trail, field):
    owner.execute(f"UPDATE audit_logs SET {FIELD_CHANGES[field]} WHERE tenant_id = %s AND seq = 5",
                  (tenant.id,))
    report = _server(trailseal_client, tenant)
    assert (report["intact"], report["broken_seq"]) == (False, 5), report
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    if field in ("tenant_id", "seq"):  # the row left the tenant's seq 5
        assert problem.what.startswith("events 5..5 are missing"), problem
    else:
        assert problem.seq == 5, problem
    if field == "hash":  # the leaf itself changed: its inclusion proof fails on the server
        proof = trailseal_client.get(f"/api/v1/events/{trail['ids'][4]}/proof",
                                     headers=tenant.headers).get_json()
        assert proof["verified"] is False


def test_deleted_row(trailseal_client, tenant, owner, trail):
    owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = 4", (tenant.id,))
    report = _server(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (4, "missing")
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert problem.seq == 5 and problem.what.startswith("events 4..4 are missing")


def test_swapped_rows(trailseal_client, tenant, owner, trail):
    owner.execute("UPDATE audit_logs SET seq = seq + 1000 WHERE tenant_id = %s AND seq IN (3, 9)",
                  (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = 9 WHERE tenant_id = %s AND seq = 1003", (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = 3 WHERE tenant_id = %s AND seq = 1009", (tenant.id,))
    report = _server(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (3, "reordered")
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert problem.seq == 3 and "hashed at seq 9" in problem.what
    assert problem.event_id == trail["ids"][8]


def test_inserted_row(trailseal_client, tenant, owner, trail):
    row = owner.execute("SELECT * FROM audit_logs WHERE tenant_id = %s AND seq = 3",
                        (tenant.id,)).fetchone()
    names = [d.name for d in owner.execute("SELECT * FROM audit_logs LIMIT 0").description]
    values = dict(zip(names, row, strict=True))
    rec = orjson.loads(values["record"])
    rec.update(id="00000000-0000-4000-8000-00000000f00d", entity_id="INV-FORGED")
    raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
    values.update(id=rec["id"], entity_id="INV-FORGED", record=raw, hash=record_hash(raw))
    owner.execute("UPDATE audit_logs SET seq = seq + 1000 WHERE tenant_id = %s AND seq >= 3",
                  (tenant.id,))
    owner.execute("UPDATE audit_logs SET seq = seq - 999 WHERE tenant_id = %s AND seq > 1000",
                  (tenant.id,))
    owner.execute(f"INSERT INTO audit_logs ({', '.join(names)}) "
                  f"VALUES ({', '.join(['%s'] * len(names))})", list(values.values()))
    report = _server(trailseal_client, tenant)
    assert (report["broken_seq"], report["reason"]) == (3, "inserted")
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert problem.seq == 3 and problem.event_id == rec["id"]


def test_truncated_tail(trailseal_client, tenant, owner, trail):
    # the insider also moves the chain head back, so the chain alone looks whole
    owner.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq > 10", (tenant.id,))
    owner.execute("UPDATE chain_heads SET last_seq = 10, last_hash = (SELECT hash FROM audit_logs "
                  "WHERE tenant_id = %s AND seq = 10) WHERE tenant_id = %s",
                  (tenant.id, tenant.id))
    report = _server(trailseal_client, tenant)
    assert (report["intact"], report["reason"], report["broken_seq"]) == (False, "rewritten", 11)
    assert "holds only 10" in report["detail"] and report["checkpoints_checked"] == 1
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert "truncated tail" in problem.what and "11..12" in problem.what


def _recompute_chain_from(owner, tenant, seq: int) -> None:
    """What an insider with the owner role can do: rewrite event ``seq`` and recompute the
    record, columns_hash and hash of it and of every event after it, and the chain head."""
    rows = owner.execute("SELECT seq, record FROM audit_logs WHERE tenant_id = %s AND seq >= %s "
                         "ORDER BY seq", (tenant.id, seq)).fetchall()
    prev = owner.execute("SELECT hash FROM audit_logs WHERE tenant_id = %s AND seq = %s",
                         (tenant.id, seq - 1)).fetchone()[0]
    for s, record in rows:
        rec = orjson.loads(record)
        if s == seq:
            rec["severity"] = "low"
        rec["previous_hash"] = prev
        rec["columns_hash"] = record_columns_hash(rec)
        raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
        h = record_hash(raw)
        owner.execute("UPDATE audit_logs SET severity = %s, previous_hash = %s, hash = %s, "
                      "record = %s WHERE tenant_id = %s AND seq = %s",
                      (rec["severity"], prev, h, raw, tenant.id, s))
        prev = h
    owner.execute("UPDATE chain_heads SET last_hash = %s WHERE tenant_id = %s", (prev, tenant.id))


def test_chain_recomputed_by_an_insider(trailseal_client, trailseal_services, tenant, owner,
                                        trail):
    _recompute_chain_from(owner, tenant, 8)
    # the chain alone is consistent again, but not with the checkpoint signed at 12 (the
    # one at 6 still matches)
    report = _server(trailseal_client, tenant)
    assert (report["intact"], report["reason"], report["broken_seq"]) == (False, "rewritten", 7)
    assert report["checkpoints_checked"] == 1 and "events 7..12" in report["detail"]
    assert report["events_checked"] == 12  # every event passed the chain walk
    assert report["broken_event_id"] == trail["ids"][6]
    proof = trailseal_client.get(f"/api/v1/events/{trail['ids'][9]}/proof",
                                 headers=tenant.headers).get_json()
    assert proof["verified"] is False
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert "do not give the root signed by the checkpoint at tree size 12" in problem.what
    # and no new checkpoint signs the rewritten history
    ingest(trailseal_client, tenant, [make_event()])
    resp = trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers)
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "chain_broken"
    alerts = trailseal_client.get("/api/v1/alerts", headers=tenant.headers).get_json()["alerts"]
    assert any("rewritten" in a["title"] for a in alerts)


def _forged_note(tenant, trail, size: int, root: bytes) -> str:
    other = Ed25519PrivateKey.generate()  # same name, another key
    text = checkpoint_text(f"{trail['key'].name}/{tenant.id}", size, root)
    return sign_note(text, trail["key"].name, other)


def test_forged_checkpoint(trailseal_client, tenant, owner, trail):
    root = owner.execute("SELECT root FROM chain_checkpoints WHERE tenant_id = %s AND "
                         "tree_size = 12", (tenant.id,)).fetchone()[0]
    owner.execute("UPDATE chain_checkpoints SET note = %s WHERE tenant_id = %s AND tree_size = 12",
                  (_forged_note(tenant, trail, 12, bytes(root)), tenant.id))
    report = _server(trailseal_client, tenant)
    assert (report["intact"], report["reason"], report["broken_seq"]) == (
        False, "forged_checkpoint", 12)
    problem = _verifier_problem(_bundle(trailseal_client, tenant), trail["key"])
    assert "(tree size 12) is not a valid checkpoint signed by" in problem.what
    assert "signed by another key" in problem.what


def test_forged_checkpoint_in_a_bundle(trailseal_client, tenant, trail):
    bundle = _bundle(trailseal_client, tenant)
    check_bundle(bundle, trail["key"])  # intact
    latest = bundle["checkpoints"][-1]
    # a changed root in the signed text
    forged = dict(bundle, checkpoints=[*bundle["checkpoints"][:-1], dict(
        latest, note=latest["note"].replace(latest["note"].split("\n")[2], "A" * 43 + "="))])
    assert "does not verify" in _verifier_problem(forged, trail["key"]).what
    # signed by another key
    other = dict(latest, note=_forged_note(tenant, trail, 12, bytes.fromhex(latest["root"])))
    forged = dict(bundle, checkpoints=[*bundle["checkpoints"][:-1], other])
    assert "not a valid checkpoint" in _verifier_problem(forged, trail["key"]).what
    # the bundle checked against another key
    stranger = parse_verifier_key(__import__("trailseal_verify.note", fromlist=["x"]).verifier_key(
        trail["key"].name, Ed25519PrivateKey.generate().public_key().public_bytes_raw()))
    assert "not a valid checkpoint" in _verifier_problem(bundle, stranger).what


def _flip(hex_hash: str) -> str:
    return ("1" if hex_hash[0] == "0" else "0") + hex_hash[1:]


def test_proofs_with_a_flipped_or_missing_hash(trailseal_client, tenant, trail, tmp_path):
    # inclusion proof from GET /events/{id}/proof, checked by trailseal-verify
    proof = trailseal_client.get(f"/api/v1/events/{trail['ids'][2]}/proof",
                                 headers=tenant.headers).get_json()
    path = tmp_path / "proof.json"
    for doc, expect in ((proof, 0), (dict(proof, proof=[_flip(proof["proof"][0]),
                                                        *proof["proof"][1:]]), 1),
                        (dict(proof, proof=proof["proof"][:-1]), 1),
                        (dict(proof, hash=_flip(proof["hash"])), 1)):
        path.write_text(json.dumps(doc))
        assert verify_main([str(path), "--public-key", trail["vkey"]]) == expect
    # the range proof and the consistency proof of a bundle
    bundle = _bundle(trailseal_client, tenant, "?from_seq=3&to_seq=9")
    check_bundle(bundle, trail["key"])
    context = bundle["proofs"]["range"]["context"]
    assert context
    for bad in ([_flip(context[0]), *context[1:]], context[:-1]):
        broken = dict(bundle, proofs=dict(bundle["proofs"], range=dict(
            bundle["proofs"]["range"], context=bad)))
        assert "range proof" in _verifier_problem(broken, trail["key"]).what or \
            "do not give the root" in _verifier_problem(broken, trail["key"]).what
    (consistency,) = bundle["proofs"]["consistency"]
    assert consistency["from"] == 6 and consistency["to"] == 12
    for bad in ([_flip(consistency["proof"][0]), *consistency["proof"][1:]],
                consistency["proof"][:-1]):
        broken = dict(bundle, proofs=dict(bundle["proofs"], consistency=[dict(consistency,
                                                                             proof=bad)]))
        assert "consistency proof from tree size 6 to 12 does not verify" in \
            _verifier_problem(broken, trail["key"]).what
    # the server's consistency proof checked by trailseal-verify, then damaged
    doc = trailseal_client.get("/api/v1/checkpoints/consistency?from=6&to=12",
                               headers=tenant.headers).get_json()
    for variant, expect in ((doc, 0), (dict(doc, proof=doc["proof"][1:]), 1)):
        path.write_text(json.dumps(variant))
        assert verify_main([str(path), "--public-key", trail["vkey"]]) == expect


def test_edits_to_a_bundle_are_named(trailseal_client, tenant, trail):
    bundle = _bundle(trailseal_client, tenant)
    events = bundle["events"]
    cases = {
        "deleted": events[:4] + events[5:],
        "swapped": events[:2] + [events[8]] + events[3:8] + [events[2]] + events[9:],
        "truncated": events[:10],
        "inserted": events[:3] + [events[3]] + events[3:],
    }
    seen = {}
    for name, changed in cases.items():
        seen[name] = _verifier_problem(dict(bundle, events=changed), trail["key"])
    assert seen["deleted"].what.startswith("events 5..5 are missing")
    assert seen["swapped"].seq == 9 and "where seq 3 belongs" in seen["swapped"].what
    assert "reordered" in seen["swapped"].what
    assert "truncated tail" in seen["truncated"].what
    assert seen["inserted"].seq == 4 and "a second event claims seq 4" in seen["inserted"].what
