"""Reading the ledger: filtered pages, single events, the timeline. Decrypts on the way out."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime
from typing import Any

import orjson

from ..errors import NotFound
from ..schemas import EventQuery
from .chain import format_ts
from .crypto import decrypt_field
from .paging import decode_cursor, encode_cursor, seq_part, time_part

SELECT_COLUMNS = """
  a.seq, a.occurred_at, a.record,
  i.event_id IS NOT NULL AS has_insights, i.anomaly_score, i.is_anomaly, i.category,
  i.risk_level, i.tags, i.ai_insights, i.review_required
"""
# The outer query of a page names the same columns as SELECT_COLUMNS, after seq,
# occurred_at and the record (see list_events).
PAGE_COLUMNS = "p.has_insights, p.anomaly_score, p.is_anomaly, p.category, p.risk_level, " \
    "p.tags, p.ai_insights, p.review_required"
FROM = (
    "FROM audit_logs a LEFT JOIN event_insights i "
    "ON i.tenant_id = a.tenant_id AND i.event_id = a.id"
)


def _filters(q: EventQuery) -> dict[str, Any]:
    """The filters a cursor is bound to (everything but the cursor and the page size)."""
    data = q.model_dump(exclude={"cursor", "limit"})
    return {key: format_ts(value) if isinstance(value, datetime) else value
            for key, value in data.items()}


def cursor_after(q: EventQuery, occurred_at: datetime, seq: int,
                 chronological: bool = False) -> str:
    """The ``next_cursor`` a page of ``q`` ending at (``occurred_at``, ``seq``) returns."""
    scope = "timeline" if chronological else "events"
    return encode_cursor(scope, _filters(q), [format_ts(occurred_at), seq])


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
    # A single value is compared with "=" so the planner can read the index in order.
    if len(q.event_type) == 1:
        where.append("a.event_type = %s")
        params.append(q.event_type[0])
    elif q.event_type:
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
    if len(q.severity) == 1:
        where.append("a.severity = %s")
        params.append(q.severity[0])
    elif q.severity:
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


def _decrypt(svc, cur, tenant_id, event_id, key_id, field, text: str | None) -> bytes | None:
    if text is None:
        return None
    key = svc.keyring.key(cur, tenant_id, key_id)
    return decrypt_field(key, tenant_id, event_id, field, base64.b64decode(text))


def row_to_event(svc, cur, tenant_id: uuid.UUID, r: tuple) -> dict[str, Any]:
    """One SELECT_COLUMNS row as the API's event object. Every field shown comes from the
    hashed record, so what a reader sees is what verification covers."""
    rec = orjson.loads(r[2])
    event_id = uuid.UUID(rec["id"])
    key_id = rec["key_id"]
    ip = _decrypt(svc, cur, tenant_id, event_id, key_id, "ip_address", rec["ip_address"])
    ua = _decrypt(svc, cur, tenant_id, event_id, key_id, "user_agent", rec["user_agent"])
    details = _decrypt(svc, cur, tenant_id, event_id, key_id, "action_details", rec["action_details"])
    insights = None
    if r[3]:
        insights = {
            "anomaly_score": r[4], "is_anomaly": r[5], "category": r[6], "risk_level": r[7],
            "tags": list(r[8] or []), "ai_insights": r[9] or {}, "review_required": r[10],
        }
    return {
        "id": rec["id"],
        "seq": rec["seq"],
        "occurred_at": rec["occurred_at"],
        "received_at": rec["received_at"],
        "event_type": rec["event_type"],
        "actor": {"id": rec["actor_id"], "type": rec["actor_type"], "role": rec["actor_role"],
                  "department": rec["actor_department"]},
        "entity": {"type": rec["entity_type"], "id": rec["entity_id"]},
        "severity": rec["severity"],
        "source": rec["source"],
        "tags": rec["tags"],
        "ip_address": ip.decode() if ip is not None else None,
        "user_agent": ua.decode() if ua is not None else None,
        "action_details": orjson.loads(details) if details is not None else None,
        "idempotency_key": rec["idempotency_key"],
        "previous_hash": rec["previous_hash"],
        "hash": hashlib.sha256(r[2]).hexdigest(),
        "insights": insights,
    }


def list_events(svc, cur, tenant_id: uuid.UUID, q: EventQuery, chronological: bool = False,
                max_bytes: int = 4 * 1024 * 1024) -> dict:
    """One page of events matching ``q``: newest first, or oldest first for the timeline.

    A page holds at most ``q.limit`` events and ends early, with a ``next_cursor``, once the
    stored records it holds pass ``max_bytes`` (the first event is always included): an
    event's JSON is about the size of its record, so this bounds the response and the
    memory it takes whatever the events hold.
    """
    where, params = build_filters(q)
    scope = "timeline" if chronological else "events"
    if q.cursor:
        ts, seq = decode_cursor(q.cursor, scope, _filters(q), (time_part, seq_part))
        where.append("(a.occurred_at, a.seq) > (%s, %s)" if chronological else "(a.occurred_at, a.seq) < (%s, %s)")
        params.extend([ts, seq])
    order = "a.occurred_at ASC, a.seq ASC" if chronological else "a.occurred_at DESC, a.seq DESC"
    # The running total of record sizes (same order as the page, so no second sort) lets
    # the server send only the records that fit; rows past the budget come without their
    # record and only say that the page was cut there.
    sql = (f"SELECT {SELECT_COLUMNS}, "
           f"sum(octet_length(a.record)) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) "
           f"- octet_length(a.record) AS bytes_before {FROM}")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order} LIMIT %s"
    params.append(q.limit + 1)
    sql = (f"SELECT p.seq, p.occurred_at, CASE WHEN p.bytes_before < %s THEN p.record END, "
           f"{PAGE_COLUMNS} FROM ({sql}) p ORDER BY {order.replace('a.', 'p.')}")
    cur.execute(sql, [max_bytes, *params])
    rows = cur.fetchall()
    fitting = [r for r in rows[: q.limit] if r[2] is not None]
    more = len(fitting) < len(rows)
    events = [row_to_event(svc, cur, tenant_id, r) for r in fitting]
    next_cursor = None
    if more and fitting:
        next_cursor = cursor_after(q, fitting[-1][1], fitting[-1][0], chronological)
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
