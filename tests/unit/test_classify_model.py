"""The classification models as arrays: predictions equal scikit-learn's, artifacts load
without pickles and refuse damage, training refuses labels it cannot learn from with a clear
message, and the keyword rules label what they should."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

from trailseal.types import CATEGORIES, RISK_LEVELS, Event
from trailseal_plugins.classify import training
from trailseal_plugins.classify.baseline import read_rows
from trailseal_plugins.classify.features import content_key, inputs, text_of
from trailseal_plugins.classify.model import ClassifierModel
from trailseal_plugins.classify.weak import rule_labels

TYPES = ["user.login", "user.logout", "invoice.created", "payment.refunded", "role.granted",
         "export.downloaded", "settings.changed", "customer.viewed", "iam.AttachUserPolicy",
         "s3.GetObject", "user.login_failed", "webhook.updated", "mfa.disabled"]


def events(n: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = rng.choice(TYPES)
        out.append(Event(
            id=str(i), tenant_id="t", seq=i + 1,
            occurred_at=f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
            event_type=t, actor_id="a", actor_type=rng.choice(["user", "service"]),
            actor_role=rng.choice(["admin", "analyst", None]), actor_department=None,
            entity_type=t.split(".")[0], entity_id="x",
            severity=rng.choice(["low", "medium", "high"]), source="app", tags=(),
            action_details={"amount": rng.randint(1, 20000)} if "pay" in t else None))
    return out


def labelled(n: int, seed: int = 1):
    evs = events(n, seed)
    labels = [rule_labels(e) for e in evs]
    return evs, [c for c, _ in labels], [r for _, r in labels]


def test_predictions_equal_scikit_learn(monkeypatch):
    fitted = {}
    for cls in (RandomForestClassifier, GradientBoostingClassifier):
        original = cls.fit

        def spy(self, X, y, sample_weight=None, _original=original):
            fitted[type(self).__name__] = (self, X)
            return _original(self, X, y, sample_weight=sample_weight)
        monkeypatch.setattr(cls, "fit", spy)
    evs, cats, risks = labelled(800)
    model, _ = training.fit(evs, cats, risks, holdout=False)
    forest, X = fitted["RandomForestClassifier"]
    boosting, _ = fitted["GradientBoostingClassifier"]
    np.testing.assert_allclose(model.category_proba(X), forest.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(model.risk_proba(X), boosting.predict_proba(X), atol=1e-9)
    texts, numbers = inputs(evs)
    assert np.array_equal(model.matrix(texts, numbers), X)


def test_two_risk_classes_use_the_sigmoid():
    evs, cats, _ = labelled(300)
    risks = ["low" if i % 3 else "high" for i in range(len(evs))]
    model, _ = training.fit(evs, cats, risks, holdout=False)
    assert len(model.risk_init) == 1
    texts, numbers = inputs(evs[:50])
    p = model.risk_proba(model.matrix(texts, numbers))
    assert p.shape == (50, 2) and np.allclose(p.sum(axis=1), 1.0)


def test_artifact_round_trip_and_damage():
    evs, cats, risks = labelled(400)
    model, metrics = training.fit(evs, cats, risks)
    assert set(metrics) >= {"category", "risk", "events", "terms"}
    assert 0.0 <= metrics["category"]["macro_f1"] <= 1.0
    assert set(metrics["category"]["per_class"]) <= set(CATEGORIES)
    blob = model.to_bytes()
    loaded = ClassifierModel.from_bytes(blob)
    texts, numbers = inputs(evs)
    for a, b in zip(model.predict(texts, numbers), loaded.predict(texts, numbers), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="not a classifier artifact"):
        ClassifierModel.from_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError):
        ClassifierModel.from_bytes(b"\x00" * 100)
    # a tree pointing outside itself is refused, not followed
    model.category_trees.left[model.category_trees.roots[0]] = 10**8
    with pytest.raises(ValueError, match="outside"):
        ClassifierModel.from_bytes(model.to_bytes())


@pytest.mark.parametrize(("case", "message"), [
    ("none", "no labelled events"),
    ("one", "only 1 labelled event"),
    ("single class", "hold a single class"),
])
def test_training_refuses_labels_it_cannot_learn_from(case, message):
    evs, cats, risks = labelled(50)
    if case == "none":
        cats = [None] * len(evs)
    elif case == "one":
        evs, cats, risks = evs[:1], cats[:1], risks[:1]
    else:
        cats = ["authentication"] * len(evs)
    with pytest.raises(ValueError, match=message):
        training.fit(evs, cats, risks)


def test_keyword_rules():
    def labels(event_type, **kw):
        e = events(1)[0]
        return rule_labels(Event(**{**e.__dict__, "event_type": event_type, **kw}))
    assert labels("user.login", severity="low") == ("authentication", "low")
    assert labels("iam.AttachUserPolicy",
                  action_details={"policy": "AdministratorAccess"})[1] == "critical"
    assert labels("cloudtrail.StopLogging")[0] == "security"
    assert labels("cloudtrail.StopLogging")[1] == "critical"
    assert labels("payment.refunded", severity="low")[0] == "financial"
    assert labels("s3.GetObject", severity="low") == ("data_access", "low")
    assert labels("frobnicate.widget", entity_type="gizmo")[0] is None
    assert all(r in RISK_LEVELS for _, r in (labels(t) for t in TYPES))


def test_content_key_covers_what_the_models_read():
    e = events(1)[0]
    same = Event(**{**e.__dict__, "id": "other", "seq": 99, "actor_id": "someone-else"})
    assert content_key(same) == content_key(e)  # nothing the models read differs
    for change in ({"event_type": "user.logout"}, {"severity": "critical"},
                   {"action_details": {"records": 5000}}, {"actor_role": "owner"}):
        assert content_key(Event(**{**e.__dict__, **change})) != content_key(e)
    assert "actor_type=" in text_of(e)


def test_the_baseline_data_loads_and_covers_the_taxonomy():
    evs, cats, risks = read_rows()
    assert len(evs) > 1000
    assert set(cats) == set(CATEGORIES)
    assert set(risks) == set(RISK_LEVELS)


def test_loading_the_plugins_leaves_scikit_learn_unimported():
    """scikit-learn and SciPy (about 85 MB) load when a model is first applied or trained,
    not with the plugins: a web process that never classifies never holds them."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from trailseal.plugins import make_plugin_manager\n"
            "pm = make_plugin_manager()\n"
            "assert pm.list_name_plugin(), 'no plugin loaded'\n"
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]", out
