"""What every command shares: building the app, one-line errors, and the ``--tenant`` look-up."""

from __future__ import annotations

import click

from ..errors import TrailsealError

__all__ = ["TrailsealGroup", "make_app", "make_services", "resolve_tenant_option"]


def make_app(require_redis: bool = False, **overrides):
    """The Flask app for a command. A configuration error, an unreachable database or (with
    ``require_redis``) an unreachable Redis becomes a one-line ``click.ClickException``."""
    import psycopg
    import redis
    import sqlalchemy.exc

    from .. import create_app

    try:
        app = create_app(overrides or None)
        if require_redis:
            app.extensions["trailseal"].redis.ping()
        return app
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from exc
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise click.ClickException(f"cannot reach the database: {first}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from exc


def make_services():
    """The service facade of a fresh app (see ``make_app``)."""
    return make_app().extensions["trailseal"]


def tenant_targets(tenant_ref: str | None, all_tenants: bool):
    """The services and the tenant ids of a command's ``--tenant T`` / ``--all`` (exactly
    one of them; a usage error otherwise)."""
    from ..services.tenancy import tenant_ids

    if bool(tenant_ref) == bool(all_tenants):
        raise click.UsageError("give either --tenant T or --all")
    svc = make_services()
    return svc, (tenant_ids(svc) if all_tenants else [resolve_tenant_option(svc, tenant_ref)])


def resolve_tenant_option(svc, ref: str):
    """The id of the tenant a ``--tenant`` option names (slug or id); an unknown tenant is a
    ``click.ClickException``."""
    from ..services.tenancy import resolve_tenant

    try:
        return resolve_tenant(svc, ref)
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from exc


class TrailsealGroup(click.Group):
    """Turns ``TrailsealError`` into a clean one-line error and exit code 1."""

    plugin_error: TrailsealError | None = None  # why plugin commands could not be added

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TrailsealError as exc:
            raise click.ClickException(exc.message) from exc

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            # an unknown command may be a broken plugin's: say why it is missing
            if self.plugin_error is not None:
                raise click.ClickException(self.plugin_error.message) from None
            raise
