"""The Isolation Forest detector (``register_detectors``): scores events with the tenant's
own model when the tenant has more than ``OWN_MODEL_AFTER`` events, else with the shared
baseline, against the tenant's incremental profile.

Scoring a seq range locks the tenant's profile row (``detector_profiles``), so ranges of one
tenant are scored one after another in seq order; a range that starts after events the
profile has not seen first folds those in (reading them in batches).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from trailseal.types import Event, Finding

from .baseline import baseline_forest
from .explain import alert_severity, explain_event
from .features import FEATURE_NAMES, Profile, as_dict, featurize
from .forest import Forest

log = logging.getLogger(__name__)

NAME = "isolation_forest"
MODEL_TYPE = "anomaly.isolation_forest"
OWN_MODEL_AFTER = 1000  # a tenant with more events than this gets its own model
THRESHOLD_KEY = "anomaly.threshold"
_forests: dict[tuple[str, str], Forest] = {}  # (tenant, version) -> loaded artifact


def uses_own_model(event_count: int) -> bool:
    """Whether a tenant with ``event_count`` events is scored by a model of its own."""
    return event_count > OWN_MODEL_AFTER


def load_tenant_forest(svc, tenant_id: str) -> tuple[Forest, str] | None:
    """The tenant's active forest and its version, or None when it has none. Artifacts come
    from the database only, as arrays (never unpickled); loaded ones are kept per version."""
    model = svc.active_model(tenant_id, MODEL_TYPE)
    if model is None:
        return None
    if list(model["features"]) != list(FEATURE_NAMES):
        log.warning("tenant %s: model %s has another feature list; using the baseline until "
                    "it is retrained", tenant_id, model["version"])
        return None
    key = (str(tenant_id), model["version"])
    forest = _forests.get(key)
    if forest is None:
        forest = _forests[key] = Forest.from_bytes(model["artifact"])
    return forest, model["version"]


def choose_forest(svc, tenant_id: str, event_count: int, *, train_missing: bool = True
                  ) -> tuple[Forest, str, str]:
    """(forest, model version, "tenant" or "baseline") for a tenant with ``event_count``
    events. A tenant past the line without a model of its own gets one trained now."""
    if uses_own_model(event_count):
        found = load_tenant_forest(svc, tenant_id)
        if found is None and train_missing:
            from .training import train_tenant

            try:
                train_tenant(svc, tenant_id, created_by="detector (first model)")
            except ValueError as exc:
                log.warning("tenant %s: could not train a first model: %s", tenant_id, exc)
            found = load_tenant_forest(svc, tenant_id)
        if found is not None:
            return found[0], found[1], "tenant"
    forest, version = baseline_forest()
    return forest, version, "baseline"


def _locked_profile(conn, tenant_id: str) -> Profile:
    conn.execute(text("INSERT INTO detector_profiles (tenant_id, detector, through_seq, state) "
                      "VALUES (:t, :d, 0, :s) ON CONFLICT DO NOTHING"),
                 {"t": tenant_id, "d": NAME, "s": Profile().to_bytes()})
    row = conn.execute(text("SELECT state FROM detector_profiles WHERE detector = :d "
                            "FOR UPDATE"), {"d": NAME}).one()
    try:
        return Profile.from_bytes(bytes(row[0]))
    except ValueError:
        log.warning("tenant %s: profile of an older version; rebuilding it", tenant_id)
        return Profile()


def _save_profile(conn, profile: Profile) -> None:
    conn.execute(text("UPDATE detector_profiles SET state = :s, through_seq = :q, "
                      "updated_at = now() WHERE detector = :d"),
                 {"s": profile.to_bytes(), "q": profile.through_seq, "d": NAME})


def catch_up(svc, tenant_id: str, profile: Profile, before_seq: int) -> int:
    """Fold the events the profile has not seen, up to ``before_seq - 1``; how many."""
    folded = 0
    if profile.through_seq >= before_seq - 1:
        return 0
    for batch in svc.iter_events(tenant_id, after_seq=profile.through_seq,
                                 last_seq=before_seq - 1, batch=5000):
        featurize(batch, profile)  # features are discarded; only the history matters here
        folded += len(batch)
    return folded


class IsolationForestDetector:
    """``trailseal.types.Detector`` for one tenant."""

    name = NAME

    def __init__(self, tenant_id: str, svc=None):
        self.tenant_id = tenant_id
        self._svc = svc
        self.last_run: dict[str, Any] = {}

    @property
    def svc(self):
        if self._svc is None:
            from trailseal.jobs import current_services

            self._svc = current_services()
        return self._svc

    def score(self, events: Sequence[Event]) -> list[Finding]:
        events = sorted(events, key=lambda e: e.seq)
        if not events:
            return []
        svc = self.svc
        tid = uuid.UUID(self.tenant_id)
        threshold = float(svc.get_setting(tid, THRESHOLD_KEY))
        with svc.db.transaction(tid) as conn:
            profile = _locked_profile(conn, self.tenant_id)
            caught_up = catch_up(svc, self.tenant_id, profile, events[0].seq)
            X, profile = featurize(events, profile)
            forest, version, scope = choose_forest(svc, self.tenant_id, profile.total)
            scores, confidence = forest.score(X, threshold)
            _save_profile(conn, profile)
        flagged = np.flatnonzero(scores >= threshold)
        contributions = forest.explain(X[flagged]) if len(flagged) else None
        explanations = {}
        for k, i in enumerate(flagged):
            explanations[int(i)] = explain_event(events[i], X[i], contributions[k],
                                                 float(scores[i]), threshold)
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
