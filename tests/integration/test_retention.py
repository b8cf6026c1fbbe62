"""Retention and legal hold: the expired, unheld prefix of a chain is archived (encrypted
bundle), then removed through the maintenance role only; the retained chain still verifies
on the server and with ``trailseal-verify``, and tampering with it is still caught."""

from __future__ import annotations

import io
import json
import uuid

import psycopg
import pytest

from tests.conftest import ingest, make_event, owner_connection, ts
from trailseal.db import maintenance_connection
from trailseal.services.archives import ArchiveUnreadable, open_archive
from trailseal.services.retention import apply_retention
from trailseal.testing import make_tenant
from trailseal_verify.bundle import check_bundle
from trailseal_verify.cli import main as verify_main
from trailseal_verify.note import parse_verifier_key

OLD = 4000  # days: past the default 7 years


def _fill(client, tenant, old: int, recent: int, entity=lambda i: ("invoice", f"INV-{i}")):
    events = []
    for i in range(old + recent):
        etype, eid = entity(i)
        events.append(make_event(occurred_at=ts(OLD if i < old else 1),
                                 entity={"type": etype, "id": eid}))
    ids = []
    for start in range(0, len(events), 1000):
        ids += ingest(client, tenant, events[start:start + 1000])["ids"]
    return ids


def _verify(client, tenant) -> dict:
    resp = client.get("/api/v1/chain/verify", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _bundle(client, tenant) -> dict:
    resp = client.get("/api/v1/chain/bundle", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return json.loads(resp.data)


def _vkey(client, tenant) -> str:
    return client.get("/api/v1/checkpoints/public-key", headers=tenant.headers).get_json()["vkey"]


def _verify_file(tmp_path, client, tenant, doc) -> int:
    path = tmp_path / f"doc-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(doc))
    return verify_main([str(path), "--public-key", _vkey(client, tenant)])


def test_purge_archives_then_removes_the_prefix_and_the_rest_still_verifies(
        trailseal_client, trailseal_services, tenant, tmp_path):
    ids = _fill(trailseal_client, tenant, old=150, recent=20)
    with trailseal_services.db.cursor(tenant.id) as cur:  # derived rows of a purged event
        cur.execute("INSERT INTO event_insights (tenant_id, event_id, category) "
                    "VALUES (%s, %s, 'finance'), (%s, %s, 'finance')",
                    (tenant.id, ids[3], tenant.id, ids[160]))
        cur.execute("INSERT INTO audit_search_text (tenant_id, event_id, tsv) VALUES "
                    "(%s, %s, to_tsvector('x'))", (tenant.id, ids[3]))
    dry = apply_retention(trailseal_services, tenant.id, dry_run=True)
    # 150 expired, but a checkpoint must cover them first (the real run makes one).
    assert dry["events_removed"] == 0 and dry["dry_run"] is True

    done = apply_retention(trailseal_services, tenant.id)
    # Removal goes in whole blocks of 64 events: 1..128 of the 150 expired ones.
    assert done["events_removed"] == 128 and done["purged_through"] == 128
    (purge,) = done["purges"]
    assert (purge["from_seq"], purge["to_seq"]) == (1, 128)

    # The archive opens with the master key and verifies on its own.
    out = io.BytesIO()
    header = open_archive(trailseal_services.keyring, purge["archive"], out)
    assert (header["from_seq"], header["to_seq"], header["tenant_id"]) == (1, 128, str(tenant.id))
    archived = json.loads(out.getvalue())
    report = check_bundle(archived, parse_verifier_key(_vkey(trailseal_client, tenant)))
    assert (report.first_seq, report.last_seq, report.events) == (1, 128, 128)
    assert [e["columns"]["id"] for e in archived["events"]] == ids[:128]

    # Gone from the ledger and from the derived tables; the rest is untouched.
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT min(seq), count(*) FROM audit_logs")
        assert cur.fetchone() == (129, 42)
        cur.execute("SELECT event_id::text FROM event_insights")
        assert [r[0] for r in cur.fetchall()] == [ids[160]]
        cur.execute("SELECT count(*) FROM audit_search_text")
        assert cur.fetchone()[0] == 0

    # The server's verification and trailseal-verify both pass on the retained chain.
    report = _verify(trailseal_client, tenant)
    assert report["intact"] is True and report["events_checked"] == 42
    assert report["checkpoints_checked"] >= 1
    bundle = _bundle(trailseal_client, tenant)
    assert bundle["from_seq"] == 129 and bundle["events"][0]["columns"]["id"] == ids[128]
    assert _verify_file(tmp_path, trailseal_client, tenant, bundle) == 0
    # New events and checkpoints keep working after the purge.
    more = _fill(trailseal_client, tenant, old=0, recent=70)
    made = trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers)
    assert made.status_code == 201, made.get_json()
    proof = trailseal_client.get(f"/api/v1/events/{more[-1]}/proof", headers=tenant.headers)
    assert proof.status_code == 200 and proof.get_json()["verified"] is True
    assert _verify(trailseal_client, tenant)["intact"] is True
    assert _verify_file(tmp_path, trailseal_client, tenant,
                        _bundle(trailseal_client, tenant)) == 0
    # Removed events are gone for the API too; a bundle cannot ask for them.
    assert trailseal_client.get(f"/api/v1/events/{ids[0]}",
                                headers=tenant.headers).status_code == 404
    resp = trailseal_client.get("/api/v1/chain/bundle?from_seq=5", headers=tenant.headers)
    assert resp.status_code == 409 and resp.get_json()["error"]["details"] == {
        "purged_through": 128}
    # Nothing more to do: a second run removes nothing.
    assert apply_retention(trailseal_services, tenant.id)["events_removed"] == 0


def _purged_tenant(client, services):
    tenant = make_tenant(services)
    ids = _fill(client, tenant, old=64, recent=10)
    assert apply_retention(services, tenant.id)["events_removed"] == 64
    return tenant, ids


@pytest.mark.parametrize("tamper", ["modify_retained", "delete_first_retained", "forge_anchor"])
def test_tampering_after_a_purge_is_still_caught(trailseal_client, trailseal_services, tmp_path,
                                                 tamper):
    tenant, ids = _purged_tenant(trailseal_client, trailseal_services)
    with owner_connection(trailseal_services) as conn:
        if tamper == "modify_retained":
            conn.execute("UPDATE audit_logs SET actor_id = 'mallory' "
                         "WHERE tenant_id = %s AND seq = 66", (tenant.id,))
            expected = 66
        elif tamper == "delete_first_retained":
            conn.execute("DELETE FROM audit_logs WHERE tenant_id = %s AND seq = 65",
                         (tenant.id,))
            expected = 65
        else:
            conn.execute("UPDATE retention_purges SET last_hash = repeat('0', 64) "
                         "WHERE tenant_id = %s", (tenant.id,))
            expected = 65
    report = _verify(trailseal_client, tenant)
    assert report["intact"] is False and report["broken_seq"] == expected, report
    if tamper == "modify_retained":
        bundle = _bundle(trailseal_client, tenant)
        assert _verify_file(tmp_path, trailseal_client, tenant, bundle) != 0


def test_only_the_maintenance_role_can_remove_and_only_what_may_go(trailseal_client,
                                                                   trailseal_services):
    tenant = make_tenant(trailseal_services)
    _fill(trailseal_client, tenant, old=10, recent=70)  # seqs 11.. have not expired
    assert trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers).status_code == 201
    # The app role: no DELETE on the ledger, no right to call the purge.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("DELETE FROM audit_logs WHERE seq <= 64")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT trailseal_retention_purge(%s, 64, 'x', repeat('a', 64), 'me')",
                    (tenant.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT set_config('trailseal.retention_purge', %s, true)",
                    (f"{tenant.id}:64",))
        cur.execute("DELETE FROM audit_logs WHERE seq <= 64")
    url = trailseal_services.config["MAINTENANCE_DATABASE_URL"]
    # The app's login is not accepted as the maintenance connection.
    from trailseal.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="only a member of trailseal_maintenance"), \
            maintenance_connection(trailseal_services.config["DATABASE_URL"]):
        pass
    # The maintenance role: no table privileges, and the purge refuses unexpired events.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), maintenance_connection(url) as conn:
        conn.execute("DELETE FROM audit_logs WHERE tenant_id = %s", (tenant.id,))
    with pytest.raises(psycopg.errors.CheckViolation), maintenance_connection(url) as conn:
        conn.execute("SELECT trailseal_retention_purge(%s, 64, 'x', repeat('a', 64), 'me')",
                     (tenant.id,))
    # Even the owner's own DELETE is refused by the trigger outside the purge.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), \
            psycopg.connect(trailseal_services.config["ADMIN_DATABASE_URL"]
                            .replace("+psycopg", "")) as conn:
        conn.execute("DELETE FROM audit_logs WHERE tenant_id = %s", (tenant.id,))
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs")
        assert cur.fetchone()[0] == 80


def test_an_archive_that_was_altered_does_not_open(trailseal_client, trailseal_services,
                                                   tmp_path):
    tenant, _ = _purged_tenant(trailseal_client, trailseal_services)
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT archive_name FROM retention_purges")
        (name,) = cur.fetchone()
    from trailseal.services.archives import archive_dir

    path = archive_dir(trailseal_services.config) / str(tenant.id) / name
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 1
    bad = tmp_path / "bad.tsarc"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ArchiveUnreadable):
        open_archive(trailseal_services.keyring, bad, io.BytesIO())


def test_retention_policy_api(trailseal_client, trailseal_services):
    tenant = make_tenant(trailseal_services)
    shown = trailseal_client.get("/api/v1/retention", headers=tenant.headers)
    assert shown.status_code == 200
    body = shown.get_json()
    assert body["policy"] == {"days": 2557, "default_days": 2557, "updated_by": None,
                              "updated_at": None}
    assert body["purged_through"] == 0 and body["purges"] == [] and body["active_holds"] == 0
    _fill(trailseal_client, tenant, old=0, recent=70)  # occurred a day ago
    assert trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers).status_code == 201
    assert trailseal_client.get("/api/v1/retention", headers=tenant.headers) \
        .get_json()["expiring"]["events"] == 0
    # A shorter period makes them expire: the whole first block may go.
    resp = trailseal_client.put("/api/v1/retention", json={"days": 1}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["policy"]["days"] == 1 and body["policy"]["updated_by"].startswith("api_key:")
    assert body["expiring"] == {"from_seq": 1, "to_seq": 64, "events": 64}
    reader = make_tenant(trailseal_services, permissions=("audit:read",))
    assert trailseal_client.put("/api/v1/retention", json={"days": 5},
                                headers=reader.headers).status_code == 403
    # Recorded in the access log, with the value.
    log = trailseal_client.get("/api/v1/access-log", headers=tenant.headers).get_json()["entries"]
    assert any(e["endpoint"] == "/api/v1/retention" and e["method"] == "PUT"
               and e["query"].get("days") == "1" for e in log)
    done = apply_retention(trailseal_services, tenant.id, actor="user:ops")
    assert done["events_removed"] == 64
    shown = trailseal_client.get("/api/v1/retention", headers=tenant.headers).get_json()
    assert shown["purged_through"] == 64
    (purge,) = shown["purges"]
    assert purge["from_seq"] == 1 and purge["to_seq"] == 64 and purge["retention_days"] == 1
    assert purge["purged_by"] == "user:ops" and purge["archive"] == "retention-1-64.tsarc"


def test_legal_holds_stop_retention_and_are_audited(trailseal_client, trailseal_services):
    tenant = make_tenant(trailseal_services)
    # 200 expired events; the entity ACME-9 appears at seq 150.
    _fill(trailseal_client, tenant, old=200, recent=5,
          entity=lambda i: ("customer", "ACME-9") if i == 149 else ("invoice", f"INV-{i}"))
    holds = "/api/v1/legal-holds"
    made = trailseal_client.post(holds, headers=tenant.headers, json={
        "scope": "entity", "entity_type": "customer", "entity_id": "ACME-9",
        "reason": "litigation 2026-17"})
    assert made.status_code == 201, made.get_json()
    hold = made.get_json()
    assert hold["active"] is True and hold["created_by"].startswith("api_key:")
    assert made.headers["Location"] == f"{holds}/{hold['id']}"
    # The held event is seq 150: the prefix stops before it (in blocks of 64: 1..128).
    assert apply_retention(trailseal_services, tenant.id)["purged_through"] == 128
    # A tenant-wide hold stops everything.
    whole = trailseal_client.post(holds, headers=tenant.headers,
                                  json={"scope": "tenant", "reason": "regulator inquiry"})
    assert whole.status_code == 201
    whole_id = whole.get_json()["id"]
    result = apply_retention(trailseal_services, tenant.id)
    assert result["events_removed"] == 0 and result["tenant_on_hold"] is True
    trailseal_client.post(holds + f"/{whole_id}/release", headers=tenant.headers,
                          json={"reason": "inquiry over"})
    # Released: the entity hold still keeps seq 150 and everything after it.
    assert apply_retention(trailseal_services, tenant.id)["events_removed"] == 0
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT seq FROM audit_logs WHERE entity_id = 'ACME-9'")
        assert cur.fetchall() == [(150,)]
    listed = trailseal_client.get(holds + "?active=true", headers=tenant.headers).get_json()
    assert [h["id"] for h in listed["holds"]] == [hold["id"]]
    released = trailseal_client.get(holds + "?active=false", headers=tenant.headers).get_json()
    (old,) = released["holds"]
    assert old["release_reason"] == "inquiry over" and old["released_by"].startswith("api_key:")
    # Released twice: 409; another tenant's hold: 404; readers cannot place holds.
    again = trailseal_client.post(holds + f"/{whole_id}/release", headers=tenant.headers,
                                  json={"reason": "again"})
    assert again.status_code == 409
    other = make_tenant(trailseal_services)
    assert trailseal_client.post(holds + f"/{hold['id']}/release", headers=other.headers,
                                 json={"reason": "x"}).status_code == 404
    reader = make_tenant(trailseal_services, permissions=("audit:read",))
    assert trailseal_client.post(holds, headers=reader.headers,
                                 json={"scope": "tenant", "reason": "x"}).status_code == 403
    assert trailseal_client.get(holds, headers=other.headers).get_json() == {"holds": []}
    trailseal_client.post(holds + f"/{hold['id']}/release", headers=tenant.headers,
                          json={"reason": "case closed"})
    assert apply_retention(trailseal_services, tenant.id)["purged_through"] == 192
    # Every step is in the access log; the purges name their archives.
    log = trailseal_client.get("/api/v1/access-log?limit=100",
                               headers=tenant.headers).get_json()["entries"]
    steps = [(e["method"], e["endpoint"]) for e in log]
    assert steps.count(("POST", holds)) == 2
    assert ("POST", f"{holds}/{hold['id']}/release") in steps
    purges = [e for e in log if e["endpoint"] == "retention:purge"]
    assert [(p["query"]["from_seq"], p["query"]["to_seq"]) for p in purges] == [(129, 192),
                                                                              (1, 128)]
    assert all(p["principal_type"] == "system" for p in purges)
    assert _verify(trailseal_client, tenant)["intact"] is True


@pytest.mark.slow
def test_cli_job_and_archive_restore(trailseal_client, trailseal_services, run_jobs, tmp_path):
    import os
    import subprocess
    import sys

    from trailseal.jobs.runtime import collect_jobs

    tenant = make_tenant(trailseal_services)
    ids = _fill(trailseal_client, tenant, old=140, recent=3)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers).status_code == 201
    dry = cli("retention", "--tenant", tenant.slug, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would archive and remove events 1..128 (128 events)" in dry.stdout
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs")
        assert cur.fetchone()[0] == 143  # a dry run removes nothing
    done = cli("retention", "--tenant", tenant.slug)
    assert done.returncode == 0, done.stderr
    assert "archived events 1..128 to " in done.stdout and "then removed 128" in done.stdout
    archive = done.stdout.split("archived events 1..128 to ")[1].split(" (")[0]
    # Restore: open with the master key, then check with trailseal-verify like any bundle.
    out = tmp_path / "restored.json"
    opened = cli("retention", "open", archive, "-o", str(out))
    assert opened.returncode == 0, opened.stderr
    restored = json.loads(out.read_text())
    assert [e["columns"]["id"] for e in restored["events"]] == ids[:128]
    verified = subprocess.run([sys.executable, "-m", "trailseal_verify", str(out),
                               "--public-key", _vkey(trailseal_client, tenant)],
                              capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0 and "OK: 128 events (seq 1..128)" in verified.stdout
    # The daily job: registered, and it removes the next expired block once it can.
    specs = {spec.name: spec for spec in collect_jobs(trailseal_services.pm)}
    assert specs["retention"].cron == "37 2 * * *"
    _fill(trailseal_client, tenant, old=0, recent=60)
    trailseal_client.put("/api/v1/retention", json={"days": 1}, headers=tenant.headers)
    trailseal_services.queues["low"].enqueue(specs["retention"].func)
    run_jobs()
    shown = trailseal_client.get("/api/v1/retention", headers=tenant.headers).get_json()
    assert shown["purged_through"] == 192  # 203 expired now; blocks of 64 up to 192
    assert _verify(trailseal_client, tenant)["intact"] is True


def test_without_the_maintenance_role_nothing_is_removed(trailseal_client, trailseal_services,
                                                         monkeypatch):
    from trailseal.errors import ConfigurationError
    from trailseal.services.retention import apply_retention_all

    tenant = make_tenant(trailseal_services)
    _fill(trailseal_client, tenant, old=70, recent=1)
    assert trailseal_client.post("/api/v1/checkpoints", headers=tenant.headers).status_code == 201
    monkeypatch.setitem(trailseal_services.config, "MAINTENANCE_DATABASE_URL", None)
    assert apply_retention_all(trailseal_services) == {}
    with pytest.raises(ConfigurationError, match="MAINTENANCE_DATABASE_URL"):
        apply_retention(trailseal_services, tenant.id)
    assert apply_retention(trailseal_services, tenant.id, dry_run=True)["expiring"] == {
        "from_seq": 1, "to_seq": 64, "events": 64}
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM audit_logs")
        assert cur.fetchone()[0] == 71
