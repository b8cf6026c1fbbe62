"""Event classification through the real pipeline: every ingested event gets a category and
a risk level (or is flagged for review), tag rules apply and persist and filter, the cache
answers repeats identically and a new model invalidates it, analysts' corrections win over
the model and reach the next training, and the API refuses bad corrections and rules."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.conftest import ingest, make_event, ts
from trailseal.services.tenancy import create_api_key
from trailseal.tables import event_insights, insight_corrections
from trailseal.types import CATEGORIES, RISK_LEVELS
from trailseal_plugins.classify.classifier import NAME, EventClassifier
from trailseal_plugins.classify.training import MODEL_TYPE, train_tenant
from trailseal_plugins.demo.activity import generate_events


def _key(svc, tenant, *permissions) -> dict:
    key = create_api_key(svc, tenant.id, list(permissions))
    return {"Authorization": f"Bearer {key['token']}"}


def _insights(svc, tenant_id) -> dict[str, dict]:
    with svc.db.transaction(tenant_id) as conn:
        return {str(r["event_id"]): dict(r) for r in conn.execute(select(event_insights))
                .mappings()}


def _events(svc, tenant_id):
    return [e for batch in svc.iter_events(tenant_id) for e in batch]


EVENT_TYPES = ["user.login", "invoice.deleted", "iam.AttachUserPolicy", "report.viewed",
               "payment.refunded", "export.downloaded", "frobnicate.widget", "k8s.create.pods"]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.fixed_dictionaries({
    "event_type": st.sampled_from(EVENT_TYPES),
    "severity": st.sampled_from(["info", "low", "medium", "high", "critical"]),
    "hour": st.integers(0, 23),
    "details": st.one_of(st.none(), st.fixed_dictionaries(
        {"amount": st.integers(0, 10**6)}), st.fixed_dictionaries(
        {"outcome": st.sampled_from(["success", "failure"])})),
}), min_size=1, max_size=5))
def test_every_ingested_event_gets_category_and_risk_or_review(trailseal_client,
                                                               trailseal_services, tenant,
                                                               run_jobs, batch):
    bodies = [make_event(event_type=b["event_type"], severity=b["severity"],
                         occurred_at=f"2026-11-20T{b['hour']:02d}:15:00Z",
                         action_details=b["details"]) for b in batch]
    ids = ingest(trailseal_client, tenant, bodies)["ids"]
    run_jobs()
    rows = _insights(trailseal_services, tenant.id)
    for event_id in ids:
        row = rows[event_id]
        classified = row["category"] in CATEGORIES and row["risk_level"] in RISK_LEVELS
        assert classified or row["review_required"], row
        verdict = row["ai_insights"]["classification"][NAME]
        assert row["review_required"] == (verdict["confidence"] < 0.6 or any(
            d.get("confidence") is not None and d["confidence"] < 0.6
            for d in row["ai_insights"].get("anomaly", {}).values()))
        assert verdict["confidence"] == min(verdict["category_confidence"],
                                            verdict["risk_confidence"])
        assert row["model_versions"][NAME].startswith("cls-")


def test_rule_tags_apply_persist_and_filter(trailseal_client, trailseal_services, tenant,
                                            run_jobs):
    admin = tenant.headers
    rule = {"tag": "large-refund", "description": "Refunds of 5,000 or more",
            "when": {"all": [{"field": "event_type", "op": "has_word", "value": ["refunded"]},
                             {"field": "details.amount", "op": "gte", "value": 5000}]}}
    resp = trailseal_client.put("/api/v1/rules/tags", json={"rules": [rule]}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["custom"][0]["tag"] == "large-refund" and body["updated_by"].startswith("api_key:")
    assert {r["tag"] for r in body["builtin"]} >= {"privilege-change", "off-hours",
                                                   "failed-action", "deletion"}
    ids = ingest(trailseal_client, tenant, [
        make_event(event_type="payment.refunded", action_details={"amount": 9000},
                   occurred_at="2026-11-25T03:00:00Z"),
        make_event(event_type="payment.refunded", action_details={"amount": 90},
                   occurred_at="2026-11-25T12:00:00Z"),
    ])["ids"]
    run_jobs()
    rows = _insights(trailseal_services, tenant.id)
    assert "large-refund" in rows[ids[0]]["tags"] and "off-hours" in rows[ids[0]]["tags"]
    assert "large-refund" not in rows[ids[1]]["tags"] and "off-hours" not in rows[ids[1]]["tags"]
    assert "financial" in rows[ids[1]]["tags"]
    page = trailseal_client.get("/api/v1/events?tag=large-refund", headers=admin).get_json()
    assert [e["id"] for e in page["events"]] == [ids[0]]
    assert page["events"][0]["insights"]["category"] in CATEGORIES
    # the rules read back; removing them leaves the built-in ones
    assert trailseal_client.get("/api/v1/rules/tags", headers=admin).get_json()["custom"] == \
        body["custom"]
    assert trailseal_client.put("/api/v1/rules/tags", json={"rules": []},
                                headers=admin).get_json()["custom"] == []


def test_cache_hits_are_identical_and_a_new_model_invalidates(trailseal_client,
                                                              trailseal_services, tenant):
    svc = trailseal_services
    events = generate_events("acme", days=3, events_per_day=150, seed=11)
    svc.append_events(tenant.id, events)
    stored = _events(svc, tenant.id)
    classifier = EventClassifier(str(tenant.id), svc=svc)
    first = classifier.classify(stored)
    assert classifier.last_run["model_scope"] == "baseline"
    again = classifier.classify(stored)
    assert classifier.last_run["cached"] == len(stored)
    assert again == first
    summary = train_tenant(svc, str(tenant.id), created_by="test")
    third = classifier.classify(stored)
    assert classifier.last_run["model_version"] == summary["version"]
    assert classifier.last_run["cached"] == 0  # the new version's first answers are its own
    assert {c.model_version for c in third} == {summary["version"]}
    classifier.classify(stored)
    assert classifier.last_run["cached"] == len(stored)
    # a training that cannot learn (an empty window) leaves the active model as it was
    with pytest.raises(ValueError, match="no labelled events"):
        train_tenant(svc, str(tenant.id), created_by="test", now=datetime(2001, 1, 1, tzinfo=UTC))
    active = [m for m in svc.list_models(tenant.id, MODEL_TYPE) if m["is_active"]]
    assert [m["version"] for m in active] == [summary["version"]]
    classifier.classify(stored[:10])
    assert classifier.last_run["model_version"] == summary["version"]


def test_a_correction_wins_and_reaches_the_next_training(trailseal_app, trailseal_client,
                                                         trailseal_services, tenant, run_jobs):
    svc = trailseal_services
    analyst = _key(svc, tenant, "audit:read", "audit:review")
    # a tenant's own kind of event the rules know nothing about, and ordinary activity
    odd = [make_event(event_type="ledger.frobnicated", entity={"type": "gizmo", "id": f"g{i}"},
                      action_details={"knob": "turned"}, occurred_at=ts(days_ago=i / 10))
           for i in range(30)]
    ids = ingest(trailseal_client, tenant, odd)["ids"]
    svc.append_events(tenant.id, generate_events("globex", days=4, events_per_day=150, seed=2))
    run_jobs()
    before = _insights(svc, tenant.id)[ids[0]]
    for event_id in ids:
        resp = trailseal_client.patch(f"/api/v1/events/{event_id}/insights",
                                      json={"category": "security", "risk_level": "critical",
                                            "notes": "frobnication is our break-glass"},
                                      headers=analyst)
        assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["category"] == "security" and body["risk_level"] == "critical"
    assert body["correction"]["corrected_by"].startswith("api_key:")
    assert body["review_required"] is False
    # a second correction of one field keeps the other
    resp = trailseal_client.patch(f"/api/v1/events/{ids[0]}/insights",
                                  json={"risk_level": "high"}, headers=analyst)
    assert resp.get_json()["category"] == "security"
    assert resp.get_json()["correction"]["corrections"] == 2
    shown = trailseal_client.get(f"/api/v1/events/{ids[0]}", headers=analyst).get_json()
    insights = shown["insights"]
    assert insights["category"] == "security" and insights["risk_level"] == "high"
    assert shown["event_type"] == "ledger.frobnicated"  # the event itself is unchanged
    assert insights["ai_insights"]["correction"]["notes"] == "frobnication is our break-glass"
    # enriching again keeps the correction over the model
    from trailseal.jobs import enrich_events
    seqs = [e.seq for e in _events(svc, tenant.id) if e.id in ids]
    with trailseal_app.app_context():
        enrich_events(str(tenant.id), min(seqs), max(seqs))
    after = _insights(svc, tenant.id)[ids[0]]
    assert (after["category"], after["risk_level"]) == ("security", "high")
    assert after["ai_insights"]["classification"][NAME]["category"] == before["category"]
    # the next model learnt it: a new event of that kind is classified as corrected
    summary = train_tenant(svc, str(tenant.id), created_by="test")
    assert summary["metrics"]["corrections_used"] == len(ids)
    new = ingest(trailseal_client, tenant, [make_event(
        event_type="ledger.frobnicated", entity={"type": "gizmo", "id": "g-new"},
        action_details={"knob": "turned"})])["ids"][0]
    run_jobs()
    row = _insights(svc, tenant.id)[new]
    assert row["category"] == "security"
    assert row["model_versions"][NAME] == summary["version"]
    with svc.db.transaction(tenant.id) as conn:
        assert conn.execute(select(insight_corrections)).rowcount != 0


def test_bad_corrections_and_rules(trailseal_client, trailseal_services, tenant):
    svc = trailseal_services
    event_id = ingest(trailseal_client, tenant, [make_event()])["ids"][0]
    analyst = _key(svc, tenant, "audit:read", "audit:review")
    viewer = _key(svc, tenant, "audit:read")
    url = f"/api/v1/events/{event_id}/insights"
    resp = trailseal_client.patch(url, json={"category": "finance"}, headers=analyst)
    assert resp.status_code == 422
    message = resp.get_json()["error"]["message"]
    assert "category" in message and all(c in message for c in CATEGORIES)
    resp = trailseal_client.patch(url, json={"risk_level": "extreme"}, headers=analyst)
    assert resp.status_code == 422 and "critical" in resp.get_json()["error"]["message"]
    resp = trailseal_client.patch(url, json={}, headers=analyst)
    assert resp.status_code == 422 and "at least one" in resp.get_json()["error"]["message"]
    assert trailseal_client.patch(url, json={"category": "security"},
                                  headers=viewer).status_code == 403
    other = trailseal_client.post("/api/v1/events", json=make_event(),
                                  headers=_other_tenant(svc)).get_json()["id"]
    resp = trailseal_client.patch(f"/api/v1/events/{other}/insights",
                                  json={"category": "security"}, headers=analyst)
    assert resp.status_code == 404
    resp = trailseal_client.patch(f"/api/v1/events/{uuid.uuid4()}/insights",
                                  json={"category": "security"}, headers=analyst)
    assert resp.status_code == 404
    with svc.db.transaction(tenant.id) as conn:  # nothing half-written
        assert conn.execute(select(insight_corrections)).first() is None
    # rules: admin only, validated with the path of the problem
    assert trailseal_client.get("/api/v1/rules/tags", headers=viewer).status_code == 403
    assert trailseal_client.put("/api/v1/rules/tags", json={"rules": []},
                                headers=analyst).status_code == 403
    resp = trailseal_client.put("/api/v1/rules/tags", json={"rules": [
        {"tag": "ok", "when": {"any": [{"field": "hour", "op": "between", "value": 1}]}}]},
        headers=tenant.headers)
    assert resp.status_code == 422
    assert "rules[0].when.any[0].op" in resp.get_json()["error"]["message"]
    assert trailseal_client.get("/api/v1/rules/tags",
                                headers=tenant.headers).get_json()["custom"] == []


def _other_tenant(svc) -> dict:
    from trailseal.testing import make_tenant

    return make_tenant(svc).headers


def _cli(svc, *args):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=svc.config["INSTANCE_PATH"])
    done = subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_train_commands(trailseal_services, tenant):
    svc = trailseal_services
    code, out = _cli(svc, "train", "classifiers", "--tenant", tenant.slug)
    assert code != 0 and "no labelled events" in out and "previous model stays active" in out
    assert svc.list_models(tenant.id, MODEL_TYPE) == []
    svc.append_events(tenant.id, generate_events("initech", days=3, events_per_day=120, seed=4))
    code, out = _cli(svc, "train", "classifiers", "--tenant", tenant.slug)
    assert code == 0, out
    assert "trained classifiers cls-" in out and "macro-F1" in out
    models = svc.list_models(tenant.id, MODEL_TYPE)
    assert len(models) == 1 and models[0]["is_active"]
    assert models[0]["metrics"]["category"]["per_class"]
    assert models[0]["created_by"] == "trailseal train classifiers"
    code, out = _cli(svc, "classify", "--tenant", tenant.slug, "--all")
    assert code == 0 and "classified 360 events with cls-" in out, out
    code, out = _cli(svc, "train", "--tenant", tenant.slug)  # every kind: anomaly, classifiers
    assert code == 0, out
    assert "[anomaly]" in out and "[classifiers]" in out
    assert len(svc.list_models(tenant.id, MODEL_TYPE)) == 2


def test_a_damaged_model_falls_back_to_the_baseline(trailseal_services, tenant, owner):
    from trailseal_plugins.classify import classifier as module

    svc = trailseal_services
    svc.append_events(tenant.id, generate_events("acme", days=2, events_per_day=150, seed=8))
    version = train_tenant(svc, str(tenant.id), created_by="test")["version"]
    assert module.choose_model(svc, str(tenant.id))[1:] == (version, "tenant")
    owner.execute("UPDATE audit_ml_models SET artifact = %s WHERE version = %s",
                  (b"not a model", version))
    module._models.clear()  # a fresh process: nothing loaded yet
    model, used, scope = module.choose_model(svc, str(tenant.id))
    assert scope == "baseline" and used.startswith("cls-baseline-")
    stored = _events(svc, tenant.id)[:20]
    assert len(EventClassifier(str(tenant.id), svc=svc).classify(stored)) == 20


def test_the_monthly_job_trains_tenants_past_the_line(trailseal_app, trailseal_services, tenant):
    from trailseal.jobs.runtime import collect_jobs
    from trailseal_plugins.classify.runs import OWN_MODEL_AFTER, monthly_training

    specs = {s.name: s for s in collect_jobs(trailseal_services.pm)}
    assert specs["classifier-monthly-training"].cron == "10 4 1 * *"
    small = make_tenant_with(trailseal_services, 300)
    trailseal_services.append_events(
        tenant.id, generate_events("acme", days=3, events_per_day=OWN_MODEL_AFTER // 2, seed=9))
    with trailseal_app.app_context():
        done = monthly_training()
    assert done[str(tenant.id)].startswith("cls-")
    assert str(small) not in done  # a small tenant keeps the baseline
    assert trailseal_services.list_models(tenant.id, MODEL_TYPE)[0]["created_by"] == \
        "monthly schedule"


def make_tenant_with(svc, n: int):
    from trailseal.testing import make_tenant

    t = make_tenant(svc)
    svc.append_events(t.id, generate_events("initech", days=1, events_per_day=n, seed=1))
    return t.id
