"""Storing what enrichment found: ``event_insights`` rows, their alerts and embeddings, in one
transaction per range (re-running a range overwrites the same rows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..tables import ai_predictions, audit_embeddings, audit_logs, event_insights
from ..types import Alert, Event, Finding
from .alerts import insert_alert
from .chain import format_ts
from .events import events_after, events_in_range

RECONCILE_CHUNK = 1000  # longest seq range the reconciler enqueues as one job
INSIGHT_FIELDS = ("anomaly_score", "is_anomaly", "category", "risk_level", "tags",
                  "ai_insights", "model_versions", "review_required")


def _as_event(tenant_id: uuid.UUID, d: dict[str, Any]) -> Event:
    return Event(
        id=d["id"], tenant_id=str(tenant_id), seq=d["seq"], occurred_at=d["occurred_at"],
        event_type=d["event_type"], actor_id=d["actor"]["id"], actor_type=d["actor"]["type"],
        actor_role=d["actor"]["role"], actor_department=d["actor"]["department"],
        entity_type=d["entity"]["type"], entity_id=d["entity"]["id"],
        severity=d["severity"], source=d["source"], tags=tuple(d["tags"]),
        ip_address=d["ip_address"], user_agent=d["user_agent"],
        action_details=d["action_details"],
    )


def load_events(svc, tenant_id: uuid.UUID, first_seq: int, last_seq: int) -> list[Event]:
    """Events ``first_seq..last_seq`` of a tenant, decrypted, as plugins receive them."""
    with svc.db.transaction(tenant_id) as conn:
        shown = events_in_range(svc, conn, tenant_id, first_seq, last_seq)
    return [_as_event(tenant_id, d) for d in shown]


def iter_events(svc, tenant_id: uuid.UUID, *, after_seq: int = 0, last_seq: int | None = None,
                start: datetime | None = None, end: datetime | None = None,
                batch: int = 2000) -> Iterator[list[Event]]:
    """A tenant's events in seq order, decrypted, ``batch`` at a time: those after
    ``after_seq`` up to ``last_seq``, occurred in ``[start, end)`` when given. Each batch is
    read in a transaction of its own (keyset paging on seq, so memory stays bounded)."""
    while True:
        with svc.db.transaction(tenant_id) as conn:
            shown = events_after(svc, conn, tenant_id, after_seq, batch, last_seq=last_seq,
                                 start=start, end=end)
        if not shown:
            return
        yield [_as_event(tenant_id, d) for d in shown]
        after_seq = shown[-1]["seq"]
        if len(shown) < batch:
            return


ALERT_SEVERITY_ORDER = ("low", "medium", "high", "critical")


def alert_severity(event_severity: str, proposed: str | None) -> str:
    """The severity of an anomaly alert: what the detector proposes, never below what the
    event itself says (a critical event's anomaly is critical); ``high`` when the detector
    proposes nothing."""
    chosen = proposed if proposed in ALERT_SEVERITY_ORDER else "high"
    floor = event_severity if event_severity in ALERT_SEVERITY_ORDER else "low"
    return max(chosen, floor, key=ALERT_SEVERITY_ORDER.index)


def anomaly_alert_fields(e: Event, row: dict[str, Any], detector: str | None,
                         finding: Finding | None) -> dict[str, Any]:
    """The alert of a flagged event: severity, title and details (score, model version,
    detection time, the leading detector's explanation, affected entities, suggested
    actions)."""
    explanation = dict(finding.explanation) if finding is not None else {}
    affected = explanation.pop("affected_entities", None) or [
        {"type": "actor", "id": e.actor_id}, {"type": e.entity_type, "id": e.entity_id}]
    actions = explanation.pop("suggested_actions", None) or [
        f"Confirm with {e.actor_id} (or their manager) that this {e.event_type} was intended.",
        "Mark the alert as a false positive if it was expected, so the next model learns it."]
    return {
        "severity": alert_severity(e.severity, finding.severity if finding else None),
        "title": f"Anomalous {e.event_type} by {e.actor_id}"[:300],
        "details": {
            "event_seq": e.seq, "occurred_at": e.occurred_at,
            "anomaly_score": row["anomaly_score"],
            "detector": detector, "model_version": finding.model_version if finding else None,
            "confidence": finding.confidence if finding else None,
            "detected_at": format_ts(datetime.now(UTC)),
            "explanation": explanation, "affected_entities": affected,
            "suggested_actions": actions,
            "detectors": row["ai_insights"].get("anomaly", {}),
        },
    }


def store_insights(svc, tenant_id: uuid.UUID, events: list[Event],
                   insights: dict[str, dict[str, Any]],
                   embedded: dict[str, Any] | None = None, *,
                   predictions: list[dict[str, Any]] = (),
                   leading: dict[str, tuple[str, Finding]] | None = None) -> list[Alert]:
    """Upsert each event's insights (``insights[event.id]`` holds ``INSIGHT_FIELDS``), an
    ``anomaly`` alert per anomalous event (deduped on the event; ``leading[event.id]`` is
    the detector name and finding that explain it), the ``predictions`` log rows and, when
    ``embedded`` holds ``vectors`` (one per event) and a ``model``, the embeddings. One
    transaction: alerts commit with the insights that justify them, so a failure loses
    neither. Returns the alerts newly raised, for the caller to announce once committed."""
    raised: list[Alert] = []
    leading = leading or {}
    with svc.db.transaction(tenant_id) as conn:
        stmt = pg_insert(event_insights)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "event_id"],
                set_={**{name: stmt.excluded[name] for name in INSIGHT_FIELDS},
                      "enriched_at": func.now()},
            ),
            [{"event_id": uuid.UUID(e.id), "tenant_id": tenant_id,
              **{name: insights[e.id][name] for name in INSIGHT_FIELDS}} for e in events],
        )
        if predictions:
            conn.execute(insert(ai_predictions), [
                {**p, "event_id": uuid.UUID(p["event_id"]), "tenant_id": tenant_id}
                for p in predictions])
        for e in events:
            row = insights[e.id]
            if not row["is_anomaly"]:
                continue
            detector, finding = leading.get(e.id, (None, None))
            alert = insert_alert(
                conn, tenant_id, kind="anomaly", event_id=e.id, dedupe_key=f"event:{e.id}",
                **anomaly_alert_fields(e, row, detector, finding),
            )
            if alert is not None:
                raised.append(alert)
        if embedded and embedded.get("vectors"):
            model = str(embedded.get("model") or "default")
            stmt = pg_insert(audit_embeddings)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "event_id", "model"],
                    set_={"embedding": stmt.excluded.embedding, "dims": stmt.excluded.dims,
                          "created_at": func.now()},
                ),
                [{"event_id": uuid.UUID(e.id), "tenant_id": tenant_id, "model": model,
                  "dims": len(vec), "embedding": vec}
                 for e, vec in zip(events, embedded["vectors"], strict=True)],
            )
    return raised


def find_unenriched(svc, tenant_id: uuid.UUID, older_than: datetime,
                    chunk: int = RECONCILE_CHUNK) -> list[tuple[int, int]]:
    """Seq ranges (at most ``chunk`` long) of events received before ``older_than`` that
    have no insights row."""
    a, i = audit_logs.alias("a"), event_insights.alias("i")
    has_insights = exists().where(i.c.tenant_id == a.c.tenant_id, i.c.event_id == a.c.id)
    stmt = (select(a.c.seq).where(a.c.received_at < older_than, ~has_insights)
            .order_by(a.c.seq))
    with svc.db.transaction(tenant_id) as conn:
        seqs = conn.execute(stmt).scalars().all()
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1 and seq - ranges[-1][0] < chunk:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges
