"""The exceptions the client raises, one class per API error code."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from http.client import responses
from typing import Any

# A non-JSON error body (a proxy's HTML page, say) becomes the message, cut to this length.
TEXT_MESSAGE_MAX = 500


class TrailsealError(Exception):
    """An error answered by the API, or a request that never got an answer.

    ``status`` is the HTTP status (None when no response arrived), ``code`` the API's error
    code (``validation_failed``, ``not_found``...), ``details`` whatever the server attached.
    """

    def __init__(self, status: int | None, code: str, message: str, details: Any = None):
        super().__init__(f"{status} {code}: {message}" if status is not None else message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BadRequest(TrailsealError):
    """400 ``bad_request``: malformed JSON, a bad header or query value."""


class Unauthorized(TrailsealError):
    """401 ``unauthorized``: the API key is missing, unknown or revoked."""


class Forbidden(TrailsealError):
    """403 ``forbidden``: the API key lacks the permission the endpoint needs."""


class NotFound(TrailsealError):
    """404 ``not_found``: no such event in this tenant (or no such route)."""


class MethodNotAllowed(TrailsealError):
    """405 ``method_not_allowed``: the trail is append-only."""


class Conflict(TrailsealError):
    """409 ``conflict``: an Idempotency-Key was reused with a different body."""


class PayloadTooLarge(TrailsealError):
    """413 ``payload_too_large``: the request body is over the server's limit."""


class UnsupportedMediaType(TrailsealError):
    """415 ``unsupported_media_type``: the body was not sent as JSON."""


class ValidationFailed(TrailsealError):
    """422 ``validation_failed``: the event or a query parameter is invalid."""


class RateLimited(TrailsealError):
    """429 ``rate_limited``; ``retry_after`` is the server's Retry-After in seconds (or None)."""

    def __init__(self, status: int | None, code: str, message: str, details: Any = None,
                 retry_after: float | None = None):
        super().__init__(status, code, message, details)
        self.retry_after = retry_after


class ServerError(TrailsealError):
    """5xx: the server (or a proxy in front of it) failed; retried before being raised."""


class ConnectionFailed(TrailsealError):
    """No response at all (refused, reset, timed out, TLS failure), after the retries."""

    def __init__(self, message: str, details: Any = None):
        super().__init__(None, "connection_failed", message, details)


BY_CODE: dict[str, type[TrailsealError]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "validation_failed": ValidationFailed,
    "rate_limited": RateLimited,
    "internal_error": ServerError,
}

BY_STATUS: dict[int, type[TrailsealError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
}

# The code to report when an error body carries none (it is not the API's JSON).
_CODE_OF_STATUS = {status: code for code, cls in BY_CODE.items()
                   for status, by_status in BY_STATUS.items() if cls is by_status}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # HTTP dates are GMT
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_from_response(status: int, body: bytes, headers: Message | None = None
                        ) -> TrailsealError:
    """The exception for an error response: chosen by the body's error code, else by the
    HTTP status. A body that is not the API's JSON error still gives the right class, with
    its text as the message."""
    code: str | None = None
    message: str | None = None
    details: Any = None
    try:
        error = json.loads(body.decode("utf-8"))["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        details = error.get("details")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
        message = text[:TEXT_MESSAGE_MAX] + ("…" if len(text) > TEXT_MESSAGE_MAX else "")
    cls = BY_CODE.get(code or "") or BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else TrailsealError
    code = code or _CODE_OF_STATUS.get(status) or f"http_{status}"
    message = message or responses.get(status, "HTTP error")
    if cls is RateLimited:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return RateLimited(status, code, message, details, retry_after=retry_after)
    return cls(status, code, message, details)
