"""Loading the demo data set: tenants, users, weeks of activity with planted incidents."""

from __future__ import annotations

from collections.abc import Callable


def load_demo(svc, *, days: int = 28, echo: Callable[[str], None] = print) -> dict:
    """Create the demo tenants (once) and return logins and a fresh API key to print."""
    from .data import demo_tenants, generate_events, planted_incidents
    from .profiles import tenant_profile

    logins: list[str] = []
    loaded: list[tuple[str, str, int]] = []
    first_tid = None
    for tenant in demo_tenants():
        tid = svc.resolve_tenant(tenant.slug, missing_ok=True)
        if tid is None:
            tid = svc.create_tenant(tenant.name, tenant.slug)["id"]
            # the tenant's wall clock: summaries' days and the anomaly detector's hours
            svc.set_setting(tid, "timezone", tenant_profile(tenant.slug).tz, "demo")
            for u in tenant.users:
                svc.create_user(tid, u["email"], u["password"], u["role"])
            events = generate_events(tenant.slug, days=days)
            svc.append_events(tid, events)
            loaded.append((str(tid), tenant.name, len(events)))
            incidents = planted_incidents(tenant.slug, events)
            echo(f"loaded {tenant.name}: {len(events)} events over {days} days, "
                 f"{len(incidents)} incidents planted")
            for inc in incidents:
                echo(f"  - {inc.name}: {inc.description}")
        report = svc.verify_chain(tid)
        state = "intact" if report.intact else f"BROKEN at seq {report.broken_seq}"
        echo(f"{tenant.name}: chain {state} ({report.events_checked} events)")
        if report.intact:
            made = svc.make_checkpoint(tid)["checkpoint"]
            echo(f"{tenant.name}: signed checkpoint at tree size {made['tree_size']} "
                 f"(root {made['root'][:16]}…)")
        admin = next(u for u in tenant.users if u["role"] == "admin")
        logins.append(f"{admin['email']} / {admin['password']}  ({tenant.name}, admin)")
        first_tid = first_tid or (tid, tenant.name)
    key = svc.create_api_key(first_tid[0], ["audit:read", "audit:write", "audit:export",
                                            "audit:review"], "demo")
    return {"logins": logins, "api_key": key["token"], "api_key_tenant": first_tid[1],
            "api_key_tenant_id": str(first_tid[0]), "loaded": loaded}


def event_to_explain(svc, tid: str) -> str | None:
    """The id of the tenant's strongest anomaly (else its latest event): the demo's example
    of ``GET /api/v1/events/{id}/explain``."""
    from sqlalchemy import text

    with svc.db.transaction(tid) as conn:
        return conn.execute(text(
            "SELECT event_id::text FROM ("
            " (SELECT event_id, 1 AS rank, (details->>'anomaly_score')::float AS score"
            "  FROM audit_anomalies WHERE kind = 'anomaly' AND event_id IS NOT NULL"
            "  ORDER BY score DESC NULLS LAST LIMIT 1)"
            " UNION ALL"
            " (SELECT id, 2, NULL FROM audit_logs ORDER BY seq DESC LIMIT 1)) AS pick"
            " ORDER BY rank LIMIT 1")).scalar()


def _show_classification(svc, tid: str, echo: Callable[[str], None]) -> None:
    """One line of categories, risk, review flags and tags, when a classifier ran."""
    from sqlalchemy import text

    with svc.db.transaction(tid) as conn:
        categories = conn.execute(text(
            "SELECT category, count(*) FROM event_insights WHERE category IS NOT NULL "
            "GROUP BY category ORDER BY count(*) DESC LIMIT 4")).all()
        if not categories:
            return
        critical, review = conn.execute(text(
            "SELECT count(*) FILTER (WHERE risk_level = 'critical'), "
            "count(*) FILTER (WHERE review_required) FROM event_insights")).one()
        tags = conn.execute(text(
            "SELECT tag, count(*) FROM event_insights, unnest(tags) AS tag GROUP BY tag "
            "ORDER BY count(*) DESC LIMIT 4")).all()
    echo("  categories: " + ", ".join(f"{c} {n}" for c, n in categories)
         + f"; {critical} critical-risk events, {review} flagged for review")
    if tags:
        echo("  tags: " + ", ".join(f"{t} {n}" for t, n in tags))


def analyse_loaded(svc, loaded: list[tuple[str, str, int]],
                   echo: Callable[[str], None] = print) -> None:
    """Run the enrichment pipeline (every installed detector and classifier) over the
    tenants just loaded, now, and show what the detectors flagged (inside an app context).
    The worker later finds the same results (enrichment is idempotent)."""
    from sqlalchemy import text

    from trailseal.jobs import enrich_events

    for tid, name, count in loaded:
        for first in range(1, count + 1, 1000):
            enrich_events(tid, first, min(count, first + 999))
        with svc.db.transaction(tid) as conn:
            rows = conn.execute(text(
                "SELECT severity, details->'explanation'->>'summary' AS summary "
                "FROM audit_anomalies WHERE kind = 'anomaly' ORDER BY "
                "(details->>'anomaly_score')::float DESC NULLS LAST LIMIT 3")).all()
            total = conn.execute(text(
                "SELECT count(*) FROM audit_anomalies WHERE kind = 'anomaly'")).scalar()
        echo(f"{name}: {total} anomaly alerts" + (", the strongest:" if rows else ""))
        for severity, summary in rows:
            echo(f"  - [{severity}] {summary or '(no explanation)'}")
        _show_classification(svc, tid, echo)


def subject_to_erase(svc, tid: str) -> str | None:
    """A customer of the tenant with a few events about them: the demo's example of
    ``trailseal erase`` (GDPR erasure)."""
    from sqlalchemy import text

    with svc.db.transaction(tid) as conn:
        return conn.execute(text(
            "SELECT entity_id FROM audit_logs WHERE entity_type = 'customer' "
            "GROUP BY entity_id ORDER BY count(*) DESC, entity_id LIMIT 1")).scalar()


OFFBOARDED = ("Offboarded Ltd", "offboarded-ltd")


def offboard_demo_tenant(app, echo: Callable[[str], None] = print) -> str | None:
    """A small extra tenant whose deletion is requested by one admin key and confirmed by
    another through the REST API, as a tenant's admins would (its chain closes; the worker
    then archives the trail and marks the tenant deleted). Done once; returns its slug."""
    from datetime import UTC, datetime, timedelta

    svc = app.extensions["trailseal"]
    name, slug = OFFBOARDED
    if svc.resolve_tenant(slug, missing_ok=True) is not None:
        return slug
    tid = svc.create_tenant(name, slug)["id"]
    start = datetime.now(UTC) - timedelta(days=30)
    svc.append_events(tid, [{
        "event_type": kind, "occurred_at": (start + timedelta(hours=7 * i)).isoformat(),
        "actor": {"id": f"ops{i % 3}@offboarded.example", "type": "user", "role": "admin"},
        "entity": {"type": "invoice", "id": f"INV-{100 + i}"}, "severity": "low",
        "source": "billing", "action_details": {"amount": 120 + 7 * i}}
        for i, kind in enumerate(["invoice.created", "invoice.sent", "invoice.paid"] * 10)])
    first, second = ({"Authorization": "Bearer " + svc.create_api_key(
        tid, ["audit:admin"], label)["token"]} for label in ("offboarding admin", "second admin"))
    client = app.test_client()
    asked = client.post("/api/v1/tenant/deletion", json={"reason": "contract ended (demo)"},
                        headers=first)
    done = client.post("/api/v1/tenant/deletion/confirm",
                       json={"deletion_id": asked.get_json()["id"]}, headers=second)
    if done.status_code != 200:
        echo(f"{name}: tenant deletion not confirmed ({done.get_json()['error']['message']})")
        return slug
    echo(f"{name}: deletion requested by one admin key and confirmed by a second (its trail "
         "is closed); the worker archives it and marks the tenant deleted, the purge follows "
         "after its retention period")
    return slug
