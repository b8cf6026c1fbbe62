"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import PayloadTooLarge, RateLimited, TrailsealError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "rate_limited",
}


def _body(status: int, code: str, message: str, details=None):
    resp = jsonify({"error": {"code": code, "message": message, "details": details}})
    resp.status_code = status
    return resp


def register_error_handlers(app) -> None:
    @app.errorhandler(TrailsealError)
    def _trailseal_error(exc: TrailsealError):
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        resp = _body(exc.status, exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimited):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        if isinstance(exc, RequestEntityTooLarge):
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            return _trailseal_error(PayloadTooLarge(f"request body exceeds {limit} bytes"))
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 405:
            message = f"{request.method} is not allowed on {request.path}"
            if request.path.startswith("/api/v1/events"):
                message += "; audit events are append-only"
        resp = _body(status, HTTP_CODES.get(status, "http_error"), message)
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                resp.headers["Allow"] = value
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _body(500, "internal_error", "internal server error")
