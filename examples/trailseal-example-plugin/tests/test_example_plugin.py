"""The example plugin's own tests, written with the fixtures Trailseal ships for plugin
authors (``trailseal.testing``: real PostgreSQL and Redis, nothing mocked)."""

from __future__ import annotations

import os
import subprocess
import sys

import trailseal_example_plugin as plugin

EVENT = {"event_type": "invoice.deleted", "occurred_at": "2026-11-20T03:12:00Z",
         "actor": {"id": "u-7", "type": "user"}, "entity": {"type": "invoice", "id": "INV-9"},
         "severity": "medium"}


def test_the_plugin_is_loaded_from_its_entry_point(trailseal_services):
    assert trailseal_services.pm.get_plugin("example") is plugin


def test_an_after_hours_deletion_raises_an_alert(trailseal_client, trailseal_tenant,
                                                 trailseal_run_jobs):
    day = dict(EVENT, occurred_at="2026-11-20T10:00:00Z")
    resp = trailseal_client.post("/api/v1/events/batch", json={"events": [EVENT, day]},
                                 headers=trailseal_tenant.headers)
    assert resp.status_code == 201
    trailseal_run_jobs()
    alerts = trailseal_client.get("/api/v1/alerts", headers=trailseal_tenant.headers)
    found = [a for a in alerts.get_json()["alerts"] if a["kind"] == "anomaly"]
    assert len(found) == 1
    assert found[0]["details"]["detectors"]["after-hours-deletions"]["explanation"] == {
        "hour_utc": 3}


def test_the_route_is_guarded_and_knows_the_tenant(trailseal_client, trailseal_tenant):
    assert trailseal_client.get("/example/ping").status_code == 401
    resp = trailseal_client.get("/example/ping", headers=trailseal_tenant.headers)
    assert resp.status_code == 200
    assert resp.get_json()["tenant_id"] == str(trailseal_tenant.id)
    assert trailseal_client.get("/example/ping?x=1",
                                headers=trailseal_tenant.headers).status_code == 422


def test_the_route_raises_alerts_through_the_public_api(trailseal_client, trailseal_tenant):
    made = trailseal_client.post("/example/alerts", json={"severity": "high"},
                                 headers=trailseal_tenant.headers)
    assert made.status_code == 201
    alerts = trailseal_client.get("/api/v1/alerts?status=open",
                                  headers=trailseal_tenant.headers).get_json()["alerts"]
    assert [a["id"] for a in alerts if a["kind"] == "example.manual"] == [made.get_json()["id"]]


def test_the_command(trailseal_services):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    result = subprocess.run([sys.executable, "-m", "trailseal", "example-hello"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from the example plugin"


def test_the_job_is_registered_and_runs(trailseal_app, trailseal_services):
    from trailseal.jobs.runtime import collect_jobs

    spec = next(s for s in collect_jobs(trailseal_services.pm) if s.name == "example-heartbeat")
    assert spec.cron == "5 * * * *"
    with trailseal_app.app_context():
        stamp = spec.func()
    assert trailseal_services.redis.get("example-plugin:heartbeat").decode() == stamp
