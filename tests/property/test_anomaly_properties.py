"""Invariants of the anomaly plugin (hypothesis, at least 100 examples each): the flag is
exactly "score at or above the threshold"; the 1,000-event line between the baseline and a
tenant's own model; the bias rule; balanced training sets; the review flag; every flagged
event explained; prediction logging; and the forest artifact round-trip."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.jobs.enrichment import Verdicts
from trailseal.services.insights import alert_severity as core_alert_severity
from trailseal.types import REVIEW_BELOW, Event, Finding
from trailseal_plugins.anomaly.detector import OWN_MODEL_AFTER, uses_own_model
from trailseal_plugins.anomaly.explain import alert_severity, explain_event
from trailseal_plugins.anomaly.features import FEATURE_NAMES, featurize
from trailseal_plugins.anomaly.forest import Forest, train_forest
from trailseal_plugins.anomaly.runs import BIAS_MIN_EVENTS, bias_status, wilson_interval
from trailseal_plugins.anomaly.training import balanced_indices

EXAMPLES = settings(max_examples=100, deadline=None)
RNG = np.random.default_rng(5)
TRAIN = RNG.normal(size=(600, len(FEATURE_NAMES)))
FOREST = train_forest(TRAIN, n_trees=40, seed=3)

rows = st.lists(st.lists(st.floats(-50, 50, allow_nan=False), min_size=len(FEATURE_NAMES),
                         max_size=len(FEATURE_NAMES)), min_size=1, max_size=30)
thresholds = st.floats(0.01, 0.99)


@EXAMPLES
@given(rows, thresholds)
def test_flag_is_exactly_score_at_or_above_threshold(X, threshold):
    X = np.array(X)
    scores, confidence = FOREST.score(X, threshold)
    assert ((scores > 0) & (scores < 1)).all()
    flagged = scores >= threshold
    # confidence is the share of trees agreeing with that verdict
    h = FOREST.path_lengths(X)
    votes = (np.power(2.0, -h / FOREST.norm) >= threshold).mean(axis=0)
    assert np.allclose(confidence, np.where(flagged, votes, 1 - votes))
    assert ((confidence >= 0) & (confidence <= 1)).all()


@EXAMPLES
@given(st.integers(0, 10**7))
def test_own_model_exactly_past_the_line(count):
    assert uses_own_model(count) == (count > OWN_MODEL_AFTER)


@EXAMPLES
@given(st.integers(0, 5000), st.integers(0, 5000), st.floats(0, 1))
def test_bias_rule(flagged, extra, overall):
    events = flagged + extra
    status = bias_status(flagged, events, overall)
    if events < BIAS_MIN_EVENTS:
        assert status == "too_small"
        return
    low, high = wilson_interval(flagged, events)
    assert low <= flagged / events <= high
    rate = flagged / events
    if status == "alert":
        # beyond 20 % relative, and not by noise: the whole interval is beyond the margin
        assert abs(rate - overall) > 0.2 * overall
        assert low > 1.2 * overall or high < 0.8 * overall
    else:
        assert status == "ok"
        assert not (low > 1.2 * overall or high < 0.8 * overall)


@EXAMPLES
@given(st.lists(st.sampled_from(["auth", "export", "config", None, "finance"]), max_size=400),
       st.integers(1, 300))
def test_training_sets_are_balanced(labels, limit):
    picked = balanced_indices(labels, limit)
    assert len(set(picked.tolist())) == len(picked)  # no row twice
    assert len(picked) == min(limit, len(labels))
    counts = Counter(labels[i] for i in picked)
    available = Counter(labels)
    # a group below another's count gave everything it had (within one row of rounding)
    for a, na in counts.items():
        for b, nb in counts.items():
            if na < nb - 1:
                assert na == available[a], (a, na, b, nb)
    for g in available:
        if g not in counts:
            assert len(picked) == limit  # only skipped when the budget ran out


@EXAMPLES
@given(st.floats(0, 1), st.floats(0.05, 0.95),
       st.sampled_from(["info", "low", "medium", "high", "critical", "warning"]))
def test_alert_severity_rises_with_score_and_never_below_the_event(score, threshold, event_sev):
    proposed = alert_severity(score, threshold)
    higher = alert_severity(min(1.0, score + 0.1), threshold)
    order = ("low", "medium", "high", "critical")
    assert order.index(higher) >= order.index(proposed)
    final = core_alert_severity(event_sev, proposed)
    if event_sev in order:
        assert order.index(final) >= order.index(event_sev)
    assert order.index(final) >= order.index(proposed)


findings = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["a", "b"]),
                               st.floats(0, 1), st.booleans(),
                               st.none() | st.floats(0, 1)), max_size=25)


@EXAMPLES
@given(findings)
def test_predictions_logged_and_low_confidence_flagged_for_review(raw):
    """Every finding is logged once with its confidence; an event needs review exactly when
    some finding about it has a confidence below 0.6; its score is the highest and its flag
    any detector's; the leading finding of a flagged event is its highest flagging one."""
    ids = [f"e{i}" for i in range(5)]
    verdicts = Verdicts(ids)
    given_findings = []
    for idx, detector, score, flag, confidence in raw:
        f = Finding(ids[idx], score=score, is_anomaly=flag, confidence=confidence,
                    model_version=f"{detector}-1", features={"x": score})
        verdicts.add_finding(detector, f)
        given_findings.append((detector, f))
    verdicts.add_finding("a", Finding("not-in-range", score=1.0, is_anomaly=True))
    assert len(verdicts.predictions) == len(given_findings)
    for p, (detector, f) in zip(verdicts.predictions, given_findings, strict=True):
        assert (p["producer"], p["event_id"], p["score"], p["confidence"]) == (
            detector, f.event_id, f.score, f.confidence)
        assert p["review_required"] == (f.confidence is not None and f.confidence < REVIEW_BELOW)
    for eid in ids:
        mine = [f for _, f in given_findings if f.event_id == eid]
        row = verdicts.insights[eid]
        assert row["review_required"] == any(
            f.confidence is not None and f.confidence < 0.6 for f in mine)
        if not mine:
            assert row["anomaly_score"] is None and row["is_anomaly"] is None
            continue
        assert row["anomaly_score"] == max(f.score for f in mine)
        assert row["is_anomaly"] == any(f.is_anomaly for f in mine)
        flagged = [f for f in mine if f.is_anomaly]
        if flagged:
            assert verdicts.leading[eid][1].score == max(f.score for f in flagged)
        else:
            assert eid not in verdicts.leading


def _event(i: int, actor: str, etype: str, hour: int, ip: str) -> Event:
    return Event(id=f"e{i}", tenant_id="t", seq=i + 1,
                 occurred_at=f"2026-11-{1 + i // 24 % 27:02d}T{hour:02d}:{i % 60:02d}:00Z",
                 event_type=etype, actor_id=actor, actor_type="user", actor_role="r",
                 actor_department="d", entity_type="doc", entity_id=f"d{i % 7}",
                 severity="info", source="web", tags=(), ip_address=ip, user_agent="ua",
                 action_details={"rows": i % 13})


events = st.lists(st.tuples(st.sampled_from(["ann", "bob", "cy"]),
                            st.sampled_from(["doc.viewed", "doc.exported", "role.granted",
                                             "login.failed"]),
                            st.integers(0, 23),
                            st.sampled_from(["10.0.0.1", "10.0.0.2", "203.0.113.9"])),
                  min_size=2, max_size=60)


@EXAMPLES
@given(events, thresholds)
def test_every_flagged_event_gets_one_explanation(raw, threshold):
    evs = [_event(i, *r) for i, r in enumerate(raw)]
    X, profile = featurize(evs)
    assert X.shape == (len(evs), len(FEATURE_NAMES)) and np.isfinite(X).all()
    assert profile.total == len(evs)
    scores, _ = FOREST.score(X, threshold)
    flagged = np.flatnonzero(scores >= threshold)
    contributions = FOREST.explain(X[flagged])
    assert contributions.shape == (len(flagged), len(FEATURE_NAMES))
    for k, i in enumerate(flagged):
        ex = explain_event(evs[i], X[i], contributions[k], float(scores[i]), threshold)
        assert ex["summary"].endswith(".") and not ex["summary"][0].islower()
        assert all(c["contribution"] > 0 for c in ex["contributions"])
        assert ex["affected_entities"][0] == {"type": "actor", "id": evs[i].actor_id}
        assert ex["suggested_actions"]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_artifact_round_trip_is_exact_and_never_pickled(seed):
    X = np.random.default_rng(seed).normal(size=(50, 4))
    forest = train_forest(X, n_trees=5, seed=seed % 1000)
    blob = forest.to_bytes()
    assert b"pickle" not in blob
    again = Forest.from_bytes(blob)
    assert np.array_equal(again.score(X, 0.5)[0], forest.score(X, 0.5)[0])
    assert math.isclose(again.norm, forest.norm)
