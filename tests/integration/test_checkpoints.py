"""Signed Merkle checkpoints: making them (API, CLI, job), the witness copy, the public key,
inclusion and consistency proofs, and bundles that ``trailseal-verify`` accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ingest, make_event
from trailseal.jobs.runtime import collect_jobs
from trailseal_verify import merkle
from trailseal_verify.cli import main as verify_main
from trailseal_verify.note import parse_verifier_key, verify_checkpoint


def _fill(client, tenant, n: int) -> list[str]:
    ids: list[str] = []
    while n > 0:
        size = min(n, 1000)
        ids += ingest(client, tenant, [make_event(entity={"type": "invoice", "id": f"INV-{i}"})
                                       for i in range(size)])["ids"]
        n -= size
    return ids


def _checkpoint(client, tenant, expect=201) -> dict:
    resp = client.post("/api/v1/checkpoints", headers=tenant.headers)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def _vkey(client, tenant) -> str:
    return client.get("/api/v1/checkpoints/public-key", headers=tenant.headers).get_json()["vkey"]


def _leaves(services, tenant) -> list[bytes]:
    with services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT hash FROM audit_logs ORDER BY seq")
        return [bytes.fromhex(h) for (h,) in cur.fetchall()]


def test_checkpoint_signs_the_root_of_the_chain_hashes(trailseal_client, trailseal_services,
                                                       tenant):
    _fill(trailseal_client, tenant, 5)
    made = _checkpoint(trailseal_client, tenant)
    assert made["created"] is True
    cp = made["checkpoint"]
    key = trailseal_client.get("/api/v1/checkpoints/public-key", headers=tenant.headers).get_json()
    assert key["algorithm"] == "ed25519" and key["origin"] == f"{key['name']}/{tenant.id}"
    verifier = parse_verifier_key(key["vkey"])
    assert verifier.public_key == __import__("base64").b64decode(key["public_key"])
    signed = verify_checkpoint(cp["note"], verifier)
    root = merkle.root_of(_leaves(trailseal_services, tenant))
    assert (signed.origin, signed.size, signed.root) == (key["origin"], 5, root)
    assert cp["root"] == root.hex() and cp["tree_size"] == 5
    # C2SP layout: three lines, an extension line with the time, a blank line, a signature
    body, _, signature = cp["note"].partition("\n\n")
    assert body.split("\n")[1:3] == ["5", __import__("base64").b64encode(root).decode()]
    assert body.split("\n")[3].startswith("time ") and signature.startswith("\u2014 " + key["name"])
    # nothing new: the same checkpoint, 200
    again = _checkpoint(trailseal_client, tenant, expect=200)
    assert again["created"] is False and again["checkpoint"]["note"] == cp["note"]
    listed = trailseal_client.get("/api/v1/checkpoints", headers=tenant.headers).get_json()
    assert [c["tree_size"] for c in listed["checkpoints"]] == [5]


def test_incremental_checkpoints_proofs_and_bundle(trailseal_client, trailseal_services, tenant,
                                                   tmp_path):
    ids = _fill(trailseal_client, tenant, 300)
    first = _checkpoint(trailseal_client, tenant)["checkpoint"]
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT level, index FROM merkle_nodes ORDER BY level")
        # the complete subtrees of 64 events and more among the first 300
        assert sorted(cur.fetchall()) == [(6, 0), (6, 1), (6, 2), (6, 3), (7, 0), (7, 1), (8, 0)]
    ids += _fill(trailseal_client, tenant, 530)
    second = _checkpoint(trailseal_client, tenant)["checkpoint"]
    assert (first["tree_size"], second["tree_size"]) == (300, 830)
    leaves = _leaves(trailseal_services, tenant)
    assert second["root"] == merkle.root_of(leaves).hex()
    assert first["root"] == merkle.root_of(leaves[:300]).hex()
    vkey = _vkey(trailseal_client, tenant)
    # inclusion proofs against the latest checkpoint
    for seq in (1, 256, 257, 300, 512, 830):
        proof = trailseal_client.get(f"/api/v1/events/{ids[seq - 1]}/proof",
                                     headers=tenant.headers).get_json()
        assert proof["verified"] is True and proof["leaf_index"] == seq - 1
        assert proof["tree_size"] == 830 and proof["checkpoint"] == second["note"]
        assert merkle.verify_inclusion(seq - 1, 830, leaves[seq - 1],
                                       [bytes.fromhex(p) for p in proof["proof"]],
                                       bytes.fromhex(proof["root"]))
        path = tmp_path / f"proof-{seq}.json"
        path.write_text(json.dumps(proof))
        assert verify_main([str(path), "--public-key", vkey]) == 0
    # consistency between the two
    resp = trailseal_client.get("/api/v1/checkpoints/consistency?from=300&to=830",
                                headers=tenant.headers)
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["verified"] is True
    (tmp_path / "consistency.json").write_text(json.dumps(doc))
    assert verify_main([str(tmp_path / "consistency.json"), "--public-key", vkey]) == 0
    # bundles: all, and a middle range
    for query, count in (("", 830), ("?from_seq=200&to_seq=700", 501)):
        resp = trailseal_client.get(f"/api/v1/chain/bundle{query}", headers=tenant.headers)
        assert resp.status_code == 200
        bundle = json.loads(resp.get_data())
        assert len(bundle["events"]) == count and bundle["proofs"]["range"]["tree_size"] == 830
        path = tmp_path / "bundle.json"
        path.write_bytes(resp.get_data())
        assert verify_main([str(path), "--public-key", vkey]) == 0
    # paging the list of checkpoints
    page = trailseal_client.get("/api/v1/checkpoints?limit=1", headers=tenant.headers).get_json()
    assert [c["tree_size"] for c in page["checkpoints"]] == [830]
    rest = trailseal_client.get(f"/api/v1/checkpoints?limit=1&cursor={page['next_cursor']}",
                                headers=tenant.headers).get_json()
    assert [c["tree_size"] for c in rest["checkpoints"]] == [300] and rest["next_cursor"] is None


def test_refusals_say_why(trailseal_client, tenant):
    assert _checkpoint(trailseal_client, tenant, expect=409)["error"]["message"].startswith(
        "the tenant has no events")
    ids = _fill(trailseal_client, tenant, 3)
    resp = trailseal_client.get(f"/api/v1/events/{ids[0]}/proof", headers=tenant.headers)
    assert resp.status_code == 409 and resp.get_json()["error"]["details"]["seq"] == 1
    assert trailseal_client.get("/api/v1/chain/bundle", headers=tenant.headers).status_code == 409
    _checkpoint(trailseal_client, tenant)
    for url, status in (("/api/v1/chain/bundle?to_seq=4", 409),
                        ("/api/v1/chain/bundle?from_seq=3&to_seq=2", 422),
                        ("/api/v1/chain/bundle?from_seq=0", 422),
                        ("/api/v1/checkpoints/consistency?from=3", 422),
                        ("/api/v1/checkpoints/consistency?from=2&to=3", 404),
                        ("/api/v1/checkpoints/consistency?from=3&to=1", 422)):
        resp = trailseal_client.get(url, headers=tenant.headers)
        assert resp.status_code == status, (url, resp.get_json())


def test_other_tenants_see_none_of_it(trailseal_client, trailseal_services, tenant):
    from trailseal.testing import make_tenant

    ids = _fill(trailseal_client, tenant, 2)
    _checkpoint(trailseal_client, tenant)
    other = make_tenant(trailseal_services)
    assert trailseal_client.get(f"/api/v1/events/{ids[0]}/proof",
                                headers=other.headers).status_code == 404
    assert trailseal_client.get("/api/v1/checkpoints",
                                headers=other.headers).get_json()["checkpoints"] == []
    assert trailseal_client.get("/api/v1/checkpoints/consistency?from=2&to=2",
                                headers=other.headers).status_code == 404


def test_permissions(trailseal_client, trailseal_services):
    from trailseal.testing import make_tenant

    reader = make_tenant(trailseal_services, permissions=("audit:read",))
    assert trailseal_client.post("/api/v1/checkpoints", headers=reader.headers).status_code == 403
    assert trailseal_client.get("/api/v1/chain/bundle", headers=reader.headers).status_code == 403
    assert trailseal_client.get("/api/v1/checkpoints", headers=reader.headers).status_code == 200


def test_reads_are_in_the_access_log(trailseal_client, tenant):
    ids = _fill(trailseal_client, tenant, 2)
    _checkpoint(trailseal_client, tenant)
    for url in ("/api/v1/checkpoints", "/api/v1/checkpoints/public-key",
                f"/api/v1/events/{ids[1]}/proof", "/api/v1/chain/bundle?to_seq=2",
                "/api/v1/checkpoints/consistency?from=2&to=2"):
        assert trailseal_client.get(url, headers=tenant.headers).status_code == 200, url
    log = trailseal_client.get("/api/v1/access-log", headers=tenant.headers).get_json()
    logged = {e["endpoint"] for e in log["entries"]}
    assert {"/api/v1/checkpoints", "/api/v1/checkpoints/public-key",
            f"/api/v1/events/{ids[1]}/proof", "/api/v1/chain/bundle",
            "/api/v1/checkpoints/consistency"} <= logged


def test_witness_file_and_webhook(trailseal_client, trailseal_services, tenant, tmp_path,
                                  http_receiver, monkeypatch):
    monkeypatch.setitem(trailseal_services.config, "CHECKPOINT_WITNESS_DIR", str(tmp_path))
    monkeypatch.setitem(trailseal_services.config, "CHECKPOINT_WITNESS_URL",
                        http_receiver.url + "/witness")
    _fill(trailseal_client, tenant, 4)
    made = _checkpoint(trailseal_client, tenant)
    note = made["checkpoint"]["note"]
    copy = tmp_path / str(tenant.id) / "4.note"
    assert made["witness"] == {"file": str(copy), "webhook_status": 200}
    assert copy.read_text() == note
    (request,) = http_receiver.requests
    assert request.method == "POST" and request.path == "/witness"
    assert request.body.decode() == note and request.headers["x-trailseal-tree-size"] == "4"
    # a witness that fails is reported and logged; the checkpoint is made all the same
    http_receiver.fail_first = 2
    _fill(trailseal_client, tenant, 1)
    made = _checkpoint(trailseal_client, tenant)
    assert made["created"] and "503" in made["witness"]["webhook_error"]
    assert (tmp_path / str(tenant.id) / "5.note").exists()


def test_cli_and_hourly_job(trailseal_client, trailseal_services, tenant, tmp_path, run_jobs):
    _fill(trailseal_client, tenant, 3)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"],
               TRAILSEAL_CHECKPOINT_WITNESS_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "trailseal", "checkpoint", "--tenant",
                          tenant.slug], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"tenant {tenant.id}: signed checkpoint at tree size 3" in out.stdout
    assert f"witness file: {tmp_path / str(tenant.id) / '3.note'}" in out.stdout
    assert "\u2014 " in out.stdout  # the note is printed
    specs = {spec.name: spec for spec in collect_jobs(trailseal_services.pm)}
    assert specs["checkpoints"].cron == "7 * * * *"
    _fill(trailseal_client, tenant, 2)
    trailseal_services.queues["low"].enqueue(specs["checkpoints"].func)
    run_jobs()
    listed = trailseal_client.get("/api/v1/checkpoints", headers=tenant.headers).get_json()
    assert [c["tree_size"] for c in listed["checkpoints"]] == [5, 3]


def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {line.split("|")[-1].strip().split(".")[0]
            for line in out.stderr.splitlines()[1:] if line.startswith("import time:")}


def test_verifier_imports_nothing_that_needs_a_server():
    # what the interpreter imports at start-up (site, the editable install's finder) aside
    modules = _imported("import trailseal_verify.cli, trailseal_verify.bundle") - _imported("pass")
    # "org": the stdlib's copy module looks for Jython's org.python.core
    allowed = set(sys.stdlib_module_names) | {"trailseal_verify", "cryptography",
                                              "_cffi_backend", "cffi", "org"}
    assert "trailseal_verify" in modules and "cryptography" in modules
    assert modules <= allowed, modules - allowed
    assert not {"flask", "sqlalchemy", "psycopg", "redis", "trailseal", "orjson"} & modules


def test_console_script_runs(tmp_path):
    script = Path(sys.executable).with_name("trailseal-verify")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--public-key" in out.stdout
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    out = subprocess.run([str(script), str(bad), "--public-key", "a+00000000+AA=="],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot read input" in out.stderr


@pytest.mark.parametrize("doc", [{}, {"format": "other"}, [], {"leaf_index": 0}])
def test_verifier_names_unreadable_documents(tmp_path, doc):
    from trailseal_verify.note import verifier_key

    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc))
    assert verify_main([str(path), "--public-key", verifier_key("k", b"\x01" * 32)]) == 1


def test_the_signing_key_outlives_a_refused_checkpoint(trailseal_client, trailseal_services):
    """The key may be created by a request that then signs nothing (no events): it is
    committed on its own, so the key this process keeps is the stored one."""
    from trailseal.services.signing import forget_cached_keys, signing_key
    from trailseal.testing import make_tenant

    forget_cached_keys()
    empty = make_tenant(trailseal_services)
    assert trailseal_client.post("/api/v1/checkpoints", headers=empty.headers).status_code == 409
    with trailseal_services.db.cursor() as cur:
        key = signing_key(trailseal_services, cur)
        cur.execute("SELECT public_key FROM checkpoint_keys WHERE name = %s", (key.name,))
        assert bytes(cur.fetchone()[0]) == key.public_key
    other = make_tenant(trailseal_services)
    _fill(trailseal_client, other, 1)
    assert _checkpoint(trailseal_client, other)["checkpoint"]["key_name"] == key.name


def test_verifier_compares_the_bundle_with_a_witness_copy(trailseal_client, trailseal_services,
                                                          tenant, tmp_path, monkeypatch,
                                                          capsys):
    from trailseal.services.signing import signing_key
    from trailseal_verify.note import checkpoint_text, sign_note

    monkeypatch.setitem(trailseal_services.config, "CHECKPOINT_WITNESS_DIR", str(tmp_path))
    _fill(trailseal_client, tenant, 3)
    _checkpoint(trailseal_client, tenant)
    _fill(trailseal_client, tenant, 2)
    _checkpoint(trailseal_client, tenant)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(trailseal_client.get("/api/v1/chain/bundle",
                                            headers=tenant.headers).get_data())
    vkey = _vkey(trailseal_client, tenant)
    witnessed = tmp_path / str(tenant.id)
    assert verify_main([str(bundle), "--public-key", vkey, "--checkpoint",
                        str(witnessed / "3.note"), "--checkpoint", str(witnessed / "5.note")]) == 0
    # a witness copy of another history, signed with the same key (a re-signed rewrite)
    with trailseal_services.db.cursor() as cur:
        key = signing_key(trailseal_services, cur)
    other = tmp_path / "other.note"
    other.write_text(sign_note(checkpoint_text(key.origin(tenant.id), 5, b"\x07" * 32),
                               key.name, key.private_key))
    assert verify_main([str(bundle), "--public-key", vkey, "--checkpoint", str(other)]) == 1
    assert "the log was rewritten or forked" in capsys.readouterr().err
    # a witness copy of a size the bundle does not carry
    unknown = tmp_path / "unknown.note"
    unknown.write_text(sign_note(checkpoint_text(key.origin(tenant.id), 4, b"\x07" * 32),
                                 key.name, key.private_key))
    assert verify_main([str(bundle), "--public-key", vkey, "--checkpoint", str(unknown)]) == 1
    assert "no checkpoint at the witnessed tree size 4" in capsys.readouterr().err
