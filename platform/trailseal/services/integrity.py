"""Chain verification against the stored log and the recorded chain head."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from ..db import snapshot_statements
from ..errors import NotFound
from ..infra import helpers
from ..infra.copy_binary import copy_out, feed_stream
from .access import AccessRecord, record_read
from .alerts import record_alert
from .chain import (
    GENESIS_HASH,
    VERIFY_COLUMNS,
    VERIFY_FROM,
    ChainReport,
    ChainWalker,
    NoLookup,
    format_ts,
    row_from_fields,
)
from .merkle_store import check_checkpoints, purged_prefix
from .tenancy import Principal

PARALLEL_MIN = 150_000  # below this, a second process costs more than it saves
log = logging.getLogger(__name__)
RANGE_MIN = 25_000  # rows per range at least, when a chain is checked in ranges
RANGE_TIMEOUT = 6 * 3600


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


def verify_copy_sql(first_seq: int, last_seq: int | None) -> str:
    """The binary COPY that streams the verification columns of seqs ``first_seq`` to
    ``last_seq`` (or the end) in order (bench/bench_verify.py measures it)."""
    where = f"seq >= {int(first_seq)}" + ("" if last_seq is None else f" AND seq <= {int(last_seq)}")
    return (f"COPY (SELECT {VERIFY_COLUMNS} FROM {VERIFY_FROM} WHERE {where} ORDER BY seq) "
            "TO STDOUT (FORMAT BINARY)")


def _session(execute) -> None:
    """Settings for a verification COPY's transaction: read (tenant_id, seq) in index order
    instead of sorting the whole chain."""
    execute("SET LOCAL enable_sort = off")


def _walk(svc, tenant_id: uuid.UUID, snapshot: str, walker: ChainWalker, first_seq: int,
          last_seq: int | None) -> None:
    """Feed ``walker`` the rows first_seq..last_seq over a binary COPY on a second connection
    that sees the same snapshot (so concurrent appends are neither seen nor missed). The
    server keeps producing into the socket while this thread checks, so no extra thread."""
    with svc.db.cursor(tenant_id, snapshot=snapshot) as cur:
        _session(cur.execute)
        blocks = copy_out(cur.connection.pgconn, verify_copy_sql(first_seq, last_seq))
        try:
            feed_stream(blocks, walker.feed_message, walker.feed, row_from_fields)
        finally:
            blocks.close()  # after a break: cancel the rest of the COPY



def _check_range(pgconn, tenant_id: str, first_seq: int, last_seq: int | None, head_seq: int,
                 head_hash: str, full: bool = False) -> dict:
    """Check rows ``first_seq..last_seq`` (``None``: to the end of the log) on a connection
    inside the snapshot's transaction; say whether they are intact and how they start and
    end, for the seams between ranges."""
    walker = ChainWalker(tenant_id, head_seq, head_hash, NoLookup(), fast=not full)
    walker.expected_seq = first_seq
    walker.prev_hash = None  # the first row's link is checked at the seam
    blocks = copy_out(pgconn, verify_copy_sql(first_seq, last_seq))
    try:
        intact = feed_stream(blocks, walker.feed_message, walker.feed, row_from_fields)
    finally:
        blocks.close()
    return {"intact": intact and walker.first_link is not None, "checked": walker.checked,
            "first_seq": first_seq, "first_previous_hash": walker.first_link,
            "last_seq": walker.expected_seq - 1, "last_hash": walker.prev_hash}


def verify_range(url: str, tenant_id: str, snapshot: str, first_seq: int, last_seq: int | None,
                 head_seq: int, head_hash: str, full: bool = False) -> dict:
    """``_check_range`` on a new connection that imports the exported ``snapshot`` (what a
    helper process runs)."""
    import psycopg

    statements = snapshot_statements(snapshot)
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("SELECT set_config('trailseal.tenant_id', %s, true)", (tenant_id,))
        _session(conn.execute)
        return _check_range(conn.pgconn, tenant_id, first_seq, last_seq, head_seq, head_hash,
                            full)


def verify_chain(svc, tenant_id: uuid.UUID, *, raise_alert: bool = True, full: bool = False,
                 parallel_min: int = PARALLEL_MIN, range_min: int = RANGE_MIN) -> ChainReport:
    """Walk the tenant's chain in ``seq`` order; name the first broken event.

    All reads share one exported snapshot. Rows stream from the database on a second
    connection while this thread checks them. Chains of ``parallel_min`` events or more are
    checked in ranges by this process and the helper processes (``helpers``) at the same
    time; any doubt there is settled by walking the whole chain here in order, so reports
    are always exact.
    ``full`` decodes every record and compares it with its columns field by field, instead
    of trusting a matching ``columns_hash`` (see ``ChainWalker.feed``).
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
        # After a retention purge the chain starts at the first retained event, which must
        # link to the last removed one (its hash is kept with the purge; the signed
        # checkpoints then vouch for both, see merkle_store.check_checkpoints).
        purged, purged_hash = purged_prefix(cur, tenant_id)
        report = None
        if head_seq - purged >= parallel_min and helpers.multi_core():
            report = _verify_in_ranges(svc, tenant_id, snapshot, head_seq, head_hash, range_min,
                                       full, start=(purged, purged_hash))
        if report is None:
            walker = ChainWalker(str(tenant_id), head_seq, head_hash, _StoredLookup(cur),
                                 fast=not full)
            walker.expected_seq = purged + 1
            walker.prev_hash = purged_hash
            _walk(svc, tenant_id, snapshot, walker, purged + 1, None)
            report = walker.finish()
        if report.intact:
            _check_against_checkpoints(svc, cur, tenant_id, report)
    if not report.intact and raise_alert:
        record_alert(
            svc, tenant_id, kind="chain_broken", severity="critical",
            title=f"Audit chain broken at seq {report.broken_seq} ({report.reason})",
            details=report.to_dict(), event_id=report.broken_event_id,
            dedupe_key=f"chain:{report.broken_seq}:{report.reason}",
        )
    remember_verification(svc, tenant_id, report)
    return report


def remember_verification(svc, tenant_id: uuid.UUID, report: ChainReport) -> None:
    """Keep the outcome of a tenant's latest verification (its time, result, events and
    checkpoints checked) for the dashboards; ``last_verification`` reads it back."""
    from .settings import LAST_VERIFICATION, set_setting

    set_setting(svc, tenant_id, LAST_VERIFICATION,
                {**report.to_dict(), "verified_at": format_ts(datetime.now(UTC))},
                "system:verification")


def last_verification(svc, tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The latest verification's report and ``verified_at``, or None before the first."""
    from .settings import LAST_VERIFICATION, get_setting

    return get_setting(svc, tenant_id, LAST_VERIFICATION)


def _check_against_checkpoints(svc, cur, tenant_id: uuid.UUID, report: ChainReport) -> None:
    """An intact chain must also still be the one the signed checkpoints cover: someone who
    rewrites an event and recomputes every later hash leaves a consistent chain, but not the
    signed roots."""
    checked, problem = check_checkpoints(svc, cur, tenant_id)
    report.checkpoints_checked = checked
    if problem is not None:
        report.intact = False
        report.broken_seq, report.reason, report.detail = problem.seq, problem.reason, problem.detail
        cur.execute("SELECT id FROM audit_logs WHERE seq = %s ORDER BY id LIMIT 1", (problem.seq,))
        row = cur.fetchone()
        report.broken_event_id = str(row[0]) if row else None


def _verify_in_ranges(svc, tenant_id, snapshot, head_seq, head_hash,
                      range_min: int = RANGE_MIN, full: bool = False,
                      start: tuple[int, str] = (0, GENESIS_HASH)) -> ChainReport | None:
    """The intact report when every range and every seam checks out; None otherwise (the
    caller then walks the whole chain in order, to name the first break exactly).

    The chain is cut into a few ranges per core. The helpers take ranges from the front of
    the queue, this process works from the back and takes every range no helper has
    started, so all cores finish at about the same time whatever each is slowed by.
    """
    workers = helpers.helper_count() + 1
    purged, expected_prev = start
    length = head_seq - purged
    count = min(3 * workers, max(2, length // max(1, range_min)))
    bounds = [purged + 1 + length * i // count for i in range(count + 1)]
    ranges = [(bounds[i], bounds[i + 1] - 1) for i in range(count)]
    ranges[-1] = (ranges[-1][0], None)  # the last range reads to the end of the log
    tid = str(tenant_id)
    pool = helpers.shared_pool()
    futures = {}
    try:
        for index in range(1, count):
            futures[index] = helpers.submit(pool, verify_range, svc.db.url, tid, snapshot,
                                            *ranges[index], head_seq, head_hash, full)
    except (helpers.BrokenProcessPool, RuntimeError):
        helpers.discard_pool(pool)
        for future in futures.values():
            future.cancel()
        return None
    results = {}

    def here(index: int) -> None:
        with svc.db.cursor(tenant_id, snapshot=snapshot) as cur:
            _session(cur.execute)
            results[index] = _check_range(cur.connection.pgconn, tid, *ranges[index],
                                          head_seq, head_hash, full)

    try:
        here(0)
        for index in range(count - 1, 0, -1):
            if not futures[index].cancel():
                break  # a helper has it, and every range before it
            here(index)
        for index, future in futures.items():
            if index not in results:
                results[index] = helpers.result(future, timeout=RANGE_TIMEOUT)
    except helpers.BrokenProcessPool:
        helpers.discard_pool(pool)
        return None
    except Exception:  # noqa: BLE001 - any doubt: the caller walks the whole chain in order
        log.warning("checking tenant %s in ranges failed; walking the chain in order", tid,
                    exc_info=True)
        return None
    finally:
        for future in futures.values():
            helpers.abandon(future)
    for index, (first, last) in enumerate(ranges):
        r = results[index]
        end = head_seq if last is None else last
        if not (r["intact"] and r["first_previous_hash"] == expected_prev
                and r["last_seq"] == end and r["checked"] == end - first + 1):
            return None
        expected_prev = r["last_hash"]
    if expected_prev != head_hash:
        return None
    return ChainReport(tenant_id=tid, intact=True, events_checked=length,
                       head_seq=head_seq, head_hash=head_hash)


def verify_chain_recorded(svc, principal: Principal, access: AccessRecord, *,
                          full: bool = False):
    """Record the read, then walk the tenant's chain (``integrity.verify_chain``); the
    record commits first so a verification that fails half-way was still logged."""
    record_read(svc, principal, access)
    return verify_chain(svc, principal.tenant_id, full=full)
