"""The anomaly detector on the demo data: does every planted incident raise an alert, and
how many false alerts does each tenant get per week?

It replays what the worker does when ``trailseal demo`` loads a tenant (the demo appends
all of a tenant's events, then the worker enriches them in ranges of 1,000 in seq order):
the first range is scored by the shared baseline (the tenant has 1,000 events or fewer);
then the tenant's own model is trained on its last 30 days, which hold every demo event, and
scores the rest. Features come from one profile walked in seq order, as the detector keeps
it, in the demo tenant's time zone (the demo sets each tenant's ``timezone``; ``--utc``
reads hours in UTC instead). Same code as the product (``trailseal_plugins.anomaly``), in
process, no database.

``python bench/eval_demo.py [--threshold 0.62] [--days 28] [--json out.json]``
``python bench/eval_demo.py --dates 10 [--step 37]``: the same for ten demo dates, the data
ending 2026-11-27 and every ``step`` days before it (the demo's data follow the day it runs),
then one line per date: incidents alerted and false alerts per tenant-week.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_baseline import to_event  # noqa: E402

from trailseal.services.settings import DEFAULT_ANOMALY_THRESHOLD  # noqa: E402
from trailseal_plugins.anomaly.baseline import baseline_forest  # noqa: E402
from trailseal_plugins.anomaly.detector import OWN_MODEL_AFTER  # noqa: E402
from trailseal_plugins.anomaly.features import Profile, featurize  # noqa: E402
from trailseal_plugins.anomaly.forest import train_forest  # noqa: E402
from trailseal_plugins.anomaly.training import SEED  # noqa: E402
from trailseal_plugins.demo.data import demo_tenants, generate_events, planted_incidents  # noqa: E402
from trailseal_plugins.demo.profiles import tenant_profile  # noqa: E402

RANGE = 1000


def evaluate(slug: str, days: int, threshold: float, end: datetime,
             zone_on: bool = True) -> dict:
    bodies = generate_events(slug, days=days, end=end)
    incidents = planted_incidents(slug, bodies)
    events = [to_event(b, i + 1) for i, b in enumerate(bodies)]
    zone = tenant_profile(slug).tz if zone_on else "UTC"  # the demo sets the tenant's zone
    X, _ = featurize(events, Profile(zone))
    scores = np.zeros(len(events))
    base, _ = baseline_forest()
    first = min(len(events), RANGE)
    scores[:first] = base.score(X[:first], threshold)[0]
    if len(events) > OWN_MODEL_AFTER:
        own = train_forest(X, seed=SEED)
        scores[first:] = own.score(X[first:], threshold)[0]
    flagged = scores >= threshold
    planted = np.zeros(len(events), dtype=bool)
    found = []
    for inc in incidents:
        planted[inc.event_indices] = True
        idx = np.array(inc.event_indices)
        found.append({"incident": inc.name, "events": len(idx),
                      "alerts": int(flagged[idx].sum()),
                      "best_score": round(float(scores[idx].max()), 4),
                      "best_rank": int((scores[~planted] > scores[idx].max()).sum()) + 1})
    false = int((flagged & ~planted).sum())
    weeks = days / 7
    background = scores[~planted]
    return {"tenant": slug, "events": len(events), "flagged": int(flagged.sum()),
            "false_alerts": false, "false_alerts_per_week": round(false / weeks, 2),
            "incidents": found, "all_incidents_alerted": all(f["alerts"] for f in found),
            "background_p50_p99_p999": [round(float(np.percentile(background, q)), 4)
                                        for q in (50, 99, 99.9)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_ANOMALY_THRESHOLD)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--dates", type=int, default=1,
                        help="how many demo dates to evaluate (default 1)")
    parser.add_argument("--step", type=int, default=37,
                        help="days between the demo dates (default 37)")
    parser.add_argument("--utc", action="store_true",
                        help="hours in UTC instead of each demo tenant's time zone")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    last = datetime(2026, 11, 27, tzinfo=UTC)
    ends = [last - timedelta(days=args.step * i) for i in range(max(1, args.dates))]
    started = time.perf_counter()
    per_date = []
    for end in ends:
        results = [evaluate(t.slug, args.days, args.threshold, end, not args.utc)
                   for t in demo_tenants()]
        per_date.append({"end": end.date().isoformat(), "tenants": results})
        print(f"demo data, {args.days} days ending {end.date()}, threshold {args.threshold} "
              f"({time.perf_counter() - started:.1f} s)")
        for r in results:
            print(f"\n{r['tenant']}: {r['events']} events, {r['flagged']} flagged, "
                  f"{r['false_alerts']} false ({r['false_alerts_per_week']} per week); "
                  f"background scores p50/p99/p99.9 {r['background_p50_p99_p999']}")
            for f in r["incidents"]:
                mark = "ALERTED" if f["alerts"] else "missed "
                print(f"  {mark} {f['incident']:<50} {f['alerts']:>3}/{f['events']:<3} "
                      f"alerts, best score {f['best_score']:.3f} (rank {f['best_rank']} "
                      "among ordinary events)")
        ok = sum(r["all_incidents_alerted"] for r in results)
        print(f"\ntenants with every incident alerted: {ok}/{len(results)}; false alerts per "
              f"tenant-week: {[r['false_alerts_per_week'] for r in results]}\n")
    print("summary: date, incidents alerted, false alerts per tenant-week, missed")
    for d in per_date:
        found = [f for r in d["tenants"] for f in r["incidents"]]
        alerted = sum(1 for f in found if f["alerts"])
        missed = [f"{r['tenant']}: {f['incident']} ({f['best_score']:.3f})"
                  for r in d["tenants"] for f in r["incidents"] if not f["alerts"]]
        rates = [r["false_alerts_per_week"] for r in d["tenants"]]
        print(f"  {d['end']}  {alerted}/{len(found)}  {rates}  max {max(rates)}  "
              f"{'; '.join(missed) or '-'}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(per_date if len(per_date) > 1
                                                 else per_date[0]["tenants"],
                                                 option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
