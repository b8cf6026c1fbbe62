"""Microsoft Teams channel: an incoming webhook (or Workflows URL) answered with a message
carrying an Adaptive Card."""

from __future__ import annotations

from typing import Any

from . import facts, headline, json_post_hooks, url_property

KIND = "teams"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["webhook_url"],
    "properties": {"webhook_url": url_property(
        "The Teams incoming webhook or Workflows URL.")},
}
COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Accent",
         "info": "Default"}


def render(message: dict[str, Any]) -> dict[str, Any]:
    """The webhook message: one attachment, an Adaptive Card 1.4 with the facts."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": headline(message), "weight": "Bolder",
             "size": "Medium", "wrap": True,
             "color": COLOR.get(message["alert"]["severity"], "Default")},
            {"type": "FactSet", "facts": [{"title": label, "value": value}
                                          for label, value in facts(message)]},
        ],
    }
    return {"type": "message",
            "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}]}


notification_channels, notify = json_post_hooks(
    KIND, SCHEMA, "Microsoft Teams webhook (Adaptive Card)", render)
