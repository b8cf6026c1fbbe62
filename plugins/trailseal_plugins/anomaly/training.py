"""Training a tenant's own forest on its last 30 days, with the analysts' feedback.

- The window's events are described as they were when scored: the feature rows logged in
  ``ai_predictions`` (in seq order, each against the history before it). When the window
  was not scored (a first model, an import), it is replayed in seq order through a fresh
  profile warmed up on the ``WARMUP_DAYS`` before it.
- Feedback: events whose alert an analyst confirmed are left out (an attack is not
  "normal"); events marked false positive are added again, as the features they were scored
  with, until each pattern makes up ``FP_SHARE`` of the training set, so that the forest can
  no longer isolate it and the pattern stops alerting.
- Where events carry categories (from classifiers), the set is balanced across them: no
  category contributes more than an equal share (``balanced_indices``).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import text

from .features import (
    FEATURE_NAMES,
    FEATURE_SET,
    FEATURE_SET_KEY,
    Profile,
    featurize,
    from_logged,
    parse_time,
)
from .forest import ARTIFACT_FORMAT, train_forest

WINDOW_DAYS = 30
WARMUP_DAYS = 14  # history replayed before the window when its features were not logged
TRAIN_MAX = 50_000  # rows fitted at most (each tree sees 256 of them anyway)
FP_SHARE = 0.03  # share of the training set each false-positive pattern is given
FP_MAX_SHARE = 0.3  # all false-positive patterns together
MIN_EVENTS = 2
SEED = 7


def balanced_indices(labels: list[str | None], limit: int, seed: int = SEED) -> np.ndarray:
    """Indices of a training set of at most ``limit`` rows balanced across ``labels``
    (None is a group of its own): every group gets an equal share
    ``ceil(limit / groups)``; a smaller group gives all it has and leaves its unused share
    to the others, repeatedly, so no group exceeds any other's count unless that other ran
    out. With one group this is a plain random sample."""
    rng = np.random.default_rng(seed)
    groups: dict[str | None, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    remaining = {k: len(v) for k, v in groups.items()}
    take = dict.fromkeys(groups, 0)
    budget = min(limit, len(labels))
    open_groups = [k for k in groups if remaining[k] > 0]
    while budget > 0 and open_groups:
        share = max(1, budget // len(open_groups))
        for k in list(open_groups):
            n = min(share, remaining[k], budget)
            take[k] += n
            remaining[k] -= n
            budget -= n
            if remaining[k] == 0:
                open_groups.remove(k)
            if budget == 0:
                break
    chosen = []
    for k, idx in groups.items():
        if take[k]:
            chosen.extend(rng.choice(idx, size=take[k], replace=False).tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def _feedback(conn, model_names: tuple[str, ...] = ("isolation_forest",)
              ) -> tuple[list[np.ndarray], set[str]]:
    """(feature rows of false-positive events, oldest verdict first; ids of confirmed
    events): the latest verdict per alert counts."""
    rows = conn.execute(text(
        "SELECT * FROM (SELECT DISTINCT ON (alert_id) alert_id, event_id, is_false_positive, "
        "given_at FROM anomaly_feedback ORDER BY alert_id, given_at DESC, id DESC) v "
        "ORDER BY given_at")).all()
    fp_events = [str(r.event_id) for r in rows if r.is_false_positive and r.event_id]
    confirmed = {str(r.event_id) for r in rows if not r.is_false_positive and r.event_id}
    patterns = []
    if fp_events:
        found = dict(conn.execute(text(
            "SELECT DISTINCT ON (event_id) event_id, features FROM ai_predictions "
            "WHERE producer = ANY(:p) AND event_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY event_id, created_at DESC, id DESC"),
            {"p": list(model_names), "ids": fp_events}).all())
        for event_id in fp_events:
            row = from_logged(found.get(uuid.UUID(event_id)))
            if row is not None:
                patterns.append(row)
    return patterns, confirmed


def _categories(conn, start: datetime, end: datetime) -> dict[str, str]:
    rows = conn.execute(text(
        "SELECT a.id, i.category FROM audit_logs a JOIN event_insights i "
        "ON i.tenant_id = a.tenant_id AND i.event_id = a.id "
        "WHERE a.occurred_at >= :s AND a.occurred_at < :e AND i.category IS NOT NULL"),
        {"s": start, "e": end}).all()
    return {str(r[0]): r[1] for r in rows}


def _logged_rows(conn, start: datetime, end: datetime,
                 producer: str = "isolation_forest") -> dict[str, np.ndarray] | None:
    """The feature rows logged when the window's events were scored (as they were
    described then, in seq order), or None when fewer than 95 % of them have one of the
    current features."""
    events = conn.execute(text("SELECT count(*) FROM audit_logs WHERE occurred_at >= :s "
                               "AND occurred_at < :e"), {"s": start, "e": end}).scalar()
    if not events:
        return None
    rows = conn.execute(text(
        "SELECT DISTINCT ON (p.event_id) p.event_id, p.features FROM ai_predictions p "
        "JOIN audit_logs a ON a.tenant_id = p.tenant_id AND a.id = p.event_id "
        "WHERE p.producer = :p AND a.occurred_at >= :s AND a.occurred_at < :e "
        "ORDER BY p.event_id, p.created_at, p.id"), {"p": producer, "s": start, "e": end})
    found = {}
    for event_id, feats in rows:
        row = from_logged(feats)
        if row is not None:
            found[str(event_id)] = row
    return found if len(found) >= 0.95 * events else None


class _Reservoir:
    """A uniform sample of at most ``size`` items of a stream (Algorithm R)."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size, self.rng, self.seen, self.items = size, rng, 0, []

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            j = int(self.rng.integers(0, self.seen))
            if j < self.size:
                self.items[j] = item


def training_set(svc, tenant_id: str, start: datetime, end: datetime
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """The feature rows to fit and what went into them (see the module docstring). Memory
    stays bounded: each category keeps a uniform sample of at most ``TRAIN_MAX`` rows."""
    tid = uuid.UUID(str(tenant_id))
    with svc.db.transaction(tid) as conn:
        patterns, confirmed = _feedback(conn)
        categories = _categories(conn, start, end)
        logged = _logged_rows(conn, start, end)
    rng = np.random.default_rng(SEED)
    samples: dict[str | None, _Reservoir] = {}
    counts = {"window_events": 0, "confirmed_left_out": 0}

    def take(event_id: str, x: np.ndarray) -> None:
        counts["window_events"] += 1
        if event_id in confirmed:
            counts["confirmed_left_out"] += 1
            return
        label = categories.get(event_id)
        if label not in samples:
            samples[label] = _Reservoir(TRAIN_MAX, rng)
        samples[label].add(x)

    if logged is not None:
        source = "features logged when scored"
        for event_id, x in logged.items():
            take(event_id, x)
    else:  # replay: each event described against the history before it
        source = f"replayed with {WARMUP_DAYS} days of history before the window"
        from .detector import zone_of

        profile = Profile(zone_of(svc, tenant_id))
        since = start.timestamp()
        for batch in svc.iter_events(tid, start=start - timedelta(days=WARMUP_DAYS), end=end,
                                     batch=5000):
            X, profile = featurize(batch, profile)
            for e, x in zip(batch, X, strict=True):
                if parse_time(e.occurred_at) >= since:
                    take(e.id, x)
    info: dict[str, Any] = {**counts, "features": source,
                            "false_positive_patterns": len(patterns)}
    labels = [label for label, r in samples.items() for _ in r.items]
    rows = [x for r in samples.values() for x in r.items]
    if len(samples) > 1:
        picked = balanced_indices(labels, TRAIN_MAX)
        info["balanced_categories"] = {str(k): int(sum(1 for j in picked if labels[j] == k))
                                       for k in sorted(samples, key=str)}
    else:
        picked = np.arange(len(rows))
    X = np.array([rows[j] for j in picked]).reshape(-1, len(FEATURE_NAMES))
    if patterns and len(X):
        # the most recent patterns, as many as fit in FP_MAX_SHARE with one copy each
        patterns = patterns[-max(1, int(FP_MAX_SHARE * len(X))):]
        copies = max(1, int(round(FP_SHARE * len(X))))
        copies = min(copies, max(1, int(FP_MAX_SHARE * len(X) / len(patterns))))
        X = np.vstack([X] + [np.tile(p, (copies, 1)) for p in patterns])
        info["false_positive_copies_each"] = copies
    info["training_rows"] = int(len(X))
    return X, info


def train_tenant(svc, tenant_id: str, *, created_by: str, days: int = WINDOW_DAYS,
                 end: datetime | None = None) -> dict[str, Any]:
    """Train and activate a new model of the tenant on its last ``days`` days; its registry
    summary plus ``seconds``. Raises ``ValueError`` (nothing saved, the previous model stays
    active) when the window holds fewer than ``MIN_EVENTS`` events."""
    from .detector import MODEL_TYPE, THRESHOLD_KEY

    started = time.perf_counter()
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    X, info = training_set(svc, tenant_id, start, end)
    if len(X) < MIN_EVENTS:
        raise ValueError(f"the last {days} days hold {info['window_events']} events usable for "
                         f"training; at least {MIN_EVENTS} are needed (the previous model stays "
                         "active)")
    forest = train_forest(X, seed=SEED)
    threshold = float(svc.get_setting(uuid.UUID(str(tenant_id)), THRESHOLD_KEY))
    scores, _ = forest.score(X, threshold)
    artifact = forest.to_bytes()
    version = (f"if-{end.strftime('%Y%m%d%H%M%S')}-"
               f"{hashlib.sha256(artifact).hexdigest()[:8]}")
    metrics = {
        **info,
        "score_p50": round(float(np.percentile(scores, 50)), 4),
        "score_p90": round(float(np.percentile(scores, 90)), 4),
        "score_p99": round(float(np.percentile(scores, 99)), 4),
        "training_flag_rate": round(float((scores >= threshold).mean()), 5),
        "threshold": threshold,
        "training_seconds": round(time.perf_counter() - started, 3),
    }
    summary = svc.save_model(
        tenant_id, model_type=MODEL_TYPE, version=version, artifact=artifact,
        artifact_format=ARTIFACT_FORMAT, features=list(FEATURE_NAMES),
        training_events=len(X), created_by=created_by, metrics=metrics,
        params={"n_trees": forest.n_trees, "max_samples": forest.max_samples, "seed": SEED,
                FEATURE_SET_KEY: FEATURE_SET},
        trained_from=start, trained_to=end)
    summary["seconds"] = metrics["training_seconds"]
    return summary
