"""Chain verification against the stored log and the recorded chain head."""

from __future__ import annotations

import uuid

from ..errors import NotFound
from .alerts import record_alert
from .chain import VERIFY_COLUMNS, ChainReport, ChainWalker

FETCH_BATCH = 20_000


class _StoredLookup:
    """Break-time questions about the stored log (see ``ChainWalker``)."""

    def __init__(self, cur):
        self.cur = cur

    def _one(self, sql: str, param) -> tuple | None:
        self.cur.execute(sql, (param,))
        return self.cur.fetchone()

    def by_hash(self, h: str):
        return self._one("SELECT seq, id FROM audit_logs WHERE hash = %s LIMIT 1", h)

    def by_previous_hash(self, h: str):
        return self._one("SELECT seq, id FROM audit_logs WHERE previous_hash = %s LIMIT 1", h)

    def id_at(self, seq: int):
        row = self._one("SELECT id FROM audit_logs WHERE seq = %s ORDER BY id LIMIT 1", seq)
        return row[0] if row else None


def verify_chain(svc, tenant_id: uuid.UUID, *, raise_alert: bool = True) -> ChainReport:
    """Walk the tenant's chain in ``seq`` order; name the first broken event.

    A break records a critical alert (once per distinct break) and fires ``anomaly_detected``.
    """
    with svc.db.transaction(tenant_id) as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
            head = cur.fetchone()
            if head is None:
                raise NotFound("tenant not found")
            walker = ChainWalker(str(tenant_id), head[0], head[1], _StoredLookup(raw.cursor()))
            with raw.cursor(name="chain_walk", binary=True) as stream:
                stream.itersize = FETCH_BATCH
                stream.execute(f"SELECT {VERIFY_COLUMNS} FROM audit_logs ORDER BY seq, id")
                for row in stream:
                    if not walker.feed(row):
                        break
            report = walker.finish()
    if not report.intact and raise_alert:
        record_alert(
            svc, tenant_id, kind="chain_broken", severity="critical",
            title=f"Audit chain broken at seq {report.broken_seq} ({report.reason})",
            details=report.to_dict(), event_id=report.broken_event_id,
            dedupe_key=f"chain:{report.broken_seq}:{report.reason}",
        )
    return report
