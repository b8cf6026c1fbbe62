"""The anomaly plugin on real services: ingest → the worker scores → alerts with SHAP
explanations → ``anomaly_detected``; the 1,000-event line between the baseline and a
tenant's own model; feedback changing the next model; the commands; fairness figures."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.conftest import make_event
from trailseal import hookimpl
from trailseal_plugins.anomaly.detector import MODEL_TYPE, NAME
from trailseal_plugins.anomaly.features import FEATURE_NAMES, FEATURE_SET, FEATURE_SET_KEY
from trailseal_plugins.anomaly.runs import detect
from trailseal_plugins.anomaly.training import train_tenant
from trailseal_plugins.demo.data import generate_events, planted_incidents

pytestmark = pytest.mark.slow


class HookRecorder:
    def __init__(self):
        self.alerts = []

    @hookimpl
    def anomaly_detected(self, alert):
        self.alerts.append(alert)


def _rows(svc, tenant_id, sql, **params):
    with svc.db.transaction(tenant_id) as conn:
        return conn.execute(text(sql), params).mappings().all()


def _insights(svc, tenant_id):
    return {str(r["event_id"]): r for r in _rows(
        svc, tenant_id, "SELECT i.*, a.seq FROM event_insights i JOIN audit_logs a "
        "ON a.tenant_id = i.tenant_id AND a.id = i.event_id")}


def _demo_trail(days: int, per_day: int, slug: str = "acme", seed: int = 7):
    end = datetime.now(UTC).replace(microsecond=0)
    events = generate_events(slug, days=days, events_per_day=per_day, end=end, seed=seed)
    return events, planted_incidents(slug, events)


def test_cold_start_scores_a_young_tenant_with_the_baseline(trailseal_services, tenant,
                                                            run_jobs):
    """100 events and nothing else: every event is scored at once by the shared baseline,
    and the planted incident scores above the ordinary events."""
    events, incidents = _demo_trail(days=1, per_day=100)
    assert incidents, "the day holds a planted incident"
    trailseal_services.append_events(tenant.id, events)
    run_jobs()
    rows = _insights(trailseal_services, tenant.id)
    assert len(rows) == len(events)
    assert all(r["anomaly_score"] is not None and 0 <= r["anomaly_score"] <= 1
               for r in rows.values())
    by_seq = {r["seq"]: r for r in rows.values()}
    planted = {i + 1 for inc in incidents for i in inc.event_indices}
    planted_scores = [by_seq[s]["anomaly_score"] for s in planted]
    other = [r["anomaly_score"] for s, r in by_seq.items() if s not in planted]
    assert max(planted_scores) > sorted(other)[int(len(other) * 0.9)]
    scopes = {r["ai_insights"]["anomaly"][NAME]["explanation"]["model_scope"]
              for r in rows.values()}
    assert scopes == {"baseline"}
    assert trailseal_services.active_model(tenant.id, MODEL_TYPE) is None


def test_ingest_score_alert_explain_and_hook(trailseal_app, trailseal_services, tenant,
                                             run_jobs, register_plugin):
    recorder = register_plugin(HookRecorder())
    events, incidents = _demo_trail(days=14, per_day=120, slug="initech")
    trailseal_services.append_events(tenant.id, events)
    run_jobs()
    rows = _insights(trailseal_services, tenant.id)
    assert len(rows) == len(events)
    # past the 1,000-event line: the tenant got a model of its own, versioned
    model = trailseal_services.active_model(tenant.id, MODEL_TYPE)
    assert model is not None and model["features"] == list(FEATURE_NAMES)
    assert model["created_by"] == "detector (first model)"
    flagged = [r for r in rows.values() if r["is_anomaly"]]
    assert flagged, "something in two weeks with planted incidents is flagged"
    alerts = _rows(trailseal_services, tenant.id,
                   "SELECT * FROM audit_anomalies WHERE kind = 'anomaly'")
    # one alert per flagged event, each explained
    assert sorted(str(a["event_id"]) for a in alerts) == sorted(
        str(r["event_id"]) for r in flagged)
    for a in alerts:
        d = a["details"]
        assert a["severity"] in ("low", "medium", "high", "critical")
        assert d["explanation"]["summary"].endswith(".")
        contributions = d["explanation"]["contributions"]
        assert contributions and contributions[0]["feature"] in FEATURE_NAMES
        assert all(c["contribution"] > 0 for c in contributions)
        assert d["affected_entities"] and d["suggested_actions"]
        assert d["model_version"] and d["detected_at"]
    # the hook fired once per alert
    assert sorted(a.id for a in recorder.alerts if a.kind == "anomaly") == sorted(
        str(a["id"]) for a in alerts)
    # every prediction logged, with its features; review flag below 0.6 confidence
    preds = _rows(trailseal_services, tenant.id,
                  "SELECT * FROM ai_predictions WHERE producer = :p", p=NAME)
    assert len(preds) == len(events)
    assert all(set(p["features"]) == {*FEATURE_NAMES, FEATURE_SET_KEY}
               and p["features"][FEATURE_SET_KEY] == FEATURE_SET for p in preds)
    for p in preds:
        assert p["review_required"] == (p["confidence"] < 0.6)
        assert rows[str(p["event_id"])]["review_required"] >= p["review_required"]
    # re-scoring (now every event with the tenant's own model) never alerts twice on an
    # event, and a second identical run raises nothing
    with trailseal_app.app_context():
        first = detect(trailseal_services, str(tenant.id), hours=None, rescore=True)
        again = detect(trailseal_services, str(tenant.id), hours=None, rescore=True)
    assert first["scored"] == again["scored"] == len(events)
    assert again["alerts_raised"] == 0
    assert again["bias_groups"] > 0
    # an event keeps the description it was first scored with: every later prediction of
    # it logs the same features (only the model may differ)
    logged = _rows(trailseal_services, tenant.id,
                   "SELECT event_id, array_agg(DISTINCT features::text) AS variants, "
                   "count(*) AS n FROM ai_predictions WHERE producer = :p GROUP BY event_id",
                   p=NAME)
    assert len(logged) == len(events) and all(r["n"] == 3 for r in logged)
    assert all(len(r["variants"]) == 1 for r in logged)
    per_event = _rows(trailseal_services, tenant.id,
                      "SELECT event_id, count(*) AS n FROM audit_anomalies "
                      "WHERE kind = 'anomaly' GROUP BY event_id")
    assert per_event and all(r["n"] == 1 for r in per_event)


def test_feedback_changes_the_next_model(trailseal_services, tenant, run_jobs):
    """A pattern an analyst marks as a false positive stops alerting after retraining."""
    events, _ = _demo_trail(days=10, per_day=120, slug="globex", seed=11)
    trailseal_services.append_events(tenant.id, events)
    run_jobs()
    now = datetime.now(UTC)
    # a routine the analysts know: the night-time billing reconciliation by a service
    routine = [make_event(event_type="billing.reconciled", severity="high",
                          actor={"id": "svc-reconcile", "type": "service", "role": "service",
                                 "department": "finance"},
                          entity={"type": "ledger", "id": f"L-{i}"},
                          occurred_at=(now - timedelta(hours=2, minutes=i)).isoformat(),
                          ip_address="198.51.100.77", action_details={"rows": 250000})
               for i in range(3)]
    # a watchful tenant: a lower threshold than the default
    trailseal_services.set_setting(tenant.id, "anomaly.threshold", 0.5, "test")
    trailseal_services.append_events(tenant.id, routine)
    run_jobs()
    alerts = _rows(trailseal_services, tenant.id,
                   "SELECT a.id, a.event_id FROM audit_anomalies a JOIN audit_logs l "
                   "ON l.tenant_id = a.tenant_id AND l.id = a.event_id "
                   "WHERE a.kind = 'anomaly' AND l.event_type = 'billing.reconciled'")
    assert alerts, "the unfamiliar routine alerts at first"
    with trailseal_services.db.transaction(tenant.id) as conn:
        for a in alerts:
            conn.execute(text(
                "INSERT INTO anomaly_feedback (tenant_id, alert_id, event_id, "
                "is_false_positive, notes, given_by) VALUES (:t, :a, :e, true, "
                "'nightly reconciliation', 'user:analyst')"),
                {"t": tenant.id, "a": a["id"], "e": a["event_id"]})
    before = trailseal_services.active_model(tenant.id, MODEL_TYPE)["version"]
    summary = train_tenant(trailseal_services, str(tenant.id), created_by="test")
    assert summary["version"] != before
    assert summary["metrics"]["false_positive_patterns"] == len(alerts)
    later = [make_event(event_type="billing.reconciled", severity="high",
                        actor={"id": "svc-reconcile", "type": "service", "role": "service",
                               "department": "finance"},
                        entity={"type": "ledger", "id": f"L-{i}"},
                        occurred_at=(now - timedelta(minutes=30 - i)).isoformat(),
                        ip_address="198.51.100.77", action_details={"rows": 250000})
             for i in range(3)]
    trailseal_services.append_events(tenant.id, later)
    run_jobs()
    fresh = _rows(trailseal_services, tenant.id,
                  "SELECT i.is_anomaly, i.model_versions FROM event_insights i JOIN audit_logs a "
                  "ON a.tenant_id = i.tenant_id AND a.id = i.event_id "
                  "WHERE a.event_type = 'billing.reconciled' ORDER BY a.seq DESC LIMIT 3")
    assert all(r["model_versions"][NAME] == summary["version"] for r in fresh)
    assert not any(r["is_anomaly"] for r in fresh)


def test_threshold_setting_decides_the_flag(trailseal_services, tenant, run_jobs):
    events, _ = _demo_trail(days=1, per_day=80, slug="globex", seed=3)
    trailseal_services.set_setting(tenant.id, "anomaly.threshold", 0.3, "test")
    trailseal_services.append_events(tenant.id, events)
    run_jobs()
    rows = _insights(trailseal_services, tenant.id).values()
    assert all(r["is_anomaly"] == (r["anomaly_score"] >= 0.3) for r in rows)
    assert sum(r["is_anomaly"] for r in rows) > len(events) / 2


def _cli(services, *args):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=services.config["INSTANCE_PATH"])
    done = subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_detect_and_train_commands(trailseal_services, tenant, run_jobs):
    events, _ = _demo_trail(days=3, per_day=120, slug="initech", seed=5)
    trailseal_services.append_events(tenant.id, events)
    # no worker ran: detection now scores everything received in the last day
    code, out = _cli(trailseal_services, "detect", "--tenant", tenant.slug)
    assert code == 0, out
    assert f"scored {len(events)} events" in out
    assert "new alerts:" in out and "fairness:" in out
    code, out = _cli(trailseal_services, "detect", "--tenant", tenant.slug)
    assert code == 0 and "scored 0 events" in out  # idempotent
    code, out = _cli(trailseal_services, "train", "--tenant", tenant.slug)
    assert code == 0, out
    assert "trained model if-" in out and f"{len(events)} events" in out
    assert trailseal_services.list_models(tenant.id, MODEL_TYPE)[0]["created_by"] == \
        "trailseal train"
    code, out = _cli(trailseal_services, "detect", "--tenant", tenant.slug, "--preview")
    assert code == 0, out
    # (360 events: the baseline scores this tenant, whatever models it has)
    assert f"{len(events)} events scored with baseline-" in out and "nothing written" in out
    assert "(current)" in out and "threshold 0.700:" in out
    code, out = _cli(trailseal_services, "train", "--tenant", "no-such-tenant")
    assert code != 0 and "no tenant 'no-such-tenant'" in out
    run_jobs()  # the queued enrichment jobs find the events scored and rewrite the same rows


def test_training_an_empty_window_keeps_the_model(trailseal_services, tenant):
    with pytest.raises(ValueError, match="at least 2 are needed"):
        train_tenant(trailseal_services, str(tenant.id), created_by="test")
    assert trailseal_services.list_models(tenant.id, MODEL_TYPE) == []


def test_bias_metrics_recorded_per_group(trailseal_app, trailseal_services, tenant, run_jobs):
    events, _ = _demo_trail(days=2, per_day=150, slug="acme", seed=9)
    trailseal_services.append_events(tenant.id, events)
    run_jobs()
    with trailseal_app.app_context():
        detect(trailseal_services, str(tenant.id), hours=None, rescore=True)
    rows = _rows(trailseal_services, tenant.id, "SELECT * FROM bias_metrics")
    assert {r["dimension"] for r in rows} == {"actor_role", "actor_department", "entity_type"}
    for dim in ("actor_role", "actor_department", "entity_type"):
        group = [r for r in rows if r["dimension"] == dim]
        assert sum(r["events"] for r in group) == len(events)
    for r in rows:
        assert r["ci_low"] <= r["rate"] <= r["ci_high"]
        assert r["status"] in ("ok", "too_small", "alert")
        assert (r["status"] == "too_small") == (r["events"] < 30)
    bias_alerts = _rows(trailseal_services, tenant.id,
                        "SELECT * FROM audit_anomalies WHERE kind = 'bias'")
    assert len(bias_alerts) == len({(r["dimension"], r["grp"]) for r in rows
                                    if r["status"] == "alert"})


def test_models_are_tenant_scoped_and_checked(trailseal_services, tenant):
    """A tenant never sees another's models; a damaged artifact is refused when loaded,
    never used."""
    import psycopg

    from trailseal.errors import ConfigurationError
    from trailseal.testing import make_tenant
    from trailseal_plugins.anomaly.forest import Forest

    other = make_tenant(trailseal_services)
    trailseal_services.save_model(tenant.id, model_type="test.model", version="v1",
                                  artifact=b"\x00arrays", artifact_format="f", features=["a"],
                                  training_events=1, created_by="t")
    assert trailseal_services.active_model(tenant.id, "test.model")["artifact"] == b"\x00arrays"
    assert trailseal_services.active_model(other.id, "test.model") is None
    assert trailseal_services.list_models(other.id) == []
    with pytest.raises(ValueError):
        Forest.from_bytes(b"not an npz archive")
    # the application role cannot rewrite an artifact: damage it as the schema owner
    admin = trailseal_services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(admin) as conn:
        conn.execute("UPDATE audit_ml_models SET artifact = 'damaged' "
                     "WHERE tenant_id = %s AND model_type = 'test.model'", (tenant.id,))
    with pytest.raises(ConfigurationError, match="does not match its recorded SHA-256"):
        trailseal_services.active_model(tenant.id, "test.model")


def test_a_model_of_another_feature_set_is_refused_and_replaced(trailseal_services, tenant):
    """A model trained before the features changed meaning (same names, an older feature
    set) is not used: the tenant is scored by the baseline, and the next enrichment trains
    it a model of the current set."""
    import numpy as np

    from trailseal_plugins.anomaly.detector import ensure_tenant_model, load_tenant_forest
    from trailseal_plugins.anomaly.forest import train_forest

    forest = train_forest(np.random.default_rng(3).normal(size=(300, len(FEATURE_NAMES))))
    for version, params in (("if-set-1", {"n_trees": 100}),
                            ("if-set-now", {"n_trees": 100, FEATURE_SET_KEY: FEATURE_SET})):
        trailseal_services.save_model(tenant.id, model_type=MODEL_TYPE, version=version,
                                      artifact=forest.to_bytes(),
                                      artifact_format="trailseal-iforest-npz-1",
                                      features=list(FEATURE_NAMES), training_events=300,
                                      created_by="test", params=params)
        loaded = load_tenant_forest(trailseal_services, tenant.id)
        assert (loaded is None) == (version == "if-set-1")
        if loaded is not None:
            assert loaded[1] == "if-set-now"
    # an older set active again, on a tenant past the line: replaced at the next enrichment
    trailseal_services.save_model(tenant.id, model_type=MODEL_TYPE, version="if-set-1b",
                                  artifact=forest.to_bytes(),
                                  artifact_format="trailseal-iforest-npz-1",
                                  features=list(FEATURE_NAMES), training_events=300,
                                  created_by="test", params={})
    events, _ = _demo_trail(days=8, per_day=140, slug="globex", seed=5)
    trailseal_services.append_events(tenant.id, events[:1100])
    ensure_tenant_model(trailseal_services, tenant.id, 1100)
    model = trailseal_services.active_model(tenant.id, MODEL_TYPE)
    assert model["version"] not in ("if-set-1", "if-set-now", "if-set-1b")
    assert model["params"][FEATURE_SET_KEY] == FEATURE_SET
    assert load_tenant_forest(trailseal_services, tenant.id)[1] == model["version"]


def test_the_1000_event_line(trailseal_services, tenant, run_jobs):
    """1,000 events: scored by the shared baseline, no model of its own; the 1,001st event
    is scored by a model the tenant got for itself."""
    events, _ = _demo_trail(days=8, per_day=140, slug="globex", seed=21)
    trailseal_services.append_events(tenant.id, events[:1000])
    run_jobs()
    assert trailseal_services.active_model(tenant.id, MODEL_TYPE) is None
    scopes = {r["ai_insights"]["anomaly"][NAME]["explanation"]["model_scope"]
              for r in _insights(trailseal_services, tenant.id).values()}
    assert scopes == {"baseline"}
    trailseal_services.append_events(tenant.id, events[1000:1001])
    run_jobs()
    model = trailseal_services.active_model(tenant.id, MODEL_TYPE)
    # trained on the window as scored so far (the 1,001st event is being scored)
    assert model is not None and model["training_events"] >= 1000
    last = [r for r in _insights(trailseal_services, tenant.id).values() if r["seq"] == 1001]
    insight = last[0]["ai_insights"]["anomaly"][NAME]
    assert insight["explanation"]["model_scope"] == "tenant"
    assert last[0]["model_versions"][NAME] == model["version"]


def test_score_stored_matches_scoring_in_one_go(trailseal_services, tenant):
    """The pipelined what-if path scores exactly what describing and scoring the whole trail
    at once gives."""
    import numpy as np

    from trailseal_plugins.anomaly.baseline import baseline_forest
    from trailseal_plugins.anomaly.detector import score_stored
    from trailseal_plugins.anomaly.features import featurize

    events, _ = _demo_trail(days=2, per_day=400, slug="acme", seed=4)
    trailseal_services.append_events(tenant.id, events)
    forest, _ = baseline_forest()
    parts = list(score_stored(trailseal_services, str(tenant.id), forest, 0.62, batch=150))
    assert [e.seq for p in parts for e in p[0]] == list(range(1, len(events) + 1))
    stored = [e for batch in trailseal_services.iter_events(tenant.id) for e in batch]
    X, _ = featurize(stored)
    scores, confidence = forest.score(X, 0.62)
    assert np.array_equal(np.concatenate([p[2] for p in parts]), scores)
    assert np.array_equal(np.concatenate([p[3] for p in parts]), confidence)
    assert np.array_equal(np.vstack([p[1] for p in parts]), X)


def test_hours_follow_the_tenants_time_zone_across_a_dst_change(trailseal_services, tenant,
                                                                run_jobs):
    """With ``timezone`` America/New_York, an actor's 09:30 working days read as 09:30 on
    both sides of the change to daylight time (8 March 2026), in the logged features of
    the worker's scoring and in ``trailseal detect --preview``'s walk."""
    from zoneinfo import ZoneInfo

    from trailseal_plugins.anomaly.detector import score_stored
    from trailseal_plugins.anomaly.features import HOUR_COS, HOUR_SIN, INDEX

    zone = ZoneInfo("America/New_York")
    trailseal_services.set_setting(tenant.id, "timezone", "America/New_York", "test")
    days = [datetime(2026, 3, 2) + timedelta(days=d) for d in range(12)]
    moments = [datetime(d.year, d.month, d.day, 9, 30, tzinfo=zone).astimezone(UTC)
               for d in days]
    assert len({m.hour for m in moments}) == 2  # 14:30 UTC, then 13:30 UTC
    trailseal_services.append_events(tenant.id, [
        make_event(occurred_at=m.strftime("%Y-%m-%dT%H:%M:%SZ"), event_type="invoice.viewed",
                   entity={"type": "invoice", "id": f"INV-{i}"})
        for i, m in enumerate(moments)])
    run_jobs()
    preds = _rows(trailseal_services, tenant.id,
                  "SELECT features FROM ai_predictions WHERE producer = :p", p=NAME)
    assert len(preds) == len(moments)
    for p in preds:
        assert p["features"]["hour_sin"] == pytest.approx(HOUR_SIN[9], abs=1e-4)
        assert p["features"]["hour_cos"] == pytest.approx(HOUR_COS[9], abs=1e-4)
        assert p["features"]["hours_from_usual"] == 0
    from trailseal_plugins.anomaly.baseline import baseline_forest

    forest, _ = baseline_forest()
    walked = [x for _e, X, _s, _c in score_stored(trailseal_services, str(tenant.id), forest,
                                                   0.58) for x in X]
    assert len(walked) == len(moments)
    assert all(x[INDEX["hour_sin"]] == HOUR_SIN[9] for x in walked)


def test_the_demo_gives_its_tenants_their_time_zones(trailseal_services):
    from trailseal_plugins.demo.data import demo_tenants
    from trailseal_plugins.demo.loader import load_demo
    from trailseal_plugins.demo.profiles import tenant_profile

    load_demo(trailseal_services, days=1, echo=lambda _line: None)
    for t in demo_tenants():
        tid = trailseal_services.resolve_tenant(t.slug)
        assert trailseal_services.get_setting(tid, "timezone") == tenant_profile(t.slug).tz
