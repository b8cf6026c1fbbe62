"""Health and metrics endpoints."""


def test_healthz_reports_database_and_redis(trailseal_client):
    resp = trailseal_client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_metrics_exposes_queue_depths(trailseal_client, trailseal_services):
    body = trailseal_client.get("/metrics").get_data(as_text=True)
    for name in ("high", "default", "low"):
        line = next(x for x in body.splitlines() if x.startswith(f'trailseal_queue_jobs{{queue="{name}"}}'))
        assert int(line.rsplit(" ", 1)[1]) == trailseal_services.queues[name].count
