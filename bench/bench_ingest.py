"""Batch ingest through the service layer versus a plain PostgreSQL COPY of the same rows.

1. Service layer: ``validate_events`` + ``append_events`` in batches of 1000 realistic events
   (demo_data, every event with ip_address, user_agent and action_details, so all three fields
   are encrypted) into a fresh tenant; events/s. Target: >= 10,000 events/s.
2. Phase breakdown: a second, instrumented pass (timing wrappers around encryption, hashing,
   each SQL statement, the commit and the post-commit enqueue) on a fresh tenant.
3. Baseline: the rows the service stored, read back and written with ``cursor.copy()`` as
   the schema owner (``ADMIN_DATABASE_URL``) into ordinary *logged* tables created with
   ``LIKE audit_logs``: without any index or constraint (beyond NOT NULL), and with
   ``INCLUDING ALL`` (the same PK, UNIQUE (tenant_id, seq), CHECKs and 4 secondary indexes
   as audit_logs; no foreign key, trigger or RLS). No hashing or encryption is done. rows/s,
   and the ratio service / COPY.

Run: ``/work/venv/bin/python bench/bench_ingest.py [--quick] [--events N]``
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from contextlib import contextmanager

import psycopg
from benchlib import (
    BATCH,
    admin_dsn,
    append_all,
    base_parser,
    chunked,
    demo_events,
    event_count,
    new_tenant,
    open_app,
    print_header,
    verdict,
)

TARGET_EVENTS_PER_S = 10_000
COPY_COLUMNS = (
    "id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
    "actor_type", "actor_role", "actor_department", "entity_type", "entity_id", "severity",
    "source", "tags", "ip_address", "user_agent", "action_details", "key_id",
    "idempotency_key", "previous_hash", "hash",
)


# --------------------------------------------------------------------------------------------
# Service layer
# --------------------------------------------------------------------------------------------


def service_pass(svc, tenant_id, events: list[dict], batch: int) -> dict[str, float]:
    """Validate + append every batch; return total, validate and append seconds."""
    from trailseal.services.ingest import append_events, validate_events

    t_validate = t_append = 0.0
    t0 = time.perf_counter()
    for raw in chunked(events, batch):
        t1 = time.perf_counter()
        validated = validate_events(raw)
        t2 = time.perf_counter()
        append_events(svc, tenant_id, validated)
        t3 = time.perf_counter()
        t_validate += t2 - t1
        t_append += t3 - t2
    return {"total": time.perf_counter() - t0, "validate": t_validate, "append": t_append}


class _TimedCursor:
    """Delegates to a psycopg cursor, timing ``execute`` per kind of statement."""

    KINDS = (
        ("INSERT INTO audit_logs", "sql INSERT audit_logs (unnest, incl. param adaptation)"),
        ("SELECT last_seq", "sql SELECT chain head FOR UPDATE"),
        ("UPDATE chain_heads", "sql UPDATE chain head"),
        ("SELECT key_id", "sql SELECT active data key"),
    )

    def __init__(self, cur, timers: dict[str, float]):
        self._cur = cur
        self._timers = timers

    def execute(self, sql, params=None, **kw):
        head = " ".join(str(sql).split())
        label = next((name for prefix, name in self.KINDS if head.startswith(prefix)),
                     "sql other")
        t0 = time.perf_counter()
        try:
            return self._cur.execute(sql, params, **kw)
        finally:
            self._timers[label] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._cur, name)


@contextmanager
def instrumented(svc, timers: dict[str, float]):
    """Patch timing wrappers into the ingest path (restored on exit)."""
    import trailseal.services.chain as chain_mod
    import trailseal.services.ingest as ingest_mod

    orig_encrypt, orig_hash = ingest_mod.encrypt_field, ingest_mod.event_hash
    orig_canonical = chain_mod.canonical_bytes
    orig_cursor = svc.db.cursor

    def encrypt_field(*args):
        t0 = time.perf_counter()
        out = orig_encrypt(*args)
        timers["encrypt (AES-GCM, nonce, AAD)"] += time.perf_counter() - t0
        return out

    def canonical_bytes(row):
        t0 = time.perf_counter()
        out = orig_canonical(row)
        timers["hash: canonical JSON"] += time.perf_counter() - t0
        return out

    def event_hash(row):
        t0 = time.perf_counter()
        out = orig_hash(row)
        timers["_event_hash total"] += time.perf_counter() - t0
        return out

    @contextmanager
    def cursor(tenant_id=None):
        t0 = time.perf_counter()
        with orig_cursor(tenant_id) as cur:
            timers["checkout + BEGIN + set_config"] += time.perf_counter() - t0
            yield _TimedCursor(cur, timers)
            t1 = time.perf_counter()
        timers["COMMIT"] += time.perf_counter() - t1

    orig_after = svc.after_ingest

    def after_ingest(tenant_id, result):
        t0 = time.perf_counter()
        orig_after(tenant_id, result)
        timers["after_ingest (hook + RQ enqueue)"] += time.perf_counter() - t0

    ingest_mod.encrypt_field, ingest_mod.event_hash = encrypt_field, event_hash
    chain_mod.canonical_bytes = canonical_bytes
    svc.db.cursor = cursor
    svc.after_ingest = after_ingest
    try:
        yield
    finally:
        ingest_mod.encrypt_field, ingest_mod.event_hash = orig_encrypt, orig_hash
        chain_mod.canonical_bytes = orig_canonical
        del svc.db.cursor
        del svc.after_ingest


def breakdown_pass(svc, events: list[dict], batch: int) -> None:
    """Instrumented pass on a fresh tenant; prints where the time goes."""
    tid = new_tenant(svc, "bench-ingest-bd")
    timers: dict[str, float] = defaultdict(float)
    with instrumented(svc, timers):
        res = service_pass(svc, tid, events, batch)
    n = len(events)
    timers["hash: sha256 + hexdigest"] = (timers.pop("_event_hash total")
                                          - timers["hash: canonical JSON"])
    measured = sum(timers.values())
    rows = [("validate_events (pydantic)", res["validate"])]
    rows += sorted(timers.items(), key=lambda kv: -kv[1])
    rows.append(("other Python in append_events (ids, columns, orjson of details, lists)",
                 res["append"] - measured))
    print(f"Phase breakdown (instrumented pass, {n:,} events, batches of {batch}; the wrappers "
          "add ~1-2 us/event):")
    print(f"  {'phase':<62} {'s':>7} {'us/event':>9} {'share':>6}")
    for name, secs in rows:
        print(f"  {name:<62} {secs:7.3f} {secs / n * 1e6:9.1f} {secs / res['total']:6.1%}")
    print(f"  {'TOTAL':<62} {res['total']:7.3f} {res['total'] / n * 1e6:9.1f}   100%")
    print(f"  -> {n / res['total']:,.0f} events/s instrumented")
    print()


# --------------------------------------------------------------------------------------------
# COPY baseline
# --------------------------------------------------------------------------------------------


def stored_rows(conn, tenant_id) -> list[tuple]:
    """The tenant's stored rows (as the service wrote them), in seq order."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(COPY_COLUMNS)} FROM audit_logs "
                    "WHERE tenant_id = %s ORDER BY seq", (tenant_id,))
        return cur.fetchall()


def copy_rows(conn, table: str, rows: list[tuple], batch: int | None) -> float:
    """COPY ``rows`` into ``table`` (text format); one transaction per batch (or one in all)."""
    cols = ", ".join(COPY_COLUMNS)
    t0 = time.perf_counter()
    for part in ([rows] if batch is None else chunked(rows, batch)):
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in part:
                    copy.write_row(row)
    return time.perf_counter() - t0


def copy_baseline(svc, tenant_id, batch: int) -> dict[str, float]:
    """rows/s of COPY into fresh plain and indexed copies of audit_logs."""
    out: dict[str, float] = {}
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        rows = stored_rows(conn, tenant_id)
        n = len(rows)
        tables = {
            "bench_copy_plain": "LIKE audit_logs",
            "bench_copy_indexed": "LIKE audit_logs INCLUDING ALL",
        }
        variants = [
            ("bench_copy_plain", None, "COPY, no indexes, one COPY for all rows"),
            ("bench_copy_indexed", None, "COPY, audit_logs' indexes, one COPY for all rows"),
            ("bench_copy_indexed", batch, f"COPY, audit_logs' indexes, {batch}-row COPYs, "
                                          "1 txn each"),
        ]
        print(f"COPY baseline ({n:,} rows read back from audit_logs; logged tables; text "
              "COPY via psycopg write_row, commit included):")
        for table, part, label in variants:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({tables[table]})")
            conn.execute("CHECKPOINT")
            secs = copy_rows(conn, table, rows, part)
            out[label] = n / secs
            print(f"  {label:<62} {secs:7.3f} s  {n / secs:10,.0f} rows/s")
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    print()
    return out


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the measured pass (100,000)")
    parser.add_argument("--breakdown-events", type=int, help="events in the instrumented pass")
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args()
    n = args.events or (5_000 if args.quick else 100_000)
    n_bd = args.breakdown_events or (2_000 if args.quick else 20_000)

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_ingest: service-layer batch ingest vs plain COPY", svc,
                 events=f"{n:,}", batch=args.batch, instance=args.instance)

    t0 = time.perf_counter()
    events = demo_events(n, "acme")
    print(f"generated {len(events):,} demo events in {time.perf_counter() - t0:.1f} s "
          "(not timed; gc.freeze()d so the harness's input is not rescanned by the GC)")
    gc.collect()
    gc.freeze()

    warm = new_tenant(svc, "bench-ingest-warm")
    append_all(svc, warm, events[: 2 * args.batch], args.batch)

    tid = new_tenant(svc, "bench-ingest")
    res = service_pass(svc, tid, events, args.batch)
    assert event_count(svc, tid) == n, "not every event was appended"
    rate = n / res["total"]
    print()
    print(f"Service layer ({n:,} events, batches of {args.batch}, tenant {tid}):")
    print(f"  total          {res['total']:8.2f} s   {rate:10,.0f} events/s   "
          f"{res['total'] / n * 1e6:6.1f} us/event")
    print(f"  validate       {res['validate']:8.2f} s   {n / res['validate']:10,.0f} events/s   "
          f"{res['validate'] / n * 1e6:6.1f} us/event")
    print(f"  append_events  {res['append']:8.2f} s   {n / res['append']:10,.0f} events/s   "
          f"{res['append'] / n * 1e6:6.1f} us/event")
    print(f"  target >= {TARGET_EVENTS_PER_S:,} events/s: {verdict(rate >= TARGET_EVENTS_PER_S)}")
    print()

    breakdown_pass(svc, events[:n_bd], args.batch)

    copies = copy_baseline(svc, tid, args.batch)
    print("Summary:")
    print(f"  service layer          {rate:10,.0f} events/s  "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict(rate >= TARGET_EVENTS_PER_S)})")
    for label, copy_rate in copies.items():
        print(f"  {label:<54} {copy_rate:10,.0f} rows/s; service/COPY = "
              f"{rate / copy_rate:.3f} (COPY {copy_rate / rate:.1f}x faster)")
    svc.close()


if __name__ == "__main__":
    main()
