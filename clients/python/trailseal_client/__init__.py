"""Python client for the Trailseal audit trail REST API (standard library only).

    from trailseal_client import Client
    client = Client("https://audit.example.com", api_key)
    client.send({"event_type": "invoice.deleted", ...})
"""

from .client import BATCH_MAX_EVENTS, DEFAULT_USER_AGENT, Client, __version__
from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    TrailsealError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

__all__ = [
    "BATCH_MAX_EVENTS",
    "DEFAULT_USER_AGENT",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "TrailsealError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "__version__",
]
