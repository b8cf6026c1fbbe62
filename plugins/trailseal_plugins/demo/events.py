"""Assembling events shaped like the API body, and their ``request_id``: random for
ordinary events, a marker recomputable from the event itself for incident events."""

from __future__ import annotations

import hashlib
from datetime import datetime
from random import Random
from typing import Any

from .builders import Built

# An event and its moment, kept side by side for sorting.
Raw = tuple[datetime, dict[str, Any]]


def _ts(moment: datetime) -> str:
    # ``moment`` is always UTC-aware: "...T12:34:56.789+00:00" -> "...T12:34:56.789Z".
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def make_event(
    moment: datetime, event_type: str, actor: dict[str, str], built: Built,
    source: str, ip: str, user_agent: str, request_id: str,
) -> Raw:
    """An event shaped like the body of ``POST /api/v1/events``, with its moment."""
    entity, severity, details, tags = built
    details["request_id"] = request_id
    return moment, {
        "event_type": event_type,
        "occurred_at": _ts(moment),
        "actor": dict(actor),
        "entity": entity,
        "severity": severity,
        "source": source,
        "ip_address": ip,
        "user_agent": user_agent,
        "action_details": details,
        "tags": tags,
    }


def marker(slug: str, kind: str, event: dict[str, Any]) -> str:
    """The ``request_id`` of an incident event: recomputable from the event itself."""
    basis = f"{slug}|{kind}|{event['occurred_at']}|{event['event_type']}|{event['actor']['id']}"
    return "req_" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def random_request_id(rng: Random) -> str:
    """An ordinary ``request_id``, drawn from ``rng``."""
    return f"req_{rng.getrandbits(96):024x}"
