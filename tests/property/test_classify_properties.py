"""Invariants of classification (hypothesis, at least 100 examples each): a cache hit gives
the identical result; whatever classifiers say, a correction wins; the review flag is
exactly "a confidence below 0.6"; only taxonomy values are stored; and verdicts are logged.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailseal.jobs.enrichment import Verdicts
from trailseal.types import CATEGORIES, REVIEW_BELOW, RISK_LEVELS, Classification, Event
from trailseal_plugins.classify.classifier import EventClassifier

EXAMPLES = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
WORDS = ["user", "login", "invoice", "refund", "role", "grant", "export", "delete", "policy",
         "webhook", "settings", "secret", "get", "list", "frobnicate"]

events = st.lists(st.builds(
    lambda words, sep, severity, hour, details, role: Event(
        id=str(uuid.uuid4()), tenant_id="t", seq=1, occurred_at=f"2026-11-20T{hour:02d}:05:00Z",
        event_type=sep.join(words), actor_id="u", actor_type="user", actor_role=role,
        actor_department=None, entity_type=words[0], entity_id="x", severity=severity,
        source="web", tags=(), action_details=details),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), st.sampled_from([".", "_"]),
    st.sampled_from(["info", "low", "medium", "high", "critical"]), st.integers(0, 23),
    st.one_of(st.none(), st.fixed_dictionaries({"amount": st.integers(0, 10**6)}),
              st.fixed_dictionaries({"outcome": st.sampled_from(["success", "failure"])})),
    st.sampled_from([None, "admin", "analyst"])), min_size=1, max_size=8)


@EXAMPLES
@given(batch=events)
def test_a_cache_hit_gives_the_identical_result(trailseal_services, batch):
    tenant = str(uuid.uuid4())  # classification reads no tenant data but its model and rules
    classifier = EventClassifier(tenant, svc=trailseal_services)
    first = classifier.classify(batch)
    second = classifier.classify(batch)
    assert classifier.last_run["cached"] == len(batch)
    assert second == first
    for c in first:
        assert c.category in CATEGORIES and c.risk_level in RISK_LEVELS
        assert c.confidence == min(c.category_confidence, c.risk_confidence)
        assert c.review_required == (c.confidence < REVIEW_BELOW)


verdict = st.builds(
    Classification, event_id=st.just("e"),
    category=st.one_of(st.none(), st.sampled_from([*CATEGORIES, "finance", ""])),
    risk_level=st.one_of(st.none(), st.sampled_from([*RISK_LEVELS, "extreme"])),
    confidence=st.floats(0, 1), category_confidence=st.one_of(st.none(), st.floats(0, 1)),
    risk_confidence=st.one_of(st.none(), st.floats(0, 1)))


@EXAMPLES
@given(verdicts=st.lists(verdict, min_size=1, max_size=4),
       correction=st.one_of(st.none(), st.fixed_dictionaries({
           "category": st.one_of(st.none(), st.sampled_from(CATEGORIES)),
           "risk_level": st.one_of(st.none(), st.sampled_from(RISK_LEVELS))})))
def test_corrections_win_and_only_the_taxonomy_is_stored(verdicts, correction):
    v = Verdicts(["e"])
    for i, c in enumerate(verdicts):
        v.add_classification(f"c{i}", c)
    if correction is not None:
        v.apply_corrections({"e": {**correction, "notes": "", "corrections": 1}})
    row = v.insights["e"]
    assert row["category"] is None or row["category"] in CATEGORIES
    assert row["risk_level"] is None or row["risk_level"] in RISK_LEVELS
    valid_categories = [c.category for c in verdicts if c.category in CATEGORIES]
    valid_risks = [c.risk_level for c in verdicts if c.risk_level in RISK_LEVELS]
    expected_category = valid_categories[-1] if valid_categories else None
    expected_risk = valid_risks[-1] if valid_risks else None
    lowest = [min([c.confidence, *(x for x in (c.category_confidence, c.risk_confidence)
                                   if x is not None)]) for c in verdicts]
    if correction is not None:
        expected_category = correction["category"] or expected_category
        expected_risk = correction["risk_level"] or expected_risk
        assert row["review_required"] is False
        assert row["ai_insights"]["correction"]["category"] == correction["category"]
    else:
        assert row["review_required"] == any(x < REVIEW_BELOW for x in lowest)
    assert (row["category"], row["risk_level"]) == (expected_category, expected_risk)
    # every verdict is logged, with its lowest confidence
    assert [p["confidence"] for p in v.predictions] == lowest
    assert all(p["kind"] == "classification" for p in v.predictions)
