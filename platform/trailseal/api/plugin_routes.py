"""The decorator plugin routes use to get what the core's API endpoints get."""

from __future__ import annotations

import functools

from flask import request

from ..auth import current_principal
from ..core import current_services
from ..errors import Forbidden
from ..services.access import record_read
from .requests import access_record, check_control_characters, check_query_params

__all__ = ["require_permission"]


def require_permission(permission: str, *, params: tuple[str, ...] | None = None):
    """Decorator for plugin routes: what the core's API endpoints get, in one line.

    The caller is authenticated (an API key, or for ``GET``/``HEAD`` a signed-in web user),
    must hold ``permission`` (401/403 with the API's error shape otherwise), and API keys are
    rate limited. A read (``GET``/``HEAD``) is recorded in the tenant's access log before
    the view runs, so no read goes unrecorded. With ``params``, other query parameters are
    refused with 422. The view receives the caller's tenant as the keyword argument
    ``tenant_id`` (a string UUID); ``flask.g.principal`` holds the caller.

    .. code-block:: python

        @bp.get("/example/summary")
        @require_permission("audit:read")
        def summary(tenant_id):
            ...
    """
    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            check_control_characters()  # routes outside /api/ too: the log cannot hold NUL
            reading = request.method in ("GET", "HEAD")
            principal = current_principal(allow_session=reading)
            if not principal.can(permission):
                raise Forbidden(f"this credential lacks the {permission!r} permission",
                                {"required": permission})
            if params is not None:
                check_query_params(params)
            if reading:
                record_read(current_services(), principal, access_record())
            return view(*args, tenant_id=str(principal.tenant_id), **kwargs)

        inner.required_permission = permission
        return inner

    return wrap
