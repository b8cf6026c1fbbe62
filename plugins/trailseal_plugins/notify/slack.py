"""Slack channel: an incoming webhook answered with a Block Kit message."""

from __future__ import annotations

from typing import Any

from . import facts, headline, json_post_hooks, url_property

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


notification_channels, notify = json_post_hooks(
    KIND, SCHEMA, "Slack incoming webhook (Block Kit message)", render)
