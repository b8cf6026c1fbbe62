"""Usage per tenant and UTC day: API calls, job compute time, stored events and bytes.

Counting never slows a request down or fails it: each API call and each job adds to a Redis
hash (``trailseal:usage:<tenant>:<day>``), and ``flush_usage`` (a scheduled job, and every
read of the usage) moves those counters into ``tenant_usage``. A flush renames a hash to a
batch key first (atomic: later counts start a new hash), adds the batch in one database
transaction that also records the batch's name, then deletes it. A batch whose name is
already recorded was added before the flush stopped, so it is deleted, not added again.

Storage (events stored, bytes of the event records, insights, embeddings and the full-text
index) is a snapshot: measuring it reads every row of the tenant, so the scheduled job
takes it hourly and a read reports the latest one with its time.

If Redis loses its data (it is not a database), the counts not yet flushed are lost: at
most one flush interval's worth. Usage is for billing and capacity, not for audit; the
access log is the audit record of reads.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import text

from ..errors import ValidationFailed
from .access import AccessRecord, audited_read
from .chain import format_ts
from .tenancy import Principal, get_tenant

log = logging.getLogger(__name__)

PREFIX = "trailseal:usage:"
BATCH_PREFIX = "trailseal:usage-batch:"
KEY_TTL = 40 * 86400  # a counter nobody flushed for this long is dropped by Redis
MAX_DAYS = 366
COUNTERS = ("api_calls", "job_ms")
STORAGE = ("events_stored", "bytes_events", "bytes_insights", "bytes_embeddings",
           "bytes_search")


def _key(tenant_id, day: date) -> str:
    return f"{PREFIX}{tenant_id}:{day.isoformat()}"


def _add(svc, tenant_id, field: str, amount: int) -> None:
    try:
        key = _key(tenant_id, datetime.now(UTC).date())
        with svc.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, field, amount)
            pipe.expire(key, KEY_TTL)
            pipe.execute()
    except redis.RedisError:
        log.warning("usage counter %s of tenant %s not counted (Redis unavailable)", field,
                    tenant_id)


def count_api_call(svc, tenant_id) -> None:
    """One authenticated API call of ``tenant_id``, today."""
    _add(svc, tenant_id, "api_calls", 1)


def count_job_time(svc, tenant_id, seconds: float) -> None:
    """``seconds`` of a job's run attributed to ``tenant_id``, today."""
    _add(svc, tenant_id, "job_ms", max(0, round(seconds * 1000)))


def job_tenant(args: tuple, kwargs: dict) -> str | None:
    """The tenant a job works for: its ``tenant_id`` argument, or a first argument that is
    a tenant id. None for jobs over every tenant (their time is nobody's usage)."""
    candidate = kwargs.get("tenant_id", args[0] if args else None)
    try:
        return str(uuid.UUID(str(candidate))) if candidate is not None else None
    except ValueError:
        return None


def _parse_key(key: str, prefix: str) -> tuple[uuid.UUID, date] | None:
    rest = key[len(prefix):].split(":")
    try:
        return uuid.UUID(rest[0]), date.fromisoformat(rest[1])
    except (IndexError, ValueError):
        return None


def flush_usage(svc, tenant_id: uuid.UUID | None = None) -> int:
    """Add the counters in Redis to ``tenant_usage`` (one tenant's, or everyone's); returns
    how many batches were added. Safe to run at once in several processes."""
    r = svc.redis
    pattern = f"{PREFIX}{tenant_id or '*'}:*"
    for raw in r.scan_iter(match=pattern, count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        batch = f"{BATCH_PREFIX}{key[len(PREFIX):]}:{uuid.uuid4().hex}"
        try:
            r.rename(key, batch)
        except redis.ResponseError:  # another flush took it first
            continue
    added = 0
    for raw in r.scan_iter(match=f"{BATCH_PREFIX}{tenant_id or '*'}:*", count=500):
        batch = raw.decode() if isinstance(raw, bytes) else raw
        parsed = _parse_key(batch, BATCH_PREFIX)
        if parsed is None:
            r.delete(batch)
            continue
        tenant, day = parsed
        counts = {k.decode() if isinstance(k, bytes) else k: int(v)
                  for k, v in r.hgetall(batch).items()}
        with svc.db.transaction(tenant) as conn:
            fresh = conn.execute(text(
                "INSERT INTO tenant_usage_flushes (tenant_id, batch) VALUES (:t, :b) "
                "ON CONFLICT DO NOTHING RETURNING 1"), {"t": tenant, "b": batch}).scalar()
            if fresh:
                conn.execute(text(
                    "INSERT INTO tenant_usage (tenant_id, day, api_calls, job_ms) "
                    "VALUES (:t, :d, :calls, :ms) ON CONFLICT (tenant_id, day) DO UPDATE SET "
                    "api_calls = tenant_usage.api_calls + EXCLUDED.api_calls, "
                    "job_ms = tenant_usage.job_ms + EXCLUDED.job_ms, updated_at = now()"),
                    {"t": tenant, "d": day, "calls": counts.get("api_calls", 0),
                     "ms": counts.get("job_ms", 0)})
                added += 1
            # batches recorded over a week ago can no longer be in Redis: forget them
            conn.execute(text("DELETE FROM tenant_usage_flushes WHERE "
                              "flushed_at < now() - interval '7 days'"))
        r.delete(batch)
    return added


def measure_storage(conn) -> dict[str, int]:
    """The tenant's stored events and the bytes of what it stores (the transaction's
    tenant): event records (their canonical JSON, ciphertext included), insights, embedding
    vectors and the full-text index."""
    row = conn.execute(text("""
        SELECT (SELECT count(*) FROM audit_logs),
               (SELECT coalesce(sum(octet_length(record)), 0) FROM audit_logs),
               (SELECT coalesce(sum(pg_column_size(i.*)), 0) FROM event_insights i),
               (SELECT coalesce(sum(pg_column_size(embedding)), 0) FROM audit_embeddings),
               (SELECT coalesce(sum(pg_column_size(tsv)), 0) FROM audit_search_text)
    """)).one()
    return dict(zip(STORAGE, (int(v) for v in row), strict=True))


def snapshot_storage(svc, tenant_id: uuid.UUID, now: datetime | None = None
                     ) -> dict[str, Any]:
    """Measure a tenant's storage now and keep it as today's snapshot."""
    now = now or datetime.now(UTC)
    with svc.db.transaction(tenant_id) as conn:
        figures = measure_storage(conn)
        conn.execute(text(f"""
            INSERT INTO tenant_usage (tenant_id, day, {", ".join(STORAGE)}, snapshot_at)
            VALUES (:t, :d, {", ".join(":" + c for c in STORAGE)}, :at)
            ON CONFLICT (tenant_id, day) DO UPDATE SET
              {", ".join(f"{c} = EXCLUDED.{c}" for c in STORAGE)},
              snapshot_at = EXCLUDED.snapshot_at, updated_at = now()
        """), {"t": tenant_id, "d": now.date(), "at": now, **figures})
    return {**figures, "snapshot_at": format_ts(now)}


def _period(start: date | None, end: date | None) -> tuple[date, date]:
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ValidationFailed("start must not be after end", {"start": str(start),
                                                               "end": str(end)})
    if (end - start).days >= MAX_DAYS:
        raise ValidationFailed(f"a usage report covers at most {MAX_DAYS} days",
                               {"days": (end - start).days + 1})
    return start, end


def _days(conn, start: date, end: date) -> list[dict[str, Any]]:
    rows = conn.execute(text(f"""
        SELECT day, api_calls, job_ms, {", ".join(STORAGE)}, snapshot_at FROM tenant_usage
         WHERE day BETWEEN :s AND :e ORDER BY day
    """), {"s": start, "e": end}).mappings().all()
    return [{"day": r["day"].isoformat(), "api_calls": int(r["api_calls"]),
             "job_seconds": round(r["job_ms"] / 1000, 3),
             "storage": None if r["snapshot_at"] is None else {
                 **{c: int(r[c]) for c in STORAGE},
                 "bytes_total": sum(int(r[c]) for c in STORAGE[1:]),
                 "snapshot_at": format_ts(r["snapshot_at"])}}
            for r in rows]


def read_usage(svc, principal: Principal, access: AccessRecord, start: date | None = None,
               end: date | None = None) -> dict[str, Any]:
    """The caller's tenant's usage per day over [start, end] (default: this month so far),
    its totals, and the latest storage snapshot (taken now when there is none yet)."""
    start, end = _period(start, end)
    try:
        flush_usage(svc, principal.tenant_id)
    except redis.RedisError:
        log.warning("usage counters not flushed (Redis unavailable); figures may lag")
    with audited_read(svc, principal, access) as conn:
        days = _days(conn, start, end)
        latest = conn.execute(text(
            "SELECT snapshot_at FROM tenant_usage WHERE snapshot_at IS NOT NULL "
            "ORDER BY day DESC LIMIT 1")).scalar()
        events_now = conn.execute(text(
            "SELECT coalesce(max(last_seq), 0) FROM chain_heads")).scalar()
    storage = None
    if latest is None:
        storage = snapshot_storage(svc, principal.tenant_id)
    else:
        with svc.db.transaction(principal.tenant_id) as conn:
            row = conn.execute(text(f"""
                SELECT {", ".join(STORAGE)}, snapshot_at FROM tenant_usage
                 WHERE snapshot_at IS NOT NULL ORDER BY day DESC LIMIT 1""")).mappings().one()
        storage = {**{c: int(row[c]) for c in STORAGE},
                   "snapshot_at": format_ts(row["snapshot_at"])}
    storage["bytes_total"] = sum(storage[c] for c in STORAGE[1:])
    return {
        "tenant_id": str(principal.tenant_id),
        "start": start.isoformat(), "end": end.isoformat(),
        "days": days,
        "totals": {"api_calls": sum(d["api_calls"] for d in days),
                   "job_seconds": round(sum(d["job_seconds"] for d in days), 3)},
        "events_in_chain": int(events_now),
        "storage": storage,
    }


BILLING_COLUMNS = ("tenant_id", "tenant_slug", "start", "end", "api_calls", "job_seconds",
                   "events_stored", "bytes_total", "storage_snapshot_at")


def billing_rows(svc, start: date, end: date) -> Iterator[dict[str, Any]]:
    """One billing line per tenant for [start, end]: calls and compute summed, storage the
    last snapshot of the period."""
    start, end = _period(start, end)
    flush_usage(svc)
    for tenant_id in svc.tenant_ids():
        tenant = get_tenant(svc, tenant_id) or {}
        with svc.db.transaction(tenant_id) as conn:
            days = _days(conn, start, end)
        last = next((d["storage"] for d in reversed(days) if d["storage"]), None)
        yield {"tenant_id": str(tenant_id), "tenant_slug": tenant.get("slug", ""),
               "start": start.isoformat(), "end": end.isoformat(),
               "api_calls": sum(d["api_calls"] for d in days),
               "job_seconds": round(sum(d["job_seconds"] for d in days), 3),
               "events_stored": last["events_stored"] if last else "",
               "bytes_total": last["bytes_total"] if last else "",
               "storage_snapshot_at": last["snapshot_at"] if last else ""}


def billing_csv(svc, start: date, end: date) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, BILLING_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in billing_rows(svc, start, end):
        writer.writerow(row)
    return out.getvalue()


def month_bounds(month: str) -> tuple[date, date]:
    """``YYYY-MM`` → its first and last day."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValidationFailed(f"month must be YYYY-MM, not {month[:20]!r}") from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


class JobTimer:
    """Times a job and counts it for the tenant it works for."""

    def __init__(self, svc, args: tuple, kwargs: dict):
        self.svc = svc
        self.tenant = job_tenant(args, kwargs)

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.tenant is not None:
            count_job_time(self.svc, self.tenant, time.perf_counter() - self.t0)
        return False
