"""``GET /api/v1/summary/{period}`` computed vs stored, and ``GET /api/v1/events/{id}/explain``.

The tenant ``bench-summaries-<N>`` gets N demo events spread over the 30 days before the
first of the current month (UTC), so last month's summary covers them all, plus the
``event_insights`` row the enrichment worker writes when no AI plugin is installed (as
``bench_query.py`` does). Loaded once, reused by later runs. Three more tenants with
50,000 events each share the table.

Requests go over real HTTP to the app under waitress (subprocess on 127.0.0.1) from one
keep-alive connection, one at a time, with the built-in offline narrator:

- computed: a summary read with no stored row (deleted before each request as the owner):
  the figures are computed, narrated, grounded and stored;
- stored: the same read once stored (served from ``audit_summaries``);
- explain: one event's explanation, for random events of the tenant.

Run: ``.venv/bin/python bench/bench_summaries.py [--quick] [--events N] [--requests N]``
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid

import orjson
import psycopg
from benchlib import (
    INSIGHTS_SQL,
    Client,
    Server,
    admin_dsn,
    api_token,
    append_all,
    base_parser,
    demo_events,
    ensure_tenant,
    event_count,
    format_latency,
    latency_summary,
    open_app,
    print_header,
)

OTHER_TENANTS = 3
OTHER_EVENTS = 50_000


def _fill(svc, slug: str, total: int, end: dt.datetime) -> uuid.UUID:
    tid, _ = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < total:
        print(f"loading {total - have:,} events into {slug} …", flush=True)
        events = demo_events(total - have, "acme", end=end, days=30, seed=11)
        spent = append_all(svc, tid, events)
        print(f"  {total - have:,} events in {spent:.1f} s", flush=True)
    return tid



def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.events, args.requests = 20_000, 10
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    now = dt.datetime.now(dt.UTC)
    first_of_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = first_of_month - dt.timedelta(minutes=1)
    slug = f"bench-summaries-{args.events}"
    tid = _fill(svc, slug, args.events, end)
    for n in range(1, OTHER_TENANTS + 1):
        _fill(svc, f"{slug}-other-{n}", OTHER_EVENTS if not args.quick else 5_000, end)
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        conn.execute(INSIGHTS_SQL, (f"{slug}%",))
        conn.execute("ANALYZE audit_logs")
        conn.execute("ANALYZE event_insights")
    token = api_token(svc, tid)
    last_month = (first_of_month - dt.timedelta(days=1)).date()
    days = [last_month - dt.timedelta(days=d) for d in range(0, 28, 7)]
    print_header("summaries and explanations", svc, tenant=slug, events=f"{args.events:,}",
                 requests=args.requests)
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM audit_logs WHERE tenant_id = %s ORDER BY random() LIMIT %s",
            (tid, args.requests))]

    def forget() -> None:
        with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
            conn.execute("DELETE FROM audit_summaries WHERE tenant_id = %s", (tid,))

    with Server(args.instance) as server:
        client = Client(server.port, token)
        for period in ("daily", "weekly", "monthly"):
            computed, stored = [], []
            events_seen = 0
            for n in range(max(3, args.requests // 10)):
                day = days[n % len(days)] if period != "monthly" else last_month
                forget()
                url = f"/api/v1/summary/{period}?date={day.isoformat()}"
                computed.append(client.timed("GET", url))
                status, body = client.request("GET", url)
                data = orjson.loads(body)
                assert status == 200 and data["stored"] is True, data
                events_seen = data["totals"]["events"]
                for _ in range(max(1, args.requests // max(3, args.requests // 10))):
                    stored.append(client.timed("GET", url))
            print(f"{period:8s} ({events_seen:,} events in the window)")
            print(f"  computed: {format_latency(latency_summary(computed))}")
            print(f"  stored:   {format_latency(latency_summary(stored))}")
        explain = []
        random.seed(5)
        for eid in ids:
            explain.append(client.timed("GET", f"/api/v1/events/{eid}/explain"))
        print(f"explain   {format_latency(latency_summary(explain))}")
        client.close()
    from trailseal.services.settings import tenant_zone
    from trailseal.services.summaries import summarise, window_of

    forget()
    with svc.db.transaction(tid) as conn:
        zone = tenant_zone(conn)
    t0 = time.perf_counter()
    for period in ("daily", "weekly", "monthly"):
        summarise(svc, tid, window_of(period, last_month, zone))
    print(f"summaries job's work for one tenant (last month's day, week and month computed "
          f"and stored, in process): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
