"""Notification channels: Slack (Block Kit), Microsoft Teams (Adaptive Card), Zapier
(structured JSON), signed webhooks and email. Each module is a plugin of its own (entry
points ``slack``, ``teams``, ``zapier``, ``webhook``, ``email``), so each can be disabled
with ``TRAILSEAL_DISABLE_PLUGINS``. This module holds what they share: the wording of an
alert."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trailseal import hookimpl
from trailseal.types import NotificationChannel

SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}
DETAIL_ITEMS = 8  # details shown in chat cards (the full set goes to webhooks and Zapier)
TEXT_MAX = 300


def url_property(description: str) -> dict[str, Any]:
    """A secret URL in a channel's schema (checked as a destination, stored encrypted)."""
    return {"type": "string", "format": "uri", "writeOnly": True, "minLength": 1,
            "maxLength": 2048, "description": description}


def headline(message: dict[str, Any]) -> str:
    """One line: severity, title and tenant."""
    alert = message["alert"]
    prefix = "[TEST] " if message.get("type") == "test" else ""
    return (f"{prefix}{SEVERITY_MARK.get(alert['severity'], '')} {alert['severity'].upper()}: "
            f"{alert['title']} ({message['tenant']['name']})").strip()


def facts(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of an alert for cards and mail, details last and capped."""
    alert = message["alert"]
    pairs = [("Severity", alert["severity"]), ("Kind", alert["kind"]),
             ("Tenant", f"{message['tenant']['name']} ({message['tenant']['slug']})"),
             ("Raised at", alert.get("created_at") or "")]
    if alert.get("event_id"):
        pairs.append(("Event", alert["event_id"]))
    if alert.get("id"):
        pairs.append(("Alert", alert["id"]))
    for key, value in list((alert.get("details") or {}).items())[:DETAIL_ITEMS]:
        shown = value if isinstance(value, str) else repr(value)
        pairs.append((str(key)[:60], shown[:TEXT_MAX]))
    pairs.append(("Delivery", message["delivery_id"]))
    return pairs


def json_post_hooks(channel_kind: str, schema: dict[str, Any], description: str,
                    render: Callable[[dict[str, Any]], Any]):
    """The ``notification_channels`` and ``notify`` hooks of a channel that POSTs
    ``render(message)`` as JSON to its config's ``webhook_url`` (Slack, Teams, Zapier);
    a module assigns them to its own names so pluggy finds them there."""

    @hookimpl(trylast=True)
    def notification_channels():
        return [NotificationChannel(channel_kind, schema, description)]

    @hookimpl(trylast=True)
    def notify(kind, config, message, outbound):
        if kind != channel_kind:
            return None
        outbound.post_json(config["webhook_url"], render(message))
        return True

    return notification_channels, notify
