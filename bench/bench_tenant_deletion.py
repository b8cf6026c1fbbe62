"""Tenant deletion at scale: a tenant of 100,000 events (with an insights row and a full-text
row each) taken through request, confirmation, archive and mark, then purged.

The benchmark's own instance (``--instance``, default ``/tmp/ts-deletion-bench``): a fresh
tenant loaded through the bulk ingest path, derived rows written as the enrichment worker
and the search backlog write them, and a second tenant of 1,000 events that must come out
untouched. Then, as the API and the ``tenant-deletions`` job run them: the request and the
confirmation (each an event appended in the same transaction), the archive (a signed
checkpoint of the closed chain, the encrypted bundles written and checked like
``trailseal-verify`` does), the mark, and, once the purge is due (its time moved into the
past as the owner: seven years do not pass in a benchmark), the purge through the
maintenance role (every row of the tenant in every table, its data keys with them).

No target is set for these figures; they say how long an operator waits.

Run: ``.venv/bin/python bench/bench_tenant_deletion.py [--quick] [--events N]``
"""

from __future__ import annotations

import os
import time

import psycopg
from benchlib import (
    admin_dsn,
    append_all,
    base_parser,
    demo_events,
    new_tenant,
    open_app,
    print_header,
)

DEFAULT_INSTANCE = "/tmp/ts-deletion-bench"

DERIVED_SQL = """
INSERT INTO event_insights (tenant_id, event_id, category, risk_level)
  SELECT tenant_id, id, 'data_access', 'low' FROM audit_logs WHERE tenant_id = %(t)s
  ON CONFLICT DO NOTHING;
INSERT INTO audit_search_text (tenant_id, event_id, tsv)
  SELECT tenant_id, id, to_tsvector('simple', event_type || ' ' || actor_id)
  FROM audit_logs WHERE tenant_id = %(t)s ON CONFLICT DO NOTHING;
"""


def _rows(dsn: str, tid) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relispartition")]
        return sum(conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id = %s",
                                (tid,)).fetchone()[0] for t in tables)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(instance=DEFAULT_INSTANCE)
    parser.add_argument("--events", type=int, default=100_000, help="events of the tenant")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.events

    from trailseal.services.access import AccessRecord
    from trailseal.services.tenancy import Principal, create_api_key
    from trailseal.services.tenant_deletion import (
        confirm_deletion,
        process_deletion,
        request_deletion,
    )

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Tenant deletion: archive, mark and purge", svc, events=f"{n:,}")
    dsn = admin_dsn(svc)
    tid = new_tenant(svc, "deletion")
    bystander = new_tenant(svc, "bystander")
    t0 = time.perf_counter()
    append_all(svc, tid, demo_events(n, days=90))
    append_all(svc, bystander, demo_events(1_000, days=30, seed=5))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in DERIVED_SQL.split(";")[:2]:
            conn.execute(statement, {"t": tid})
    print(f"  loaded {n:,} events (+ insights and full-text rows) in "
          f"{time.perf_counter() - t0:.1f} s; rows of the tenant: {_rows(dsn, tid):,}")
    bystander_rows = _rows(dsn, bystander)

    admins = []
    for name in ("first admin", "second admin"):
        key = create_api_key(svc, tid, ["audit:admin"], name)
        admins.append(Principal("api_key", key["id"], tid, frozenset(key["permissions"]), name))
    access = AccessRecord("bench", "CLI")
    t0 = time.perf_counter()
    asked = request_deletion(svc, admins[0], "benchmark", access)
    request_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    confirm_deletion(svc, admins[1], asked["id"], access)
    confirm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    marked = process_deletion(svc, tid, asked["id"], actor="system:bench")["deletion"]
    archive_s = time.perf_counter() - t0
    size = sum(a["bytes"] for a in marked["archives"])

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE tenant_deletions SET purge_after = now() WHERE tenant_id = %s",
                      (tid,))
    rows_before = _rows(dsn, tid)
    t0 = time.perf_counter()
    purged = process_deletion(svc, tid, asked["id"], actor="system:bench")["deletion"]
    purge_s = time.perf_counter() - t0
    left = _rows(dsn, tid)

    print()
    print(f"  request (row + trail event)       {request_s * 1e3:8.1f} ms")
    print(f"  confirm (event, chain closed)     {confirm_s * 1e3:8.1f} ms")
    print(f"  archive + mark                    {archive_s:8.2f} s   {marked['head_seq']:,} "
          f"events in {len(marked['archives'])} archive(s), {size / 1e6:.1f} MB "
          f"({marked['head_seq'] / archive_s:,.0f} events/s)")
    print(f"  purge (maintenance role)          {purge_s:8.2f} s   {rows_before - left:,} rows "
          f"removed ({(rows_before - left) / purge_s:,.0f} rows/s); state {purged['state']}; "
          f"data keys destroyed {purged['purge_result']['data_keys_destroyed']}")
    print(f"  rows left of the tenant           {left:8,d}   (its deletion record and steps)")
    same = _rows(dsn, bystander) == bystander_rows
    print(f"  other tenant untouched            {same!s:>8}")
    print(f"  load average                      {os.getloadavg()[0]:8.2f}")
    if not same or purged["state"] != "purged":
        raise SystemExit("the purge did not do what it must")


if __name__ == "__main__":
    main()
