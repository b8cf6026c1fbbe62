"""Enrichment: run the installed classifiers, detectors and embedder over new events and
store the results in ``event_insights`` / ``audit_embeddings``. Idempotent: re-running a
range overwrites the same rows."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import orjson

from ..services.alerts import announce_alert, insert_alert
from ..services.chain import format_ts
from ..services.events import FROM, SELECT_COLUMNS, row_to_event
from ..types import Classifier, Detector, Event
from . import current_services

log = logging.getLogger(__name__)
RECONCILE_GRACE = timedelta(minutes=2)
RECONCILE_CHUNK = 1000


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


def load_events(svc, cur, tenant_id: uuid.UUID, first_seq: int, last_seq: int) -> list[Event]:
    cur.execute(
        f"SELECT {SELECT_COLUMNS} {FROM} WHERE a.seq BETWEEN %s AND %s ORDER BY a.seq",
        (first_seq, last_seq),
    )
    events = []
    for r in cur.fetchall():
        d = row_to_event(svc, cur, tenant_id, r)
        events.append(Event(
            id=d["id"], tenant_id=str(tenant_id), seq=d["seq"], occurred_at=d["occurred_at"],
            event_type=d["event_type"], actor_id=d["actor"]["id"], actor_type=d["actor"]["type"],
            actor_role=d["actor"]["role"], actor_department=d["actor"]["department"],
            entity_type=d["entity"]["type"], entity_id=d["entity"]["id"],
            severity=d["severity"], source=d["source"], tags=tuple(d["tags"]),
            ip_address=d["ip_address"], user_agent=d["user_agent"],
            action_details=d["action_details"],
        ))
    return events


def enrich_events(tenant_id: str, first_seq: int, last_seq: int) -> int:
    """Enrich events ``first_seq..last_seq`` of a tenant; return how many were written."""
    svc = current_services()
    tid = uuid.UUID(tenant_id)
    pm = svc.pm
    with svc.db.cursor(tid) as cur:
        events = load_events(svc, cur, tid, first_seq, last_seq)
    if not events:
        return 0
    insights: dict[str, dict] = {
        e.id: {"anomaly_score": None, "is_anomaly": None, "category": None, "risk_level": None,
               "tags": [], "ai_insights": {}, "model_versions": {}, "review_required": False}
        for e in events
    }
    for classifier in _flatten(pm.hook.register_classifiers(tenant_id=tenant_id), Classifier,
                               "register_classifiers"):
        for c in classifier.classify(events) or []:
            row = insights.get(c.event_id)
            if row is None:
                continue
            row["category"] = c.category or row["category"]
            row["risk_level"] = c.risk_level or row["risk_level"]
            row["tags"] = sorted(set(row["tags"]) | set(c.tags))
            row["review_required"] = row["review_required"] or c.review_required
            row["ai_insights"].setdefault("classification", {})[classifier.name] = {
                "category": c.category, "risk_level": c.risk_level, "confidence": c.confidence}
            row["model_versions"][classifier.name] = c.model_version
    for detector in _flatten(pm.hook.register_detectors(tenant_id=tenant_id), Detector,
                             "register_detectors"):
        for f in detector.score(events) or []:
            row = insights.get(f.event_id)
            if row is None:
                continue
            if row["anomaly_score"] is None or f.score > row["anomaly_score"]:
                row["anomaly_score"] = f.score
            row["is_anomaly"] = bool(row["is_anomaly"]) or f.is_anomaly
            row["ai_insights"].setdefault("anomaly", {})[detector.name] = {
                "score": f.score, "is_anomaly": f.is_anomaly, "explanation": f.explanation}
            row["model_versions"][detector.name] = f.model_version
    embedded = pm.hook.embed_texts(texts=[e.text() for e in events], model=None,
                                   tenant_id=tenant_id)
    with svc.db.cursor(tid) as cur:
        for e in events:
            row = insights[e.id]
            cur.execute(
                """
                INSERT INTO event_insights (event_id, tenant_id, anomaly_score, is_anomaly,
                  category, risk_level, tags, ai_insights, model_versions, review_required)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)
                ON CONFLICT (tenant_id, event_id) DO UPDATE SET anomaly_score = EXCLUDED.anomaly_score,
                  is_anomaly = EXCLUDED.is_anomaly, category = EXCLUDED.category,
                  risk_level = EXCLUDED.risk_level, tags = EXCLUDED.tags,
                  ai_insights = EXCLUDED.ai_insights, model_versions = EXCLUDED.model_versions,
                  review_required = EXCLUDED.review_required, enriched_at = now()
                """,
                (uuid.UUID(e.id), tid, row["anomaly_score"], row["is_anomaly"], row["category"],
                 row["risk_level"], row["tags"], orjson.dumps(row["ai_insights"]).decode(),
                 orjson.dumps(row["model_versions"]).decode(), row["review_required"]),
            )
        # Alerts commit with the insights that justify them, so a failure loses neither.
        raised = []
        for e in events:
            row = insights[e.id]
            if row["is_anomaly"]:
                alert = insert_alert(
                    cur, tid, kind="anomaly",
                    severity="critical" if e.severity == "critical" else "high",
                    title=f"Anomalous {e.event_type} by {e.actor_id}",
                    details={"event_seq": e.seq, "anomaly_score": row["anomaly_score"],
                             "detectors": row["ai_insights"].get("anomaly", {})},
                    event_id=e.id, dedupe_key=f"event:{e.id}",
                )
                if alert is not None:
                    raised.append(alert)
        if embedded and embedded.get("vectors"):
            model = str(embedded.get("model") or "default")
            for e, vec in zip(events, embedded["vectors"], strict=True):
                cur.execute(
                    """
                    INSERT INTO audit_embeddings (event_id, tenant_id, model, dims, embedding)
                    VALUES (%s, %s, %s, %s, %s::vector)
                    ON CONFLICT (tenant_id, event_id, model) DO UPDATE SET embedding = EXCLUDED.embedding,
                      dims = EXCLUDED.dims, created_at = now()
                    """,
                    (uuid.UUID(e.id), tid, model, len(vec), "[" + ",".join(map(str, vec)) + "]"),
                )
    for alert in raised:
        announce_alert(svc, alert)
    return len(events)


def find_unenriched(svc, tenant_id: uuid.UUID, older_than: datetime) -> list[tuple[int, int]]:
    """Seq ranges (at most ``RECONCILE_CHUNK`` long) of events received before
    ``older_than`` that have no insights row."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(
            """
            SELECT a.seq FROM audit_logs a
             WHERE a.received_at < %s
               AND NOT EXISTS (SELECT 1 FROM event_insights i WHERE i.tenant_id = a.tenant_id AND i.event_id = a.id)
             ORDER BY a.seq
            """,
            (older_than,),
        )
        seqs = [r[0] for r in cur.fetchall()]
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1 and seq - ranges[-1][0] < RECONCILE_CHUNK:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


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


def verify_all_chains() -> dict[str, bool]:
    """Verify every tenant's chain (breaks raise alerts)."""
    from ..services.integrity import verify_chain
    from ..services.tenancy import tenant_ids

    svc = current_services()
    return {str(tid): verify_chain(svc, tid).intact for tid in tenant_ids(svc)}
