"""Authentication (API keys, web sessions), permission checks and per-key rate limits."""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from contextlib import contextmanager

from flask import g, request
from flask_login import LoginManager, UserMixin, current_user

from ..config import parse_rate_limit
from ..core import current_services
from ..errors import Forbidden, RateLimited, Unauthorized
from ..services.limits import hit_window
from ..services.tenancy import Principal, authenticate_api_key, session_user

log = logging.getLogger(__name__)
login_manager = LoginManager()
login_manager.login_view = "web.login"


class SessionUser(UserMixin):
    """flask-login's view of a signed-in user: the user and their server-side session."""

    def __init__(self, principal: Principal, session_id: str):
        self.principal = principal
        self.session_id = session_id

    def get_id(self) -> str:
        return f"{self.principal.tenant_id}:{self.principal.id}:{self.session_id}"


@login_manager.user_loader
def _load_user(cookie_id: str):
    # The signed cookie names a session row; a revoked, expired or unknown row (or a cookie
    # from before sessions were recorded) signs nobody in.
    parts = cookie_id.split(":")
    if len(parts) != 3:
        return None
    tenant, user_id, session_id = parts
    svc = current_services()
    try:
        principal = session_user(svc, uuid.UUID(tenant), user_id, session_id,
                                 float(svc.config["SESSION_MAX_HOURS"]))
    except ValueError:
        return None
    return SessionUser(principal, session_id) if principal else None


def current_principal(allow_session: bool) -> Principal:
    """The caller: a Bearer API key, or (for reads) a signed-in web user. 401 otherwise."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    svc = current_services()
    header = request.headers.get("Authorization", "")
    principal = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <api key>'")
        principal = authenticate_api_key(svc, token.strip())
        if principal is None:
            raise Unauthorized("API key is not valid or was revoked")
        enforce_rate_limit(svc, principal)
    elif allow_session and current_user.is_authenticated:
        refuse_cross_site()
        principal = current_user.principal
    if principal is None:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <api key>'")
    g.principal = principal
    return principal


def rate_limit_headers(response):
    """``X-RateLimit-*`` headers on responses to API-key requests."""
    info = g.get("rate_limit")
    if info is not None:
        limit, remaining, reset = info
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        response.headers["X-RateLimit-Reset"] = str(reset)
    return response


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_cross_site() -> None:
    """403 for a state-changing request sent with the session cookie from another site: its
    ``Origin`` (or, without one, ``Referer``) names another scheme, host or port than this
    server. Browsers send ``Origin`` on every cross-origin POST; a request with neither
    header is not from a browser page and is let through (the session cookie is also
    ``SameSite=Lax`` and these endpoints take JSON only, which a cross-site form cannot
    send)."""
    if request.method in SAFE_METHODS:
        return
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return
    here = request.host_url.rstrip("/")
    if source == "null" or not (source == here or source.startswith(here + "/")):
        raise Forbidden("cross-site request refused: a signed-in session is only accepted "
                        "from this site's own pages", {"origin": source[:200]})


def count_api_usage(response):
    """Count each authenticated API call in its tenant's usage (``services.usage``)."""
    principal = g.get("principal")
    if principal is not None and request.path.startswith("/api/"):
        from ..services.usage import count_api_call

        count_api_call(current_services(), principal.tenant_id)
    return response


def enforce_rate_limit(svc, principal: Principal) -> None:
    """Fixed-window limit per API key; 429 with Retry-After past it."""
    limit, window = parse_rate_limit(str(svc.config["RATE_LIMIT"]))
    if limit <= 0:
        return
    now = time.time()
    bucket = int(now // window)
    count = hit_window(svc, f"rl:{principal.id}", window, bucket)
    if count is None:
        return  # limiter unavailable: serve rather than fail (logged in hit_window)
    g.rate_limit = (limit, max(0, limit - count), int((bucket + 1) * window))
    if count > limit:
        retry = max(1, int((bucket + 1) * window - now + 0.999))
        raise RateLimited(
            f"rate limit of {limit} requests per {window}s exceeded", retry_after=retry,
            details={"limit": limit, "window_seconds": window},
        )


def require(permission: str, *, allow_session: bool = True):
    """Decorator: the caller must hold ``permission`` (403 otherwise, 401 if anonymous)."""

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            principal = current_principal(allow_session)
            if not principal.can(permission):
                raise Forbidden(f"this credential lacks the {permission!r} permission",
                                {"required": permission})
            return view(*args, **kwargs)

        inner.required_permission = permission  # read by the OpenAPI generator
        return inner

    return wrap


# --- sign-in budgets ----------------------------------------------------------------------
# Each password check costs ~0.1 s of CPU (Argon2), so unauthenticated checks are budgeted
# per address and globally (besides the per address-and-email throttle of the sign-in page),
# and only a few run at once: the threads that serve the API keep their CPU.
_password_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def sign_in_budget(svc, remote_addr: str | None, email: str) -> int | None:
    """Count one sign-in attempt against its budgets; the seconds to wait (for Retry-After)
    when one is spent, None while all allow it."""
    now = time.time()
    budgets = [
        (f"login:{remote_addr}:{email.strip().lower()}", str(svc.config["LOGIN_RATE_PER_EMAIL"])),
        (f"login-addr:{remote_addr}", str(svc.config["LOGIN_RATE_PER_ADDRESS"])),
        ("login-all", str(svc.config["LOGIN_RATE_GLOBAL"])),
    ]
    for name, spec in budgets:
        limit, window = parse_rate_limit(spec)
        if limit <= 0:
            continue
        bucket = int(now // window)
        count = hit_window(svc, name, window, bucket)
        if count is not None and count > limit:
            return max(1, int((bucket + 1) * window - now + 0.999))
    return None


@contextmanager
def password_check_slot(svc):
    """Hold one of the ``PASSWORD_CHECKS_AT_ONCE`` slots for a password check; raises
    ``RateLimited`` when none frees up within ``PASSWORD_CHECK_WAIT`` seconds."""
    global _password_slots
    with _slots_lock:
        if _password_slots is None:
            _password_slots = threading.BoundedSemaphore(
                max(1, int(svc.config["PASSWORD_CHECKS_AT_ONCE"])))
        slots = _password_slots
    if not slots.acquire(timeout=float(svc.config["PASSWORD_CHECK_WAIT"])):
        raise RateLimited("sign-in is busy; try again in a few seconds", retry_after=2)
    try:
        yield
    finally:
        slots.release()
