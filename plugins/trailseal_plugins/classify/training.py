"""Training the classification models of a tenant.

Labels: analysts' corrections first (they win), then the keyword rules' weak labels (an
event the category rules say nothing about has no category label). Each class is kept to
at most ``PER_CLASS`` events (a reservoir sample over the window), and the models weigh
classes equally, so a frequent category does not drown a rare one. A fifth of the labelled
events (stratified) is held out to measure accuracy, macro-F1 and per-class figures, which
are stored with the model in ``audit_ml_models``.

Training fails with a clear ``ValueError`` (and the previous model stays active) when there
are no labels, too few events, or fewer than two classes to tell apart.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_sample_weight

from trailseal.types import Event

from .features import NUMERIC, inputs
from .model import (
    ARTIFACT_FORMAT,
    MODEL_TYPE,
    NGRAMS,
    TOKEN_PATTERN,
    ClassifierModel,
    Trees,
    Vectorizer,
)
from .weak import rule_labels

WINDOW_DAYS = 365
PER_CLASS = 3000  # events kept per category label
MIN_EVENTS = 10  # labelled events needed to train at all
MAX_TERMS = 1500  # TF-IDF vocabulary
SEED = 20261127
FOREST = {"n_estimators": 60, "max_features": 0.2, "min_samples_leaf": 1,
          "class_weight": "balanced_subsample"}
BOOSTING = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.15, "subsample": 0.8,
            "max_features": "sqrt"}


class Labelled:
    """Labelled events: texts, numbers and labels, at most ``PER_CLASS`` per category
    (reservoir sampling, so memory stays bounded whatever the window)."""

    def __init__(self, per_class: int = PER_CLASS, seed: int = SEED):
        self.per_class = per_class
        self.rng = random.Random(seed)
        self.seen: Counter[str] = Counter()
        self.kept: dict[str, list[tuple[Event, str, str]]] = {}
        self.corrected = 0

    def add(self, e: Event, category: str | None, risk: str, corrected: bool = False) -> None:
        key = category or "-"  # events without a category label still teach the risk
        self.seen[key] += 1
        self.corrected += corrected
        bucket = self.kept.setdefault(key, [])
        item = (e, category, risk)
        if corrected:  # analysts' labels are always kept
            bucket.append(item)
        elif len(bucket) < self.per_class:
            bucket.append(item)
        else:
            j = self.rng.randrange(self.seen[key])
            if j < self.per_class:
                bucket[j] = item

    def rows(self) -> tuple[list[Event], list[str | None], list[str]]:
        items = [item for key in sorted(self.kept) for item in self.kept[key]]
        return [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]


def label(e: Event, correction: dict | None) -> tuple[str | None, str]:
    """An event's training labels: the analyst's where given, the rules' otherwise."""
    category, risk = rule_labels(e)
    if correction:
        category = correction.get("category") or category
        risk = correction.get("risk_level") or risk
    return category, risk


def _check_classes(name: str, labels: list[str]) -> None:
    counts = Counter(labels)
    if not labels:
        raise ValueError(f"no labelled events to train the {name} model on (the keyword "
                         "rules recognise none of the events and nobody has corrected any)")
    if len(labels) < MIN_EVENTS:
        raise ValueError(f"only {len(labels)} labelled event(s) for the {name} model; "
                         f"training needs at least {MIN_EVENTS}")
    if len(counts) < 2:
        raise ValueError(f"the {name} labels hold a single class ({next(iter(counts))}); "
                         "training needs at least two to tell apart (correct a few events "
                         "of the missing classes)")


def _metrics(y_true, y_pred, classes) -> dict:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=list(classes),
                                         average="macro", zero_division=0)), 4),
        "per_class": {str(c): {"precision": round(float(p), 4), "recall": round(float(r), 4),
                               "f1": round(float(f), 4), "support": int(s)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support,
                                               strict=True)},
        "test_events": len(y_true),
    }


def _split(n: int, labels: list[str], seed: int):
    index = np.arange(n)
    counts = Counter(labels)
    if n < 20 or min(counts.values()) < 2:
        return index, index[:0]
    return train_test_split(index, test_size=0.2, random_state=seed, stratify=labels)


def fit(events: list[Event], categories: list[str | None], risks: list[str],
        seed: int = SEED, holdout: bool = True) -> tuple[ClassifierModel, dict]:
    """Train both models on labelled events; the model and its metrics (on a stratified
    fifth held out when ``holdout``, else none). ``ValueError`` when the labels cannot
    train a model."""
    with_category = [i for i, c in enumerate(categories) if c is not None]
    _check_classes("category", [categories[i] for i in with_category])
    _check_classes("risk", risks)
    texts, numbers = inputs(events)
    tfidf = TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=NGRAMS, lowercase=False,
                            sublinear_tf=True, max_features=MAX_TERMS, dtype=np.float64)
    tfidf.fit(texts)
    vectorizer = Vectorizer(np.array(tfidf.get_feature_names_out(), dtype=str),
                            tfidf.idf_.copy())
    X = np.hstack([vectorizer.transform(texts).toarray(), numbers])
    metrics: dict = {"events": len(events), "category_events": len(with_category),
                     "features": len(NUMERIC), "terms": vectorizer.size}

    cat_y = np.array([categories[i] for i in with_category])
    train, test = _split(len(with_category), cat_y.tolist(), seed) if holdout else (
        np.arange(len(with_category)), np.arange(0))
    rows = np.array(with_category)
    forest = RandomForestClassifier(random_state=seed, n_jobs=1, **FOREST)
    forest.fit(X[rows[train]], cat_y[train])
    if len(test):
        metrics["category"] = _metrics(cat_y[test], forest.predict(X[rows[test]]),
                                       forest.classes_)
    risk_y = np.array(risks)
    train, test = _split(len(risks), risks, seed) if holdout else (np.arange(len(risks)),
                                                                   np.arange(0))
    if len(set(risk_y[train])) < 2:
        raise ValueError("the risk labels left for training hold a single class")
    boosting = GradientBoostingClassifier(random_state=seed, **BOOSTING)
    boosting.fit(X[train], risk_y[train],
                 sample_weight=compute_sample_weight("balanced", risk_y[train]))
    if len(test):
        metrics["risk"] = _metrics(risk_y[test], boosting.predict(X[test]), boosting.classes_)

    category_trees = Trees.from_sklearn(
        [t.tree_ for t in forest.estimators_],
        [t.tree_.value[:, 0, :] / t.tree_.value[:, 0, :].sum(axis=1, keepdims=True)
         for t in forest.estimators_])
    stages = boosting.estimators_  # (stages, outputs)
    risk_trees = Trees.from_sklearn([t.tree_ for t in stages.ravel()],
                                    [t.tree_.value[:, 0, :] for t in stages.ravel()])
    lr = float(boosting.learning_rate)
    model = ClassifierModel(vectorizer, forest.classes_.astype(str), category_trees,
                            boosting.classes_.astype(str), risk_trees,
                            np.zeros(stages.shape[1]), lr)
    # the initial raw scores: scikit-learn's decision function less the trees' share
    probe = X[: min(len(X), 8)]
    raw = boosting.decision_function(probe).reshape(len(probe), -1)
    trees_part = lr * risk_trees.value[risk_trees.leaves(probe)][..., 0].reshape(
        stages.shape[0], stages.shape[1], -1).sum(axis=0).T
    model.risk_init = (raw - trees_part).mean(axis=0)
    return model, metrics


def train_tenant(svc, tenant_id: str, *, created_by: str, days: int = WINDOW_DAYS,
                 now: datetime | None = None) -> dict:
    """Train and activate a tenant's classification models on the last ``days`` days.
    A summary ``{version, metrics, seconds, ...}``; ``ValueError`` (the previous model
    stays active) when the labels cannot train one."""
    started = time.perf_counter()
    end = now or datetime.now(UTC)
    start = end - timedelta(days=days)
    corrections = svc.corrections(tenant_id)
    labelled = Labelled()
    first = last = None
    total = 0
    for batch in svc.iter_events(tenant_id, start=start, end=end, batch=5000):
        for e in batch:
            fix = corrections.get(e.id)
            category, risk = label(e, fix)
            labelled.add(e, category, risk, corrected=fix is not None)
        total += len(batch)
        first = first or batch[0].occurred_at
        last = batch[-1].occurred_at
    events, categories, risks = labelled.rows()
    model, metrics = fit(events, categories, risks)
    metrics.update({"window_events": total, "corrections_used": labelled.corrected,
                    "category_counts": dict(Counter(c for c in categories if c)),
                    "risk_counts": dict(Counter(risks))})
    artifact = model.to_bytes()
    version = (f"cls-{end:%Y%m%d%H%M%S}-"
               f"{hashlib.sha256(artifact).hexdigest()[:8]}")
    saved = svc.save_model(
        tenant_id, model_type=MODEL_TYPE, version=version, artifact=artifact,
        artifact_format=ARTIFACT_FORMAT, features=[*NUMERIC, f"tfidf:{model.vectorizer.size}"],
        training_events=len(events), created_by=created_by, metrics=metrics,
        params={"forest": FOREST, "boosting": BOOSTING, "per_class": PER_CLASS,
                "window_days": days, "max_terms": MAX_TERMS},
        trained_from=start, trained_to=end)
    from .classifier import remember_active

    remember_active(svc, tenant_id, saved["version"])
    return {"version": saved["version"], "metrics": metrics, "first": first, "last": last,
            "seconds": time.perf_counter() - started}
