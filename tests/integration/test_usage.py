"""Usage per tenant: the figures equal what was done and stored, counters reach the database
exactly once however flushes interleave, and another tenant's usage never shows."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ingest, make_event, owner_connection
from trailseal.services.usage import (
    PREFIX,
    count_api_call,
    flush_usage,
    job_tenant,
    snapshot_storage,
)
from trailseal.testing import make_tenant


def _usage(client, tenant, query: str = "") -> dict:
    resp = client.get(f"/api/v1/usage{query}", headers=tenant.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_usage_totals_equal_what_was_done_and_stored(trailseal_client, trailseal_services,
                                                     run_jobs):
    svc = trailseal_services
    t = make_tenant(svc)
    other = make_tenant(svc)
    ingest(trailseal_client, t, [make_event(action_details={"n": n, "pad": "x" * n})
                                 for n in range(7)])
    for _ in range(4):
        assert trailseal_client.get("/api/v1/events?limit=2", headers=t.headers).status_code \
            == 200
    trailseal_client.get("/api/v1/events", headers=other.headers)
    run_jobs()  # enrichment of the 7 events: job time for this tenant
    first = _usage(trailseal_client, t)
    # 1 batch append + 4 reads; the usage read itself is counted after it answers
    assert first["totals"]["api_calls"] == 5
    assert first["totals"]["job_seconds"] > 0
    assert first["events_in_chain"] == 7
    storage = first["storage"]
    with owner_connection(svc) as conn:
        records = conn.execute("SELECT record FROM audit_logs WHERE tenant_id = %s",
                               (t.id,)).fetchall()
    assert storage["events_stored"] == len(records) == 7
    assert storage["bytes_events"] == sum(len(r[0]) for r in records)
    assert storage["bytes_insights"] > 0
    assert storage["bytes_total"] == sum(storage[k] for k in (
        "bytes_events", "bytes_insights", "bytes_embeddings", "bytes_search"))
    today = datetime.now(UTC).date().isoformat()
    assert [d["day"] for d in first["days"]] == [today]
    # the first usage read is now counted too; another tenant's calls never are
    again = _usage(trailseal_client, t)
    assert again["totals"]["api_calls"] == 6
    assert _usage(trailseal_client, other)["totals"]["api_calls"] == 1


def test_usage_needs_admin_and_is_access_logged(trailseal_client, trailseal_services):
    t = make_tenant(trailseal_services, permissions=("audit:read",))
    resp = trailseal_client.get("/api/v1/usage", headers=t.headers)
    assert resp.status_code == 403
    admin = make_tenant(trailseal_services)
    _usage(trailseal_client, admin, "?first_day=2026-11-01&last_day=2026-11-30")
    log = trailseal_client.get("/api/v1/access-log", headers=admin.headers).get_json()
    assert any(e["endpoint"].endswith("/usage") for e in log["entries"])


def test_a_batch_is_added_once_even_if_a_flush_stopped_after_its_commit(trailseal_services):
    svc = trailseal_services
    t = make_tenant(svc)
    for _ in range(3):
        count_api_call(svc, t.id)
    flush_usage(svc, t.id)
    # A flush that committed but died before deleting its batch: the batch is still in
    # Redis under the name the database already recorded.
    with svc.db.transaction(t.id) as conn:
        recorded = conn.exec_driver_sql("SELECT batch FROM tenant_usage_flushes").scalar()
    svc.redis.hset(recorded, "api_calls", 3)
    count_api_call(svc, t.id)
    flush_usage(svc, t.id)
    with svc.db.transaction(t.id) as conn:
        calls = conn.exec_driver_sql("SELECT sum(api_calls) FROM tenant_usage").scalar()
    assert calls == 4
    assert not list(svc.redis.scan_iter(match=f"*{t.id}*"))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(st.integers(1, 5), st.just("flush")), min_size=1,
                      max_size=12))
def test_counts_reach_the_database_exactly_once(trailseal_services, steps):
    """Property: however increments and flushes interleave, the stored total is the number
    of calls counted."""
    svc = trailseal_services
    t = make_tenant(svc)
    counted = 0
    for step in steps:
        if step == "flush":
            flush_usage(svc, t.id)
        else:
            for _ in range(step):
                count_api_call(svc, t.id)
            counted += step
    flush_usage(svc, t.id)
    with svc.db.transaction(t.id) as conn:
        calls = conn.exec_driver_sql("SELECT coalesce(sum(api_calls), 0) FROM tenant_usage"
                                     ).scalar()
    assert calls == counted
    assert not svc.redis.exists(f"{PREFIX}{t.id}:{datetime.now(UTC).date().isoformat()}")


def test_jobs_are_attributed_to_their_tenant():
    tid = "5f0c7d1e-8c1a-4a55-9d0e-0a3b8f5f2c11"
    assert job_tenant((tid, 1, 5), {}) == tid
    assert job_tenant((), {"tenant_id": tid}) == tid
    assert job_tenant(("all",), {}) is None and job_tenant((), {}) is None


def _cli(svc, *args):
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=svc.config["INSTANCE_PATH"])
    done = subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_billing_export_lists_every_tenant(trailseal_client, trailseal_services):
    svc = trailseal_services
    t = make_tenant(svc)
    ingest(trailseal_client, t, [make_event()])
    snapshot_storage(svc, t.id)
    month = datetime.now(UTC).strftime("%Y-%m")
    code, out, err = _cli(svc, "usage", "--month", month)
    assert code == 0, err
    rows = {r["tenant_slug"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows[t.slug]["api_calls"] == "1" and rows[t.slug]["events_stored"] == "1"
    code, out, err = _cli(svc, "usage", "--month", "2026-13")
    assert code != 0 and "YYYY-MM" in err
