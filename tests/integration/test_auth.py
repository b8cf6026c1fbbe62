"""Authentication, permissions, rate limiting and web sessions."""

from __future__ import annotations

import re

import pytest

from tests.conftest import make_event
from trailseal.services.tenancy import create_api_key, create_user
from trailseal.testing import make_tenant

READS = ["/api/v1/events", "/api/v1/timeline", "/api/v1/dashboard/stats", "/api/v1/chain/verify",
         "/api/v1/alerts"]


@pytest.mark.parametrize("path", READS + ["/api/v1/access-log"])
def test_reads_need_credentials(trailseal_client, path):
    resp = trailseal_client.get(path)
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer", "Basic abc", "Bearer tsk_nope_nope", "Bearer  "])
def test_bad_credentials_are_401(trailseal_client, header):
    resp = trailseal_client.get("/api/v1/events", headers={"Authorization": header})
    assert resp.status_code == 401


def test_write_only_key_cannot_read_and_read_only_cannot_write(trailseal_client, trailseal_services):
    writer = make_tenant(trailseal_services, ("audit:write",))
    reader_key = create_api_key(trailseal_services, writer.id, ["audit:read"])
    reader = {"Authorization": f"Bearer {reader_key['token']}"}
    assert trailseal_client.post("/api/v1/events", json=make_event(), headers=writer.headers).status_code == 201
    for path in READS:
        resp = trailseal_client.get(path, headers=writer.headers)
        assert resp.status_code == 403, path
        assert resp.get_json()["error"]["details"]["required"] == "audit:read"
    assert trailseal_client.post("/api/v1/events", json=make_event(), headers=reader).status_code == 403
    assert trailseal_client.get("/api/v1/access-log", headers=reader).status_code == 403
    assert trailseal_client.get("/api/v1/events", headers=reader).status_code == 200


def test_revoked_key_is_rejected(trailseal_client, trailseal_services, tenant):
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("UPDATE api_keys SET revoked_at = now()")
    assert trailseal_client.get("/api/v1/events", headers=tenant.headers).status_code == 401


def test_api_keys_are_stored_hashed(trailseal_services, tenant):
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT key_hash, prefix FROM api_keys")
        key_hash, prefix = cur.fetchone()
    assert tenant.token.encode() not in bytes(key_hash) and len(bytes(key_hash)) == 32
    assert tenant.token.startswith(f"tsk_{prefix}_")


def test_rate_limit_answers_429_with_retry_after(trailseal_client, trailseal_services, tenant):
    old = trailseal_services.config["RATE_LIMIT"]
    trailseal_services.config["RATE_LIMIT"] = "5/60"
    try:
        codes = [trailseal_client.get("/api/v1/alerts", headers=tenant.headers) for _ in range(7)]
    finally:
        trailseal_services.config["RATE_LIMIT"] = old
    assert [r.status_code for r in codes[:5]] == [200] * 5
    limited = codes[5]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.get_json()["error"]["code"] == "rate_limited"


def test_web_login_session_reads_api(trailseal_app, trailseal_services, tenant):
    email = f"{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "viewer")
    client = trailseal_app.test_client()
    assert client.get("/").status_code == 302
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    bad = client.post("/login", data={"email": email, "password": "wrong password!", "csrf_token": token})
    assert bad.status_code == 401 and "incorrect" in bad.get_data(as_text=True)
    ok = client.post("/login", data={"email": email, "password": "correct horse battery",
                                     "csrf_token": token})
    assert ok.status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/events").status_code == 200
    # a session never authorises writes (no CSRF exposure for the API)
    assert client.post("/api/v1/events", json=make_event()).status_code == 401


def test_session_requests_from_another_site_are_refused(trailseal_app, trailseal_services,
                                                        tenant):
    email = f"x-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "analyst")
    client = trailseal_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"email": email, "password": "correct horse battery",
                                       "csrf_token": token}).status_code == 302
    here = "http://localhost"
    cases = [  # (headers, expected status of a session export)
        ({"Origin": here}, 200), ({"Referer": here + "/dash/timeline"}, 200), ({}, 200),
        ({"Origin": "https://evil.example"}, 403), ({"Origin": "null"}, 403),
        ({"Origin": here + ".evil.example"}, 403), ({"Origin": "http://localhost:8080"}, 403),
        ({"Referer": "https://evil.example/localhost"}, 403),
    ]
    route = {"output": "page.children", "outputs": {"id": "page", "property": "children"},
             "inputs": [{"id": "url", "property": "pathname", "value": "/dash/overview"},
                        {"id": "url", "property": "search", "value": ""}],
             "changedPropIds": ["url.pathname"], "state": []}
    for headers, status in cases:
        resp = client.post("/api/v1/export/csv", json={}, headers=headers)
        body = resp.get_data(as_text=True)
        assert resp.status_code == status, (headers, body[:200])
        if status == 403:
            assert "cross-site" in resp.get_json()["error"]["message"]
        dash = client.post("/dash/_dash-update-component", json=route, headers=headers)
        assert dash.status_code == status, headers
    # reads are not affected, whatever their origin
    assert client.get("/api/v1/events", headers={"Origin": "https://evil.example"}
                      ).status_code == 200


def test_login_rejects_missing_csrf(trailseal_app, trailseal_services, tenant):
    email = f"csrf-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "viewer")
    client = trailseal_app.test_client()
    resp = client.post("/login", data={"email": email, "password": "correct horse battery"})
    assert resp.status_code == 401
    assert client.get("/").status_code == 302
