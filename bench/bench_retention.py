"""Retention purge at scale: archive and remove 100,000 expired events of a tenant, then
verify the retained chain.

The benchmark's own instance (``--instance``, default ``/tmp/ts-retention-bench``): a fresh
tenant with ``--events`` (default 100,000) demo events that occurred eight years ago and
1,000 recent ones, loaded through the bulk ingest path, and a signed checkpoint. Then
``services.retention.apply_retention`` as the daily job runs it: the encrypted archive
(bundle written, compressed, AES-256-GCM), the archive opened again and checked like
``trailseal-verify`` does, and the purge through the maintenance role (the database's
re-check of the boundary, derived rows and events removed, the purge recorded). Finally
``verify_chain`` on what is left.

Run: ``.venv/bin/python bench/bench_retention.py [--quick] [--events N]``
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict

from benchlib import (
    append_all,
    base_parser,
    demo_events,
    new_tenant,
    open_app,
    patched,
    print_header,
)

DEFAULT_INSTANCE = "/tmp/ts-retention-bench"


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(instance=DEFAULT_INSTANCE)
    parser.add_argument("--events", type=int, default=100_000, help="expired events to purge")
    args = parser.parse_args()
    expired = 5_000 if args.quick else args.events

    from trailseal.services import retention
    from trailseal.services.checkpoints import make_checkpoint
    from trailseal.services.integrity import verify_chain

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Retention: archive and purge of expired events", svc,
                 **{"expired events": f"{expired:,}", "recent events": "1,000"})
    tid = new_tenant(svc, "retention")
    now = dt.datetime.now(dt.UTC)
    old = demo_events(expired, end=now - dt.timedelta(days=8 * 365), days=30)
    t0 = time.perf_counter()
    append_all(svc, tid, old)
    append_all(svc, tid, demo_events(1_000, end=now, days=1, seed=11))
    print(f"  loaded {expired + 1000:,} events in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    make_checkpoint(svc, tid, publish=False)
    print(f"  first checkpoint in {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    dry = retention.apply_retention(svc, tid, dry_run=True)
    dry_s = time.perf_counter() - t0
    timers: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    with patched(retention, "begin_bundle", timers, "bundle head (checkpoints, proofs)"), \
            patched(retention, "write_archive", timers, "archive: read events, compress, encrypt"), \
            patched(retention, "_verify_archive", timers, "archive: decrypt and verify"), \
            patched(retention, "make_checkpoint", timers, "checkpoint (already current)"):
        done = retention.apply_retention(svc, tid)
    total = time.perf_counter() - t0
    purge_s = total - sum(timers.values())
    t0 = time.perf_counter()
    report = verify_chain(svc, tid, raise_alert=False)
    verify_s = time.perf_counter() - t0

    print()
    print(f"  dry run (boundary query)        {dry_s * 1e3:8.1f} ms  -> would remove "
          f"{dry['expiring']['events']:,}")
    print(f"  apply_retention total           {total:8.2f} s   removed {done['events_removed']:,} "
          f"events in {len(done['purges'])} archive(s)")
    for label, seconds in timers.items():
        print(f"    {label:<42} {seconds:7.2f} s")
    print(f"    {'purge as maintenance role (SQL)':<42} {purge_s:7.2f} s")
    size = sum(p["archive_bytes"] for p in done["purges"])
    print(f"  archive size                    {size / 1e6:8.1f} MB "
          f"({size / max(1, done['events_removed']):.0f} B/event)")
    print(f"  removal rate                    {done['events_removed'] / total:8,.0f} events/s "
          "(archive and purge)")
    print(f"  verify_chain after the purge    {verify_s:8.2f} s   intact={report.intact}, "
          f"{report.events_checked:,} events, {report.checkpoints_checked} checkpoint(s)")
    if not report.intact:
        raise SystemExit(f"retained chain does not verify: {report.detail}")


if __name__ == "__main__":
    main()
