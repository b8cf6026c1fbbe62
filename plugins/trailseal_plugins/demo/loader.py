"""Loading the demo data set: tenants, users, weeks of activity with planted incidents."""

from __future__ import annotations

from collections.abc import Callable


def load_demo(svc, *, days: int = 28, echo: Callable[[str], None] = print) -> dict:
    """Create the demo tenants (once) and return logins and a fresh API key to print."""
    from .data import demo_tenants, generate_events, planted_incidents

    logins: list[str] = []
    first_tid = None
    for tenant in demo_tenants():
        tid = svc.resolve_tenant(tenant.slug, missing_ok=True)
        if tid is None:
            tid = svc.create_tenant(tenant.name, tenant.slug)["id"]
            for u in tenant.users:
                svc.create_user(tid, u["email"], u["password"], u["role"])
            events = generate_events(tenant.slug, days=days)
            svc.append_events(tid, events)
            incidents = planted_incidents(tenant.slug, events)
            echo(f"loaded {tenant.name}: {len(events)} events over {days} days, "
                 f"{len(incidents)} incidents planted")
            for inc in incidents:
                echo(f"  - {inc.name}: {inc.description}")
        report = svc.verify_chain(tid)
        state = "intact" if report.intact else f"BROKEN at seq {report.broken_seq}"
        echo(f"{tenant.name}: chain {state} ({report.events_checked} events)")
        admin = next(u for u in tenant.users if u["role"] == "admin")
        logins.append(f"{admin['email']} / {admin['password']}  ({tenant.name}, admin)")
        first_tid = first_tid or (tid, tenant.name)
    key = svc.create_api_key(first_tid[0], ["audit:read", "audit:write", "audit:export"], "demo")
    return {"logins": logins, "api_key": key["token"], "api_key_tenant": first_tid[1]}
