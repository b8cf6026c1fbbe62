"""Administration commands: the schema (``migrate``), tenants, users, API keys and data keys."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from .helpers import make_services, resolve_tenant_option

__all__ = ["apikey", "keys", "migrate", "tenant", "usage", "user"]


@click.command()
def migrate() -> None:
    """Upgrade the database schema (as the owner) and ensure the app's login role."""
    import psycopg
    import sqlalchemy.exc

    from ..config import load_config
    from ..core import resolve_service_urls
    from ..db import current_revision, ensure_app_login, ensure_maintenance_login, run_migrations

    cfg = load_config()
    if cfg.get("DATABASE_URL") and not cfg.get("ADMIN_DATABASE_URL"):
        raise click.ClickException(
            "set TRAILSEAL_ADMIN_DATABASE_URL (the schema owner) to migrate an external database"
        )
    cfg = resolve_service_urls(cfg, migrate=False, start_redis=False)
    try:
        run_migrations(cfg["ADMIN_DATABASE_URL"])
        ensure_app_login(cfg["ADMIN_DATABASE_URL"], cfg["DATABASE_URL"])
        if cfg.get("MAINTENANCE_DATABASE_URL"):
            ensure_maintenance_login(cfg["ADMIN_DATABASE_URL"], cfg["MAINTENANCE_DATABASE_URL"])
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise click.ClickException(f"cannot reach the database: {first}") from exc
    click.echo(f"schema at revision {current_revision(cfg['ADMIN_DATABASE_URL'])}")


@click.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--slug", help="URL-safe identifier (derived from NAME by default).")
def tenant_create(name: str, slug: str | None) -> None:
    """Create a tenant with its own data key and an empty chain."""
    from ..services.tenancy import create_tenant

    info = create_tenant(make_services(), name, slug)
    click.echo(f"tenant {info['slug']} created: id {info['id']} (data key {info['key_id']})")


@click.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["viewer", "analyst", "writer", "admin"]), required=True)
@click.option("--password", help="At least 10 characters; prompted for when omitted.")
def user_create(tenant_ref: str, email: str, role: str, password: str | None) -> None:
    """Create a web user of a tenant."""
    from ..services.tenancy import create_user

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    info = create_user(svc, tid, email, password, role)
    click.echo(f"user {info['email']} ({info['role']}) created in tenant {tenant_ref}")


@user.command("deactivate")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
def user_deactivate(tenant_ref: str, email: str) -> None:
    """Stop a user from signing in and end their sessions (their history stays in the trail)."""
    from ..services.tenancy import deactivate_user

    svc = make_services()
    info = deactivate_user(svc, resolve_tenant_option(svc, tenant_ref), email)
    click.echo(f"user {email} deactivated; {info['sessions_ended']} session(s) ended")


@user.command("password")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
@click.option("--password", help="At least 10 characters; prompted for when omitted.")
def user_password(tenant_ref: str, email: str, password: str | None) -> None:
    """Set a user's password and end every session signed in with the old one."""
    from ..services.tenancy import set_password

    svc = make_services()
    tid = resolve_tenant_option(svc, tenant_ref)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    info = set_password(svc, tid, email, password)
    click.echo(f"password of {email} changed; {info['sessions_ended']} session(s) ended")


@click.group()
def apikey() -> None:
    """Manage API keys."""


@apikey.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--permissions", required=True,
              help="Comma-separated: audit:read, audit:write, audit:export, audit:review, "
                   "audit:admin.")
@click.option("--name", default="", help="A label for the key.")
def apikey_create(tenant_ref: str, permissions: str, name: str) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from ..services.tenancy import create_api_key

    svc = make_services()
    info = create_api_key(svc, resolve_tenant_option(svc, tenant_ref), permissions.split(","),
                          name)
    click.echo(info["token"])
    click.echo(
        f"# key {info['id']} for tenant {tenant_ref}: {', '.join(info['permissions'])}. "
        "Store it now: it is not shown again.", err=True,
    )


@apikey.command("list")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
def apikey_list(tenant_ref: str) -> None:
    """List a tenant's API keys (ids, prefixes, permissions; never the keys)."""
    from ..services.api_keys import list_api_keys

    svc = make_services()
    for key in list_api_keys(svc, resolve_tenant_option(svc, tenant_ref)):
        revoked = key["revoked_at"]
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        click.echo(f"{key['id']}  tsk_{key['prefix']}_…  {key['name']}  "
                   f"{','.join(key['permissions'])}  "
                   f"created {key['created_at']:%Y-%m-%d %H:%M}  {state}")


@apikey.command("revoke")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.argument("key_id")
def apikey_revoke(tenant_ref: str, key_id: str) -> None:
    """Revoke an API key by id; it stops working at once."""
    from ..errors import NotFound
    from ..services.api_keys import parse_key_id, revoke_api_key

    svc = make_services()
    kid = parse_key_id(key_id)  # a malformed id is reported before the tenant is looked up
    try:
        revoke_api_key(svc, resolve_tenant_option(svc, tenant_ref), kid)
    except NotFound:
        # the service names the tenant by id; name it the way it was given
        raise click.ClickException(f"no active key {key_id} in tenant {tenant_ref}") from None
    click.echo(f"key {key_id} revoked")


@click.group()
def keys() -> None:
    """Manage encryption keys."""


@keys.command("rotate")
@click.option("--tenant", "tenant_ref", help="Only this tenant (default: every tenant).")
def keys_rotate(tenant_ref: str | None) -> None:
    """Give tenants a new data key; rows encrypted with older keys stay readable."""
    from ..services.tenancy import rotate_data_key, tenant_ids

    svc = make_services()
    targets = [resolve_tenant_option(svc, tenant_ref)] if tenant_ref else tenant_ids(svc)
    for tid in targets:
        key_id = rotate_data_key(svc, tid)
        click.echo(f"tenant {tid}: new data key {key_id}")


@click.command()
@click.option("--month", help="A calendar month, YYYY-MM (default: this month so far).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="First day, YYYY-MM-DD.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day, YYYY-MM-DD.")
@click.option("--snapshot", is_flag=True,
              help="Measure every tenant's storage now first (otherwise the last hourly "
                   "snapshot of the period counts).")
def usage(month: str | None, start, end, snapshot: bool) -> None:
    """Billing export: one CSV line per tenant with its API calls, job compute seconds,
    events stored and bytes stored over the period."""
    from ..errors import TrailsealError
    from ..services.usage import billing_csv, month_bounds, snapshot_storage

    svc = make_services()
    try:
        if month:
            if start or end:
                raise click.UsageError("give --month or --start/--end, not both")
            first, last = month_bounds(month)
        else:
            today = datetime.now(UTC).date()
            last = end.date() if end else today
            first = start.date() if start else last.replace(day=1)
        if snapshot:
            for tenant_id in svc.tenant_ids():
                snapshot_storage(svc, tenant_id)
        click.echo(billing_csv(svc, first, last), nl=False)
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from None
