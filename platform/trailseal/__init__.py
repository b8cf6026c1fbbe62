"""Trailseal: a tamper-evident, multi-tenant audit trail.

Public surface: ``create_app``, ``hookimpl``, ``require_permission`` (for plugin routes)
and ``__version__``; the types hooks pass and return are in ``trailseal.types``.
"""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .version import __version__

__all__ = ["create_app", "hookimpl", "require_permission", "__version__"]


def require_permission(permission: str, *, params: tuple[str, ...] | None = None):
    """Guard a plugin route like the core's API (see ``api.plugin_routes``)."""
    from .api.plugin_routes import require_permission as guard

    return guard(permission, params=params)


def create_app(config: dict[str, Any] | None = None, *, services=None):
    """Build the Flask app. Starts embedded services when no URLs are configured."""
    import os
    import secrets
    from pathlib import Path

    from flask import Flask

    from .api.errors import register_error_handlers
    from .api.openapi import bp as openapi_bp
    from .api.requests import reject_control_characters
    from .api.v1 import bp as api_bp
    from .auth import count_api_usage, login_manager, rate_limit_headers
    from .core import Trailseal
    from .infra.proxies import trust_proxies
    from .types import DashboardPage
    from .web.routes import bp as web_bp

    svc = services or Trailseal(config)
    app = Flask("trailseal", instance_path=svc.config["INSTANCE_PATH"])
    secret = svc.config.get("SECRET_KEY")
    if not secret:
        path = Path(svc.config["INSTANCE_PATH"]) / "secret.key"
        if not path.exists():
            # Created 0600 at once: whoever reads it can forge any user's session.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of the instance was quicker
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
        secret = path.read_text().strip()
    app.config.update(
        SECRET_KEY=secret,
        MAX_CONTENT_LENGTH=int(svc.config["MAX_CONTENT_LENGTH"]),
        MAX_JSON_DEPTH=int(svc.config["MAX_JSON_DEPTH"]),
        BATCH_MAX_EVENTS=int(svc.config["BATCH_MAX_EVENTS"]),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=bool(svc.config["SESSION_COOKIE_SECURE"]),
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.json.sort_keys = False
    app.extensions["trailseal"] = svc
    app.wsgi_app = trust_proxies(app.wsgi_app, int(svc.config["PROXY_COUNT"]))
    login_manager.init_app(app)
    app.before_request(reject_control_characters)
    app.after_request(rate_limit_headers)
    app.after_request(count_api_usage)
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(web_bp)
    for blueprints in svc.pm.hook.register_routes(app=app):
        for blueprint in blueprints or []:
            app.register_blueprint(blueprint)
    pages = [page for group in svc.pm.hook.register_dashboards(app=app) for page in group or []
             if isinstance(page, DashboardPage)]
    app.extensions["trailseal_pages"] = sorted(pages, key=lambda p: (p.order, p.path))
    svc.pm.hook.startup(app=app)
    return app
