"""Chain verification throughput: ``verify_chain`` over one tenant's whole chain.

The tenant (slug ``bench-verify-<N>-f<record format>-<projection digest>``) is filled through the service layer (batches
of 1000 demo events) on the first run and reused afterwards; it is topped up when it holds
fewer than N events. Target: >= 100,000 events/s.

Besides the end-to-end figure the script times the parts separately: streaming the rows
from PostgreSQL (the same binary COPY reading as verify_chain's walk, no checks) and, for rows already in memory, ``ChainWalker.feed`` and its parts (sha256 of
the record, orjson.loads, the projection string, timestamp conversion). With
``--profile`` (on by default in a full run when the target is missed) it runs
``verify_chain`` once more under cProfile and prints the top costs.

Run: ``.venv/bin/python bench/bench_verify.py [--quick] [--events N] [--profile]``
"""

from __future__ import annotations

import cProfile
import gc
import hashlib
import io
import pstats
import struct
import sysconfig
import time

import orjson
from benchlib import (
    base_parser,
    ensure_tenant,
    event_count,
    load_events,
    open_app,
    print_header,
    verdict,
)

TARGET_EVENTS_PER_S = 100_000


def fetch_only(svc, tenant_id, keep: int = 100_000) -> tuple[int, float, list[tuple]]:
    """Stream the rows exactly as verify_chain's walk does (binary COPY read from libpq,
    rows cut with the fixed layout), without checking them.

    Returns the row count, seconds and up to ``keep`` rows for the in-memory tests.
    """
    from trailseal.infra.copy_binary import chain_rows, copy_out
    from trailseal.services.chain import row_from_fields
    from trailseal.services.integrity import verify_copy_sql

    kept: list[tuple] = []
    n = 0
    t0 = time.perf_counter()
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SET LOCAL enable_sort = off")
        for row in chain_rows(copy_out(cur.connection.pgconn, verify_copy_sql(1, None)),
                              row_from_fields):
            n += 1
            if len(kept) < keep:
                kept.append(row)
    return n, time.perf_counter() - t0, kept


def in_memory_costs(rows: list[tuple]) -> None:
    """Per-row cost of ChainWalker.feed and of its parts, rows already in memory."""
    from trailseal.infra.copy_binary import encode_tuple
    from trailseal.services.chain import GENESIS_HASH, ChainWalker, projection_of, ts_micros

    n = len(rows)

    def timed(fn) -> float:
        best = float("inf")
        gc.disable()
        try:
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
        return best / n * 1e6

    class _NoLookup:
        def by_hash(self, h):
            return None

        by_previous_hash = by_hash

        def id_at(self, seq):
            return None

    # the rows as the server sends them
    messages = [encode_tuple([struct.pack(">q", r[0]), r[1].encode(), r[2], r[3]]) for r in rows]

    def walker_over(items, method: str, fast: bool = True):
        def walk():
            walker = ChainWalker("bench", rows[-1][0], rows[-1][1], _NoLookup(), fast=fast)
            walker.prev_hash = GENESIS_HASH
            feed = getattr(walker, method)
            for item in items:
                if not feed(item):
                    raise AssertionError(walker.broken)
        return walk

    def each(fn, items) -> None:  # results are dropped at once, as in feed
        for item in items:
            fn(item)

    recs = [orjson.loads(r[2]) for r in rows]
    records = [r[2] for r in rows]
    parts = [
        ("ChainWalker.feed_message (COPY messages: the hot path)",
         walker_over(messages, "feed_message")),
        ("ChainWalker.feed, fast=False (verify --full)", walker_over(rows, "feed", fast=False)),
        ("sha256(record).hexdigest()", lambda: each(lambda b: hashlib.sha256(b).hexdigest(),
                                                    records)),
        ("sha256(columns).hexdigest()", lambda: each(lambda b: hashlib.sha256(b).hexdigest(),
                                                     [r[3] for r in rows])),
        ("orjson.loads(record)", lambda: each(orjson.loads, records)),
        ("projection_of(rec)", lambda: each(projection_of, recs)),
        ("ts_micros(occurred_at)", lambda: each(ts_micros, [d["occurred_at"] for d in recs])),
    ]
    print(f"In-memory per-row costs ({n:,} rows already fetched, chain from seq 1; best of 3, "
          "GC off):")
    for label, fn in parts:
        print(f"  {label:<54} {timed(fn):7.2f} us/row")
    print()


def profile_verify(svc, tenant_id, top: int = 18) -> None:
    from trailseal.services.integrity import verify_chain

    prof = cProfile.Profile()
    prof.enable()
    verify_chain(svc, tenant_id, raise_alert=False)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(f"cProfile of verify_chain (top {top} by own time; profiler overhead inflates "
          "Python-level calls):")
    lines = out.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start:]:
        if line.strip():
            print("  " + line.replace(sysconfig.get_paths()["purelib"] + "/", "")
                  .replace("/work/main/platform/", ""))
    print()


def explain(svc, tenant_id) -> None:
    from trailseal.services.chain import VERIFY_COLUMNS, VERIFY_FROM

    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute(f"EXPLAIN SELECT {VERIFY_COLUMNS} FROM {VERIFY_FROM} ORDER BY seq")
        print("Plan of the COPY's query (app role, RLS on, enable_sort = off):")
        for (line,) in cur.fetchall():
            print("  " + line)
    print()


def checkpointed_runs(svc, tid, total: int, repeat: int) -> None:
    """``verify_chain`` once a signed checkpoint covers the whole chain (as the hourly job
    leaves every tenant): the chain walk plus the check of every checkpoint's root against
    the stored events (``merkle_store.check_checkpoints``), that check also timed alone."""
    from trailseal.services.checkpoints import make_checkpoint
    from trailseal.services.integrity import verify_chain
    from trailseal.services.merkle_store import check_checkpoints

    t0 = time.perf_counter()
    made = make_checkpoint(svc, tid, publish=False)
    print(f"checkpoint signed ({'new' if made['created'] else 'already current'}) in "
          f"{time.perf_counter() - t0:.2f} s")
    rates, alone = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        report = verify_chain(svc, tid, raise_alert=False)
        secs = time.perf_counter() - t0
        assert report.intact and report.checkpoints_checked >= 1, report
        rates.append(total / secs)
        with svc.db.cursor(tid) as cur:
            t0 = time.perf_counter()
            checked, problem = check_checkpoints(svc, cur, tid)
            alone.append(time.perf_counter() - t0)
        assert problem is None and checked >= 1
        print(f"with checkpoints, run {i + 1}: {total / secs:,.0f} events/s; the checkpoint "
              f"check alone {alone[-1]:.2f} s ({alone[-1] / total * 1e6:.2f} us/event)",
              flush=True)
    rate = sorted(rates)[len(rates) // 2]
    print(f"with checkpoints: median {rate:,.0f} events/s (check alone, median "
          f"{sorted(alone)[len(alone) // 2]:.2f} s); target >= {TARGET_EVENTS_PER_S:,}: "
          f"{verdict(rate >= TARGET_EVENTS_PER_S)}")
    print()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the tenant (300,000)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="always run the cProfile pass")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--checkpoint", action="store_true",
                        help="also time it after a signed checkpoint covers the chain (every "
                             "checkpoint is then checked against the stored events)")
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 300_000)
    from trailseal.services.chain import CANONICAL_VERSION, PROJECTION_SQL

    # one tenant per record format (and column projection), so a run measures records
    # written by the current code
    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    form = hashlib.sha256(f"{CANONICAL_VERSION}{PROJECTION_SQL}".encode()).hexdigest()[:6]
    slug = f"bench-verify-{size}-f{CANONICAL_VERSION}-{form}"

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_verify: verify_chain throughput", svc, events=f"{n:,}", tenant=slug,
                 instance=args.instance)

    from trailseal.services.integrity import verify_chain

    tid, created = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < n:
        print(f"loading {n - have:,} events into {slug} (has {have:,}) ...")
        secs = load_events(svc, tid, n - have, "initech", label=f"{slug}: ")
        print(f"  done: {(n - have) / secs:,.0f} events/s through the service layer")
    else:
        print(f"reusing tenant {slug} with {have:,} events (no loading)")
    total = event_count(svc, tid)
    print()

    t0 = time.perf_counter()
    verify_chain(svc, tid, raise_alert=False)  # warms the cache; starts the helper pool
    print(f"first call (starts the helper pool, cold cache): {total / (time.perf_counter() - t0):,.0f} "
          "events/s")
    rates = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        report = verify_chain(svc, tid, raise_alert=False)
        secs = time.perf_counter() - t0
        assert report.intact and report.events_checked == total, report
        rates.append(total / secs)
        print(f"verify_chain run {i + 1}: {total:,} events in {secs:.2f} s = "
              f"{total / secs:,.0f} events/s (intact)", flush=True)
    ordered = sorted(rates)
    rate = ordered[len(ordered) // 2]
    print(f"median {rate:,.0f} events/s, best {ordered[-1]:,.0f}, worst {ordered[0]:,.0f}; "
          f"target >= {TARGET_EVENTS_PER_S:,} (median): {verdict(rate >= TARGET_EVENTS_PER_S)}")
    print()
    if args.checkpoint:
        checkpointed_runs(svc, tid, total, args.repeat)

    rows_n, fetch_secs, kept = fetch_only(svc, tid)
    fetch_rate = rows_n / fetch_secs
    print(f"Stream only (binary COPY read from libpq + fixed-layout rows, one process, no "
          f"checks): {rows_n:,} rows in {fetch_secs:.2f} s = {fetch_rate:,.0f} rows/s "
          f"({fetch_secs / rows_n * 1e6:.2f} us/row)")
    print()
    in_memory_costs(kept)
    del kept
    explain(svc, tid)
    if args.profile or (rate < TARGET_EVENTS_PER_S and not args.no_profile):
        profile_verify(svc, tid)
    print("Summary:")
    print(f"  verify_chain median {rate:,.0f} events/s (best {ordered[-1]:,.0f}) over {total:,} events "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict(rate >= TARGET_EVENTS_PER_S)})"
          f"; stream alone {fetch_rate:,.0f} rows/s")
    svc.close()


if __name__ == "__main__":
    main()
