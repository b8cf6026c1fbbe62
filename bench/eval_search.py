"""Semantic search on real attacks: precision@10 and MRR of the product's hybrid search
against PostgreSQL full-text search alone, in the same run, on the same tenant.

The trail: every Stratus Red Team detonation (real CloudTrail, 35 techniques, 310 events)
plus benign CloudTrail background (``bench/cloudtrail_background.py``, ``--days`` of a small
company's account), all read by the product's CloudTrail importer and appended to a fresh
tenant; the search backlog job then gives every event its full-text vector and embedding
(the work enrichment does for new events). The questions and what is relevant to each are
in ``bench/search_questions.json`` (committed, written before any ranking was looked at)
and ``bench/search_questions_heldout.json`` (25 more on other event types, written before
the search vocabulary and before any ranking of them); figures are given for each set and
for both together.

Methods, each asked every question:

- ``hybrid``: ``POST /api/v1/search`` through the API (vector + full text with the search
  vocabulary, reciprocal-rank fusion), latency measured;
- ``fts_or``: PostgreSQL full text alone, ``ts_rank`` over the query's lexemes joined by OR
  (the stronger full-text peer: the same stored ``tsvector``, without the vocabulary);
- ``fts_vocab``: the product's full-text half alone (``fts_or`` plus the terms the search
  vocabulary adds to the question, ``trailseal.services.search_vocabulary``);
- ``fts_and``: PostgreSQL full text alone the usual way (``websearch_to_tsquery``: every
  word must occur), ranked by ``ts_rank``;
- ``vector``: the exact vector scan alone.

The target compares ``hybrid`` with the better of the two full-text peers. Recall of the
tenant filter: the vector ranking is an exact scan of the tenant's rows, so its recall@10
against exact search is 1 by construction; the run checks it against a brute-force
ranking in numpy over all the tenant's vectors.

``python bench/eval_search.py [--days 7] [--instance /tmp/ts-search-eval] [--tenant SLUG]``
(``--tenant``: the tenant an earlier run loaded, with the same ``--days`` and ``--seed``). Offline; the
datasets are found at ``<repo>/../shared/datasets`` or ``$TRAILSEAL_DATASETS``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cloudtrail_background as background  # noqa: E402
import numpy as np  # noqa: E402
from benchlib import print_header  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from trailseal import create_app  # noqa: E402
from trailseal.jobs.enrichment import index_backlog  # noqa: E402
from trailseal.schemas import EventFilters  # noqa: E402
from trailseal.services.search import text_ranking, vector_ranking  # noqa: E402
from trailseal.services.search_index import FTS_CONFIG, current_embedding_model  # noqa: E402
from trailseal.services.tenancy import create_api_key, create_tenant  # noqa: E402
from trailseal.tables import audit_search_text  # noqa: E402
from trailseal_plugins.import_cloudtrail import CloudTrailImporter, map_record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = Path(__file__).with_name("search_questions.json")
HELDOUT = Path(__file__).with_name("search_questions_heldout.json")
K = 10
TARGET_RATIO = 1.3


def datasets_dir() -> Path:
    return Path(os.environ.get("TRAILSEAL_DATASETS") or REPO.parent / "shared" / "datasets")


def detonations() -> list[tuple[str, dict]]:
    """(technique, event body) of every detonation record, read by the product's importer."""
    importer = CloudTrailImporter()
    out = []
    folder = datasets_dir() / "stratus-cloudtrail" / "detonation-logs"
    for path in sorted(folder.glob("*.json")):
        with path.open("rb") as stream:
            for item in importer.parse(stream, path.name):
                if hasattr(item, "body"):
                    out.append((path.stem, item.body))
    if not out:
        raise SystemExit(f"no detonations under {folder}")
    return out


def fts_and_ranking(conn, tenant_id, text: str, depth: int = 100) -> list[uuid.UUID]:
    s = audit_search_text
    query = func.websearch_to_tsquery(FTS_CONFIG, text)
    stmt = (select(s.c.event_id).where(s.c.tenant_id == tenant_id, s.c.tsv.op("@@")(query))
            .order_by(func.ts_rank(s.c.tsv, query).desc(), s.c.event_id).limit(depth))
    return list(conn.execute(stmt).scalars())


def metrics(ranked: list[str], relevant: set[str]) -> tuple[float, float]:
    """(precision@K, reciprocal rank of the first relevant event within the top K)."""
    top = ranked[:K]
    hits = [i for i, eid in enumerate(top, 1) if eid in relevant]
    return len(hits) / K, (1 / hits[0] if hits else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days of background")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instance", default="/tmp/ts-search-eval")
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--tenant", help="reuse this tenant (slug) of an earlier run")
    args = parser.parse_args(argv)

    app = create_app({"INSTANCE_PATH": args.instance, "RATE_LIMIT": "1000000000/60"})
    svc = app.extensions["trailseal"]
    first = json.loads(QUESTIONS.read_text())["questions"]
    heldout = json.loads(HELDOUT.read_text())["questions"]
    questions = first + heldout
    question_set = ["first"] * len(first) + ["held-out"] * len(heldout)
    bg = [map_record(r) for r in background.generate(days=args.days, seed=args.seed)]
    attacks = detonations()
    print_header("Semantic search on Stratus detonations in CloudTrail background", svc,
                 background_events=len(bg), detonation_events=len(attacks),
                 questions=len(questions))

    bodies = bg + [b for _, b in attacks]
    if args.tenant:
        # a tenant an earlier run loaded (same --days and --seed): indexes what is missing
        tenant = svc.resolve_tenant(args.tenant)
        print(f"  reusing tenant {args.tenant}")
    else:
        slug = f"search-eval-{int(time.time())}"
        tenant = uuid.UUID(create_tenant(svc, slug, slug)["id"])
        bodies.sort(key=lambda b: b["occurred_at"])
        started = time.perf_counter()
        svc.append_events(tenant, bodies)
        print(f"  tenant {slug}: appended {len(bodies)} events in "
              f"{time.perf_counter() - started:.1f} s")
        for queue in svc.queues.values():
            queue.empty()  # enrichment's jobs: the backlog below does the indexing part
    token = create_api_key(svc, tenant, ["audit:read"])["token"]
    started = time.perf_counter()
    with app.app_context():
        indexed = index_backlog(str(tenant), limit=10**9)
    took = time.perf_counter() - started
    print(f"  indexed (full text + embedding) {indexed} events in {took:.1f} s "
          f"({indexed / max(took, 1e-9):.0f} events/s)")

    # which stored events are relevant to which question
    technique_of = {}
    for technique, body in attacks:
        for tag in body["tags"]:
            if tag.startswith("eventid:"):
                technique_of[tag] = technique
    relevant: list[set[str]] = [set() for _ in questions]
    with svc.db.cursor(tenant) as cur:
        cur.execute("SELECT id::text, event_type, tags FROM audit_logs")
        rows = cur.fetchall()
    for eid, event_type, tags in rows:
        techniques = {technique_of.get(t) for t in tags}
        for n, q in enumerate(questions):
            if event_type in q["event_types"] and (
                    "technique" not in q or q["technique"] in techniques):
                relevant[n].add(eid)

    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    model = current_embedding_model(svc.pm, str(tenant))
    methods = ("hybrid", "fts_or", "fts_and", "fts_vocab", "vector")
    results = {m: [] for m in methods}
    latencies = []
    recall_checks = []
    with svc.db.cursor(tenant) as cur:
        cur.execute("SELECT event_id::text, embedding::text FROM audit_embeddings "
                    "WHERE model = %s", (model,))
        stored = cur.fetchall()
    ids = [r[0] for r in stored]
    matrix = np.array([json.loads(r[1]) for r in stored], dtype=np.float32)
    print()
    print(f"  {'#':>2} {'rel':>4} " + " ".join(f"{m:>9}" for m in methods)
          + "  question (reciprocal rank of the first relevant event)")
    for n, q in enumerate(questions):
        body = {"query": q["question"], "limit": K}
        t0 = time.perf_counter()
        resp = client.post("/api/v1/search", json=body, headers=headers)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.get_json()
        hybrid = [r["id"] for r in resp.get_json()["results"]]
        answer = svc.pm.hook.embed_texts(texts=[q["question"]], model=None,
                                         tenant_id=str(tenant))
        vector = answer["vectors"][0]
        with svc.db.transaction(tenant) as conn:
            fts_or = [str(x) for x in text_ranking(conn, tenant, q["question"],
                                                   EventFilters(), depth=K, vocabulary=False)]
            fts_vocab = [str(x) for x in text_ranking(conn, tenant, q["question"],
                                                      EventFilters(), depth=K)]
            fts_and = [str(x) for x in fts_and_ranking(conn, tenant, q["question"], depth=K)]
            by_vector = [str(x) for x in vector_ranking(conn, tenant, vector, model,
                                                         EventFilters(), depth=K)]
        # brute force over every vector of the tenant; events with the same rendering tie,
        # so a returned event counts when it is at least as similar as the K-th best
        exact = matrix @ np.array(vector, dtype=np.float32)
        kth = np.sort(exact)[-K]
        similarity = dict(zip(ids, exact.tolist(), strict=True))
        recall_checks.append(sum(similarity[e] >= kth - 1e-4 for e in by_vector) / K)
        row = []
        for name, ranked in (("hybrid", hybrid), ("fts_or", fts_or), ("fts_and", fts_and),
                             ("fts_vocab", fts_vocab), ("vector", by_vector)):
            p, rr = metrics(ranked, relevant[n])
            results[name].append((p, rr))
            row.append(rr)
        if n == len(first):
            print("  -- held-out questions --")
        print(f"  {n + 1:>2} {len(relevant[n]):>4} " + " ".join(f"{x:9.2f}" for x in row)
              + f"  {q['question']}")
    summaries = {}
    for part in ("first", "held-out", "all"):
        chosen = [k for k, s in enumerate(question_set) if part in ("all", s)]
        print()
        print(f"  {part} questions ({len(chosen)}):")
        summary = {}
        for name, values in results.items():
            values = [values[k] for k in chosen]
            p10 = statistics.mean(v[0] for v in values)
            mrr = statistics.mean(v[1] for v in values)
            found = sum(v[1] > 0 for v in values)
            summary[name] = {"p@10": round(p10, 4), "mrr@10": round(mrr, 4), "answered": found}
            print(f"    {name:<9} P@10 {p10:.3f}   MRR@10 {mrr:.3f}   questions with a relevant "
                  f"event in the top 10: {found}/{len(values)}")
        for peer_name in ("fts_and", "fts_or"):
            peer = summary[peer_name]["mrr@10"]
            ratio = summary["hybrid"]["mrr@10"] / peer if peer else float("inf")
            summary[f"ratio_{peer_name}"] = round(ratio, 3)
            print(f"    MRR hybrid / {peer_name}: {ratio:.2f} (target ≥ {TARGET_RATIO}: "
                  f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})")
        summaries[part] = summary
    summary = summaries["all"]
    ratio = summary["ratio_fts_or"]
    lat = sorted(latencies)
    p95 = lat[max(0, int(round(0.95 * len(lat))) - 1)]
    print()
    print(f"  recall@10 of the tenant-filtered vector ranking against brute force: "
          f"{statistics.mean(recall_checks):.3f}")
    print(f"  POST /api/v1/search (uncached, {len(bodies)}-event tenant): median "
          f"{statistics.median(lat):.0f} ms, p95 {p95:.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "summary": summaries, "ratio": ratio, "p95_ms": p95,
            "recall_at_10": statistics.mean(recall_checks), "events": len(bodies)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
