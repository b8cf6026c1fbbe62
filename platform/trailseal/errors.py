"""The ``TrailsealError`` hierarchy. One API error handler maps each class to HTTP."""

from __future__ import annotations

from typing import Any


class TrailsealError(Exception):
    """Base class: ``code`` is machine-readable, ``status`` the HTTP status."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(TrailsealError):
    status = 400
    code = "bad_request"


class ValidationFailed(TrailsealError):
    status = 422
    code = "validation_failed"


class Unauthorized(TrailsealError):
    status = 401
    code = "unauthorized"


class Forbidden(TrailsealError):
    status = 403
    code = "forbidden"


class NotFound(TrailsealError):
    status = 404
    code = "not_found"


class Conflict(TrailsealError):
    status = 409
    code = "conflict"


class PayloadTooLarge(TrailsealError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TrailsealError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(TrailsealError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int, details: Any = None):
        super().__init__(message, details)
        self.retry_after = retry_after


class ConfigurationError(TrailsealError):
    """The deployment is misconfigured (wrong database role, missing key...)."""

    status = 500
    code = "configuration_error"

