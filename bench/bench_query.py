"""``GET /api/v1/events`` (and ``/api/v1/timeline``) latency with 1,000,000 events stored.

The tenant ``bench-1m`` is filled once through the service layer (batches of 1000 demo
events spread over the last 365 days) and reused by later runs (loading is skipped when it
already holds >= 1,000,000 events). Three more tenants (``bench-1m-other-1..3``, 50,000
events each) make sure other tenants' rows share the table and its indexes. After loading,
``ANALYZE audit_logs`` runs once (autovacuum would do the same shortly after such a load).
Every event also gets the ``event_insights`` row the enrichment worker writes when no AI
plugin is installed (defaults), bulk-inserted as the owner, since no worker runs here.

Requests go over real HTTP to the app under waitress (``trailseal.cli.runtime.serve_app``, 8
threads, subprocess on 127.0.0.1) from one keep-alive ``http.client`` connection, one at a time; each
is a full page (limit 50) decrypted and serialised by the API, and each read also appends
to the access log (one fsync'd commit per request). Target: p95 <= 50 ms for filtered pages.

Then an in-process breakdown (Flask test client, timing wrappers) of the first page and of
the slowest query.

Run: ``.venv/bin/python bench/bench_query.py [--quick] [--events N] [--requests N]``
"""

from __future__ import annotations

import time
from collections import defaultdict
from urllib.parse import urlencode

import orjson
import psycopg
from benchlib import (
    INSIGHTS_SQL,
    Client,
    Server,
    admin_dsn,
    api_token,
    base_parser,
    ensure_tenant,
    event_count,
    format_latency,
    instrumented,
    latency_summary,
    load_events,
    open_app,
    patched,
    print_header,
    verdict,
)

TARGET_P95_MS = 50.0
OTHER_TENANTS = 3


def ensure_data(svc, slug: str, n: int, n_other: int) -> tuple:
    """The benchmark tenant with >= n events, plus the other tenants; loads what is missing."""
    tid, _ = ensure_tenant(svc, slug)
    loaded = False
    have = event_count(svc, tid)
    if have < n:
        print(f"loading {n - have:,} events into {slug} (has {have:,}); this takes a while")
        secs = load_events(svc, tid, n - have, "acme", label=f"{slug}: ")
        print(f"  done in {secs:.0f} s ({(n - have) / secs:,.0f} events/s)")
        loaded = True
    else:
        print(f"reusing tenant {slug} with {have:,} events (no loading)")
    for i, profile in zip(range(1, OTHER_TENANTS + 1), ("globex", "initech", "globex"),
                          strict=True):
        other, _ = ensure_tenant(svc, f"{slug}-other-{i}")
        have_other = event_count(svc, other)
        if have_other < n_other:
            load_events(svc, other, n_other - have_other, profile, label=f"{slug}-other-{i}: ")
            loaded = True
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        t0 = time.perf_counter()
        added = conn.execute(INSIGHTS_SQL, (f"{slug}%",)).rowcount
        if added:
            print(f"event_insights: added {added:,} default rows "
                  f"({time.perf_counter() - t0:.1f} s)")
        if loaded or added:
            t0 = time.perf_counter()
            conn.execute("ANALYZE audit_logs")
            conn.execute("ANALYZE event_insights")
            print(f"ANALYZE audit_logs, event_insights: {time.perf_counter() - t0:.1f} s")
    return tid, event_count(svc, tid)


def pick_values(svc, tid, total: int) -> dict:
    """A frequent actor, a frequent event type and a deep cursor of the stored data."""
    from trailseal.schemas import EventQuery
    from trailseal.services.events import cursor_after

    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT actor_id, count(*) FROM audit_logs GROUP BY 1 ORDER BY 2 DESC "
                    "LIMIT 3")
        actors = cur.fetchall()
        cur.execute("SELECT severity, count(*) FROM audit_logs GROUP BY 1 ORDER BY 2 DESC")
        severities = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM audit_logs WHERE event_type = 'invoice.deleted'")
        deleted = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM audit_logs WHERE 'pii' = ANY(tags)")
        pii = cur.fetchone()[0]
        cur.execute("SELECT occurred_at, seq FROM audit_logs "
                    "ORDER BY occurred_at DESC, seq DESC OFFSET %s LIMIT 1", (total // 2,))
        mid = cur.fetchone()
        cur.execute("SELECT occurred_at, seq FROM audit_logs WHERE actor_id = %s "
                    "ORDER BY occurred_at DESC, seq DESC OFFSET %s LIMIT 1",
                    (actors[2][0], actors[2][1] // 2))
        actor_mid = cur.fetchone()
    return {
        "actor": actors[2][0], "actor_n": actors[2][1],
        "severities": severities, "deleted_n": deleted, "pii_n": pii,
        "cursor_mid": cursor_after(EventQuery(), *mid),
        "cursor_actor_mid": cursor_after(EventQuery(actor=actors[2][0]), *actor_mid),
    }


def scenarios(v: dict, total: int) -> list[tuple[str, str]]:
    """(label, path) of every measured request."""
    sev = v["severities"]

    def q(path: str, **params) -> str:
        return f"{path}?{urlencode(params, doseq=True)}"

    return [
        ("events, no filter, first page", q("/api/v1/events", limit=50)),
        (f"actor={v['actor'][:24]} ({v['actor_n']:,} matches)",
         q("/api/v1/events", actor=v["actor"], limit=50)),
        ("event_type=invoice.deleted "
         f"({v['deleted_n']:,})", q("/api/v1/events", event_type="invoice.deleted", limit=50)),
        (f"severity=high ({sev.get('high', 0):,})",
         q("/api/v1/events", severity="high", limit=50)),
        (f"severity=high&critical ({sev.get('high', 0) + sev.get('critical', 0):,})",
         q("/api/v1/events", severity=["high", "critical"], limit=50)),
        (f"tag=pii ({v['pii_n']:,})", q("/api/v1/events", tag="pii", limit=50)),
        ("timeline, first page (oldest)", q("/api/v1/timeline", limit=50)),
        (f"events, cursor at row {total // 2:,}", q("/api/v1/events", cursor=v["cursor_mid"],
                                                    limit=50)),
        ("actor + deep cursor (half-way)", q("/api/v1/events", actor=v["actor"],
                                             cursor=v["cursor_actor_mid"], limit=50)),
    ]


def _page_sql(svc, tid, path: str) -> tuple[str, dict]:
    """The SQL and parameters list_events runs for the request ``path``."""
    from urllib.parse import parse_qs, urlsplit

    from trailseal.api.requests import REPEATABLE
    from trailseal.schemas import EventQuery
    from trailseal.services import events as ev

    parts = urlsplit(path)
    raw = parse_qs(parts.query)
    data = {k: (vals if k in REPEATABLE else vals[-1]) for k, vals in raw.items()}
    q = EventQuery.model_validate(data)
    chronological = parts.path.endswith("/timeline")
    stmt = ev.page_statement(q, chronological, int(svc.config["PAGE_MAX_BYTES"]))
    compiled = stmt.compile(svc.db.engine)
    return str(compiled), compiled.params


def explain(svc, tid, path: str) -> list[str]:
    """EXPLAIN ANALYZE of the SQL list_events runs for ``path`` (as the app role)."""
    sql, params = _page_sql(svc, tid, path)
    with svc.db.cursor(tid) as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [r[0] for r in cur.fetchall()]


def in_process_breakdown(app, token: str, label: str, path: str, n: int) -> None:
    """Where the time of one GET goes, with the Flask test client and timing wrappers."""
    import trailseal.api.v1 as v1
    import trailseal.auth as auth
    import trailseal.services.access as access_mod
    import trailseal.services.events as events_mod

    svc = app.extensions["trailseal"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(10):
        client.get(path, headers=headers)
    top: dict[str, float] = defaultdict(float)
    inner: dict[str, float] = defaultdict(float)
    with (
        patched(auth, "authenticate_api_key", top, "authenticate_api_key (own DB txn)"),
        patched(auth, "enforce_rate_limit", top, "enforce_rate_limit (Valkey)"),
        patched(events_mod, "list_events", top, "list_events (page SQL + decrypt + dicts)"),
        patched(access_mod, "record_access", top, "record_access (INSERT access log)"),
        patched(v1, "jsonify", top, "jsonify (response JSON)"),
        patched(events_mod, "decrypt_field", inner, "decrypt_field x150 (AES-GCM)"),
        patched(events_mod, "row_to_event", inner, "row_to_event x50 (decode + decrypt)"),
        patched(events_mod, "page_statement", inner, "page_statement (build the Core select)"),
        instrumented(svc, inner, {}),
    ):
        t0 = time.perf_counter()
        for _ in range(n):
            resp = client.get(path, headers=headers)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.data[:200]!r}")
        total = time.perf_counter() - t0
    print(f"In-process breakdown of '{label}' (Flask test client, no HTTP, {n} requests):")
    print(f"  {'phase':<62} {'ms/req':>7} {'share':>6}")
    rows = sorted(top.items(), key=lambda kv: -kv[1])
    rows.append(("the rest: txn begin/commit, Flask, parsing",
                 total - sum(top.values())))
    for name, secs in rows:
        print(f"  {name:<62} {secs / n * 1e3:7.3f} {secs / total:6.1%}")
    print(f"  {'TOTAL (test client)':<62} {total / n * 1e3:7.3f}   100%")
    print("  of which (DB statements, transactions, decryption):")
    for name, secs in sorted(inner.items(), key=lambda kv: -kv[1]):
        if not name.startswith(("build_record", "record_hash", "encrypt", "after")):
            print(f"    {name:<60} {secs / n * 1e3:7.3f} {secs / total:6.1%}")
    print()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the tenant (1,000,000)")
    parser.add_argument("--requests", type=int, help="measured requests per query (200)")
    parser.add_argument("--explain", action="store_true", help="print every query plan")
    parser.add_argument("--no-breakdown", action="store_true",
                        help="skip the in-process (test client) breakdown")
    args = parser.parse_args()
    n = args.events or (20_000 if args.quick else 1_000_000)
    n_other = max(1_000, n // 20)
    reqs = args.requests or (20 if args.quick else 200)
    warm = 5 if args.quick else 20
    slug = "bench-1m" if n == 1_000_000 else f"bench-q-{n}"

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_query: GET /api/v1/events latency over HTTP", svc, events=f"{n:,}",
                 tenant=slug, other_tenants=f"{OTHER_TENANTS} x {n_other:,} events",
                 requests=f"{reqs} per query (+{warm} warm-up), sequential, limit 50",
                 instance=args.instance)

    tid, total = ensure_data(svc, slug, n, n_other)
    values = pick_values(svc, tid, total)
    token = api_token(svc, tid)
    plan = scenarios(values, total)
    print()

    results = []
    with Server(args.instance) as server:
        client = Client(server.port, token)
        for label, path in plan:
            for _ in range(warm):
                client.timed("GET", path)
            status, body = client.request("GET", path)
            page = orjson.loads(body)
            lat = [client.timed("GET", path) for _ in range(reqs)]
            summary = latency_summary(lat)
            results.append((label, path, summary, len(page["events"])))
            print(f"  {label:<44} {len(page['events']):>3} ev  {format_latency(summary)}",
                  flush=True)
        client.close()

    print()
    plans: dict[str, list[str]] = {}
    for _label, path, _s, _c in results:
        try:  # captures the SQL through list_events' internals
            plans[path] = explain(svc, tid, path)
        except (ImportError, AttributeError, TypeError, IndexError, psycopg.Error) as exc:
            plans[path] = [f"(plan unavailable: {exc!r})"]
    print(f"Targets (p95 <= {TARGET_P95_MS:.0f} ms, {total:,} events in the tenant); 'SQL' is "
          "the Execution Time of EXPLAIN ANALYZE of the page query alone:")
    for label, path, summary, _count in results:
        exec_ms = next((line.split(":")[1].strip() for line in plans[path]
                        if line.startswith("Execution Time")), "?")
        print(f"  {label:<44} p95 {summary['p95']:8.2f} ms  SQL {exec_ms:>10}  "
              f"{verdict(summary['p95'] <= TARGET_P95_MS)}")
    print()
    for label, path, summary, _count in results:
        if args.explain or summary["p95"] > TARGET_P95_MS:
            print(f"EXPLAIN ANALYZE for: {label}  ({path[:90]})")
            for line in plans[path]:
                print("  " + line)
            print()
    if not args.no_breakdown:
        in_process_breakdown(app, token, plan[0][0], plan[0][1], 50 if args.quick else 200)
        slowest = max(results, key=lambda r: r[2]["p95"])
        in_process_breakdown(app, token, slowest[0], slowest[1], 20 if args.quick else 100)
    svc.close()


if __name__ == "__main__":
    main()
