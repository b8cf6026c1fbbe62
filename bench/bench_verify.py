"""Chain verification throughput: ``verify_chain`` over one tenant's whole chain.

The tenant (fixed slug ``bench-verify-<N>``) is filled through the service layer (batches
of 1000 demo events) on the first run and reused afterwards; it is topped up when it holds
fewer than N events. Target: >= 100,000 events/s.

Besides the end-to-end figure the script times the parts separately: streaming the rows
from PostgreSQL (the same server-side cursor and query, no hashing), recomputing the
hashes of rows already in memory, and the components of the canonical form. With
``--profile`` (on by default in a full run when the target is missed) it runs
``verify_chain`` once more under cProfile and prints the top costs.

Run: ``/work/venv/bin/python bench/bench_verify.py [--quick] [--events N] [--profile]``
"""

from __future__ import annotations

import base64
import cProfile
import gc
import hashlib
import io
import pstats
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


def fetch_only(svc, tenant_id) -> tuple[int, float, list[tuple]]:
    """Stream the chain query exactly as verify_chain does, without hashing.

    Returns the row count, seconds and up to 100,000 rows kept for the in-memory tests.
    """
    from trailseal.services.chain import CHAIN_COLUMNS
    from trailseal.services.integrity import FETCH_BATCH

    kept: list[tuple] = []
    n = 0
    t0 = time.perf_counter()
    with svc.db.transaction(tenant_id) as conn:
        raw = conn.connection.driver_connection
        with raw.cursor(name="bench_walk") as stream:
            stream.itersize = FETCH_BATCH
            stream.execute(f"SELECT {', '.join(CHAIN_COLUMNS)} FROM audit_logs ORDER BY seq, id")
            for row in stream:
                n += 1
                if len(kept) < 100_000:
                    kept.append(row)
    return n, time.perf_counter() - t0, kept


def in_memory_costs(rows: list[tuple]) -> None:
    """Per-row cost of hashing and of each part of the canonical form, rows in memory."""
    from trailseal.services.chain import (
        GENESIS_HASH,
        ChainWalker,
        _b64,
        canonical_bytes,
        event_hash,
        format_ts,
    )

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

    def walk():
        walker = ChainWalker("bench", rows[-1][2], rows[-1][21], _NoLookup())
        walker.prev_hash = rows[0][20] if rows[0][2] != 1 else GENESIS_HASH
        walker.expected_seq = rows[0][2]
        for row in rows:
            walker.feed(row)

    dicts = [orjson.loads(canonical_bytes(r)) for r in rows]
    canon = [canonical_bytes(r) for r in rows]
    parts = [
        ("ChainWalker.feed (checks + event_hash)", lambda: walk()),
        ("event_hash (canonical JSON + sha256 hex)", lambda: [event_hash(r) for r in rows]),
        ("canonical_bytes", lambda: [canonical_bytes(r) for r in rows]),
        ("  format_ts x2 (strftime + astimezone)",
         lambda: [(format_ts(r[3]), format_ts(r[4])) for r in rows]),
        ("  _b64 x3 (base64 of the ciphertexts)",
         lambda: [(_b64(r[15]), _b64(r[16]), _b64(r[17])) for r in rows]),
        ("  str(uuid) x2", lambda: [(str(r[0]), str(r[1])) for r in rows]),
        ("  orjson.dumps(dict, OPT_SORT_KEYS) alone",
         lambda: [orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in dicts]),
        ("sha256(...).hexdigest() alone",
         lambda: [hashlib.sha256(c).hexdigest() for c in canon]),
        ("  (alt) isoformat-based timestamp x2",
         lambda: [(r[3].isoformat(), r[4].isoformat()) for r in rows]),
        ("  (alt) base64.b64encode x3 without decode",
         lambda: [(base64.b64encode(r[15]), base64.b64encode(r[16]), base64.b64encode(r[17]))
                  for r in rows]),
    ]
    print(f"In-memory per-row costs ({n:,} rows already fetched; best of 3, GC off):")
    for label, fn in parts:
        print(f"  {label:<48} {timed(fn):7.2f} us/row")
    print()


_TS = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_B64 = "translate(encode({}, 'base64'), E'\\n', '')"
_KEYS = ("id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
         "actor_type", "actor_role", "actor_department", "entity_type", "entity_id", "severity",
         "source", "tags", "ip_address", "user_agent", "action_details", "key_id",
         "idempotency_key", "previous_hash")


def what_if_server_formatting(svc, tenant_id) -> tuple[int, int, float]:
    """Prototype of a faster walk (NOT the product): let PostgreSQL produce the strings.

    uuids as text, timestamps via to_char, ciphertexts via encode(base64), so Python builds
    the canonical dict from plain str/int values (no UUID/datetime/bytes objects, no
    strftime/base64 in Python), then hashes with the same orjson + sha256. Checks every hash
    and the links; returns rows, mismatches and seconds.
    """
    from trailseal.services.chain import CANONICAL_VERSION, GENESIS_HASH

    cols = ["id::text", "tenant_id::text", "seq", _TS.format("occurred_at"),
            _TS.format("received_at"), "event_type", "actor_id", "actor_type", "actor_role",
            "actor_department", "entity_type", "entity_id", "severity", "source", "tags",
            _B64.format("ip_address"), _B64.format("user_agent"), _B64.format("action_details"),
            "key_id", "idempotency_key", "previous_hash", "hash"]
    dumps, sha256, opt = orjson.dumps, hashlib.sha256, orjson.OPT_SORT_KEYS
    n = bad = 0
    prev = GENESIS_HASH
    t0 = time.perf_counter()
    with svc.db.transaction(tenant_id) as conn:
        raw = conn.connection.driver_connection
        with raw.cursor(name="bench_fast_walk") as stream:
            stream.itersize = 20_000
            stream.execute(f"SELECT {', '.join(cols)} FROM audit_logs ORDER BY seq, id")
            for row in stream:
                doc = dict(zip(_KEYS, row[:21], strict=True))
                doc["v"] = CANONICAL_VERSION
                doc["tags"] = doc["tags"] or []
                if sha256(dumps(doc, option=opt)).hexdigest() != row[21] or row[20] != prev:
                    bad += 1
                prev = row[21]
                n += 1
    return n, bad, time.perf_counter() - t0


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
            print("  " + line.replace("/work/venv/lib/python3.11/site-packages/", "")
                  .replace("/work/main/platform/", ""))
    print()


def explain(svc, tenant_id) -> None:
    from trailseal.services.chain import CHAIN_COLUMNS

    with svc.db.cursor(tenant_id) as cur:
        cur.execute("EXPLAIN SELECT " + ", ".join(CHAIN_COLUMNS)
                    + " FROM audit_logs ORDER BY seq, id")
        print("Plan of the chain query (as the app role, RLS on):")
        for (line,) in cur.fetchall():
            print("  " + line)
    print()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the tenant (300,000)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="always run the cProfile pass")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 300_000)
    slug = f"bench-verify-{n // 1000}k" if n % 1000 == 0 else f"bench-verify-{n}"

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

    verify_chain(svc, tid, raise_alert=False)  # warm the cache
    rates = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        report = verify_chain(svc, tid, raise_alert=False)
        secs = time.perf_counter() - t0
        assert report.intact and report.events_checked == total, report
        rates.append(total / secs)
        print(f"verify_chain run {i + 1}: {total:,} events in {secs:.2f} s = "
              f"{total / secs:,.0f} events/s (intact)")
    rate = max(rates)
    print(f"best: {rate:,.0f} events/s; target >= {TARGET_EVENTS_PER_S:,}: "
          f"{verdict(rate >= TARGET_EVENTS_PER_S)}")
    print()

    rows_n, fetch_secs, kept = fetch_only(svc, tid)
    print(f"Fetch only (same named cursor + query, no hashing): {rows_n:,} rows in "
          f"{fetch_secs:.2f} s = {rows_n / fetch_secs:,.0f} rows/s "
          f"({fetch_secs / rows_n * 1e6:.2f} us/row)")
    print()
    in_memory_costs(kept)
    del kept
    fast_n, fast_bad, fast_secs = what_if_server_formatting(svc, tid)
    print(f"What-if (prototype, NOT the product): server-side string formatting + the same "
          f"orjson/sha256 hashing: {fast_n:,} rows in {fast_secs:.2f} s = "
          f"{fast_n / fast_secs:,.0f} rows/s, {fast_bad} hash/link mismatches")
    print()
    explain(svc, tid)
    if args.profile or (rate < TARGET_EVENTS_PER_S and not args.no_profile):
        profile_verify(svc, tid)
    print("Summary:")
    print(f"  verify_chain {rate:,.0f} events/s over {total:,} events "
          f"(target {TARGET_EVENTS_PER_S:,}: {verdict(rate >= TARGET_EVENTS_PER_S)}); "
          f"fetch alone {rows_n / fetch_secs:,.0f} rows/s")
    svc.close()


if __name__ == "__main__":
    main()
