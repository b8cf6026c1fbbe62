"""Generic webhook channel: the message as JSON, signed with HMAC-SHA256 over
``"{timestamp}.{body}"`` (the Stripe/Svix scheme), so a receiver can check who sent it and
refuse replays.

Headers: ``Trailseal-Signature: t=<unix seconds>,v1=<hex digest>``, ``Trailseal-Delivery``
(the delivery id, the same on every retry: deduplicate on it) and ``Trailseal-Event``
(``alert`` or ``test``). The admin guide has the receiver's verification code.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

from trailseal import hookimpl
from trailseal.types import NotificationChannel

from . import url_property

KIND = "webhook"
SIGNATURE_HEADER = "Trailseal-Signature"
DELIVERY_HEADER = "Trailseal-Delivery"
EVENT_HEADER = "Trailseal-Event"
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["url", "secret"],
    "properties": {
        "url": url_property("Where to POST the signed JSON."),
        "secret": {"type": "string", "writeOnly": True, "minLength": 32, "maxLength": 256,
                   "pattern": "^[\\x21-\\x7e]+$",
                   "description": "The signing secret shared with the receiver: 32–256 "
                                  "printable ASCII characters without spaces."},
    },
}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{body}"`` with ``secret``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_request(secret: str, message: dict[str, Any],
                   now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery attempt (signed at ``now``)."""
    body = orjson.dumps(message)
    stamp = int(time.time() if now is None else now)
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: f"t={stamp},v1={signature(secret, stamp, body)}",
               DELIVERY_HEADER: message["delivery_id"], EVENT_HEADER: message["type"]}
    return body, headers


@hookimpl(trylast=True)
def notification_channels():
    return [NotificationChannel(KIND, SCHEMA, "Signed JSON webhook (HMAC-SHA256)")]


@hookimpl(trylast=True)
def notify(kind, config, message, outbound):
    if kind != KIND:
        return None
    body, headers = signed_request(config["secret"], message)
    outbound.post(config["url"], body, headers)
    return True
