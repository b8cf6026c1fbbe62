"""Reading the ledger: filtered pages, single events, the timeline. Decrypts on the way out.

The page query is built with SQLAlchemy Core (``GET /api/v1/events`` and ``/timeline``,
measured by ``bench/bench_query.py``); SQLAlchemy caches the compiled form per statement
shape, so building it costs little next to the query itself.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, any_, case, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.types import Text

from ..db import driver_cursor
from ..errors import NotFound
from ..schemas import EventQuery
from ..tables import audit_logs, event_insights
from .access import AccessRecord, audited_read
from .chain import format_ts
from .crypto import decrypt_field
from .paging import decode_cursor, encode_cursor, seq_part, time_part
from .subject_keys import ERASED, EventDecryptor
from .tenancy import Principal

a = audit_logs.alias("a")
i = event_insights.alias("i")
EVENTS_WITH_INSIGHTS = a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                           i.c.event_id == a.c.id))
# What ``row_to_event`` reads, besides seq, occurred_at and the record.
INSIGHT_COLUMNS = (
    i.c.event_id.is_not(None).label("has_insights"), i.c.anomaly_score, i.c.is_anomaly,
    i.c.category, i.c.risk_level, i.c.tags.label("insight_tags"), i.c.ai_insights,
    i.c.review_required,
)
EVENT_COLUMNS = (a.c.seq, a.c.occurred_at, a.c.record, *INSIGHT_COLUMNS)


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


def _one_or_any(column, values: tuple[str, ...] | list[str]) -> ColumnElement[bool]:
    # A single value is compared with "=" so the planner can read the index in order.
    if len(values) == 1:
        return column == values[0]
    return column == any_(literal(list(values), ARRAY(Text)))


def build_filters(q: EventQuery) -> list[ColumnElement[bool]]:
    """The conditions (ANDed) of the query's filters, over ``a`` (audit_logs) and ``i``
    (event_insights)."""
    where: list[ColumnElement[bool]] = []
    if q.start is not None:
        where.append(a.c.occurred_at >= q.start)
    if q.end is not None:
        where.append(a.c.occurred_at < q.end)
    if q.event_type:
        where.append(_one_or_any(a.c.event_type, q.event_type))
    if q.actor is not None:
        where.append(a.c.actor_id == q.actor)
    if q.entity_type is not None:
        where.append(a.c.entity_type == q.entity_type)
    if q.entity_id is not None:
        where.append(a.c.entity_id == q.entity_id)
    if q.severity:
        where.append(_one_or_any(a.c.severity, q.severity))
    if q.category is not None:
        where.append(i.c.category == q.category)
    if q.risk_level is not None:
        where.append(i.c.risk_level == q.risk_level)
    for tag in q.tag:
        value = literal(tag, Text)
        where.append(or_(value == any_(a.c.tags), value == any_(i.c.tags)))
    return where


def _decrypt(aes, tenant_id, event_id, field, text: str | None) -> bytes | str | None:
    if text is None:
        return None
    if aes is None:
        return ERASED
    return decrypt_field(aes, tenant_id, event_id, field, base64.b64decode(text))


def row_to_event(svc, cur, tenant_id: uuid.UUID, r: Mapping[str, Any],
                 keys: EventDecryptor | None = None) -> dict[str, Any]:
    """One row of ``EVENT_COLUMNS`` as the API's event object (``cur``: a psycopg cursor of
    the same transaction, for the keyring; ``keys``: one decryptor shared by a page). Every
    field shown comes from the hashed record, so what a reader sees is what verification
    covers. The sensitive fields of an event whose subject was erased read ``"[erased]"``."""
    record = r["record"]
    rec = orjson.loads(record)
    event_id = uuid.UUID(rec["id"])
    if keys is None:
        keys = EventDecryptor(svc, cur, tenant_id)
    aes = keys.key(rec) if (rec["ip_address"] or rec["user_agent"] or rec["action_details"]) else None
    ip = _decrypt(aes, tenant_id, event_id, "ip_address", rec["ip_address"])
    ua = _decrypt(aes, tenant_id, event_id, "user_agent", rec["user_agent"])
    details = _decrypt(aes, tenant_id, event_id, "action_details", rec["action_details"])
    insights = None
    if r["has_insights"]:
        insights = {
            "anomaly_score": r["anomaly_score"], "is_anomaly": r["is_anomaly"],
            "category": r["category"], "risk_level": r["risk_level"],
            "tags": list(r["insight_tags"] or []), "ai_insights": r["ai_insights"] or {},
            "review_required": r["review_required"],
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
        "ip_address": _text(ip),
        "user_agent": _text(ua),
        "action_details": orjson.loads(details) if isinstance(details, bytes) else details,
        "idempotency_key": rec["idempotency_key"],
        "previous_hash": rec["previous_hash"],
        "hash": hashlib.sha256(record).hexdigest(),
        "insights": insights,
    }


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def page_statement(q: EventQuery, chronological: bool = False,
                   max_bytes: int = 4 * 1024 * 1024) -> Select:
    """The query of one page of ``q`` (see ``list_events``): ``q.limit + 1`` rows in page
    order, each with its record only while the records before it stay under ``max_bytes``.
    """
    where = build_filters(q)
    if q.cursor:
        scope = "timeline" if chronological else "events"
        ts, seq = decode_cursor(q.cursor, scope, _filters(q), (time_part, seq_part))
        position = tuple_(a.c.occurred_at, a.c.seq)
        after = tuple_(literal(ts), literal(seq))
        where.append(position > after if chronological else position < after)
    if chronological:
        order = (a.c.occurred_at.asc(), a.c.seq.asc())
    else:
        order = (a.c.occurred_at.desc(), a.c.seq.desc())
    # The running total of record sizes (same order as the page, so no second sort) lets
    # the server send only the records that fit; rows past the budget come without their
    # record and only say that the page was cut there.
    size = func.octet_length(a.c.record)
    bytes_before = (func.sum(size).over(order_by=order, rows=(None, 0)) - size)
    inner = (
        select(*EVENT_COLUMNS, bytes_before.label("bytes_before"))
        .select_from(EVENTS_WITH_INSIGHTS)
        .where(*where)
        .order_by(*order)
        .limit(q.limit + 1)
        .subquery("p")
    )
    p = inner.c
    fitting = case((p.bytes_before < max_bytes, p.record)).label("record")
    outer_order = ((p.occurred_at.asc(), p.seq.asc()) if chronological
                   else (p.occurred_at.desc(), p.seq.desc()))
    return (
        select(p.seq, p.occurred_at, fitting, p.has_insights, p.anomaly_score, p.is_anomaly,
               p.category, p.risk_level, p.insight_tags, p.ai_insights, p.review_required)
        .order_by(*outer_order)
    )


def list_events(svc, conn: Connection, tenant_id: uuid.UUID, q: EventQuery,
                chronological: bool = False, max_bytes: int = 4 * 1024 * 1024) -> dict:
    """One page of events matching ``q``: newest first, or oldest first for the timeline.

    A page holds at most ``q.limit`` events and ends early, with a ``next_cursor``, once the
    stored records it holds pass ``max_bytes`` (the first event is always included): an
    event's JSON is about the size of its record, so this bounds the response and the
    memory it takes whatever the events hold.
    """
    rows = conn.execute(page_statement(q, chronological, max_bytes)).mappings().all()
    fitting = [r for r in rows[: q.limit] if r["record"] is not None]
    more = len(fitting) < len(rows)
    with driver_cursor(conn) as cur:
        keys = EventDecryptor(svc, cur, tenant_id)
        keys.prefetch(r["record"] for r in fitting)
        events = [row_to_event(svc, cur, tenant_id, r, keys) for r in fitting]
    next_cursor = None
    if more and fitting:
        last = fitting[-1]
        next_cursor = cursor_after(q, last["occurred_at"], last["seq"], chronological)
    return {"events": events, "next_cursor": next_cursor}


def read_events_page(svc, principal: Principal, q: EventQuery, access: AccessRecord, *,
                     chronological: bool = False, max_bytes: int = 4 * 1024 * 1024) -> dict:
    """``list_events`` for the caller's tenant, recorded in the access log in the same
    transaction."""
    with audited_read(svc, principal, access) as conn:
        return list_events(svc, conn, principal.tenant_id, q, chronological, max_bytes)


def get_event(svc, conn: Connection, tenant_id: uuid.UUID, event_id: str) -> dict:
    """One event of the tenant; any other tenant's id (or a malformed id) is 404."""
    try:
        eid = uuid.UUID(event_id)
    except ValueError:
        raise NotFound(f"no event {event_id!r}") from None
    stmt = select(*EVENT_COLUMNS).select_from(EVENTS_WITH_INSIGHTS).where(a.c.id == eid)
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"no event {event_id!r}")
    with driver_cursor(conn) as cur:
        return row_to_event(svc, cur, tenant_id, row)


def read_event(svc, principal: Principal, event_id: str, access: AccessRecord) -> dict:
    """One event of the caller's tenant, the read recorded in the access log; a 404 keeps
    its record (probing for ids is worth auditing)."""
    with audited_read(svc, principal, access) as conn:
        return get_event(svc, conn, principal.tenant_id, event_id)

