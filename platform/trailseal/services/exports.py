"""Exports: every event matching a set of filters, or every event by or about one person,
read in pages so memory stays bounded whatever the export's size.

An export covers the events up to the tenant's chain head as it was when the export began
(later appends wait for the next export), oldest first. Pages are keyset pages on
(``occurred_at``, ``seq``), each in a short transaction of its own, so a slow download holds
no database connection between pages. A page holds at most ``page_size`` events and ends
early once the stored records it holds pass ``max_bytes`` (the first event always fits), so
the events held at once are bounded by both, whatever the events hold.

The file formats are plugins (``export_formats`` returns ``trailseal.types.Exporter``
objects); this module knows none of them.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, or_, select, tuple_

from ..db import driver_cursor
from ..errors import NotFound
from ..schemas import ExportFilters
from ..types import Exporter
from .access import AccessRecord, audited_read, record_read
from .chain import format_ts
from .events import EVENT_COLUMNS, EVENTS_WITH_INSIGHTS, a, build_filters, row_to_event
from .subject_keys import EventDecryptor
from .tenancy import Principal, get_tenant

log = logging.getLogger(__name__)


def registered_exporters(pm) -> dict[str, Exporter]:
    """The exporters plugins return from ``export_formats``, by name. Objects that are not
    ``Exporter``s are skipped (and logged); when two plugins name the same format, the one
    pluggy calls first wins (an installed plugin before a ``trylast`` built-in)."""
    found: dict[str, Exporter] = {}
    for group in pm.hook.export_formats() or []:
        for item in group or []:
            if not isinstance(item, Exporter):
                log.error("export_formats returned %r, which is not a trailseal.types.Exporter;"
                          " skipped", item)
                continue
            found.setdefault(item.name, item)
    return found


def find_exporter(pm, name: str) -> Exporter:
    """The exporter named ``name``; 404 naming the registered formats otherwise."""
    exporters = registered_exporters(pm)
    if name not in exporters:
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise NotFound(f"no export format {shown!r}; this server exports: "
                       f"{', '.join(sorted(exporters)) or 'nothing (no exporter installed)'}",
                       {"formats": sorted(exporters)})
    return exporters[name]


def filters_for_log(filters: ExportFilters) -> dict[str, Any]:
    """The filters that were set, JSON-safe (timestamps as RFC 3339 text)."""
    data = filters.model_dump(exclude_defaults=True)
    return {key: format_ts(value) if isinstance(value, datetime) else value
            for key, value in data.items()}


@dataclass(frozen=True)
class ExportScope:
    """What one export reads: a tenant's events up to ``head_seq`` matching ``where``."""

    tenant_id: uuid.UUID
    head_seq: int
    where: tuple[ColumnElement[bool], ...] = ()
    page_size: int = 500
    max_bytes: int = 4 * 1024 * 1024
    context: dict[str, Any] = field(default_factory=dict)


def _page_limits(svc) -> dict[str, int]:
    return {"page_size": int(svc.config["EXPORT_PAGE_SIZE"]),
            "max_bytes": int(svc.config["PAGE_MAX_BYTES"])}


def _head_seq(conn, tenant_id: uuid.UUID) -> int:
    row = conn.exec_driver_sql("SELECT last_seq FROM chain_heads WHERE tenant_id = %(t)s",
                               {"t": tenant_id}).first()
    return int(row[0]) if row is not None else 0


def _count(conn, where, head_seq: int) -> int:
    stmt = (select(func.count()).select_from(EVENTS_WITH_INSIGHTS)
            .where(*where, a.c.seq <= head_seq))
    return int(conn.execute(stmt).scalar_one())


def begin_export(svc, principal: Principal, filters: ExportFilters, access: AccessRecord, *,
                 count: bool = False) -> tuple[ExportScope, int | None]:
    """Record the export in the access log (in its own transaction, before any event is
    read, so an export that fails half-way was still logged) and fix its scope: the events
    matching ``filters`` up to the chain head as it is now. With ``count`` also returns how
    many events the export holds (None otherwise)."""
    record_read(svc, principal, access)
    where = tuple(build_filters(filters))
    with svc.db.transaction(principal.tenant_id) as conn:
        head = _head_seq(conn, principal.tenant_id)
        total = _count(conn, where, head) if count else None
    return export_scope(svc, principal.tenant_id, filters, head,
                        f"{principal.kind}:{principal.id}"), total


def export_scope(svc, tenant_id: uuid.UUID, filters: ExportFilters, head_seq: int,
                 generated_by: str) -> ExportScope:
    """The scope of an export whose head was fixed at ``head_seq``, with the context its
    exporter gets (see ``trailseal.types.Exporter``)."""
    tenant = get_tenant(svc, tenant_id)
    context = {
        "tenant": {"id": tenant["id"], "name": tenant["name"], "slug": tenant["slug"]},
        "filters": filters_for_log(filters),
        "period": {"start": format_ts(filters.start) if filters.start else None,
                   "end": format_ts(filters.end) if filters.end else None},
        "generated_at": format_ts(datetime.now(UTC)),
        "generated_by": generated_by,
        "head_seq": head_seq,
        "checkpoint": export_checkpoint(svc, tenant_id, head_seq),
    }
    return ExportScope(tenant_id, head_seq, tuple(build_filters(filters)),
                       **_page_limits(svc), context=context)


def export_checkpoint(svc, tenant_id: uuid.UUID, head_seq: int) -> dict[str, Any] | None:
    """The signed checkpoint an export of events up to ``head_seq`` carries: the smallest
    one that covers them all (tree size >= ``head_seq``), else the newest (it covers the
    events up to its tree size). ``{"tree_size", "root" (hex), "note", "key_name",
    "created_at", "covers_all"}``; None when the tenant has no checkpoint yet."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT tree_size, root, note, key_name, created_at FROM chain_checkpoints "
                    "WHERE tenant_id = %(t)s ORDER BY tree_size >= %(h)s DESC, "
                    "CASE WHEN tree_size >= %(h)s THEN tree_size END, tree_size DESC LIMIT 1",
                    {"t": tenant_id, "h": head_seq})
        row = cur.fetchone()
    if row is None:
        return None
    size, root, note, key_name, created_at = row
    return {"tree_size": size, "root": bytes(root).hex(), "note": note, "key_name": key_name,
            "created_at": format_ts(created_at), "covers_all": size >= head_seq}


def checkpoint_headers(scope: ExportScope) -> dict[str, str]:
    """The response headers that carry an export's checkpoint (none without one):
    ``Trailseal-Checkpoint`` (base64 of the signed note) and
    ``Trailseal-Checkpoint-Tree-Size``."""
    checkpoint = scope.context.get("checkpoint")
    if not checkpoint:
        return {}
    return {"Trailseal-Checkpoint": base64.b64encode(checkpoint["note"].encode()).decode(),
            "Trailseal-Checkpoint-Tree-Size": str(checkpoint["tree_size"])}


def _page(conn, scope: ExportScope, after: tuple[datetime, int] | None):
    """One page of ``scope`` after position ``after``: rows in (occurred_at, seq) order, each
    with its record only while the records before it stay under ``scope.max_bytes``."""
    where = [*scope.where, a.c.seq <= scope.head_seq]
    if after is not None:
        where.append(tuple_(a.c.occurred_at, a.c.seq) > tuple_(literal(after[0]),
                                                                literal(after[1])))
    order = (a.c.occurred_at.asc(), a.c.seq.asc())
    size = func.octet_length(a.c.record)
    bytes_before = func.sum(size).over(order_by=order, rows=(None, 0)) - size
    inner = (select(*EVENT_COLUMNS, bytes_before.label("bytes_before"))
             .select_from(EVENTS_WITH_INSIGHTS).where(*where).order_by(*order)
             .limit(scope.page_size).subquery("p"))
    p = inner.c
    return conn.execute(
        select(p.seq, p.occurred_at, case((p.bytes_before < scope.max_bytes, p.record))
               .label("record"), p.has_insights, p.anomaly_score, p.is_anomaly, p.category,
               p.risk_level, p.insight_tags, p.ai_insights, p.review_required)
        .order_by(p.occurred_at.asc(), p.seq.asc())
    ).mappings().all()


def iter_events(svc, scope: ExportScope) -> Iterator[dict[str, Any]]:
    """Every event of ``scope`` as the API's event object, oldest first, one page (one short
    transaction) at a time."""
    after = None
    while True:
        with svc.db.transaction(scope.tenant_id) as conn:
            rows = _page(conn, scope, after)
            fitting = [r for r in rows if r["record"] is not None]
            with driver_cursor(conn) as cur:
                keys = EventDecryptor(svc, cur, scope.tenant_id)
                keys.prefetch(r["record"] for r in fitting)
                events = [row_to_event(svc, cur, scope.tenant_id, r, keys) for r in fitting]
        yield from events
        del events
        if len(rows) < scope.page_size and len(fitting) == len(rows):
            return
        last = fitting[-1]
        after = (last["occurred_at"], last["seq"])


def subject_condition(subject_id: str) -> ColumnElement[bool]:
    """Events by or about a person: the actor or the entity is ``subject_id``."""
    return or_(a.c.actor_id == subject_id, a.c.entity_id == subject_id)


def begin_subject_export(svc, principal: Principal, subject_id: str,
                         access: AccessRecord) -> ExportScope:
    """Record the read and fix the scope of a subject's export: every event whose actor or
    entity is ``subject_id``, up to the chain head as it is now. 404 (recorded too) when no
    event names the subject."""
    where = (subject_condition(subject_id),)
    with audited_read(svc, principal, access) as conn:
        head = _head_seq(conn, principal.tenant_id)
        found = conn.execute(select(literal(1)).select_from(a)
                             .where(*where, a.c.seq <= head).limit(1)).first()
        if found is None:
            shown = subject_id if len(subject_id) <= 80 else subject_id[:80] + "…"
            raise NotFound(f"no event by or about {shown!r} in this tenant")
    return ExportScope(principal.tenant_id, head, where, **_page_limits(svc))
