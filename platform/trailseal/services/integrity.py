"""Chain verification against the stored log and the recorded chain head."""

from __future__ import annotations

import re
import uuid

import orjson

from ..errors import NotFound
from . import helpers
from .alerts import record_alert
from .chain import VERIFY_COLUMNS, ChainReport, ChainWalker
from .copy_binary import chain_rows, copy_out

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


def _int8(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big", signed=True) if raw else 0


def _text(raw: bytes | None) -> str:
    return "" if raw is None else raw.decode("utf-8", "replace")


def _decode(f: list) -> tuple:
    """One binary COPY tuple as a ``ChainWalker`` row, whatever it holds (a tampered row
    may carry NULLs or odd sizes; the walker then reports it)."""
    f = (f + [None] * 6)[:6]
    return (_int8(f[0]), _text(f[1]), f[2] or b"", _text(f[3]), _int8(f[4]), _int8(f[5]))


def _walk(svc, tenant_id: uuid.UUID, snapshot: str, walker: ChainWalker, first_seq: int,
          last_seq: int | None) -> None:
    """Feed ``walker`` the rows first_seq..last_seq over a binary COPY on a second connection
    that sees the same snapshot (so concurrent appends are neither seen nor missed). The
    server keeps producing into the socket while this thread checks, so no extra thread."""
    feed = walker.feed
    with svc.db.cursor(tenant_id, snapshot=snapshot) as cur:
        # Read (tenant_id, seq) in index order instead of sorting the whole chain.
        cur.execute("SET LOCAL enable_sort = off")
        blocks = copy_out(cur.connection.pgconn, _copy_sql(first_seq, last_seq))
        try:
            for row in chain_rows(blocks, _decode):
                if not feed(row):
                    break
        finally:
            blocks.close()  # after a break: cancel the rest of the COPY


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
        blocks = copy_out(conn.pgconn, _copy_sql(first_seq, None))
        for row in chain_rows(blocks, _decode):
            if first_prev is None:
                try:
                    first_prev = orjson.loads(row[2]).get("previous_hash")
                except (orjson.JSONDecodeError, AttributeError):
                    first_prev = ""
                walker.prev_hash = first_prev
            if not walker.feed(row):
                intact = False
                break
        blocks.close()
    return {"intact": intact and first_prev is not None, "checked": walker.checked,
            "first_previous_hash": first_prev, "last_seq": walker.expected_seq - 1,
            "last_hash": walker.prev_hash}


def verify_chain(svc, tenant_id: uuid.UUID, *, raise_alert: bool = True,
                 parallel_min: int = PARALLEL_MIN) -> ChainReport:
    """Walk the tenant's chain in ``seq`` order; name the first broken event.

    All reads share one exported snapshot. Rows stream from the database on a second
    connection while this thread checks them; chains of ``parallel_min`` events or more
    have their upper half checked by a helper process (``helpers``) at the same time (any doubt there is
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
    pool = helpers.shared_pool()
    try:
        upper = pool.submit(verify_upper_half, svc.db.url, str(tenant_id), snapshot, middle + 1,
                            head_seq, head_hash)
    except (helpers.BrokenProcessPool, RuntimeError):
        helpers.discard_pool(pool)
        return None
    walker = ChainWalker(str(tenant_id), head_seq, head_hash, _StoredLookup(cur))
    try:
        _walk(svc, tenant_id, snapshot, walker, 1, middle)
        result = upper.result(timeout=UPPER_HALF_TIMEOUT)
    except helpers.BrokenProcessPool:
        helpers.discard_pool(pool)
        return None  # the caller walks the whole chain here
    if (walker.broken is None and walker.expected_seq == middle + 1 and result["intact"]
            and result["first_previous_hash"] == walker.prev_hash
            and result["last_seq"] == head_seq and result["last_hash"] == head_hash):
        return ChainReport(tenant_id=str(tenant_id), intact=True,
                           events_checked=walker.checked + result["checked"],
                           head_seq=head_seq, head_hash=head_hash)
    if walker.broken is not None:
        return walker.finish()  # the first break lies in the lower half: exact already
    return None
