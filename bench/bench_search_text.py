"""The full-text half of search with and without the search vocabulary, in a large tenant:
the vocabulary adds words to the question's OR, so more events match and ``ts_rank`` reads
more of them (``FTS_BUDGET`` bounds that: the commonest words are left out). Interleaved in
one process, per question of ``bench_search_scale.QUESTIONS`` (the demo company's trail).

``python bench/bench_search_text.py [--instance /tmp/ts-bench] [--tenant bench-1m]
[--repeat 5]``. Needs the tenant's full-text rows (``bench_search_scale.py`` writes them).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search_scale import QUESTIONS, TENANT  # noqa: E402
from benchlib import base_parser, open_app, print_header  # noqa: E402

from trailseal.schemas import EventFilters  # noqa: E402
from trailseal.services.search import text_ranking  # noqa: E402
from trailseal.services.search_vocabulary import expansion_terms  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tenant", default=TENANT)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    tid = svc.resolve_tenant(args.tenant)
    print_header("Full-text half of search, with and without the vocabulary", svc,
                 tenant=args.tenant, questions=len(QUESTIONS), repeat=args.repeat)
    widened = sum(bool(expansion_terms(q)) for q in QUESTIONS)
    print(f"  questions the vocabulary widens: {widened} of {len(QUESTIONS)}")
    times: dict[bool, list[float]] = {False: [], True: []}
    found: dict[bool, list[int]] = {False: [], True: []}
    for k in range(args.repeat + 1):  # the first pass warms the caches and is not counted
        for q in QUESTIONS:
            for vocabulary in ((False, True) if k % 2 else (True, False)):
                with svc.db.transaction(tid) as conn:
                    started = time.perf_counter()
                    got = text_ranking(conn, tid, q, EventFilters(), svc=svc,
                                       vocabulary=vocabulary)
                    took = (time.perf_counter() - started) * 1000
                if k:
                    times[vocabulary].append(took)
                    found[vocabulary].append(len(got))
    for vocabulary, values in times.items():
        values.sort()
        p95 = values[max(0, round(0.95 * len(values)) - 1)]
        print(f"  {'with' if vocabulary else 'without':>7} the vocabulary: median "
              f"{statistics.median(values):6.1f} ms, p95 {p95:6.1f} ms, max {values[-1]:6.1f} "
              f"ms; ranked events per question: median "
              f"{statistics.median(found[vocabulary]):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
