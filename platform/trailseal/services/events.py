"""Reading the ledger: filtered pages, single events, the timeline. Decrypts on the way out."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import orjson

from ..errors import BadRequest, NotFound
from ..schemas import EventQuery
from .chain import format_ts
from .crypto import decrypt_field

SELECT_COLUMNS = """
  a.id, a.seq, a.occurred_at, a.received_at, a.event_type, a.actor_id, a.actor_type,
  a.actor_role, a.actor_department, a.entity_type, a.entity_id, a.severity, a.source, a.tags,
  a.ip_address, a.user_agent, a.action_details, a.key_id, a.idempotency_key,
  a.previous_hash, a.hash,
  i.event_id IS NOT NULL, i.anomaly_score, i.is_anomaly, i.category, i.risk_level, i.tags,
  i.ai_insights, i.review_required
"""
FROM = (
    "FROM audit_logs a LEFT JOIN event_insights i "
    "ON i.tenant_id = a.tenant_id AND i.event_id = a.id"
)


def encode_cursor(occurred_at: datetime, seq: int) -> str:
    raw = orjson.dumps([format_ts(occurred_at), seq])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, seq = orjson.loads(raw)
        return datetime.fromisoformat(ts.replace("Z", "+00:00")), int(seq)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page") from exc


def build_filters(q: EventQuery) -> tuple[list[str], list[Any]]:
    """SQL conditions (ANDed) and their parameters for the query's filters."""
    where: list[str] = []
    params: list[Any] = []
    if q.start is not None:
        where.append("a.occurred_at >= %s")
        params.append(q.start)
    if q.end is not None:
        where.append("a.occurred_at < %s")
        params.append(q.end)
    if q.event_type:
        where.append("a.event_type = ANY(%s)")
        params.append(list(q.event_type))
    if q.actor is not None:
        where.append("a.actor_id = %s")
        params.append(q.actor)
    if q.entity_type is not None:
        where.append("a.entity_type = %s")
        params.append(q.entity_type)
    if q.entity_id is not None:
        where.append("a.entity_id = %s")
        params.append(q.entity_id)
    if q.severity:
        where.append("a.severity = ANY(%s)")
        params.append(list(q.severity))
    if q.category is not None:
        where.append("i.category = %s")
        params.append(q.category)
    if q.risk_level is not None:
        where.append("i.risk_level = %s")
        params.append(q.risk_level)
    for tag in q.tag:
        where.append("(%s = ANY(a.tags) OR %s = ANY(i.tags))")
        params.extend([tag, tag])
    return where, params


def _decrypt(svc, cur, tenant_id, event_id, key_id, field, blob) -> bytes | None:
    if blob is None:
        return None
    return decrypt_field(svc.keyring.key(cur, tenant_id, key_id), tenant_id, event_id, field, bytes(blob))


def row_to_event(svc, cur, tenant_id: uuid.UUID, r: tuple) -> dict[str, Any]:
    """One SELECT_COLUMNS row as the API's event object."""
    event_id = r[0]
    ip = _decrypt(svc, cur, tenant_id, event_id, r[17], "ip_address", r[14])
    ua = _decrypt(svc, cur, tenant_id, event_id, r[17], "user_agent", r[15])
    details = _decrypt(svc, cur, tenant_id, event_id, r[17], "action_details", r[16])
    insights = None
    if r[21]:
        insights = {
            "anomaly_score": r[22], "is_anomaly": r[23], "category": r[24], "risk_level": r[25],
            "tags": list(r[26] or []), "ai_insights": r[27] or {}, "review_required": r[28],
        }
    return {
        "id": str(event_id),
        "seq": r[1],
        "occurred_at": format_ts(r[2]),
        "received_at": format_ts(r[3]),
        "event_type": r[4],
        "actor": {"id": r[5], "type": r[6], "role": r[7], "department": r[8]},
        "entity": {"type": r[9], "id": r[10]},
        "severity": r[11],
        "source": r[12],
        "tags": list(r[13] or []),
        "ip_address": ip.decode() if ip is not None else None,
        "user_agent": ua.decode() if ua is not None else None,
        "action_details": orjson.loads(details) if details is not None else None,
        "idempotency_key": r[18],
        "previous_hash": r[19],
        "hash": r[20],
        "insights": insights,
    }


def list_events(svc, cur, tenant_id: uuid.UUID, q: EventQuery, chronological: bool = False) -> dict:
    """One page of events matching ``q``: newest first, or oldest first for the timeline."""
    where, params = build_filters(q)
    if q.cursor:
        ts, seq = decode_cursor(q.cursor)
        where.append("(a.occurred_at, a.seq) > (%s, %s)" if chronological else "(a.occurred_at, a.seq) < (%s, %s)")
        params.extend([ts, seq])
    order = "a.occurred_at ASC, a.seq ASC" if chronological else "a.occurred_at DESC, a.seq DESC"
    sql = f"SELECT {SELECT_COLUMNS} {FROM}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order} LIMIT %s"
    params.append(q.limit + 1)
    cur.execute(sql, params)
    rows = cur.fetchall()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    events = [row_to_event(svc, cur, tenant_id, r) for r in rows]
    next_cursor = encode_cursor(rows[-1][2], rows[-1][1]) if more and rows else None
    return {"events": events, "next_cursor": next_cursor}


def get_event(svc, cur, tenant_id: uuid.UUID, event_id: str) -> dict:
    """One event of the tenant; any other tenant's id (or a malformed id) is 404."""
    try:
        eid = uuid.UUID(event_id)
    except ValueError:
        raise NotFound(f"no event {event_id!r}") from None
    cur.execute(f"SELECT {SELECT_COLUMNS} {FROM} WHERE a.id = %s", (eid,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no event {event_id!r}")
    return row_to_event(svc, cur, tenant_id, row)
