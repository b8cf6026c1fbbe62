"""Slack channel: an incoming webhook answered with a Block Kit message."""

from __future__ import annotations

from typing import Any

from trailseal import hookimpl
from trailseal.types import NotificationChannel

from . import facts, headline, url_property

KIND = "slack"
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["webhook_url"],
    "properties": {"webhook_url": url_property(
        "The incoming webhook URL Slack gives (https://hooks.slack.com/services/…).")},
}


def render(message: dict[str, Any]) -> dict[str, Any]:
    """The Block Kit payload of an alert: header, fields, details as context."""
    pairs = facts(message)
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs[:10]]
    return {
        "text": headline(message),  # notifications and clients without blocks
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline(message)[:150],
                                        "emoji": True}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"Trailseal delivery `{message['delivery_id']}`"}]},
        ],
    }


@hookimpl(trylast=True)
def notification_channels():
    return [NotificationChannel(KIND, SCHEMA, "Slack incoming webhook (Block Kit message)")]


@hookimpl(trylast=True)
def notify(kind, config, message, outbound):
    if kind != KIND:
        return None
    outbound.post_json(config["webhook_url"], render(message))
    return True
