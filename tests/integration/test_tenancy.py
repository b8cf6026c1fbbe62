"""Tenant isolation: API answers 404 across tenants; RLS holds at the SQL level too."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import make_event
from trailseal.db import Database
from trailseal.errors import ConfigurationError
from trailseal.testing import make_tenant


def test_other_tenants_event_is_404(trailseal_client, trailseal_services, tenant):
    other = make_tenant(trailseal_services)
    created = trailseal_client.post("/api/v1/events", json=make_event(), headers=other.headers).get_json()
    resp = trailseal_client.get(f"/api/v1/events/{created['id']}", headers=tenant.headers)
    assert resp.status_code == 404
    assert "INV-1" not in resp.get_data(as_text=True)
    listing = trailseal_client.get("/api/v1/events", headers=tenant.headers).get_json()
    assert listing["events"] == []


def test_rls_hides_rows_without_tenant_context(trailseal_services, tenant, trailseal_client):
    trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    with trailseal_services.db.cursor() as cur:
        for table in ("audit_logs", "tenants", "users", "api_keys", "tenant_keys", "chain_heads",
                      "audit_access_log", "event_insights", "audit_anomalies", "idempotency_keys"):
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == 0, table
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*), count(DISTINCT tenant_id) FROM audit_logs")
        assert cur.fetchone() == (1, 1)


def test_rls_rejects_writes_into_another_tenant(trailseal_services, tenant):
    other = make_tenant(trailseal_services)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with trailseal_services.db.cursor(tenant.id) as cur:
            cur.execute(
                "INSERT INTO audit_anomalies (id, tenant_id, kind, severity, title) "
                "VALUES (gen_random_uuid(), %s, 'x', 'low', 'x')", (other.id,))


def test_every_tenant_table_forces_rls(trailseal_services):
    with psycopg.connect(trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")) as conn:
        rows = conn.execute(
            """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
                 FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE a.attname = 'tenant_id' AND c.relkind = 'r'
                  AND c.relnamespace = 'public'::regnamespace"""
        ).fetchall()
    assert rows, "no tenant-owned tables found"
    assert [r[0] for r in rows if not (r[1] and r[2])] == []


def test_app_role_is_not_privileged(trailseal_services):
    with trailseal_services.db.cursor() as cur:
        cur.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, False)


def test_app_refuses_to_run_as_the_owner(trailseal_services):
    owner = Database(trailseal_services.config["ADMIN_DATABASE_URL"], pool_size=1)
    try:
        with pytest.raises(ConfigurationError, match="superuser"):
            owner.check_role()
    finally:
        owner.dispose()
