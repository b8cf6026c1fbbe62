"""Loading the demo data set: tenants, users, weeks of activity with planted incidents."""

from __future__ import annotations

from collections.abc import Callable

from trailseal.services.ingest import append_events, validate_events
from trailseal.services.integrity import verify_chain
from trailseal.services.tenancy import create_api_key, create_tenant, create_user, resolve_tenant

BATCH = 1000


def load_demo(svc, *, days: int = 28, echo: Callable[[str], None] = print) -> dict:
    """Create the demo tenants (once) and return logins and a fresh API key to print."""
    from .data import demo_tenants, generate_events, planted_incidents

    logins: list[str] = []
    first_tid = None
    for tenant in demo_tenants():
        tid = resolve_tenant(svc, tenant.slug, missing_ok=True)
        if tid is None:
            tid = create_tenant(svc, tenant.name, tenant.slug)["id"]
            for u in tenant.users:
                create_user(svc, tid, u["email"], u["password"], u["role"])
            events = generate_events(tenant.slug, days=days)
            validated = validate_events(events)
            for start in range(0, len(validated), BATCH):
                append_events(svc, tid, validated[start:start + BATCH])
            incidents = planted_incidents(tenant.slug, events)
            echo(f"loaded {tenant.name}: {len(events)} events over {days} days, "
                 f"{len(incidents)} incidents planted")
            for inc in incidents:
                echo(f"  - {inc.name}: {inc.description}")
        report = verify_chain(svc, tid)
        state = "intact" if report.intact else f"BROKEN at seq {report.broken_seq}"
        echo(f"{tenant.name}: chain {state} ({report.events_checked} events)")
        admin = next(u for u in tenant.users if u["role"] == "admin")
        logins.append(f"{admin['email']} / {admin['password']}  ({tenant.name}, admin)")
        first_tid = first_tid or (tid, tenant.name)
    key = create_api_key(svc, first_tid[0], ["audit:read", "audit:write", "audit:export"], "demo")
    return {"logins": logins, "api_key": key["token"], "api_key_tenant": first_tid[1]}
