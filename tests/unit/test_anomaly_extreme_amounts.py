"""An amount far outside its event type's norm: the amount feature does not call a type with
few amounts extreme, the forest's path is shortened for an extreme amount and the
explanation credits exactly that to ``amount_deviation``, and the demo's oversized refunds
are alerted on demo dates where the trees alone scored them under the threshold."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.services.settings import DEFAULT_ANOMALY_THRESHOLD
from trailseal.types import Event
from trailseal_plugins.anomaly.explain import explain_event
from trailseal_plugins.anomaly.features import INDEX, N_FEATURES, amount_spread, featurize
from trailseal_plugins.anomaly.forest import (
    EXTREME_CAP,
    EXTREME_FROM,
    EXTREME_STEP,
    extreme_shortening,
    train_forest,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import eval_demo  # noqa: E402

EXAMPLES = settings(max_examples=100, deadline=None)
AMOUNT = INDEX["amount_deviation"]
RNG = np.random.default_rng(11)
TRAIN = np.abs(RNG.normal(size=(800, N_FEATURES)))
FOREST = train_forest(TRAIN, n_trees=30, seed=2)


def _event(seq: int, amount: float, day: int = 0, actor: str = "agent@x") -> Event:
    ts = datetime(2026, 3, 2, 10, tzinfo=UTC) + timedelta(days=day, minutes=seq)
    return Event(id=f"e{seq}", tenant_id="t", seq=seq, occurred_at=ts.isoformat(),
                 event_type="payment.refunded", actor_id=actor, actor_type="user",
                 actor_role=None, actor_department=None, entity_type="payment",
                 entity_id=f"p{seq}", severity="info", source=None, tags=(),
                 ip_address=None, user_agent=None, action_details={"amount": amount})


@EXAMPLES
@given(st.floats(-20, 20, allow_nan=False), st.floats(-20, 20, allow_nan=False))
def test_shortening_is_zero_up_to_the_line_then_grows_and_is_capped(a, b):
    X = np.zeros((2, N_FEATURES))
    X[:, AMOUNT] = sorted((a, b))
    low, high = extreme_shortening(X)
    assert 0 <= low <= high <= EXTREME_CAP  # never negative, never falls as the amount rises
    dev = X[1, AMOUNT]
    if dev <= EXTREME_FROM:
        assert high == 0
    else:
        assert high == pytest.approx(min(EXTREME_CAP, EXTREME_STEP * (dev - EXTREME_FROM)))


@EXAMPLES
@given(st.lists(st.floats(0, 12, allow_nan=False), min_size=1, max_size=8), st.data())
def test_extreme_amount_shortens_paths_and_shap_still_adds_up(devs, data):
    rows = data.draw(st.lists(st.lists(st.floats(0, 3, allow_nan=False), min_size=N_FEATURES,
                                       max_size=N_FEATURES),
                              min_size=len(devs), max_size=len(devs)))
    X = np.array(rows, dtype=np.float64)
    X[:, AMOUNT] = devs
    raw = FOREST._tree_paths(X.astype(np.float32))
    h = FOREST.path_lengths(X)
    cut = extreme_shortening(X)
    # every tree: shortened by the term, never below 1 (nor raised)
    assert np.allclose(h, np.maximum(raw - cut, np.minimum(raw, 1.0)))
    scores, _ = FOREST.score(X, 0.5)
    assert ((scores > 0) & (scores < 1)).all()
    # exactness: the contributions add up to the average path minus the event's mean path
    phi = FOREST.explain(X)
    expected = float(np.ravel(FOREST._explainer.expected_value)[0])
    assert np.allclose(phi.sum(axis=1), expected - h.mean(axis=0), atol=1e-6)
    # and what the term took off is credited to amount_deviation alone
    trees_only = -np.asarray(FOREST._explainer.shap_values(X.astype(np.float32),
                                                            check_additivity=False))
    added = phi - trees_only
    others = np.arange(N_FEATURES) != AMOUNT
    assert np.allclose(added[:, others], 0.0)
    assert np.allclose(added[:, AMOUNT], raw.mean(axis=0) - h.mean(axis=0))
    assert (added[:, AMOUNT][cut > 0] > 0).all()


def test_a_type_with_few_amounts_does_not_make_the_next_one_extreme():
    # four refunds of nearly one size, then one about 6× larger: unusual, not extreme
    events = [_event(i + 1, a) for i, a in enumerate((100, 104, 98, 101, 600))]
    X, _ = featurize(events)
    assert 0 < X[-1, AMOUNT] < EXTREME_FROM
    # with the raw spread of the four it would have been far beyond the line
    logs = np.log10(1 + np.array([100, 104, 98, 101]))
    raw = (np.log10(601) - logs.mean()) / max(logs.std(ddof=1), 0.1)
    assert raw > EXTREME_FROM


def test_many_amounts_keep_their_own_spread():
    assert amount_spread(1000, 0.4 ** 2 * 999) == pytest.approx(0.4, rel=0.01)
    assert amount_spread(3, 0.0) > 0.2  # a prior spread while the type shows none


def test_an_extreme_refund_is_flagged_and_explained_by_its_amount():
    rng = np.random.default_rng(4)
    amounts = 10 ** rng.normal(1.8, 0.3, size=1500)
    events = [_event(i + 1, float(a), day=i // 60, actor=f"agent{i % 7}@x")
              for i, a in enumerate(amounts)]
    events.append(_event(len(events) + 1, 9000.0, day=25, actor="agent3@x"))
    X, _ = featurize(events)
    assert X[-1, AMOUNT] > EXTREME_FROM + 2
    forest = train_forest(X, seed=1)
    scores, _ = forest.score(X, DEFAULT_ANOMALY_THRESHOLD)
    assert scores[-1] >= DEFAULT_ANOMALY_THRESHOLD
    assert scores[-1] == scores.max()
    phi = forest.explain(X[-1:])[0]
    assert int(np.argmax(phi)) == AMOUNT
    explanation = explain_event(events[-1], X[-1], phi, float(scores[-1]),
                                DEFAULT_ANOMALY_THRESHOLD)
    assert explanation["contributions"][0]["feature"] == "amount_deviation"
    assert "standard deviations above the usual for payment.refunded" in explanation["summary"]


@pytest.mark.parametrize("end", ["2025-12-29", "2026-09-14"])
def test_demo_refunds_alerted_on_dates_the_trees_alone_missed(end):
    result = eval_demo.evaluate("acme", 28, DEFAULT_ANOMALY_THRESHOLD,
                                datetime.fromisoformat(end).replace(tzinfo=UTC))
    assert result["all_incidents_alerted"], result["incidents"]
    assert result["false_alerts_per_week"] <= 5
