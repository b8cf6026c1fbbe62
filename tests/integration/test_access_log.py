"""Property 20 (access logging), example-based: every read of trail data is recorded."""

from __future__ import annotations

from tests.conftest import make_event


def _entries(services, tenant):
    with services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT principal_type, principal_id, endpoint, method, query FROM audit_access_log ORDER BY id")
        return cur.fetchall()


def test_each_read_endpoint_is_logged(trailseal_client, trailseal_services, tenant):
    created = trailseal_client.post("/api/v1/events", json=make_event(), headers=tenant.headers).get_json()
    assert _entries(trailseal_services, tenant) == []  # writes are not reads
    paths = ["/api/v1/events?event_type=a.b&event_type=c.d&limit=5", f"/api/v1/events/{created['id']}",
             "/api/v1/timeline", "/api/v1/dashboard/stats", "/api/v1/chain/verify", "/api/v1/alerts"]
    for path in paths:
        assert trailseal_client.get(path, headers=tenant.headers).status_code == 200
    entries = _entries(trailseal_services, tenant)
    assert [e[2] for e in entries] == [p.split("?")[0] for p in paths]
    assert all(e[0] == "api_key" and e[3] == "GET" for e in entries)
    assert entries[0][4] == {"event_type": ["a.b", "c.d"], "limit": "5"}


def test_denied_and_failed_reads_are_not_logged_as_reads(trailseal_client, trailseal_services, tenant):
    trailseal_client.get("/api/v1/events?severity=nope", headers=tenant.headers)
    assert _entries(trailseal_services, tenant) == []


def test_not_found_reads_are_logged(trailseal_client, trailseal_services, tenant):
    resp = trailseal_client.get("/api/v1/events/7f0e5e9e-3b0a-4e0c-9a43-000000000000", headers=tenant.headers)
    assert resp.status_code == 404
    entries = _entries(trailseal_services, tenant)
    assert [e[2] for e in entries] == ["/api/v1/events/7f0e5e9e-3b0a-4e0c-9a43-000000000000"]


def test_access_log_endpoint_shows_and_logs_itself(trailseal_client, tenant):
    trailseal_client.get("/api/v1/events", headers=tenant.headers)
    body = trailseal_client.get("/api/v1/access-log", headers=tenant.headers).get_json()
    assert [e["endpoint"] for e in body["entries"]] == ["/api/v1/access-log", "/api/v1/events"]
