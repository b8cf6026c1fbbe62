"""Anomaly detection speed: scoring 1,000,000 stored events, training on 100,000, SHAP for
1,000 alerts, and the enrichment pipeline's throughput with the detector.

1. **Score 1M stored events** (target ≤ 60 s): the detector's whole path over the tenant
   ``bench-1m`` (loaded by ``bench_query.py``; loaded here when missing): read the events
   from PostgreSQL in batches of 5,000 and decrypt them (``svc.iter_events``), describe each
   against the incremental profile (``featurize``), score with the tenant's forest. Once
   step by step, each phase timed; once pipelined as ``trailseal detect --preview`` does it
   (``score_stored``: reading one batch ahead and the forest in threads).
2. **Train on 100,000 events** (target ≤ 30 s): ``train_tenant`` on a window holding about
   100,000 of that tenant's events (read, decrypt, featurise, fit, store the version).
3. **SHAP for 1,000 alerts** (target ≤ 30 s): ``Forest.explain`` on the 1,000 top-scored
   events of pass 1, plus the plain-language explanations.
4. **Pipeline throughput**: ``enrich_events`` (every installed detector and classifier,
   insights, predictions and alerts written) over 20,000 events of a fresh tenant, in
   ranges of 1,000 as the worker runs them; reported per second and as the time the worker
   needs for 1M events.

Run: ``.venv/bin/python bench/bench_anomaly.py [--quick]``
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
from benchlib import (
    append_all,
    base_parser,
    demo_events,
    ensure_tenant,
    event_count,
    load_events,
    open_app,
    print_header,
    verdict,
)

from trailseal.jobs import enrich_events
from trailseal_plugins.anomaly.detector import MODEL_TYPE, load_tenant_forest, score_stored
from trailseal_plugins.anomaly.explain import explain_event
from trailseal_plugins.anomaly.features import Profile, featurize
from trailseal_plugins.anomaly.training import train_tenant

THRESHOLD = 0.62


def score_pass(svc, tid, forest) -> dict:
    timings = {"read + decrypt": 0.0, "features": 0.0, "score": 0.0}
    profile = Profile()
    top_scores, top_rows, top_events = np.zeros(0), [], []
    n = 0
    t = time.perf_counter()
    for batch in svc.iter_events(tid, batch=5000):
        timings["read + decrypt"] += time.perf_counter() - t
        t = time.perf_counter()
        X, profile = featurize(batch, profile)
        timings["features"] += time.perf_counter() - t
        t = time.perf_counter()
        scores, _ = forest.score(X, THRESHOLD)
        timings["score"] += time.perf_counter() - t
        n += len(batch)
        # keep the 1,000 highest for the SHAP pass
        top_scores = np.concatenate([top_scores, scores])
        top_rows.extend(X)
        top_events.extend(batch)
        if len(top_scores) > 5000:
            keep = np.argsort(-top_scores)[:1000]
            top_scores = top_scores[keep]
            top_rows = [top_rows[i] for i in keep]
            top_events = [top_events[i] for i in keep]
        t = time.perf_counter()
    keep = np.argsort(-top_scores)[:1000]
    return {"events": n, "timings": timings, "profile_actors": len(profile.actors),
            "top": (top_scores[keep], np.array([top_rows[i] for i in keep]),
                    [top_events[i] for i in keep])}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    n = 20_000 if args.quick else 1_000_000
    slug = "bench-1m" if n == 1_000_000 else f"bench-q-{n}"
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_anomaly: anomaly detection speed", svc, events=f"{n:,}", tenant=slug,
                 instance=args.instance)
    tid, _ = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < n:
        load_events(svc, tid, n - have, label=f"{slug}: ")
    total = event_count(svc, tid)

    # 2. training (first, so that pass 1 scores with the tenant's own forest)
    with svc.db.transaction(tid) as conn:
        newest = conn.exec_driver_sql("SELECT max(occurred_at) FROM audit_logs").scalar()
        times = [r[0] for r in conn.exec_driver_sql(
            "SELECT occurred_at FROM audit_logs ORDER BY occurred_at DESC LIMIT 100000")]
    days = max(1, int(np.ceil((newest - times[-1]).total_seconds() / 86400)))
    end = newest + timedelta(seconds=1)
    t = time.perf_counter()
    summary = train_tenant(svc, str(tid), created_by="bench", days=days, end=end)
    train_s = time.perf_counter() - t
    rows = summary["metrics"]["window_events"]
    print(f"train: {rows:,} events in the last {days} days of the trail -> model "
          f"{summary['version']} in {train_s:.1f} s (target <= 30 s for 100,000: "
          f"{verdict(train_s <= 30 * max(1.0, rows / 100_000))})")

    # 1. scoring every stored event
    forest, version = load_tenant_forest(svc, str(tid))
    t = time.perf_counter()
    done = score_pass(svc, tid, forest)
    score_s = time.perf_counter() - t
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in done["timings"].items())
    print(f"score: {done['events']:,} stored events in {score_s:.1f} s "
          f"({done['events'] / score_s:,.0f} events/s; {phases}; "
          f"{done['profile_actors']:,} actors in the profile) "
          f"(target <= 60 s for 1M: {verdict(score_s <= 60 * done['events'] / 1_000_000)})")

    # 1b. the same, pipelined: the product's what-if path (trailseal detect --preview)
    t = time.perf_counter()
    piped = sum(len(events) for events, *_ in score_stored(svc, str(tid), forest, THRESHOLD))
    piped_s = time.perf_counter() - t
    print(f"score, pipelined (score_stored: reading a batch ahead and the forest in threads): "
          f"{piped:,} events in {piped_s:.1f} s ({piped / piped_s:,.0f} events/s) "
          f"(target <= 60 s for 1M: {verdict(piped_s <= 60 * piped / 1_000_000)})")

    # 3. SHAP for the 1,000 top-scored events
    scores, X, events = done["top"]
    t = time.perf_counter()
    contributions = forest.explain(X)
    for i, e in enumerate(events):
        explain_event(e, X[i], contributions[i], float(scores[i]), THRESHOLD)
    shap_s = time.perf_counter() - t
    print(f"shap: {len(events):,} alerts explained in {shap_s:.1f} s (target <= 30 s: "
          f"{verdict(shap_s <= 30)})")

    # 4. the enrichment pipeline over a fresh tenant
    m = 5_000 if args.quick else 20_000
    fresh, _ = ensure_tenant(svc, f"bench-anomaly-{uuid.uuid4().hex[:8]}")
    append_all(svc, fresh, demo_events(m, "globex", end=datetime.now(UTC)))
    with app.app_context():
        t = time.perf_counter()
        for first in range(1, m + 1, 1000):
            enrich_events(str(fresh), first, min(m, first + 999))
        pipe_s = time.perf_counter() - t
    with svc.db.transaction(fresh) as conn:
        flagged = conn.exec_driver_sql(
            "SELECT count(*) FILTER (WHERE is_anomaly), count(*) FROM event_insights").one()
        models = conn.exec_driver_sql(
            "SELECT count(*) FROM audit_ml_models WHERE model_type = %s", (MODEL_TYPE,)
        ).scalar()
    print(f"pipeline: {m:,} events enriched in {pipe_s:.1f} s ({m / pipe_s:,.0f} events/s: "
          f"1M would take the worker {1_000_000 / (m / pipe_s) / 60:.1f} min); "
          f"{flagged[0]} flagged of {flagged[1]}; {models} model trained on the way")
    print(f"\nmodel {version}; tenant holds {total:,} events")


if __name__ == "__main__":
    main()
