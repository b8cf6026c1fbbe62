"""Storing what enrichment found: ``event_insights`` rows, their alerts and embeddings, in one
transaction per range (re-running a range overwrites the same rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..tables import audit_embeddings, audit_logs, event_insights
from ..types import Alert, Event
from .alerts import insert_alert
from .events import events_in_range

RECONCILE_CHUNK = 1000  # longest seq range the reconciler enqueues as one job
INSIGHT_FIELDS = ("anomaly_score", "is_anomaly", "category", "risk_level", "tags",
                  "ai_insights", "model_versions", "review_required")


def load_events(svc, tenant_id: uuid.UUID, first_seq: int, last_seq: int) -> list[Event]:
    """Events ``first_seq..last_seq`` of a tenant, decrypted, as plugins receive them."""
    with svc.db.transaction(tenant_id) as conn:
        shown = events_in_range(svc, conn, tenant_id, first_seq, last_seq)
    return [
        Event(
            id=d["id"], tenant_id=str(tenant_id), seq=d["seq"], occurred_at=d["occurred_at"],
            event_type=d["event_type"], actor_id=d["actor"]["id"], actor_type=d["actor"]["type"],
            actor_role=d["actor"]["role"], actor_department=d["actor"]["department"],
            entity_type=d["entity"]["type"], entity_id=d["entity"]["id"],
            severity=d["severity"], source=d["source"], tags=tuple(d["tags"]),
            ip_address=d["ip_address"], user_agent=d["user_agent"],
            action_details=d["action_details"],
        )
        for d in shown
    ]


def store_insights(svc, tenant_id: uuid.UUID, events: list[Event],
                   insights: dict[str, dict[str, Any]],
                   embedded: dict[str, Any] | None = None) -> list[Alert]:
    """Upsert each event's insights (``insights[event.id]`` holds ``INSIGHT_FIELDS``), an
    ``anomaly`` alert per anomalous event (deduped on the event) and, when ``embedded``
    holds ``vectors`` (one per event) and a ``model``, the embeddings. One transaction:
    alerts commit with the insights that justify them, so a failure loses neither. Returns
    the alerts newly raised, for the caller to announce once committed."""
    raised: list[Alert] = []
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
        for e in events:
            row = insights[e.id]
            if not row["is_anomaly"]:
                continue
            alert = insert_alert(
                conn, tenant_id, kind="anomaly",
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
