"""Chain verification against the stored log and the recorded chain head."""

from __future__ import annotations

import multiprocessing
import queue
import re
import threading
import uuid

import orjson

from ..errors import NotFound
from .alerts import record_alert
from .chain import VERIFY_COLUMNS, ChainReport, ChainWalker
from .copy_binary import split_tuples

CHUNK = 2_000  # rows handed from the streaming thread to the checker at a time
QUEUE_DEPTH = 8
PARALLEL_MIN = 150_000  # below this, a second process costs more than it saves
UPPER_HALF_TIMEOUT = 6 * 3600


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


def _copy_sql(first_seq: int, last_seq: int | None) -> str:
    where = f"seq >= {int(first_seq)}" + ("" if last_seq is None else f" AND seq <= {int(last_seq)}")
    return (f"COPY (SELECT {VERIFY_COLUMNS} FROM audit_logs WHERE {where} ORDER BY seq) "
            "TO STDOUT (FORMAT BINARY)")


def _decode(f: list) -> tuple:
    """One binary COPY tuple as a ``ChainWalker`` row."""
    return (int.from_bytes(f[0], "big", signed=True), f[1].decode(), f[2], f[3].decode(),
            int.from_bytes(f[4], "big", signed=True), int.from_bytes(f[5], "big", signed=True))


def _stream_rows(svc, tenant_id: uuid.UUID, snapshot: str, first_seq: int,
                 last_seq: int | None, out: queue.Queue, stop: threading.Event) -> None:
    """Producer: the tenant's rows in seq order, in chunks, over a binary COPY, seeing the
    same snapshot as the checker (so concurrent appends are neither seen nor missed)."""
    try:
        with svc.db.cursor(tenant_id, snapshot=snapshot) as cur:
            # Read (tenant_id, seq) in index order instead of sorting the whole chain.
            cur.execute("SET LOCAL enable_sort = off")
            with cur.copy(_copy_sql(first_seq, last_seq)) as copy:
                chunk: list[tuple] = []
                for f in split_tuples(copy):
                    chunk.append(_decode(f))
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


def _walk(svc, tenant_id: uuid.UUID, snapshot: str, walker: ChainWalker, first_seq: int,
          last_seq: int | None) -> None:
    """Feed ``walker`` the rows first_seq..last_seq, streamed on a second connection."""
    chunks: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    stop = threading.Event()
    producer = threading.Thread(
        target=_stream_rows, args=(svc, tenant_id, snapshot, first_seq, last_seq, chunks, stop),
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


class _NoLookup:
    """The second process only needs to know whether its half is intact."""

    def by_hash(self, h):
        return None

    def by_previous_hash(self, h):
        return None

    def id_at(self, seq):
        return None


def verify_upper_half(url: str, tenant_id: str, snapshot: str, first_seq: int, head_seq: int,
                      head_hash: str) -> dict:
    """Run in a separate process: check rows from ``first_seq`` on (to the end of the log)
    in the exported ``snapshot``; report whether they are intact and how they start and end."""
    import psycopg

    if not re.fullmatch(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?", snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    walker = ChainWalker(tenant_id, head_seq, head_hash, _NoLookup())
    walker.expected_seq = first_seq
    first_prev = None
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        conn.execute("SELECT set_config('trailseal.tenant_id', %s, true)", (tenant_id,))
        conn.execute("SET LOCAL enable_sort = off")
        intact = True
        with conn.cursor().copy(_copy_sql(first_seq, None)) as copy:
            for f in split_tuples(copy):
                if not intact:
                    continue  # drain the stream so the COPY completes
                row = _decode(f)
                if first_prev is None:
                    first_prev = orjson.loads(row[2]).get("previous_hash")
                    walker.prev_hash = first_prev
                intact = walker.feed(row)
    return {"intact": intact and first_prev is not None, "checked": walker.checked,
            "first_previous_hash": first_prev, "last_seq": walker.expected_seq - 1,
            "last_hash": walker.prev_hash}


def verify_chain(svc, tenant_id: uuid.UUID, *, raise_alert: bool = True,
                 parallel_min: int = PARALLEL_MIN) -> ChainReport:
    """Walk the tenant's chain in ``seq`` order; name the first broken event.

    All reads share one exported snapshot. Rows stream from the database on a second
    connection while this thread checks them; chains of ``parallel_min`` events or more
    have their upper half checked by a second process at the same time (any doubt there is
    settled by walking the whole chain here, so reports are always exact).
    A break records a critical alert (once per distinct break) and fires ``anomaly_detected``.
    """
    with svc.db.cursor(tenant_id, snapshot=True) as cur:
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
        cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        head = cur.fetchone()
        if head is None:
            raise NotFound("tenant not found")
        head_seq, head_hash = head
        report = None
        if head_seq >= parallel_min:
            report = _verify_in_two_halves(svc, tenant_id, snapshot, head_seq, head_hash, cur)
        if report is None:
            walker = ChainWalker(str(tenant_id), head_seq, head_hash, _StoredLookup(cur))
            _walk(svc, tenant_id, snapshot, walker, 1, None)
            report = walker.finish()
    if not report.intact and raise_alert:
        record_alert(
            svc, tenant_id, kind="chain_broken", severity="critical",
            title=f"Audit chain broken at seq {report.broken_seq} ({report.reason})",
            details=report.to_dict(), event_id=report.broken_event_id,
            dedupe_key=f"chain:{report.broken_seq}:{report.reason}",
        )
    return report


def _verify_in_two_halves(svc, tenant_id, snapshot, head_seq, head_hash, cur) -> ChainReport | None:
    """The intact report when both halves and their seam check out; None otherwise."""
    middle = head_seq // 2
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        upper = pool.apply_async(verify_upper_half, (
            svc.db.url, str(tenant_id), snapshot, middle + 1, head_seq, head_hash))
        walker = ChainWalker(str(tenant_id), head_seq, head_hash, _StoredLookup(cur))
        _walk(svc, tenant_id, snapshot, walker, 1, middle)
        result = upper.get(timeout=UPPER_HALF_TIMEOUT)
    if (walker.broken is None and walker.expected_seq == middle + 1 and result["intact"]
            and result["first_previous_hash"] == walker.prev_hash
            and result["last_seq"] == head_seq and result["last_hash"] == head_hash):
        return ChainReport(tenant_id=str(tenant_id), intact=True,
                           events_checked=walker.checked + result["checked"],
                           head_seq=head_seq, head_hash=head_hash)
    if walker.broken is not None:
        return walker.finish()  # the first break lies in the lower half: exact already
    return None
