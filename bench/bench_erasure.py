"""Per-subject keys and GDPR erasure: what they cost.

1. Encryption on the ingest path: ``prepare_batch`` over the same 1000 realistic events with
   the tenant data key alone (the format before per-subject keys) and with per-subject event
   keys, interleaved rounds in one process; median us/event of each and the difference.
2. Subject-key look-up per batch (``ensure_subject_keys``): with every key cached, and for a
   batch whose subjects are all new (keys created and committed); us per batch / per subject.
3. Reading: one page of 100 events (``GET /api/v1/events`` through the service layer) with
   the subject keys cached and with the cache emptied first; ms per page.
4. Erasure: ``erase_subject`` of the busiest actor of a tenant of N demo events (key
   destroyed, derived rows removed); seconds, and the events it made unreadable.

Run: ``.venv/bin/python bench/bench_erasure.py [--quick] [--events N]``
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter

from benchlib import append_all, base_parser, demo_events, new_tenant, open_app, print_header


def _legacy_keys(svc, tenant_id):
    """EventKeys that encrypt like the code before per-subject keys: the tenant key alone."""
    from trailseal.services.subject_keys import TenantKeyOnly

    with svc.db.cursor(tenant_id) as cur:
        return TenantKeyOnly(*svc.keyring.active_key(cur, tenant_id))


def encryption_cost(svc, tenant_id, events, rounds: int) -> dict[str, float]:
    from trailseal.services.ingest import validate_events
    from trailseal.services.records import prepare_batch
    from trailseal.services.subject_keys import (
        ensure_subject_keys,
        event_keys,
        person_entity_types,
        subjects_of,
    )

    valid = validate_events(events)
    text = str(tenant_id)
    legacy = _legacy_keys(svc, tenant_id)
    keys = ensure_subject_keys(svc, tenant_id, subjects_of(valid, person_entity_types(svc.config)))
    old, new = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        prepare_batch(text, legacy, valid)
        old.append((time.perf_counter() - t0) / len(valid) * 1e6)
        with svc.db.cursor(tenant_id) as cur:
            subject = event_keys(svc, cur, tenant_id, keys)  # a fresh one per batch, as ingest
        t0 = time.perf_counter()
        prepare_batch(text, subject, valid)
        new.append((time.perf_counter() - t0) / len(valid) * 1e6)
    return {"old": statistics.median(old), "new": statistics.median(new),
            "subjects": len(keys)}


def lookup_cost(svc, tenant_id, events, rounds: int) -> dict[str, float]:
    from trailseal.services.ingest import validate_events
    from trailseal.services.subject_keys import (
        ensure_subject_keys,
        person_entity_types,
        subjects_of,
    )

    ids = subjects_of(validate_events(events), person_entity_types(svc.config))
    ensure_subject_keys(svc, tenant_id, ids)
    cached = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        ensure_subject_keys(svc, tenant_id, ids)
        cached.append((time.perf_counter() - t0) * 1e6)
    fresh = []
    for _ in range(rounds):
        new_ids = {f"bench-{uuid.uuid4().hex}" for _ in range(len(ids))}
        t0 = time.perf_counter()
        ensure_subject_keys(svc, tenant_id, new_ids)
        fresh.append((time.perf_counter() - t0) * 1e6)
    return {"subjects": len(ids), "cached_us": statistics.median(cached),
            "fresh_us": statistics.median(fresh)}


def read_cost(svc, tenant_id, rounds: int) -> dict[str, float]:
    from trailseal.schemas import EventQuery
    from trailseal.services.events import list_events

    q = EventQuery(limit=100)
    warm, cold = [], []
    for _ in range(rounds):
        with svc.db.transaction(tenant_id) as conn:
            t0 = time.perf_counter()
            page = list_events(svc, conn, tenant_id, q)
            warm.append((time.perf_counter() - t0) * 1e3)
        svc.keyring.subject_cache.clear()
        with svc.db.transaction(tenant_id) as conn:
            t0 = time.perf_counter()
            list_events(svc, conn, tenant_id, q)
            cold.append((time.perf_counter() - t0) * 1e3)
    actors = {e["actor"]["id"] for e in page["events"]}
    return {"warm_ms": statistics.median(warm), "cold_ms": statistics.median(cold),
            "actors": len(actors)}


def erasure_cost(svc, tenant_id, events) -> dict[str, float]:
    from trailseal.services.erasure import erase_subject
    from trailseal.services.tenancy import Principal

    busiest, count = Counter(e["actor"]["id"] for e in events).most_common(1)[0]
    principal = Principal("system", "bench", tenant_id, frozenset({"audit:admin"}))
    t0 = time.perf_counter()
    result = erase_subject(svc, principal, busiest, "benchmark")
    seconds = time.perf_counter() - t0
    return {"subject": busiest, "sent": count, "seconds": seconds,
            "erased": result["events_erased"]}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None,
                        help="events in the erasure tenant (default 100,000; 5,000 quick)")
    args = parser.parse_args()
    n = args.events or (5_000 if args.quick else 100_000)
    rounds = 5 if args.quick else 15
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Per-subject keys and GDPR erasure", svc, events=n, rounds=rounds)

    batch = demo_events(1000, seed=11)
    tenant = new_tenant(svc, "bench-erase-keys")
    enc = encryption_cost(svc, tenant, batch, rounds)
    print("1. prepare_batch, 1000 demo events "
          f"({enc['subjects']:.0f} subjects), median of {rounds} interleaved rounds:")
    print(f"   tenant key alone (before)     {enc['old']:8.1f} us/event")
    print(f"   per-subject event keys (now)  {enc['new']:8.1f} us/event   "
          f"(+{enc['new'] - enc['old']:.1f} us/event, {enc['new'] / enc['old']:.2f}x)")

    look = lookup_cost(svc, tenant, batch, rounds)
    print(f"2. ensure_subject_keys for a batch's {look['subjects']:.0f} subjects:")
    print(f"   all cached                    {look['cached_us']:8.1f} us per batch")
    print(f"   all new (created, committed)  {look['fresh_us'] / 1000:8.2f} ms per batch  "
          f"({look['fresh_us'] / look['subjects']:.1f} us per new subject)")

    events = demo_events(n, seed=5)
    big = new_tenant(svc, "bench-erase")
    t0 = time.perf_counter()
    append_all(svc, big, events)
    print(f"   (filled {n:,} events in {time.perf_counter() - t0:.1f} s)")
    reads = read_cost(svc, big, rounds)
    print(f"3. one page of 100 events ({reads['actors']:.0f} actors), median of {rounds}:")
    print(f"   subject keys cached           {reads['warm_ms']:8.2f} ms")
    print(f"   subject key cache emptied     {reads['cold_ms']:8.2f} ms")

    erased = erasure_cost(svc, big, events)
    print(f"4. erase_subject of the busiest actor ({erased['subject']}, "
          f"{erased['sent']:,} of {n:,} events):")
    print(f"   {erased['seconds']:.2f} s; {erased['erased']:,} events now read [erased]")


if __name__ == "__main__":
    main()
