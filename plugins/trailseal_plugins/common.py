"""What the first-party model plugins (``anomaly``, ``classify``) share: opening the app
for a command about one tenant, the services a hook object uses, and a tenant's size."""

from __future__ import annotations

import uuid

import click
from sqlalchemy import text


def open_tenant(tenant_ref: str):
    """``(app, services, tenant id)`` for a command given ``--tenant`` (slug or id); a
    one-line error for an unknown tenant."""
    from trailseal.cli import make_app

    app = make_app()
    svc = app.extensions["trailseal"]
    tenant = svc.resolve_tenant(tenant_ref, missing_ok=True)
    if tenant is None:
        raise click.ClickException(f"no tenant {tenant_ref!r} (give its slug or id)")
    return app, svc, tenant


class UsesServices:
    """A hook object (detector, classifier) for one tenant: the services it was given, or
    the running job's."""

    def __init__(self, tenant_id: str, svc=None):
        self.tenant_id = tenant_id
        self._svc = svc

    @property
    def svc(self):
        if self._svc is None:
            from trailseal.jobs import current_services

            self._svc = current_services()
        return self._svc


def event_count(svc, tenant_id: str) -> int:
    """How many events the tenant's chain holds (its highest seq)."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_logs")).scalar())
