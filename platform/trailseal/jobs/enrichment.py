"""Enrichment: run the installed classifiers, detectors and embedder over new events and
store the results (``services.insights``) in ``event_insights`` / ``audit_embeddings``.
Idempotent: re-running a range overwrites the same rows."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from ..core import current_services
from ..services.alerts import announce_alert
from ..services.chain import format_ts, seq_runs
from ..services.corrections import latest_corrections
from ..services.insights import find_unenriched, load_events, store_insights
from ..services.search_index import (
    current_embedding_model,
    find_unindexed,
    store_embeddings,
    store_search_text,
)
from ..types import (
    CATEGORIES,
    REVIEW_BELOW,
    RISK_LEVELS,
    Classification,
    Classifier,
    Detector,
    Finding,
)

log = logging.getLogger(__name__)
RECONCILE_GRACE = timedelta(minutes=2)


def _flatten(results, protocol, hook: str) -> list:
    """The objects a ``register_*`` hook returned, without those that do not satisfy
    ``protocol`` (logged once per call, naming the object, so one broken plugin does not
    stop the others)."""
    items = []
    for group in results or []:
        for item in group or []:
            if isinstance(item, protocol):
                items.append(item)
            else:
                log.error("%s returned %r, which is not a trailseal.types.%s; skipped", hook,
                          item, protocol.__name__)
    return items


class Verdicts:
    """What the classifiers and detectors said about a range of events: the insights rows,
    the prediction log and, per flagged event, the detector whose finding explains it.
    Pure bookkeeping (no I/O), so its rules can be checked on their own."""

    def __init__(self, event_ids: list[str]):
        self.insights: dict[str, dict] = {
            eid: {"anomaly_score": None, "is_anomaly": None, "category": None,
                  "risk_level": None, "tags": [], "ai_insights": {}, "model_versions": {},
                  "review_required": False}
            for eid in event_ids
        }
        self.predictions: list[dict] = []
        self.leading: dict[str, tuple[str, Finding]] = {}

    def add_classification(self, name: str, c: Classification) -> None:
        row = self.insights.get(c.event_id)
        if row is None:  # not an event of this range
            return
        category = c.category if c.category in CATEGORIES else None
        risk = c.risk_level if c.risk_level in RISK_LEVELS else None
        if (category, risk) != (c.category, c.risk_level):
            log.warning("classifier %s gave %r/%r, outside the taxonomy; dropped", name,
                        c.category, c.risk_level)
        row["category"] = category or row["category"]
        row["risk_level"] = risk or row["risk_level"]
        row["tags"] = sorted(set(row["tags"]) | set(c.tags))
        known = [x for x in (c.category_confidence, c.risk_confidence) if x is not None]
        confidence = min([c.confidence, *known])
        review = c.review_required or confidence < REVIEW_BELOW
        row["review_required"] = row["review_required"] or review
        row["ai_insights"].setdefault("classification", {})[name] = {
            "category": category, "risk_level": risk, "confidence": confidence,
            "category_confidence": c.category_confidence, "risk_confidence": c.risk_confidence}
        row["model_versions"][name] = c.model_version
        self.predictions.append({
            "event_id": c.event_id, "kind": "classification", "producer": name,
            "model_version": c.model_version, "score": None,
            "label": "/".join(str(x) for x in (category, risk) if x) or None,
            "confidence": confidence, "review_required": review,
            "features": {k: v for k, v in (("category_confidence", c.category_confidence),
                                          ("risk_confidence", c.risk_confidence))
                         if v is not None}})

    def apply_corrections(self, corrections: dict[str, dict]) -> None:
        """Analysts' corrections win over every classifier: the corrected fields are set,
        the correction is shown with the insights, and the event needs no review."""
        for event_id, fix in corrections.items():
            row = self.insights.get(event_id)
            if row is None:
                continue
            row["category"] = fix["category"] or row["category"]
            row["risk_level"] = fix["risk_level"] or row["risk_level"]
            row["ai_insights"]["correction"] = fix
            row["review_required"] = False

    def add_finding(self, name: str, f: Finding) -> None:
        row = self.insights.get(f.event_id)
        if row is None:
            return
        if row["anomaly_score"] is None or f.score > row["anomaly_score"]:
            row["anomaly_score"] = f.score
        row["is_anomaly"] = bool(row["is_anomaly"]) or f.is_anomaly
        if f.is_anomaly and (f.event_id not in self.leading
                             or f.score > self.leading[f.event_id][1].score):
            self.leading[f.event_id] = (name, f)
        review = f.confidence is not None and f.confidence < REVIEW_BELOW
        row["review_required"] = row["review_required"] or review
        row["ai_insights"].setdefault("anomaly", {})[name] = {
            "score": f.score, "is_anomaly": f.is_anomaly, "confidence": f.confidence,
            "explanation": f.explanation}
        row["model_versions"][name] = f.model_version
        self.predictions.append({
            "event_id": f.event_id, "kind": "anomaly", "producer": name,
            "model_version": f.model_version, "score": f.score,
            "label": "anomaly" if f.is_anomaly else "normal", "confidence": f.confidence,
            "review_required": review, "features": f.features})


def _embed_or_none(pm, events: list, model: str | None, tenant_id: str) -> dict | None:
    """The ``embed_texts`` answer for ``events``, or None when the embedder failed (a model
    server down or timing out): the events are then stored without embeddings, and the
    backlog job embeds them on a later run, so an embedder outage never holds back
    classification, detection or the full-text index."""
    try:
        return pm.hook.embed_texts(texts=[e.embedding_text() for e in events], model=model,
                                   tenant_id=tenant_id)
    except Exception:
        log.warning("embed_texts failed for %d events of tenant %s; the search backlog will "
                    "embed them", len(events), tenant_id, exc_info=True)
        return None


def enrich_events(tenant_id: str, first_seq: int, last_seq: int) -> int:
    """Enrich events ``first_seq..last_seq`` of a tenant; return how many were written."""
    svc = current_services()
    tid = uuid.UUID(tenant_id)
    pm = svc.pm
    events = load_events(svc, tid, first_seq, last_seq)
    if not events:
        return 0
    verdicts = Verdicts([e.id for e in events])
    for classifier in _flatten(pm.hook.register_classifiers(tenant_id=tenant_id), Classifier,
                               "register_classifiers"):
        for c in classifier.classify(events) or []:
            verdicts.add_classification(classifier.name, c)
    verdicts.apply_corrections(latest_corrections(svc, tid, verdicts.insights))
    for detector in _flatten(pm.hook.register_detectors(tenant_id=tenant_id), Detector,
                             "register_detectors"):
        for f in detector.score(events) or []:
            verdicts.add_finding(detector.name, f)
    embedded = _embed_or_none(pm, events, None, tenant_id)
    raised = store_insights(svc, tid, events, verdicts.insights, embedded,
                            predictions=verdicts.predictions, leading=verdicts.leading)
    for alert in raised:
        announce_alert(svc, alert)
    return len(events)


def reconcile_enrichment(grace_seconds: int | None = None) -> dict[str, int]:
    """Re-enqueue enrichment for events that should have it by now but do not."""
    from ..services.tenancy import tenant_ids

    svc = current_services()
    grace = RECONCILE_GRACE if grace_seconds is None else timedelta(seconds=grace_seconds)
    cutoff = datetime.now(UTC) - grace
    queued: dict[str, int] = {}
    for tid in tenant_ids(svc):
        for first, last in find_unenriched(svc, tid, cutoff):
            if svc.enqueue_enrichment(tid, first, last):
                queued[str(tid)] = queued.get(str(tid), 0) + (last - first + 1)
    if queued:
        log.info("reconciler re-enqueued enrichment: %s (cutoff %s)", queued, format_ts(cutoff))
    return queued


BACKLOG_PER_RUN = 20_000  # events one backlog run indexes per tenant (the rest: next run)



def index_backlog(tenant_id: str, limit: int = BACKLOG_PER_RUN) -> int:
    """Give the tenant's events that lack them their full-text vector and an embedding of
    the current model (events from before search was installed, or from before a model
    change), oldest first, at most ``limit``; returns how many events were indexed.
    Idempotent: each batch is found missing, embedded and stored in one pass."""
    svc = current_services()
    tid = uuid.UUID(str(tenant_id))
    try:
        model = current_embedding_model(svc.pm, str(tid))
    except Exception:  # the embedder is failing: index full text now, embed on a later run
        log.warning("embed_texts failed; the search backlog indexes full text only this run",
                    exc_info=True)
        model = None
    done = 0
    after = 0
    while done < limit:
        with svc.db.transaction(tid) as conn:
            seqs = find_unindexed(conn, model, after_seq=after,
                                  limit=min(limit - done, 256))
        if not seqs:
            break
        events = [e for first, last in seq_runs(seqs)
                  for e in load_events(svc, tid, first, last)]
        embedded = None
        if model is not None:
            embedded = _embed_or_none(svc.pm, events, model, str(tid))
        with svc.db.transaction(tid) as conn:
            store_search_text(conn, tid, events)
            store_embeddings(conn, tid, events, embedded)
        done += len(events)
        after = seqs[-1]
        if model is not None and embedded is None:
            # Stopped at the first failure: the rest waits for the next run, unembedded.
            break
    return done


def index_backlog_all_tenants() -> dict[str, int]:
    """``index_backlog`` for every tenant (the scheduled job); the counts indexed."""
    from ..services.tenancy import tenant_ids

    indexed = {str(tid): index_backlog(str(tid)) for tid in tenant_ids(current_services())}
    indexed = {tid: n for tid, n in indexed.items() if n}
    if indexed:
        log.info("search backlog indexed: %s", indexed)
    return indexed


def verify_all_chains() -> dict[str, bool]:
    """Verify every tenant's chain (breaks raise alerts)."""
    from ..services.integrity import verify_chain
    from ..services.tenancy import tenant_ids

    svc = current_services()
    return {str(tid): verify_chain(svc, tid).intact for tid in tenant_ids(svc)}
