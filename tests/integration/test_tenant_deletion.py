"""Tenant deletion: request → a second admin's confirmation → archive → marked (no sign-in,
no API key, no ingest, no job) → purge after the retention period through the maintenance
role, with the tenant's data keys destroyed; every step recorded; the database enforces
the order, the second admin and the purge's time."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.conftest import ingest, make_event, owner_connection, ts
from trailseal.db import maintenance_connection
from trailseal.services.archives import open_archive
from trailseal.services.tenancy import create_api_key, create_user, tenant_ids
from trailseal.services.tenant_deletion import (
    DeletionNotDue,
    process_deletion,
    purge_tenant,
    restore_tenant,
)
from trailseal.testing import make_tenant
from trailseal_verify.bundle import check_bundle
from trailseal_verify.note import parse_verifier_key

KEPT = {"tenants", "tenant_deletions", "tenant_deletion_steps"}


def _second_admin(services, tenant) -> dict:
    key = create_api_key(services, tenant.id, ["audit:admin"])
    return {"Authorization": f"Bearer {key['token']}"}


def _request(client, tenant, reason="contract ended") -> dict:
    resp = client.post("/api/v1/tenant/deletion", json={"reason": reason},
                       headers=tenant.headers)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _confirm(client, headers, deletion_id):
    return client.post("/api/v1/tenant/deletion/confirm", json={"deletion_id": deletion_id},
                       headers=headers)


def _tenant_tables(services) -> list[str]:
    with owner_connection(services) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _rows_of(services, tenant_id) -> dict[str, int]:
    out = {}
    with owner_connection(services) as conn:
        for table in _tenant_tables(services):
            n = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s",
                             (tenant_id,)).fetchone()[0]
            if n:
                out[table] = n
    return out


def _make_due(services, tenant_id) -> None:
    """Time passes: the purge's earliest time is moved into the past (as the owner, with
    triggers off: the app role cannot do this)."""
    with owner_connection(services) as conn:
        conn.execute("UPDATE tenant_deletions SET purge_after = now() - interval '1 second' "
                     "WHERE tenant_id = %s AND marked_at IS NOT NULL", (tenant_id,))


def _login(app, email, password):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token})
    return client, resp


def test_the_whole_lifecycle(trailseal_app, trailseal_client, trailseal_services, run_jobs,
                             smtp_receiver, http_receiver, monkeypatch):
    client, svc = trailseal_client, trailseal_services
    for key, value in smtp_receiver.config().items():  # scheduled reports need mail
        monkeypatch.setitem(svc.config, key, value)
    tenant = make_tenant(svc)
    other = make_tenant(svc)
    ids = ingest(client, tenant, [make_event(occurred_at=ts(3)) for _ in range(70)])["ids"]
    ingest(client, tenant, [make_event(actor={"id": "alice@example.com", "type": "user"},
                                       entity={"type": "user", "id": "bob@example.com"})])
    other_ids = ingest(client, other, [make_event() for _ in range(5)])["ids"]
    with svc.db.cursor(tenant.id) as cur:  # derived rows the purge must take too
        cur.execute("INSERT INTO audit_search_text (tenant_id, event_id, tsv) VALUES "
                    "(%s, %s, to_tsvector('x'))", (tenant.id, ids[0]))
    email = f"{tenant.slug}@example.com"
    create_user(svc, tenant.id, email, "correct horse battery", "admin")
    browser, signed_in = _login(trailseal_app, email, "correct horse battery")
    assert signed_in.status_code == 302
    assert browser.get("/api/v1/tenant/deletion").get_json() == {"deletion": None}
    second = _second_admin(svc, tenant)
    schedule = client.post("/api/v1/reports/schedules", headers=tenant.headers, json={
        "name": "Yearly", "cron": "0 0 1 1 *", "timezone": "UTC", "format": "csv",
        "recipients": ["ciso@example.com"]})
    assert schedule.status_code == 201, schedule.get_json()

    def due_reports() -> int:
        with svc.db.cursor() as cur:
            cur.execute("SELECT count(*) FROM trailseal_due_report_schedules("
                        "now() + interval '2 years', 100000) WHERE tenant_id = %s",
                        (tenant.id,))
            return cur.fetchone()[0]

    assert due_reports() == 1
    hook = client.post("/api/v1/integrations", headers=tenant.headers, json={
        "type": "webhook", "name": "security team", "min_severity": "high",
        "config": {"url": http_receiver.url + "/hook", "secret": "s" * 32}})
    assert hook.status_code == 201, hook.get_json()

    # Request: recorded, and an event of the trail itself.
    asked = _request(client, tenant)
    assert asked["state"] == "requested" and asked["confirm_by"]
    again = client.post("/api/v1/tenant/deletion", json={"reason": "twice"},
                        headers=second)
    assert again.status_code == 409
    # The requester cannot confirm; a non-admin cannot either; a bad id is a 404.
    own = _confirm(client, tenant.headers, asked["id"])
    assert own.status_code == 403 and "second admin" in own.get_json()["error"]["message"]
    reader = create_api_key(svc, tenant.id, ["audit:read", "audit:write"])
    assert _confirm(client, {"Authorization": f"Bearer {reader['token']}"},
                    asked["id"]).status_code == 403
    assert _confirm(client, second, str(uuid.uuid4())).status_code == 404
    assert _confirm(client, second, "not-a-uuid").status_code == 404
    # Another tenant's admin does not see it.
    assert _confirm(client, other.headers, asked["id"]).status_code == 404

    # Confirmation by the second admin closes the chain at once.
    done = _confirm(client, second, asked["id"])
    assert done.status_code == 200, done.get_json()
    confirmed = done.get_json()
    assert confirmed["state"] == "confirmed" and confirmed["confirmed_by"] != asked["requested_by"]
    late = client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "tenant_closed"
    batch = client.post("/api/v1/events/batch", json={"events": [make_event()]},
                        headers=tenant.headers)
    assert batch.status_code == 409
    assert _confirm(client, second, asked["id"]).status_code == 409  # not twice
    # The tenant's alerts (and so its notification channels) heard of both steps.
    alerts = [a for a in client.get("/api/v1/alerts", headers=tenant.headers)
              .get_json()["alerts"] if a["kind"] == "tenant_deletion"]
    assert sorted((a["severity"], a["details"]["step"]) for a in alerts) == [
        ("critical", "confirmed"), ("high", "requested")]

    # The job archives the closed chain and marks the tenant; the channel is told first.
    run_jobs()
    told = [json.loads(r.body) for r in http_receiver.requests]
    assert sorted(m["alert"]["kind"] + ":" + m["alert"]["severity"] for m in told) == [
        "tenant_deletion:critical", "tenant_deletion:high"], told
    status = browser.get("/api/v1/tenant/deletion")
    assert status.status_code == 401  # the session no longer signs anyone in
    assert client.get("/api/v1/events", headers=tenant.headers).status_code == 401
    assert client.get("/api/v1/events", headers=second).status_code == 401
    assert _login(trailseal_app, email, "correct horse battery")[1].status_code == 401
    assert tenant.id not in tenant_ids(svc) and other.id in tenant_ids(svc)
    assert due_reports() == 0  # no report is mailed for it either
    from trailseal.services.tenant_deletion import deletion_status

    marked = deletion_status(svc, tenant.id)
    assert marked["state"] == "marked" and marked["retention_days"] == 2557
    assert [s["step"] for s in marked["steps"]] == ["requested", "confirmed", "archived",
                                                   "marked"]
    # The archive holds the whole trail, ending with the request and the confirmation,
    # and verifies on its own against the recorded checkpoint key.
    (archive,) = marked["archives"]
    assert (archive["from_seq"], archive["to_seq"]) == (1, 73) == (1, marked["head_seq"])
    out = io.BytesIO()
    open_archive(svc.keyring, archive["path"], out)
    bundle = json.loads(out.getvalue())
    report = check_bundle(bundle, parse_verifier_key(marked["public_key"]))
    assert (report.first_seq, report.last_seq) == (1, 73)
    types = [e["columns"]["event_type"] for e in bundle["events"]]
    assert types[-2:] == ["tenant.deletion_requested", "tenant.deletion_confirmed"]
    assert [e["columns"]["id"] for e in bundle["events"][:70]] == ids

    # Not due yet: the database refuses, whatever the caller says.
    with pytest.raises(DeletionNotDue):
        purge_tenant(svc, tenant.id, marked["id"])
    assert process_deletion(svc, tenant.id, marked["id"])["done"] == []

    # Due: the purge removes every row of the tenant, its keys with them.
    _make_due(svc, tenant.id)
    before = _rows_of(svc, tenant.id)
    assert before["tenant_keys"] >= 1 and before["subject_keys"] >= 1
    assert before["audit_logs"] == 73 and before["audit_access_log"] > 0
    svc.redis.set(f"trailseal:search:{tenant.id}:cached", b"x")  # a cached value of it
    svc.redis.set(f"trailseal:search:{other.id}:cached", b"x")
    result = process_deletion(svc, tenant.id, marked["id"])
    assert result["done"] == ["purged"]
    assert svc.redis.get(f"trailseal:search:{tenant.id}:cached") is None
    assert svc.redis.get(f"trailseal:search:{other.id}:cached") == b"x"
    purged = result["deletion"]
    assert purged["state"] == "purged"
    assert purged["purge_result"]["events_removed"] == 73
    assert purged["purge_result"]["data_keys_destroyed"] == before["tenant_keys"]
    assert purged["purge_result"]["subject_keys_destroyed"] == before["subject_keys"]
    assert set(_rows_of(svc, tenant.id)) == {"tenant_deletions", "tenant_deletion_steps"}
    # The other tenant is untouched.
    assert _rows_of(svc, other.id)["audit_logs"] == 5
    assert client.get(f"/api/v1/events/{other_ids[0]}", headers=other.headers).status_code == 200
    assert client.get("/api/v1/chain/verify", headers=other.headers).get_json()["intact"]
    # The archive still opens and verifies: its own key is the instance's. The events'
    # sensitive fields in it can no longer be decrypted: no key of the tenant is left.
    report = check_bundle(bundle, parse_verifier_key(purged["public_key"]))
    assert report.events == 73
    from trailseal.errors import TrailsealError

    with svc.db.cursor(tenant.id) as cur, pytest.raises(TrailsealError, match="missing"):
        svc.keyring.key(cur, tenant.id, bundle["events"][0]["columns"]["key_id"].split(":")[0])
    final = deletion_status(svc, tenant.id)
    assert [s["step"] for s in final["steps"]] == ["requested", "confirmed", "archived",
                                                  "marked", "purged"]
    assert process_deletion(svc, tenant.id, marked["id"])["done"] == []  # idempotent


def test_cancel_and_expiry(trailseal_client, trailseal_services):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    second = _second_admin(svc, tenant)
    asked = _request(client, tenant)
    bad = client.post("/api/v1/tenant/deletion/cancel",
                      json={"deletion_id": asked["id"], "reason": ""}, headers=tenant.headers)
    assert bad.status_code == 422
    cancelled = client.post("/api/v1/tenant/deletion/cancel",
                            json={"deletion_id": asked["id"], "reason": "changed our mind"},
                            headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    assert _confirm(client, second, asked["id"]).status_code == 409
    # The trail records it; a new request may follow.
    events = client.get("/api/v1/events?event_type=tenant.deletion_cancelled",
                        headers=tenant.headers).get_json()["events"]
    assert len(events) == 1
    asked = _request(client, tenant, "again")
    # Unconfirmed past the window: expired, not confirmable, recorded.
    with owner_connection(svc) as conn:  # three days pass (the cancelled one is older)
        conn.execute("UPDATE tenant_deletions SET requested_at = requested_at - interval "
                     "'73 hours' WHERE tenant_id = %s", (tenant.id,))
    late = _confirm(client, second, asked["id"])
    assert late.status_code == 409 and late.get_json()["error"]["details"] == {
        "state": "cancelled"}
    shown = client.get("/api/v1/tenant/deletion", headers=tenant.headers).get_json()["deletion"]
    assert shown["cancelled_by"] == "system:expired"
    assert [s["step"] for s in shown["steps"]] == ["requested", "expired"]
    # The tenant still works.
    assert client.post("/api/v1/events", json=make_event(),
                       headers=tenant.headers).status_code == 201


def test_restore_before_the_purge(trailseal_client, trailseal_services, run_jobs):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    ingest(client, tenant, [make_event() for _ in range(3)])
    asked = _request(client, tenant)
    assert _confirm(client, _second_admin(svc, tenant), asked["id"]).status_code == 200
    run_jobs()
    assert client.get("/api/v1/events", headers=tenant.headers).status_code == 401
    restored = restore_tenant(svc, tenant.id, "asked by mistake", actor="system:test")
    assert restored["state"] == "restored" and restored["restore_reason"] == "asked by mistake"
    assert client.post("/api/v1/events", json=make_event(),
                       headers=tenant.headers).status_code == 201
    assert client.get("/api/v1/chain/verify", headers=tenant.headers).get_json()["intact"]
    assert tenant.id in tenant_ids(svc)
    from trailseal.errors import Conflict

    with pytest.raises(Conflict):  # nothing left to restore
        restore_tenant(svc, tenant.id, "again", actor="system:test")
    # A new request can follow a restore.
    assert _request(client, tenant)["state"] == "requested"


def test_a_legal_hold_stops_the_purge(trailseal_client, trailseal_services, run_jobs):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    ingest(client, tenant, [make_event() for _ in range(2)])
    held = client.post("/api/v1/legal-holds", json={"scope": "entity", "entity_type": "invoice",
                                                    "entity_id": "INV-1", "reason": "case 7"},
                       headers=tenant.headers)
    assert held.status_code == 201
    asked = _request(client, tenant)
    assert _confirm(client, _second_admin(svc, tenant), asked["id"]).status_code == 200
    run_jobs()
    _make_due(svc, tenant.id)
    with pytest.raises(DeletionNotDue, match="legal hold"):
        process_deletion(svc, tenant.id, asked["id"])
    assert _rows_of(svc, tenant.id)["audit_logs"] == 4


def test_the_database_enforces_the_rules(trailseal_client, trailseal_services, run_jobs):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    ingest(client, tenant, [make_event()])
    asked = _request(client, tenant)
    requester = asked["requested_by"]
    # The app role cannot confirm with the requester's name, nor mark before the archive.
    with pytest.raises(psycopg.errors.CheckViolation):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("UPDATE tenant_deletions SET confirmed_by = %s, confirmed_at = now() "
                        "WHERE id = %s", (requester, asked["id"]))
    with pytest.raises(psycopg.errors.CheckViolation):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("UPDATE tenant_deletions SET confirmed_by = 'x', confirmed_at = now(), "
                        "marked_at = now() WHERE id = %s", (asked["id"],))
    # ... nor write the purge's time, nor remove a record of a step.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("UPDATE tenant_deletions SET purge_after = now() WHERE id = %s",
                        (asked["id"],))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("DELETE FROM tenant_deletion_steps")
    # ... nor call the purge.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("SELECT trailseal_tenant_purge(%s, %s, 'x')", (tenant.id, asked["id"]))
    assert _confirm(client, _second_admin(svc, tenant), asked["id"]).status_code == 200
    # A closed chain: the head cannot move, nor be reopened by the app role.
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("UPDATE chain_heads SET last_seq = last_seq + 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("SELECT set_config('trailseal.tenant_restore', %s, true)",
                        (str(tenant.id),))
            cur.execute("UPDATE chain_heads SET closed_at = NULL")
    run_jobs()
    # A recorded step never changes, even the mark's time.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with svc.db.cursor(tenant.id) as cur:
            cur.execute("UPDATE tenant_deletions SET marked_at = now() - interval '9 years' "
                        "WHERE id = %s", (asked["id"],))
    # The maintenance role itself cannot purge before the time the database set.
    with pytest.raises(psycopg.errors.CheckViolation, match="not due"):
        with maintenance_connection(svc.config["MAINTENANCE_DATABASE_URL"]) as conn:
            conn.execute("SELECT trailseal_tenant_purge(%s, %s, 'x')", (tenant.id, asked["id"]))


@pytest.mark.slow
def test_operator_commands(trailseal_client, trailseal_services):
    client, svc = trailseal_client, trailseal_services
    tenant = make_tenant(svc)
    ingest(client, tenant, [make_event() for _ in range(4)])
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=svc.config["INSTANCE_PATH"])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trailseal", "tenant-deletion", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    assert "no deletion requested" in cli("status", "--tenant", tenant.slug).stdout
    asked = _request(client, tenant)
    assert _confirm(client, _second_admin(svc, tenant), asked["id"]).status_code == 200
    ran = cli("run", "--tenant", tenant.slug)
    assert ran.returncode == 0, ran.stderr
    assert "archived, marked; now marked" in ran.stdout and "purge due from" in ran.stdout
    shown = cli("status", "--tenant", tenant.slug, "--json")
    assert json.loads(shown.stdout)["deletion"]["state"] == "marked"
    _make_due(svc, tenant.id)
    purged = cli("run", "--tenant", tenant.slug)
    assert purged.returncode == 0, purged.stderr
    assert "purged; now purged" in purged.stdout and "removed 6 events" in purged.stdout
    failed = cli("restore", "--tenant", tenant.slug, "--reason", "too late")
    assert failed.returncode == 1 and "no confirmed, unpurged deletion" in failed.stderr
