"""Sign-in page (flask-login), landing page, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from ..auth import SessionUser, password_check_slot, sign_in_budget
from ..core import current_services
from ..errors import RateLimited
from ..services.health import check_health, queue_depths
from ..services.tenancy import authenticate_user, get_tenant, open_session, revoke_session

bp = Blueprint("web", __name__)
NEXT_MAX = 2000  # characters of a ``next`` target worth following

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · Trailseal</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;background:#0f172a;color:#e2e8f0;margin:0}
 main{max-width:28rem;margin:8vh auto;background:#111827;border:1px solid #1f2937;border-radius:12px;padding:2rem}
 h1{font-size:1.4rem;margin:0 0 .25rem} p.sub{color:#94a3b8;margin:0 0 1.5rem}
 label{display:block;font-size:.85rem;color:#cbd5e1;margin:.75rem 0 .25rem}
 input{width:100%;box-sizing:border-box;padding:.6rem .7rem;border-radius:8px;border:1px solid #334155;background:#0b1220;color:#e2e8f0}
 button{margin-top:1.25rem;width:100%;padding:.7rem;border:0;border-radius:8px;background:#2563eb;color:white;font-weight:600;cursor:pointer}
 .err{background:#7f1d1d;color:#fecaca;padding:.6rem .8rem;border-radius:8px;margin-bottom:1rem}
 a{color:#93c5fd} code{color:#fde68a}
</style></head><body><main>{{ body|safe }}</main></body></html>"""

LOGIN = """<h1>Trailseal</h1><p class="sub">Sign in to the audit trail</p>
{% if error %}<div class="err" role="alert">{{ error }}</div>{% endif %}
<form method="post" action="{{ url_for('web.login') }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username" required value="{{ email }}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{{ next }}">
<button type="submit">Sign in</button></form>"""

HOME = """<h1>Trailseal</h1><p class="sub">Signed in as {{ user.name }} · tenant <b>{{ tenant.name }}</b></p>
<p>Permissions: {{ perms }}</p>
<ul>
<li><a href="/dash/"><b>Open the dashboards</b></a></li>
<li><a href="{{ url_for('api_v1.events_index') }}">Latest events (JSON)</a></li>
<li><a href="{{ url_for('api_v1.timeline') }}">Timeline (JSON)</a></li>
<li><a href="{{ url_for('api_v1.dashboard_stats') }}">Dashboard statistics (JSON)</a></li>
<li><a href="{{ url_for('api_v1.chain_verify') }}">Verify the hash chain (JSON)</a></li>
<li><a href="/api/v1/openapi.json">OpenAPI document</a></li>
</ul>
<form method="post" action="{{ url_for('web.logout') }}"><input type="hidden" name="csrf_token" value="{{ csrf }}"><button type="submit">Sign out</button></form>"""


def _csrf_token() -> str:
    token = session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf_token"] = token
    return token


def _csrf_ok() -> bool:
    sent = request.form.get("csrf_token", "")
    return bool(sent) and hmac.compare_digest(sent, session.get("csrf_token", ""))


# Browsers drop tabs and newlines anywhere in a URL and read a backslash as a slash, so
# "/\t/evil.example" or "/\\evil.example" would leave the site: refuse any of them.
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a same-origin path, or the home page."""
    if (target and len(target) <= NEXT_MAX and target.startswith("/")
            and not target.startswith("//") and not _UNSAFE_IN_NEXT.search(target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("web.home")


def _page(title: str, body: str, **ctx) -> str:
    inner = render_template_string(body, csrf=_csrf_token(), **ctx)
    return render_template_string(PAGE, title=title, body=inner)


@bp.route("/login", methods=["GET", "POST"])
def login():
    svc = current_services()
    error, email = None, ""
    next_url = request.values.get("next", "")
    if request.method == "POST":
        email = request.form.get("email", "")[:320]
        if not _csrf_ok():
            error = "Your session expired; please sign in again."
            return _page("Sign in", LOGIN, error=error, email=email, next=next_url), 401
        wait = sign_in_budget(svc, request.remote_addr, email)
        if wait is not None:
            return _too_many(wait, email, next_url)
        try:
            with password_check_slot(svc):
                principal = authenticate_user(svc, email, request.form.get("password", ""))
        except RateLimited as exc:
            return _too_many(exc.retry_after, email, next_url)
        if principal is not None:
            session.clear()
            session_id = open_session(svc, principal, request.remote_addr)
            login_user(SessionUser(principal, session_id))
            return redirect(_safe_next(next_url))
        error = "Email or password is incorrect."
        return _page("Sign in", LOGIN, error=error, email=email, next=next_url), 401
    return _page("Sign in", LOGIN, error=error, email=email, next=next_url)


def _too_many(wait: int, email: str, next_url: str):
    error = "Too many sign-in attempts; wait a minute and try again."
    page = _page("Sign in", LOGIN, error=error, email=email, next=next_url)
    return page, 429, {"Retry-After": str(wait)}


@bp.post("/logout")
def logout():
    if _csrf_ok():
        if current_user.is_authenticated:
            revoke_session(current_services(), current_user.principal.tenant_id,
                           current_user.session_id)
        logout_user()
        session.clear()
    return redirect(url_for("web.login"))


@bp.get("/")
@login_required
def home():
    svc = current_services()
    principal = current_user.principal
    tenant = get_tenant(svc, principal.tenant_id)
    return _page("Home", HOME, user=principal, tenant=tenant,
                 perms=", ".join(sorted(principal.permissions)))


@bp.get("/healthz")
def healthz():
    """Health probe: 200 when the database and Redis answer, 503 (``degraded``) otherwise."""
    report = check_health(current_services())
    return jsonify(report), (200 if report["status"] == "ok" else 503)


@bp.get("/metrics")
def metrics():
    """Prometheus text: queue depths (no tenant data)."""
    depths = queue_depths(current_services())
    lines = ["# HELP trailseal_queue_jobs Jobs waiting per RQ queue", "# TYPE trailseal_queue_jobs gauge"]
    for name, count in (depths or {}).items():
        lines.append(f'trailseal_queue_jobs{{queue="{name}"}} {count}')
    lines += ["# HELP trailseal_redis_up Whether Redis answered", "# TYPE trailseal_redis_up gauge",
              f"trailseal_redis_up {0 if depths is None else 1}"]
    return "\n".join(lines) + "\n", 200, {"Content-Type": "text/plain; version=0.0.4"}
