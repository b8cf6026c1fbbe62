"""The audit of the audit: every read of trail data appends to ``audit_access_log``."""

from __future__ import annotations

from typing import Any

import orjson


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


def list_access(cur, limit: int = 100) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT id, principal_type, principal_id, endpoint, method, query, remote_addr, accessed_at "
        "FROM audit_access_log ORDER BY id DESC LIMIT %s",
        (limit,),
    )
    return [
        {"id": r[0], "principal_type": r[1], "principal_id": r[2], "endpoint": r[3],
         "method": r[4], "query": r[5], "remote_addr": r[6], "accessed_at": r[7].isoformat()}
        for r in cur.fetchall()
    ]
