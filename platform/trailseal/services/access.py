"""The audit of the audit: every read of trail data appends to ``audit_access_log``."""

from __future__ import annotations

from typing import Any

import orjson

from .chain import format_ts
from .paging import decode_cursor, encode_cursor, seq_part


def record_access(
    cur,
    principal,
    *,
    endpoint: str,
    method: str,
    query: dict[str, Any],
    remote_addr: str | None,
) -> None:
    """Append one access record in the caller's transaction (so no read goes unrecorded)."""
    cur.execute(
        "INSERT INTO audit_access_log (tenant_id, principal_type, principal_id, endpoint, method, "
        "query, remote_addr) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s)",
        (principal.tenant_id, principal.kind, principal.id, endpoint, method,
         orjson.dumps(query).decode(), remote_addr),
    )


def list_access(cur, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
    """One page of the access log, newest first: ``{"entries": [...], "next_cursor"}``."""
    params: list[Any] = []
    where = ""
    if cursor:
        (before,) = decode_cursor(cursor, "access-log", {}, (seq_part,))
        where = "WHERE id < %s"
        params.append(before)
    cur.execute(
        "SELECT id, principal_type, principal_id, endpoint, method, query, remote_addr, accessed_at "
        f"FROM audit_access_log {where} ORDER BY id DESC LIMIT %s",
        [*params, limit + 1],
    )
    rows = cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("access-log", {}, [rows[-1][0]])
    entries = [
        {"id": r[0], "principal_type": r[1], "principal_id": r[2], "endpoint": r[3],
         "method": r[4], "query": r[5], "remote_addr": r[6], "accessed_at": format_ts(r[7])}
        for r in rows
    ]
    return {"entries": entries, "next_cursor": next_cursor}
