"""The audit of the audit: every read of trail data appends to ``audit_access_log``, in the
same transaction as the read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from ..errors import NotFound
from ..tables import audit_access_log as log_table
from .chain import format_ts
from .paging import decode_cursor, encode_cursor, seq_part
from .tenancy import Principal


@dataclass(frozen=True)
class AccessRecord:
    """One read as the access log stores it: the path (without the query string), the HTTP
    method, the query parameters and the caller's address."""

    endpoint: str
    method: str
    query: dict[str, Any] = field(default_factory=dict)
    remote_addr: str | None = None


def record_access(conn: Connection, principal: Principal, access: AccessRecord) -> None:
    """Append one access record in the caller's transaction (so no read goes unrecorded)."""
    conn.execute(insert(log_table).values(
        tenant_id=principal.tenant_id, principal_type=principal.kind,
        principal_id=principal.id, endpoint=access.endpoint, method=access.method,
        query=access.query, remote_addr=access.remote_addr,
    ))


@contextmanager
def audited_read(svc, principal: Principal, access: AccessRecord) -> Iterator[Connection]:
    """A transaction of the caller's tenant whose first statement records ``access``.

    A read that finds nothing (``NotFound``, a 404) still commits its record: probing for
    ids is worth auditing. Any other error rolls the record back with the read.
    """
    not_found = None
    with svc.db.transaction(principal.tenant_id) as conn:
        record_access(conn, principal, access)
        try:
            yield conn
        except NotFound as exc:
            not_found = exc  # leave the block normally so the access record commits
    if not_found is not None:
        raise not_found


def record_read(svc, principal: Principal, access: AccessRecord) -> None:
    """Record a read in a transaction of its own (for reads that are not SQL of ours, such
    as plugin routes, or that run their own transactions, such as chain verification)."""
    with svc.db.transaction(principal.tenant_id) as conn:
        record_access(conn, principal, access)


def list_access(conn: Connection, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    """One page of the access log, newest first: ``{"entries": [...], "next_cursor"}``."""
    stmt = select(
        log_table.c.id, log_table.c.principal_type, log_table.c.principal_id,
        log_table.c.endpoint, log_table.c.method, log_table.c.query, log_table.c.remote_addr,
        log_table.c.accessed_at,
    )
    if cursor:
        (before,) = decode_cursor(cursor, "access-log", {}, (seq_part,))
        stmt = stmt.where(log_table.c.id < before)
    stmt = stmt.order_by(log_table.c.id.desc()).limit(limit + 1)
    rows = conn.execute(stmt).mappings().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("access-log", {}, [rows[-1]["id"]])
    entries = [{**r, "accessed_at": format_ts(r["accessed_at"])} for r in rows]
    return {"entries": entries, "next_cursor": next_cursor}


def read_access_log(svc, principal: Principal, access: AccessRecord, *, limit: int = 100,
                    cursor: str | None = None) -> dict[str, Any]:
    """One page of the caller's access log; this read is recorded first, so it shows
    itself."""
    with audited_read(svc, principal, access) as conn:
        return list_access(conn, limit, cursor)
