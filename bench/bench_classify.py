"""Classification speed: classifying in batch, a cached lookup, and training.

1. **Batch** (target ≥ 2,000 events/s): 20,000 demo events of a fresh tenant, read back
   decrypted as plugins receive them, classified in batches of 1,000 as the enrichment
   pipeline does (``EventClassifier.classify``: tag rules, cache lookup, both models for the
   misses, cache writes). Three ways: the models alone (features + forest + boosting, no
   cache), the classifier with a cold cache (every event a miss, the tenant's own model) and
   with a warm cache (every event a hit).
2. **Cached lookup** (target p95 ≤ 2 ms): 2,000 single-event lookups of events already
   cached (``EventClassifier.predict([event])``: the active version and the entry, both read
   from Redis); the bare Redis GET for comparison.
3. **Training**: ``train_tenant`` on those 20,000 events (weak labels, held-out metrics,
   artifact stored).

Batch ingest with the classifier installed is ``bench_ingest.py`` (the plugin is an entry
point, so it is installed there: ingest only enqueues enrichment).

Run: ``.venv/bin/python bench/bench_classify.py [--quick]``
"""

from __future__ import annotations

import time

import numpy as np
from benchlib import (
    append_all,
    base_parser,
    demo_events,
    latency_summary,
    new_tenant,
    open_app,
    print_header,
    verdict,
)

from trailseal_plugins.classify.classifier import EventClassifier, cache_key, choose_model
from trailseal_plugins.classify.features import inputs, key_of, numbers_of, text_of
from trailseal_plugins.classify.training import train_tenant

BATCH = 1000


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    n = 4000 if args.quick else 20_000
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_classify: classification speed", svc, events=f"{n:,}")
    tid = new_tenant(svc, "bench-classify")
    append_all(svc, tid, demo_events(n, "globex"))
    events = [e for batch in svc.iter_events(tid, batch=5000) for e in batch]
    with app.app_context():
        t = time.perf_counter()
        summary = train_tenant(svc, str(tid), created_by="bench", days=3650)
        train_s = time.perf_counter() - t
    m = summary["metrics"]
    print(f"train: {m['window_events']:,} events ({m['events']:,} labelled kept) in "
          f"{train_s:.1f} s; held-out category macro-F1 {m['category']['macro_f1']:.3f}, "
          f"risk macro-F1 {m['risk']['macro_f1']:.3f}")

    model, version, scope = choose_model(svc, str(tid))
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        texts, numbers = inputs(events[start:start + BATCH])
        model.predict(texts, numbers)
    models_s = time.perf_counter() - t
    print(f"batch, models alone ({scope} model {version}): {n / models_s:,.0f} events/s")

    classifier = EventClassifier(str(tid), svc=svc)
    rates = {}
    for label in ("cold cache", "warm cache"):
        t = time.perf_counter()
        for start in range(0, n, BATCH):
            classifier.classify(events[start:start + BATCH])
        rates[label] = n / (time.perf_counter() - t)
        print(f"batch, classifier with a {label} ({classifier.last_run['cached']} of the last "
              f"{BATCH} cached): {rates[label]:,.0f} events/s")
    print(f"  target >= 2,000 events/s with a cold cache: {verdict(rates['cold cache'] >= 2000)}")

    sample = events[:2000]
    lookups = []
    for e in sample:
        t = time.perf_counter()
        classifier.predict([e])
        lookups.append(time.perf_counter() - t)
        assert classifier.last_run["cached"] == 1
    summary_ms = latency_summary(lookups)
    gets = []
    for e in sample:
        key = cache_key(str(tid), version, key_of(text_of(e), numbers_of(e)))
        t = time.perf_counter()
        svc.redis.get(key)
        gets.append(time.perf_counter() - t)
    raw = latency_summary(gets)
    print(f"cached lookup, one event (active version + entry, both in Redis): p50 {summary_ms['p50']:.2f} ms, "
          f"p95 {summary_ms['p95']:.2f} ms, p99 {summary_ms['p99']:.2f} ms "
          f"(target p95 <= 2 ms: {verdict(summary_ms['p95'] <= 2.0)})")
    print(f"  bare Redis GET: p50 {raw['p50']:.3f} ms, p95 {raw['p95']:.3f} ms")
    print(f"  ({np.mean(lookups) * 1000:.2f} ms mean over {len(lookups)} lookups)")


if __name__ == "__main__":
    main()
