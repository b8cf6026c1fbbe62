"""Analyst dashboards: Dash pages with dash-bootstrap-components under ``/dash/``, behind
the sign-in, scoped to the signed-in user's tenant and permissions.

A plugin of its own (entry point ``dashboards``): it gives its pages through
``register_dashboards`` like any plugin, and mounts every registered page (its own and other
plugins') when the app starts (``startup``). Disable it with
``TRAILSEAL_DISABLE_PLUGINS=dashboards``.
"""

from __future__ import annotations

from trailseal import hookimpl


@hookimpl
def register_dashboards(app):
    from .pages import PAGES

    return PAGES


@hookimpl
def startup(app):
    from .mount import mount

    mount(app)
