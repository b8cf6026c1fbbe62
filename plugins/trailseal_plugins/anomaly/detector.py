"""The Isolation Forest detector (``register_detectors``): scores events with the tenant's
own model when the tenant has more than ``OWN_MODEL_AFTER`` events, else with the shared
baseline, against the tenant's incremental profile.

- **Profile.** Scoring a range locks the tenant's profile row (``detector_profiles``) for
  the few milliseconds it takes to describe the range and fold it in. Events the profile
  has not seen before the range are folded in first, in chunks, each saved in a short
  transaction of its own (a large backlog makes progress even if a job is stopped).
- **Scoring again** (an event the profile already holds: ``trailseal detect --rescore``, a
  repeated enrichment job, a range enriched after a later one) reuses the features logged
  when the event was first scored (``ai_predictions``), so an event keeps its description
  and only the model or threshold can change its verdict. An event never scored before but
  already folded in is described against the profile with its own contribution left out.
- **Models.** A tenant past the line without a model of its own gets one trained before its
  range is scored, outside the profile lock; a failed training is not retried for an hour.
  A model that cannot be loaded (damaged artifact) is logged and the baseline is used.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from trailseal.types import Event, Finding

from ..common import UsesServices
from .baseline import baseline_forest
from .explain import alert_severity, explain_event
from .features import (
    FEATURE_NAMES,
    FEATURE_SET,
    FEATURE_SET_KEY,
    Profile,
    as_dict,
    featurize,
    from_logged,
)
from .forest import Forest

log = logging.getLogger(__name__)

NAME = "isolation_forest"
MODEL_TYPE = "anomaly.isolation_forest"
OWN_MODEL_AFTER = 1000  # a tenant with more events than this gets its own model
THRESHOLD_KEY = "anomaly.threshold"
CATCH_UP_CHUNK = 20_000  # events folded per short transaction when catching up
TRAIN_BACKOFF = 3600  # seconds before a failed first training is tried again
_FORESTS_KEPT = 32
_forests: OrderedDict[tuple[str, str], Forest] = OrderedDict()  # (tenant, version) -> forest


def uses_own_model(event_count: int) -> bool:
    """Whether a tenant with ``event_count`` events is scored by a model of its own."""
    return event_count > OWN_MODEL_AFTER


def load_tenant_forest(svc, tenant_id: str) -> tuple[Forest, str] | None:
    """The tenant's active forest and its version, or None when it has none (or it cannot
    be loaded: logged, and the caller falls back to the baseline). Artifacts come from the
    database only, as arrays (never unpickled); loaded ones are kept per version."""
    try:
        model = svc.active_model(tenant_id, MODEL_TYPE)
    except Exception:  # noqa: BLE001 - a damaged artifact must not stop enrichment
        log.exception("tenant %s: the active anomaly model cannot be read; using the baseline",
                      tenant_id)
        return None
    if model is None:
        return None
    params = model.get("params") or {}
    if (list(model["features"]) != list(FEATURE_NAMES)
            or params.get(FEATURE_SET_KEY) != FEATURE_SET):
        log.warning("tenant %s: model %s has another feature list or feature set; using the "
                    "baseline until it is retrained", tenant_id, model["version"])
        return None
    key = (str(tenant_id), model["version"])
    forest = _forests.get(key)
    if forest is None:
        try:
            forest = Forest.from_bytes(model["artifact"])
        except ValueError:
            log.exception("tenant %s: model %s does not load; using the baseline", tenant_id,
                          model["version"])
            return None
        _forests[key] = forest
        while len(_forests) > _FORESTS_KEPT:
            _forests.popitem(last=False)
    else:
        _forests.move_to_end(key)
    return forest, model["version"]


def ensure_tenant_model(svc, tenant_id: str, event_count: int) -> None:
    """Train the tenant's first model when it is past the line and has none (outside any
    lock; a failure is logged and not retried for ``TRAIN_BACKOFF`` seconds)."""
    if not uses_own_model(event_count) or load_tenant_forest(svc, tenant_id) is not None:
        return
    backoff = f"trailseal:anomaly:first-training-failed:{tenant_id}"
    try:
        if svc.redis.exists(backoff):
            return
    except Exception:  # noqa: BLE001 - no Redis: just try
        pass
    from .training import train_tenant

    try:
        train_tenant(svc, tenant_id, created_by="detector (first model)")
    except ValueError as exc:
        log.warning("tenant %s: could not train a first model: %s", tenant_id, exc)
        try:
            svc.redis.set(backoff, str(exc)[:500], ex=TRAIN_BACKOFF)
        except Exception:  # noqa: BLE001
            pass


def choose_forest(svc, tenant_id: str, event_count: int) -> tuple[Forest, str, str]:
    """(forest, model version, "tenant" or "baseline") for a tenant with ``event_count``
    events."""
    if uses_own_model(event_count):
        found = load_tenant_forest(svc, tenant_id)
        if found is not None:
            return found[0], found[1], "tenant"
    forest, version = baseline_forest()
    return forest, version, "baseline"


def _locked_profile(conn, tenant_id: str, zone: str) -> Profile:
    conn.execute(text("INSERT INTO detector_profiles (tenant_id, detector, through_seq, state) "
                      "VALUES (:t, :d, 0, :s) ON CONFLICT DO NOTHING"),
                 {"t": tenant_id, "d": NAME, "s": Profile().to_bytes()})
    row = conn.execute(text("SELECT state FROM detector_profiles WHERE detector = :d "
                            "FOR UPDATE"), {"d": NAME}).one()
    try:
        profile = Profile.from_bytes(bytes(row[0]))
    except Exception:  # noqa: BLE001 - an older version or damaged state: start again
        log.warning("tenant %s: the behaviour profile cannot be read; rebuilding it", tenant_id)
        profile = Profile()
    profile.zone = zone  # hours in the tenant's time zone
    return profile


def zone_of(svc, tenant_id: str) -> str:
    """The tenant's time zone (its ``timezone`` setting, UTC by default), by IANA name."""
    return svc.tenant_zone(tenant_id)


def _save_profile(conn, profile: Profile) -> None:
    conn.execute(text("UPDATE detector_profiles SET state = :s, through_seq = :q, "
                      "updated_at = now() WHERE detector = :d"),
                 {"s": profile.to_bytes(), "q": profile.through_seq, "d": NAME})


def catch_up(svc, tenant_id: str, before_seq: int) -> int:
    """Fold the events the profile has not seen, up to ``before_seq - 1``, in chunks of
    ``CATCH_UP_CHUNK``, each saved in a short transaction of its own; how many."""
    tid = uuid.UUID(str(tenant_id))
    folded = 0
    zone = zone_of(svc, tenant_id)
    while True:
        with svc.db.transaction(tid) as conn:
            profile = _locked_profile(conn, tenant_id, zone)
            if profile.through_seq >= before_seq - 1:
                return folded
            last = min(before_seq - 1, profile.through_seq + CATCH_UP_CHUNK)
            for batch in svc.iter_events(tid, after_seq=profile.through_seq, last_seq=last,
                                         batch=5000):
                featurize(batch, profile)  # only the history matters here
                folded += len(batch)
            profile.through_seq = max(profile.through_seq, last)
            _save_profile(conn, profile)


def logged_features(svc, tenant_id: str, event_ids: list[str]) -> dict[str, np.ndarray]:
    """The feature rows this detector logged when it first scored these events."""
    if not event_ids:
        return {}
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        rows = conn.execute(text(
            "SELECT DISTINCT ON (event_id) event_id, features FROM ai_predictions "
            "WHERE producer = :p AND event_id = ANY(CAST(:ids AS uuid[])) "
            "ORDER BY event_id, created_at, id"), {"p": NAME, "ids": event_ids}).all()
    found = {}
    for event_id, feats in rows:
        row = from_logged(feats)
        if row is not None:
            found[str(event_id)] = row
    return found


class IsolationForestDetector(UsesServices):
    """``trailseal.types.Detector`` for one tenant."""

    name = NAME

    def __init__(self, tenant_id: str, svc=None):
        super().__init__(tenant_id, svc)
        self.last_run: dict[str, Any] = {}

    def score(self, events: Sequence[Event]) -> list[Finding]:
        events = sorted(events, key=lambda e: e.seq)
        if not events:
            return []
        svc = self.svc
        tid = uuid.UUID(self.tenant_id)
        threshold = float(svc.get_setting(tid, THRESHOLD_KEY))
        caught_up = catch_up(svc, self.tenant_id, events[0].seq)
        zone = zone_of(svc, self.tenant_id)
        with svc.db.transaction(tid) as conn:
            profile = _locked_profile(conn, self.tenant_id, zone)
            known = [e.id for e in events if e.seq <= profile.through_seq]
            logged = logged_features(svc, self.tenant_id, known)
            X, profile = featurize(events, profile)
            zone = profile.zone
            for i, e in enumerate(events):
                row = logged.get(e.id)
                if row is not None:
                    X[i] = row
            _save_profile(conn, profile)
            total = profile.total
        ensure_tenant_model(svc, self.tenant_id, total)
        forest, version, scope = choose_forest(svc, self.tenant_id, total)
        scores, confidence = forest.score(X, threshold)
        flagged = np.flatnonzero(scores >= threshold)
        contributions = forest.explain(X[flagged]) if len(flagged) else None
        explanations = {}
        for k, i in enumerate(flagged):
            explanations[int(i)] = explain_event(events[i], X[i], contributions[k],
                                                 float(scores[i]), threshold, zone)
        findings = []
        for i, e in enumerate(events):
            s = float(scores[i])
            is_anomaly = s >= threshold
            explanation = explanations.get(i, {})
            explanation["model_scope"] = scope
            findings.append(Finding(
                event_id=e.id, score=round(s, 6), is_anomaly=is_anomaly,
                explanation=explanation, model_version=version,
                confidence=round(float(confidence[i]), 4), features=as_dict(X[i]),
                severity=alert_severity(s, threshold) if is_anomaly else None))
        self.last_run = {"events": len(events), "flagged": int(len(flagged)),
                         "model_version": version, "model_scope": scope,
                         "threshold": threshold, "folded_before": caught_up}
        return findings


def score_stored(svc, tenant_id: str, forest: Forest, threshold: float, *,
                 batch: int = 5000):
    """Score every stored event of a tenant in seq order without writing anything (the
    what-if of ``trailseal detect --preview``): yields ``(events, X, scores, confidence)``
    per batch. Each event is described against a fresh profile of the events before it,
    as it was when first scored. Reading and decrypting run one batch ahead in a thread and
    the forest scores in another, so the profile walk, the only part that must go in order,
    sets the pace."""
    from concurrent.futures import ThreadPoolExecutor

    tid = uuid.UUID(str(tenant_id))
    batches = svc.iter_events(tid, batch=batch)
    profile = Profile(zone_of(svc, tenant_id))
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="trailseal-score") as pool:
        reading = pool.submit(next, batches, None)
        pending = None
        while True:
            events = reading.result()
            if events is None:
                break
            reading = pool.submit(next, batches, None)
            X, profile = featurize(events, profile)
            if pending is not None:
                yield pending[0], pending[1], *pending[2].result()
            pending = (events, X, pool.submit(forest.score, X, threshold))
        if pending is not None:
            yield pending[0], pending[1], *pending[2].result()
