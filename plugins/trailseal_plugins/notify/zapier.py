"""Zapier channel: a Catch Hook URL answered with flat, structured JSON (one field per
value, so a Zap maps them without parsing)."""

from __future__ import annotations

from typing import Any

from . import headline, json_post_hooks, url_property

KIND = "zapier"
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["webhook_url"],
    "properties": {"webhook_url": url_property(
        "The Zap's Catch Hook URL (https://hooks.zapier.com/hooks/catch/…).")},
}


def render(message: dict[str, Any]) -> dict[str, Any]:
    """Flat fields plus ``details`` (the alert's own object)."""
    alert = message["alert"]
    return {
        "delivery_id": message["delivery_id"], "type": message["type"],
        "summary": headline(message),
        "tenant_id": message["tenant"]["id"], "tenant_slug": message["tenant"]["slug"],
        "tenant_name": message["tenant"]["name"],
        "integration_id": message["integration"]["id"],
        "alert_id": alert.get("id"), "alert_kind": alert["kind"],
        "severity": alert["severity"], "title": alert["title"],
        "event_id": alert.get("event_id"), "created_at": alert.get("created_at"),
        "details": alert.get("details") or {},
    }


notification_channels, notify = json_post_hooks(
    KIND, SCHEMA, "Zapier Catch Hook (structured JSON)", render)
