"""Property 16 (append-only): no role can update, delete or truncate the ledger."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import make_event


@pytest.mark.parametrize("statement", [
    "UPDATE audit_logs SET severity = 'info'",
    "DELETE FROM audit_logs",
    "TRUNCATE audit_logs CASCADE",
    "UPDATE audit_access_log SET endpoint = 'x'",
    "DELETE FROM audit_access_log",
])
def test_app_role_cannot_change_history(trailseal_services, trailseal_client, tenant, statement):
    trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    trailseal_client.get("/api/v1/events", headers=tenant.headers)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        with trailseal_services.db.cursor(tenant.id) as cur:
            cur.execute(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE audit_logs SET severity = 'info' WHERE tenant_id = %s",
    "DELETE FROM audit_logs WHERE tenant_id = %s",
    "UPDATE audit_access_log SET endpoint = 'x' WHERE tenant_id = %s",
])
def test_trigger_stops_even_the_owner(trailseal_services, trailseal_client, tenant, statement):
    trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
    trailseal_client.get("/api/v1/events", headers=tenant.headers)
    dsn = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement, (tenant.id,))


def test_owner_truncate_is_rejected(trailseal_services):
    dsn = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(dsn) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("TRUNCATE audit_logs CASCADE")


def test_app_role_privileges_on_ledger(trailseal_services):
    with trailseal_services.db.cursor() as cur:
        cur.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = 'trailseal_app' AND table_name = 'audit_logs' ORDER BY 1"
        )
        assert [r[0] for r in cur.fetchall()] == ["INSERT", "SELECT"]
