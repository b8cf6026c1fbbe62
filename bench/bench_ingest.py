"""Batch ingest through the service layer versus a plain PostgreSQL COPY of the same rows.

1. Bulk append: ``append_stream`` (validation, encryption, chain, INSERT; one transaction
   per batch of 1000 realistic events) into a fresh tenant, with its default of one helper
   process that validates and encrypts while the calling process links, writes and
   commits; events/s, and the CPU each process used per event. The helper's start-up is
   inside the timing. Target: >= 10,000 events/s.
   The same from JSON Lines: each event given as its JSON bytes (what ``trailseal import``
   passes), decoded by the helper.
2. Per batch, one process: ``validate_events`` + ``append_events`` per batch (what
   ``POST /api/v1/events/batch`` runs); events/s.
3. Phase breakdown of (2): timing wrappers around validation, ``prepare_batch``, ``link_batch``, each
   SQL statement, the commit and the post-commit enqueue; plus the client-side adaptation
   and server time of one INSERT.
4. Baseline: the rows the service stored (every column, incl. ``record``), read back and
   written with binary ``cursor.copy()`` as the schema owner (``ADMIN_DATABASE_URL``) into
   ordinary *logged* tables created with ``LIKE audit_logs``: without any index or
   constraint (beyond NOT NULL), and with ``INCLUDING ALL`` (the same PK, UNIQUE, CHECKs
   and secondary indexes as audit_logs; no trigger or RLS). No hashing or encryption is
   done. rows/s, and the ratio service / COPY.

Run: ``.venv/bin/python bench/bench_ingest.py [--quick] [--events N]``
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict

import orjson
import psycopg
from benchlib import (
    BATCH,
    CpuMeter,
    admin_dsn,
    append_all,
    base_parser,
    chunked,
    demo_events,
    event_count,
    instrumented,
    new_tenant,
    open_app,
    print_header,
    proc_cpu,
    verdict,
)

TARGET_EVENTS_PER_S = 10_000


# --------------------------------------------------------------------------------------------
# Service layer
# --------------------------------------------------------------------------------------------


def stream_pass(svc, instance: str, tenant_id, events: list[dict], batch: int) -> dict[str, float]:
    """``append_stream`` over every batch; seconds and CPU seconds per process."""
    from trailseal.infra import helpers
    from trailseal.services.bulk import append_stream

    meter = CpuMeter(instance)
    pids = helpers.helper_pids(helpers.shared_pool())  # the warm pool's helper processes
    before, helper_before = meter.sample(), sum(proc_cpu(pid) for pid in pids)
    t0 = time.perf_counter()
    result = append_stream(svc, tenant_id, chunked(events, batch))
    total = time.perf_counter() - t0
    cpu = CpuMeter.delta(before, meter.sample())
    assert result.events == len(events)
    return {"total": total, "main": cpu["client"], "postgres": cpu["postgres"],
            "helper": sum(proc_cpu(pid) for pid in pids) - helper_before}


def service_pass(svc, tenant_id, events: list[dict], batch: int) -> dict[str, float]:
    """Validate + append every batch in this process; return total, validate and append seconds."""
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


def breakdown_pass(svc, events: list[dict], batch: int) -> None:
    """Instrumented pass on a fresh tenant; prints where the time goes."""
    tid = new_tenant(svc, "bench-ingest-bd")
    timers: dict[str, float] = defaultdict(float)
    captured: dict = {}
    with instrumented(svc, timers, captured):
        res = service_pass(svc, tid, events, batch)
    n = len(events)
    measured = sum(timers.values())
    rows = [("validate_events (pydantic)", res["validate"])]
    rows += sorted(timers.items(), key=lambda kv: -kv[1])
    rows.append(("other Python in append_events", res["append"] - measured))
    print(f"Phase breakdown of the per-batch path (instrumented, {n:,} events, batches of "
          f"{batch}; the wrappers add ~1-2 us/event):")
    print(f"  {'phase':<62} {'s':>7} {'us/event':>9} {'share':>6}")
    for name, secs in rows:
        print(f"  {name:<62} {secs:7.3f} {secs / n * 1e6:9.1f} {secs / res['total']:6.1%}")
    print(f"  {'TOTAL':<62} {res['total']:7.3f} {res['total'] / n * 1e6:9.1f}   100%")
    print(f"  -> {n / res['total']:,.0f} events/s instrumented")
    print()
    insert_diagnostics(svc, tid, captured["insert_params"])


class _Rollback(Exception):
    pass


def insert_diagnostics(svc, tenant_id, params: dict, repeat: int = 5) -> None:
    """Split one 1000-row INSERT into client-side parameter adaptation and server execution.

    Adaptation (one joined string per column) is timed with psycopg's internal query converter; server
    time with EXPLAIN ANALYZE of the same INSERT (fresh ids, seqs shifted past the chain),
    rolled back.
    """
    import uuid

    from psycopg import adapt

    # psycopg has no public way to time parameter adaptation alone; its query converter is
    # the one private name this diagnostic uses.
    from psycopg._queries import PostgresQuery

    from trailseal.services.ingest import INSERT_SQL

    n = params["id"].count("\x1f") + 1
    print(f"INSERT diagnostics (one {n}-row batch):")
    with svc.db.engine.connect() as sa_conn:
        raw = sa_conn.connection.driver_connection
        with raw.cursor() as cur:
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                PostgresQuery(adapt.Transformer(cur)).convert(INSERT_SQL, params)
                best = min(best, time.perf_counter() - t0)
            print(f"  client-side parameter adaptation (joined strings) {best * 1e3:7.2f} ms "
                  f"({best / n * 1e6:5.1f} us/event)")
        sa_conn.rollback()
    shifted = dict(params, id="\x1f".join(str(uuid.uuid4()) for _ in range(n)),
                   first_seq=params["first_seq"] + 1_000_000_000)
    plan: list[str] = []
    try:
        with svc.db.cursor(tenant_id) as cur:
            cur.execute("EXPLAIN (ANALYZE, TIMING OFF) " + INSERT_SQL, shifted)
            plan = [r[0] for r in cur.fetchall()]
            raise _Rollback
    except _Rollback:
        pass
    for line in plan:
        if line.startswith(("Trigger", "Execution Time", "Planning Time")):
            print(f"  server (EXPLAIN ANALYZE): {line}")
    print()


# --------------------------------------------------------------------------------------------
# COPY baseline
# --------------------------------------------------------------------------------------------


def table_columns(conn, table: str = "audit_logs") -> list[tuple[str, str]]:
    """(name, type) of every column of ``table``, in order (whatever the schema version)."""
    return conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,),
    ).fetchall()


def stored_rows(conn, tenant_id, columns: list[str]) -> list[tuple]:
    """The tenant's stored rows (as the service wrote them, every column), in seq order."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM audit_logs "
                    "WHERE tenant_id = %s ORDER BY seq", (tenant_id,))
        return cur.fetchall()


def copy_rows(conn, table: str, columns: list[tuple[str, str]], rows: list[tuple],
              batch: int | None) -> float:
    """Binary COPY ``rows`` into ``table``; one transaction per batch (or one for all)."""
    cols = ", ".join(name for name, _type in columns)
    t0 = time.perf_counter()
    for part in ([rows] if batch is None else chunked(rows, batch)):
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([type_ for _name, type_ in columns])
                for row in part:
                    copy.write_row(row)
    return time.perf_counter() - t0


def copy_baseline(svc, tenant_id, batch: int) -> dict[str, float]:
    """rows/s of COPY into fresh plain and indexed copies of audit_logs."""
    out: dict[str, float] = {}
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        columns = table_columns(conn)
        rows = stored_rows(conn, tenant_id, [name for name, _type in columns])
        n = len(rows)
        tables = {
            "bench_copy_plain": "LIKE audit_logs",
            "bench_copy_indexed": "LIKE audit_logs INCLUDING ALL",
        }
        variants = [
            ("bench_copy_plain", None, "binary COPY, no indexes, one COPY"),
            ("bench_copy_indexed", None, "binary COPY, audit_logs' indexes, one COPY"),
            ("bench_copy_indexed", batch,
             f"binary COPY, audit_logs' indexes, {batch}-row COPYs, 1 txn each"),
        ]
        print(f"COPY baseline ({n:,} rows read back from audit_logs into memory first; logged "
              "tables; psycopg write_row; commit included):")
        for table, part, label in variants:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} ({tables[table]})")
            conn.execute("CHECKPOINT")
            secs = copy_rows(conn, table, columns, rows, part)
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
    parser.add_argument("--repeat", type=int, help="measured passes (3; 1 with --quick)")
    args = parser.parse_args()
    n = args.events or (5_000 if args.quick else 100_000)
    n_bd = args.breakdown_events or (2_000 if args.quick else 20_000)
    args.repeat = args.repeat or (1 if args.quick else 3)

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_ingest: service-layer batch ingest vs plain COPY", svc,
                 events=f"{n:,}", batch=args.batch, repeat=args.repeat,
                 instance=args.instance)

    t0 = time.perf_counter()
    events = demo_events(n, "acme")
    print(f"generated {len(events):,} demo events in {time.perf_counter() - t0:.1f} s "
          "(not timed; gc.freeze()d so the harness's input is not rescanned by the GC)")
    gc.collect()
    gc.freeze()

    warm = new_tenant(svc, "bench-ingest-warm")
    cold = append_all(svc, warm, events[: 2 * args.batch], args.batch)  # starts the helper pool
    warm_s = append_all(svc, warm, events[2 * args.batch: 4 * args.batch], args.batch)
    print(f"helper pool start-up (paid once per process): first 2-batch call {cold:.2f} s, "
          f"the same with the pool running {warm_s:.2f} s -> about {cold - warm_s:.2f} s")

    print(f"Bulk append (append_stream, 1 helper process) passes ({args.repeat}):")
    streams = []
    for i in range(args.repeat):
        tid = new_tenant(svc, "bench-ingest-stream")
        res = stream_pass(svc, args.instance, tid, events, args.batch)
        assert event_count(svc, tid) == n, "not every event was appended"
        streams.append((res, tid))
        print(f"  run {i + 1}/{args.repeat}: {n / res['total']:,.0f} events/s; CPU us/event: "
              f"main {res['main'] / n * 1e6:.1f}, helper {res['helper'] / n * 1e6:.1f}, "
              f"PostgreSQL {res['postgres'] / n * 1e6:.1f}", flush=True)
    streams.sort(key=lambda r: r[0]["total"])
    sres, tid = streams[len(streams) // 2]
    rate = n / sres["total"]
    print(f"  median {rate:,.0f} events/s ({sres['total'] / n * 1e6:.1f} us/event); best "
          f"{n / streams[0][0]['total']:,.0f}; target >= {TARGET_EVENTS_PER_S:,} events/s: "
          f"{verdict(rate >= TARGET_EVENTS_PER_S)}")
    print()

    lines = [orjson.dumps(e) for e in events]  # a JSON Lines file's lines (not timed)
    print(f"Bulk append of JSON Lines (append_stream given each event's JSON bytes, the "
          f"`trailseal import` path) passes ({args.repeat}):")
    jsonl = []
    for i in range(args.repeat):
        jtid = new_tenant(svc, "bench-ingest-jsonl")
        res = stream_pass(svc, args.instance, jtid, lines, args.batch)
        assert event_count(svc, jtid) == n, "not every event was appended"
        jsonl.append(res)
        print(f"  run {i + 1}/{args.repeat}: {n / res['total']:,.0f} events/s; CPU us/event: "
              f"main {res['main'] / n * 1e6:.1f}, helper {res['helper'] / n * 1e6:.1f}, "
              f"PostgreSQL {res['postgres'] / n * 1e6:.1f}", flush=True)
    jsonl.sort(key=lambda r: r["total"])
    jrate = n / jsonl[len(jsonl) // 2]["total"]
    print(f"  median {jrate:,.0f} events/s; best {n / jsonl[0]['total']:,.0f}; target >= "
          f"{TARGET_EVENTS_PER_S:,} events/s: {verdict(jrate >= TARGET_EVENTS_PER_S)}")
    del lines
    print()

    print(f"Per batch in one process (validate_events + append_events) passes ({args.repeat}):")
    runs = []
    for i in range(args.repeat):
        ptid = new_tenant(svc, "bench-ingest")
        res = service_pass(svc, ptid, events, args.batch)
        assert event_count(svc, ptid) == n, "not every event was appended"
        runs.append(res)
        print(f"  run {i + 1}/{args.repeat}: {n / res['total']:,.0f} events/s "
              f"(validate {res['validate']:.2f} s, append_events {res['append']:.2f} s)",
              flush=True)
    runs.sort(key=lambda r: r["total"])
    res = runs[len(runs) // 2]
    per_batch = n / res["total"]
    print(f"  median {per_batch:,.0f} events/s: validate {res['validate'] / n * 1e6:.1f} "
          f"us/event, append_events {res['append'] / n * 1e6:.1f} us/event")
    print()

    breakdown_pass(svc, events[:n_bd], args.batch)

    copies = copy_baseline(svc, tid, args.batch)
    print("Summary:")
    print(f"  {'bulk append (append_stream, 1 helper process)':<64} {rate:9,.0f} events/s  "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict(rate >= TARGET_EVENTS_PER_S)})")
    print(f"  {'bulk append of JSON Lines (trailseal import path)':<64} {jrate:9,.0f} events/s  "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict(jrate >= TARGET_EVENTS_PER_S)})")
    print(f"  {'per batch, one process (validate_events + append_events)':<64} "
          f"{per_batch:9,.0f} events/s")
    for label, copy_rate in copies.items():
        print(f"  {label:<64} {copy_rate:9,.0f} rows/s; bulk/COPY = {rate / copy_rate:.3f} "
              f"(COPY {copy_rate / rate:.1f}x faster); per-batch/COPY = "
              f"{per_batch / copy_rate:.3f}")
    svc.close()


if __name__ == "__main__":
    main()
