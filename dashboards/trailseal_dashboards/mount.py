"""Mounting the Dash app on the Flask app: ``/dash/`` behind flask-login (a visitor who is
not signed in goes to ``/login?next=…``; Dash's own requests answer 401), the navigation
built from the registered pages the user may see, and Bootstrap's stylesheet served from
the installed package (nothing is fetched from the internet)."""

from __future__ import annotations

import json
import logging
from importlib import resources
from urllib.parse import quote

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from flask import Response, abort, redirect, request
from flask_login import current_user

from trailseal.types import Viewer

log = logging.getLogger(__name__)
PREFIX = "/dash/"
CSS_URL = "/dash-static/bootstrap.min.css"
POLL_MS = 3000  # how often an open page looks for a new critical anomaly


def _bootstrap_css() -> bytes:
    css = resources.files("flask_bootstrap") / "static/bootstrap5/css/bootswatch/flatly"
    return (css / "bootstrap.min.css").read_bytes()


def viewer(query: str = "") -> Viewer | None:
    """The signed-in user as pages see them, or None."""
    if not current_user.is_authenticated:
        return None
    from trailseal.core import current_services
    from trailseal.services.tenancy import get_tenant

    p = current_user.principal
    tenant = get_tenant(current_services(), p.tenant_id)
    return Viewer(tenant_id=str(p.tenant_id), tenant_name=tenant["name"] if tenant else "",
                  user_id=str(p.id), permissions=frozenset(p.permissions), query=query or "")


def _guard():
    path = request.path
    if not (path.startswith(PREFIX) or path == PREFIX.rstrip("/")):
        return None
    if current_user.is_authenticated:
        from trailseal.auth import refuse_cross_site
        from trailseal.errors import Forbidden

        try:
            refuse_cross_site()
        except Forbidden as exc:
            return Response(json.dumps(exc.to_dict()), 403, mimetype="application/json")
        return None
    if path.startswith(PREFIX + "_dash") or request.method != "GET":
        return Response('{"error": "sign in first"}', 401, mimetype="application/json")
    target = request.full_path.rstrip("?")
    return redirect(f"/login?next={quote(target, safe='/')}")


def _nav(pages, who: Viewer, current: str):
    links = [dbc.NavItem(dbc.NavLink(p.title, href=f"{PREFIX}{p.path}",
                                     active=current == p.path, id=f"nav-{p.path}"))
             for p in pages if who.can(p.permission)]
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("Trailseal", href=PREFIX, className="fw-bold"),
        dbc.Nav(links, navbar=True, className="me-auto"),
        html.Span(who.tenant_name, className="navbar-text me-3", id="tenant-name"),
        html.A("Sign out", href="/", className="btn btn-outline-light btn-sm"),
    ], fluid=True, className="px-4"), color="primary", dark=True, className="mb-4")


def mount(app) -> dash.Dash:
    pages = app.extensions.get("trailseal_pages", [])
    app.before_request(_guard)

    @app.get(CSS_URL)
    def _css():
        return Response(_bootstrap_css(), mimetype="text/css",
                        headers={"Cache-Control": "public, max-age=86400"})

    board = dash.Dash(__name__, server=app, url_base_pathname=PREFIX,
                      external_stylesheets=[CSS_URL], title="Trailseal",
                      suppress_callback_exceptions=True, serve_locally=True,
                      update_title=None)
    board.layout = html.Div([
        dcc.Location(id="url"), html.Div(id="page"),
        dcc.Interval(id="critical-poll", interval=POLL_MS), dcc.Store(id="critical-seen"),
        html.Div(id="toasts", style={"position": "fixed", "top": "4.5rem", "right": "1rem",
                                     "zIndex": 1080, "width": "24rem"}),
    ])

    @board.callback(Output("toasts", "children"), Output("critical-seen", "data"),
                    Input("critical-poll", "n_intervals"), State("critical-seen", "data"))
    def _critical(_, seen):
        from . import data

        if not current_user.is_authenticated:  # (no tenant lookup every few seconds)
            return dash.no_update, dash.no_update
        newest = data.newest_critical_id()
        if seen is None or newest is None:  # first look: remember, do not announce
            return dash.no_update, {"id": newest}
        if newest == seen.get("id"):
            return dash.no_update, dash.no_update
        fresh = data.critical_since(seen.get("id"))
        toasts = [dbc.Toast(
            [html.P(a["title"], className="mb-1"),
             html.A("Open the anomalies", href=f"{PREFIX}anomalies", className="small")],
            header="Critical anomaly", icon="danger", dismissable=True, duration=20_000,
            className="critical-toast mb-2") for a in fresh]
        return toasts or dash.no_update, {"id": newest}

    @board.callback(Output("page", "children"), Input("url", "pathname"),
                    Input("url", "search"))
    def _route(pathname, search):
        who = viewer(search)
        if who is None:
            abort(401)
        path = (pathname or PREFIX)[len(PREFIX):].strip("/") if (pathname or "").startswith(
            PREFIX) else ""
        visible = [p for p in pages if who.can(p.permission)]
        if not path and visible:
            path = visible[0].path
        page = next((p for p in pages if p.path == path), None)
        if page is None:
            body = _message("No such page", "Choose a page in the navigation above.")
        elif not who.can(page.permission):
            body = _message("Not available to you",
                            f"This page needs the {page.permission} permission.")
        else:
            try:
                body = page.layout(who)
            except Exception:  # noqa: BLE001 - a failing page shows an error, not a traceback
                log.exception("dashboard page %s failed", page.path)
                body = _message("This page could not be shown",
                                "The error was logged; try again in a moment.")
        return [_nav(pages, who, path), dbc.Container(body, fluid=True, className="px-4 pb-5")]

    return board


def _message(title: str, text: str):
    return dbc.Alert([html.H4(title, className="alert-heading"), html.P(text, className="mb-0")],
                     color="secondary", className="mt-4")
