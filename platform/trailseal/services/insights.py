"""Storing what enrichment found: ``event_insights`` rows, their alerts and embeddings, in one
transaction per range (re-running a range overwrites the same rows)."""

from __future__ import annotations

import uuid
from binascii import a2b_base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import exists, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..tables import ai_predictions, audit_logs, event_insights
from ..types import Alert, Event, Finding
from .alerts import insert_alert
from .chain import format_ts
from .crypto import decrypt_field
from .search_index import store_embeddings, store_search_text
from .subject_keys import ERASED, EventDecryptor

RECONCILE_CHUNK = 1000  # longest seq range the reconciler enqueues as one job
INSIGHT_FIELDS = ("anomaly_score", "is_anomaly", "category", "risk_level", "tags",
                  "ai_insights", "model_versions", "review_required")


def load_events(svc, tenant_id: uuid.UUID, first_seq: int, last_seq: int) -> list[Event]:
    """Events ``first_seq..last_seq`` of a tenant, decrypted, as plugins receive them."""
    return [e for batch in iter_events(svc, tenant_id, after_seq=first_seq - 1,
                                       last_seq=last_seq, batch=max(1, last_seq - first_seq + 1))
            for e in batch]


def iter_events(svc, tenant_id: uuid.UUID, *, after_seq: int = 0, last_seq: int | None = None,
                start: datetime | None = None, end: datetime | None = None,
                batch: int = 2000) -> Iterator[list[Event]]:
    """A tenant's events in seq order, decrypted, ``batch`` at a time: those after
    ``after_seq`` up to ``last_seq``, occurred in ``[start, end)`` when given. Each batch is
    read in a transaction of its own (keyset paging on seq, so memory stays bounded). Reads
    only the stored records (no insights, no hashes): the fast path of detectors."""
    if start is not None:
        # jump to the window (the time index finds its first seq) instead of filtering
        # every older event on the way there
        with svc.db.transaction(tenant_id) as conn:
            first = conn.execute(select(func.min(audit_logs.c.seq))
                                 .where(audit_logs.c.occurred_at >= start)).scalar()
        if first is None:
            return
        after_seq = max(after_seq, first - 1)
    where = ["tenant_id = %(tenant)s", "seq > %(after)s"]
    params = {"tenant": tenant_id, "after": after_seq, "limit": batch}
    if last_seq is not None:
        where.append("seq <= %(last)s")
        params["last"] = last_seq
    if start is not None:
        where.append("occurred_at >= %(start)s")
        params["start"] = start
    if end is not None:
        where.append("occurred_at < %(end)s")
        params["end"] = end
    # a raw cursor: the hot path of detectors (1M events read in about 20 s)
    sql = (f"SELECT seq, record FROM audit_logs WHERE {' AND '.join(where)} "
           "ORDER BY seq LIMIT %(limit)s")
    text_id = str(tenant_id)
    while True:
        with svc.db.cursor(tenant_id) as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
            keys = EventDecryptor(svc, cur, tenant_id)
            keys.prefetch(record for _, record in rows)
            events = [_record_event(svc, cur, tenant_id, record, text_id, keys)
                      for _, record in rows]
        if not events:
            return
        yield events
        params["after"] = rows[-1][0]
        if len(rows) < batch:
            return


def _record_event(svc, cur, tenant_id: uuid.UUID, record: bytes,
                  tenant_text: str | None = None, keys: EventDecryptor | None = None) -> Event:
    """A stored record as plugins see the event (decrypted), read straight from its
    JSON (the same fields ``row_to_event`` shows). The record's id is the canonical text of
    the event's UUID, so it is the associated data as it was bound at encryption. An erased
    event's ip_address and user_agent read ``"[erased]"`` and its details None (plugins
    keep their dict-or-None contract)."""
    rec = orjson.loads(record)
    event_id = rec["id"]
    tenant_text = tenant_text or str(tenant_id)
    keys = keys or EventDecryptor(svc, cur, tenant_id)
    key = erased = None
    values = []
    for name in ("ip_address", "user_agent", "action_details"):
        blob = rec[name]
        if blob is None:
            values.append(None)
            continue
        if key is None and not erased:
            key = keys.key(rec)
            erased = key is None
        values.append(ERASED.encode() if erased else
                      decrypt_field(key, tenant_text, event_id, name, a2b_base64(blob)))
    ip, agent, details = values
    if erased:
        details = None
    return Event(
        id=event_id, tenant_id=tenant_text, seq=rec["seq"], occurred_at=rec["occurred_at"],
        event_type=rec["event_type"], actor_id=rec["actor_id"], actor_type=rec["actor_type"],
        actor_role=rec["actor_role"], actor_department=rec["actor_department"],
        entity_type=rec["entity_type"], entity_id=rec["entity_id"], severity=rec["severity"],
        source=rec["source"], tags=tuple(rec["tags"]),
        ip_address=ip.decode() if ip is not None else None,
        user_agent=agent.decode() if agent is not None else None,
        action_details=orjson.loads(details) if details is not None else None,
    )


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
    ``embedded`` holds ``vectors`` (one per event) and a ``model``, the embeddings, and the
    full-text vector of every event (``services.search_index``). One
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
        store_search_text(conn, tenant_id, events)
        store_embeddings(conn, tenant_id, events, embedded)
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
