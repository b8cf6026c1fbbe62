"""Job runtime: ingest enqueues enrichment; a real RQ worker (burst mode) runs it with
whatever plugins are installed; the reconciler recovers lost queue messages."""

from __future__ import annotations

import pytest

from tests.conftest import ingest, make_event
from trailseal import hookimpl
from trailseal.jobs.enrichment import find_unenriched, reconcile_enrichment
from trailseal.jobs.runtime import build_scheduler, collect_jobs
from trailseal.types import Classification, Finding


class KeywordClassifier:
    name = "keyword"

    def classify(self, events):
        return [Classification(e.id, category="financial" if e.entity_type == "invoice"
                               else "data_modification",
                               risk_level="high" if e.severity in ("high", "critical") else "low",
                               confidence=0.9, tags=("classified",), model_version="kw-1")
                for e in events]


class SeverityDetector:
    name = "severity"

    def score(self, events):
        return [Finding(e.id, score=1.0 if e.severity == "critical" else 0.1,
                        is_anomaly=e.severity == "critical", explanation={"severity": e.severity},
                        model_version="sev-1") for e in events]


class EnrichmentPlugin:
    @hookimpl
    def register_classifiers(self):
        return [KeywordClassifier()]

    @hookimpl
    def register_detectors(self):
        return [SeverityDetector()]

    @hookimpl
    def embed_texts(self, texts, model):
        return {"model": "len-3", "vectors": [[float(len(t)), 1.0, 0.0] for t in texts]}


@pytest.fixture
def without_classify(trailseal_services):
    """The shipped classifier set aside, so the test's own decides the category (with two
    classifiers, the last applied wins)."""
    pm = trailseal_services.pm
    plugin = pm.unregister(name="classify")
    yield
    if plugin is not None:
        pm.register(plugin, name="classify")


def test_ingest_enqueues_enrichment_run_by_worker(trailseal_client, trailseal_services, tenant,
                                                  register_plugin, run_jobs, without_classify):
    register_plugin(EnrichmentPlugin())
    ingest(trailseal_client, tenant, [make_event(severity="critical"),
                                      make_event(entity={"type": "user", "id": "u"}, severity="low")])
    assert trailseal_services.queues["default"].count >= 1
    run_jobs()
    events = trailseal_client.get("/api/v1/timeline", headers=tenant.headers).get_json()["events"]
    first, second = events
    assert first["insights"]["category"] == "financial" and first["insights"]["is_anomaly"] is True
    assert first["insights"]["risk_level"] == "high" and first["insights"]["anomaly_score"] == 1.0
    assert second["insights"]["category"] == "data_modification" and second["insights"]["is_anomaly"] is False
    assert "classified" in first["insights"]["tags"]
    filtered = trailseal_client.get("/api/v1/events?category=financial", headers=tenant.headers).get_json()
    assert [e["id"] for e in filtered["events"]] == [first["id"]]
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT model, dims FROM audit_embeddings")
        assert cur.fetchall() == [("len-3", 3), ("len-3", 3)]


def test_reconciler_recovers_a_lost_message(trailseal_client, trailseal_services, tenant, run_jobs):
    ingest(trailseal_client, tenant, [make_event() for _ in range(5)])
    trailseal_services.queues["default"].empty()  # the queue message is lost
    assert find_unenriched(trailseal_services, tenant.id, _future()) == [(1, 5)]
    from flask import current_app  # noqa: F401  (the job runs in an app context)

    with trailseal_client.application.app_context():
        queued = reconcile_enrichment(grace_seconds=0)
    assert queued[str(tenant.id)] == 5
    run_jobs()
    assert find_unenriched(trailseal_services, tenant.id, _future()) == []
    with trailseal_client.application.app_context():
        assert str(tenant.id) not in reconcile_enrichment(grace_seconds=0)


def test_enrichment_is_idempotent(trailseal_client, trailseal_services, tenant, run_jobs):
    ingest(trailseal_client, tenant, [make_event()])
    run_jobs()
    trailseal_services.enqueue_enrichment(tenant.id, 1, 1)
    run_jobs()
    with trailseal_services.db.cursor(tenant.id) as cur:
        cur.execute("SELECT count(*) FROM event_insights")
        assert cur.fetchone()[0] == 1


def test_scheduler_job_table_comes_from_register_jobs(trailseal_app, trailseal_services):
    names = {spec.name for spec in collect_jobs(trailseal_services.pm)}
    assert {"reconcile-enrichment", "verify-chains", "search-indexes"} <= names
    scheduler = build_scheduler(trailseal_app)
    assert {job.name for job in scheduler.get_jobs()} >= names


def _future():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(minutes=1)


def test_worker_command_runs_queued_enrichment(trailseal_client, trailseal_services, tenant):
    import os
    import subprocess
    import sys

    ingest(trailseal_client, tenant, [make_event(), make_event()])
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])
    done = subprocess.run([sys.executable, "-m", "trailseal", "worker", "--burst"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert find_unenriched(trailseal_services, tenant.id, _future()) == []
