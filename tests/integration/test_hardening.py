"""Behaviour at the edges: alerts lifecycle, Redis outages, throttling, headers, admin CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import redis

from tests.conftest import make_event
from tests.integration.test_jobs import EnrichmentPlugin
from trailseal.services.tenancy import create_user


def test_detector_anomalies_raise_one_alert_each(trailseal_client, tenant, register_plugin, run_jobs):
    register_plugin(EnrichmentPlugin())
    trailseal_client.post("/api/v1/events/batch", headers=tenant.headers,
                          json={"events": [make_event(severity="critical"), make_event()]})
    run_jobs()
    alerts = trailseal_client.get("/api/v1/alerts", headers=tenant.headers).get_json()["alerts"]
    assert [(a["kind"], a["severity"]) for a in alerts] == [("anomaly", "critical")]
    assert alerts[0]["event_id"] and alerts[0]["details"]["anomaly_score"] == 1.0


def test_alert_status_changes(trailseal_client, tenant, owner):
    trailseal_client.post("/api/v1/events/batch", headers=tenant.headers,
                          json={"events": [make_event(), make_event()]})
    owner.execute("UPDATE audit_logs SET severity = 'low' WHERE tenant_id = %s AND seq = 1", (tenant.id,))
    trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers)
    alert = trailseal_client.get("/api/v1/alerts", headers=tenant.headers).get_json()["alerts"][0]
    resp = trailseal_client.patch(f"/api/v1/alerts/{alert['id']}", json={"status": "resolved"},
                                  headers=tenant.headers)
    assert resp.status_code == 200 and resp.get_json()["status"] == "resolved"
    assert resp.get_json()["status_changed_by"].startswith("api_key:")
    assert resp.get_json()["status_changed_at"]
    # resolving does not make the same break alert again
    trailseal_client.get("/api/v1/chain/verify", headers=tenant.headers)
    assert trailseal_client.get("/api/v1/alerts?status=open", headers=tenant.headers).get_json()["alerts"] == []
    bad = trailseal_client.patch(f"/api/v1/alerts/{alert['id']}", json={"status": "deleted"},
                                 headers=tenant.headers)
    assert bad.status_code == 422
    assert trailseal_client.get("/api/v1/alerts?bogus=1", headers=tenant.headers).status_code == 422


def test_alert_of_other_tenant_is_404(trailseal_client, trailseal_services, tenant):
    from trailseal.testing import make_tenant

    other = make_tenant(trailseal_services)
    from trailseal.services.alerts import record_alert

    alert = record_alert(trailseal_services, other.id, kind="test", severity="low", title="t", details={})
    resp = trailseal_client.patch(f"/api/v1/alerts/{alert.id}", json={"status": "resolved"},
                                  headers=tenant.headers)
    assert resp.status_code == 404


def test_redis_outage_keeps_the_ledger_serving(trailseal_app, trailseal_services, tenant):
    live = trailseal_services.redis
    old_limit = trailseal_services.config["RATE_LIMIT"]
    # a real connection to a port where nothing listens
    trailseal_services.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    trailseal_services.config["RATE_LIMIT"] = "100/60"
    try:
        client = trailseal_app.test_client()
        created = client.post("/api/v1/events", json=make_event(), headers=tenant.headers)
        assert created.status_code == 201
        stats = client.get("/api/v1/dashboard/stats", headers=tenant.headers)
        assert stats.status_code == 200 and stats.get_json()["cached"] is False
        assert client.get("/healthz").status_code == 503
        assert "trailseal_redis_up 0" in client.get("/metrics").get_data(as_text=True)
    finally:
        trailseal_services.redis = live
        trailseal_services.config["RATE_LIMIT"] = old_limit


def test_rate_limit_headers(trailseal_client, trailseal_services, tenant):
    old = trailseal_services.config["RATE_LIMIT"]
    trailseal_services.config["RATE_LIMIT"] = "50/60"
    try:
        resp = trailseal_client.get("/api/v1/alerts", headers=tenant.headers)
    finally:
        trailseal_services.config["RATE_LIMIT"] = old
    assert resp.headers["X-RateLimit-Limit"] == "50"
    assert int(resp.headers["X-RateLimit-Remaining"]) == 49


def test_login_is_throttled(trailseal_app, trailseal_services, tenant):
    email = f"throttle-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "viewer")
    client = trailseal_app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    left = 60 - time.time() % 60  # the budget counts in fixed 60 s windows: stay in one
    if left < 20:
        time.sleep(left + 0.2)
    codes = [client.post("/login", data={"email": email, "password": "nope nope nope",
                                         "csrf_token": token}).status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    blocked = client.post("/login", data={"email": email, "password": "correct horse battery",
                                          "csrf_token": token})
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 60


def test_405_names_allowed_methods(trailseal_client, tenant):
    resp = trailseal_client.delete("/api/v1/events", headers=tenant.headers)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    assert "append-only" in resp.get_json()["error"]["message"]
    other = trailseal_client.delete("/api/v1/alerts", headers=tenant.headers)
    assert other.status_code == 405 and "append-only" not in other.get_json()["error"]["message"]


def test_worker_without_redis_is_a_one_line_error(trailseal_services, tmp_path):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"],
               TRAILSEAL_REDIS_URL="redis://127.0.0.1:1/0")
    out = subprocess.run([sys.executable, "-m", "trailseal", "worker", "--burst"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("Error: cannot reach Redis") and "Traceback" not in out.stderr


def test_admin_cli_revokes_keys_and_deactivates_users(trailseal_app, trailseal_services, tenant):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    listed = cli("apikey", "list", "--tenant", tenant.slug)
    assert listed.returncode == 0 and "active" in listed.stdout
    assert tenant.token not in listed.stdout
    key_id = listed.stdout.split()[0]
    assert cli("apikey", "revoke", "--tenant", tenant.slug, key_id).returncode == 0
    client = trailseal_app.test_client()
    assert client.get("/api/v1/events", headers=tenant.headers).status_code == 401
    again = cli("apikey", "revoke", "--tenant", tenant.slug, key_id)
    assert again.returncode == 1 and "no active key" in again.stderr

    email = f"leaver-{tenant.slug}@example.com"
    create_user(trailseal_services, tenant.id, email, "correct horse battery", "viewer")
    assert cli("user", "deactivate", "--tenant", tenant.slug, "--email", email).returncode == 0
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    resp = client.post("/login", data={"email": email, "password": "correct horse battery",
                                       "csrf_token": token})
    assert resp.status_code == 401
