"""Chain verification against the stored log and the recorded chain head."""

from __future__ import annotations

import queue
import threading
import uuid

from ..errors import NotFound
from .alerts import record_alert
from .chain import VERIFY_COLUMNS, ChainReport, ChainWalker
from .copy_binary import split_tuples

CHUNK = 2_000  # rows handed from the streaming thread to the checker at a time
QUEUE_DEPTH = 8


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


def _stream_rows(svc, tenant_id: uuid.UUID, snapshot: str, out: queue.Queue,
                 stop: threading.Event) -> None:
    """Producer: the tenant's rows in seq order, in chunks, over a binary COPY, seeing the
    same snapshot as the checker (so concurrent appends are neither seen nor missed)."""
    try:
        with svc.db.cursor(tenant_id, snapshot=snapshot) as cur:
            # Read (tenant_id, seq) in index order instead of sorting the whole chain.
            cur.execute("SET LOCAL enable_sort = off")
            sql = f"COPY (SELECT {VERIFY_COLUMNS} FROM audit_logs ORDER BY seq) TO STDOUT (FORMAT BINARY)"
            with cur.copy(sql) as copy:
                chunk: list[tuple] = []
                for f in split_tuples(copy):
                    row = (int.from_bytes(f[0], "big", signed=True), f[1].decode(), f[2],
                           f[3].decode(), int.from_bytes(f[4], "big", signed=True),
                           int.from_bytes(f[5], "big", signed=True))
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        out.put(chunk)
                        chunk = []
                        if stop.is_set():
                            return
                out.put(chunk)
    except BaseException as exc:  # hand any failure to the consumer
        out.put(exc)
    finally:
        out.put(None)


def verify_chain(svc, tenant_id: uuid.UUID, *, raise_alert: bool = True) -> ChainReport:
    """Walk the tenant's chain in ``seq`` order; name the first broken event.

    Rows stream from the database on a second connection while this thread checks them.
    A break records a critical alert (once per distinct break) and fires ``anomaly_detected``.
    """
    with svc.db.cursor(tenant_id, snapshot=True) as cur:
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
        cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        head = cur.fetchone()
        if head is None:
            raise NotFound("tenant not found")
        walker = ChainWalker(str(tenant_id), head[0], head[1], _StoredLookup(cur))
        chunks: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        stop = threading.Event()
        producer = threading.Thread(target=_stream_rows,
                                    args=(svc, tenant_id, snapshot, chunks, stop),
                                    name="chain-walk", daemon=True)
        producer.start()
        try:
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                if not all(map(walker.feed, chunk)):
                    break
        finally:
            stop.set()
            while producer.is_alive():  # drain so the producer can finish and release
                try:
                    chunks.get(timeout=0.1)
                except queue.Empty:
                    pass
            producer.join()
        report = walker.finish()
    if not report.intact and raise_alert:
        record_alert(
            svc, tenant_id, kind="chain_broken", severity="critical",
            title=f"Audit chain broken at seq {report.broken_seq} ({report.reason})",
            details=report.to_dict(), event_id=report.broken_event_id,
            dedupe_key=f"chain:{report.broken_seq}:{report.reason}",
        )
    return report
