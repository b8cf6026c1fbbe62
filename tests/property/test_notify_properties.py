"""Every flagged anomaly reaches every matching channel (hypothesis, 100 examples): events
flagged by a detector go through the real pipeline (ingest, enrichment job, alert,
delivery jobs) to integrations of every first-party HTTP kind with random minimum
severities; each integration receives exactly the anomalies at or above its
``min_severity``, each once, and nothing else. Receivers: one real HTTP server on
127.0.0.1, one path per integration."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_event
from trailseal import hookimpl
from trailseal.testing import make_tenant
from trailseal.types import ALERT_SEVERITIES, Finding

KINDS = ("slack", "teams", "zapier", "webhook")
SEVERITIES = ("low", "medium", "high", "critical")


class FlagDetector:
    """Flags the events whose details say ``flag`` with the severity they name."""

    name = "notify-property"

    def score(self, events):
        for e in events:
            wanted = (e.action_details or {}).get("flag")
            if wanted:
                yield Finding(e.id, 0.99, True, {"summary": "flagged by the test"},
                              severity=wanted)


class FlagPlugin:
    @hookimpl
    def register_detectors(self, tenant_id):
        return [FlagDetector()]


def _alert_id(kind, request):
    """The alert a structured request is about (zapier, webhook)."""
    body = request.json()
    return body["alert_id"] if kind == "zapier" else body["alert"]["id"]


integrations = st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(ALERT_SEVERITIES)),
                        min_size=1, max_size=3)
events = st.lists(st.sampled_from((None, *SEVERITIES)), min_size=1, max_size=4)


@pytest.mark.slow  # about a minute: 100 runs of the whole pipeline
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(channels=integrations, flags=events)
def test_every_flagged_anomaly_reaches_every_matching_channel(
        trailseal_app, trailseal_services, run_jobs, register_plugin, http_receiver,
        channels, flags):
    if not trailseal_services.pm.has_plugin("notify-property"):
        register_plugin(FlagPlugin(), name="notify-property")
    tenant = make_tenant(trailseal_services)
    client = trailseal_app.test_client()
    paths = {}
    for i, (kind, minimum) in enumerate(channels):
        path = f"/{uuid.uuid4().hex}"
        config = ({"url": http_receiver.url + path, "secret": "s" * 32} if kind == "webhook"
                  else {"webhook_url": http_receiver.url + path})
        resp = client.post("/api/v1/integrations", headers=tenant.headers, json={
            "type": kind, "name": f"c{i}", "min_severity": minimum, "config": config})
        assert resp.status_code == 201, resp.get_json()
        paths[path] = (kind, minimum)
    body = [make_event(action_details={"flag": f} if f else {"n": n})
            for n, f in enumerate(flags)]
    resp = client.post("/api/v1/events/batch", json={"events": body}, headers=tenant.headers)
    assert resp.status_code == 201
    run_jobs()  # enrichment raises the alerts, then their deliveries run
    run_jobs()
    alerts = client.get("/api/v1/alerts?limit=500", headers=tenant.headers).get_json()["alerts"]
    anomalies = [a for a in alerts if a["kind"] == "anomaly"]
    flagged_events = {eid for eid, f in zip(resp.get_json()["ids"], flags, strict=True) if f}
    assert flagged_events <= {a["event_id"] for a in anomalies}
    for path, (kind, minimum) in paths.items():
        got = [r for r in http_receiver.requests if r.path == path]
        expected = {a["id"] for a in alerts
                    if ALERT_SEVERITIES.index(a["severity"]) >= ALERT_SEVERITIES.index(minimum)}
        if kind in ("zapier", "webhook"):
            ids = [_alert_id(kind, r) for r in got]
            assert sorted(ids) == sorted(expected), (kind, minimum)
        else:  # chat cards: one per alert, naming it
            assert len(got) == len(expected), (kind, minimum)
            for alert_id in expected:
                assert sum(alert_id in r.body.decode() for r in got) == 1, (kind, alert_id)
