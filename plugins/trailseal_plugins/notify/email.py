"""Email channel: a plain-text and HTML message per alert, sent with the deployment's
``SMTP_*`` settings (``trailseal_plugins.mailer``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from trailseal import hookimpl
from trailseal.types import NotificationChannel

from ..mailer import mail_configured, send_mail
from . import facts, headline

KIND = "email"
ADDRESS = r"^[^@\s,;<>\"']{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["recipients"],
    "properties": {
        "recipients": {"type": "array", "minItems": 1, "maxItems": 50, "uniqueItems": True,
                       "items": {"type": "string", "maxLength": 254, "pattern": ADDRESS},
                       "description": "Addresses to mail each alert to."},
        "subject_prefix": {"type": "string", "maxLength": 50, "pattern": "^[^\\r\\n]*$",
                           "description": "Put before each subject (default [Trailseal])."},
    },
}


def validate(config: dict[str, Any], settings: Mapping[str, Any]) -> str | None:
    """Mail needs an SMTP server: refused while TRAILSEAL_SMTP_HOST is unset."""
    return mail_configured(settings)


def render(config: dict[str, Any], message: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, text, html) of an alert."""
    subject = f"{config.get('subject_prefix', '[Trailseal]')} {headline(message)}".strip()
    pairs = facts(message)
    text = headline(message) + "\n\n" + "\n".join(f"{k}: {v}" for k, v in pairs) + "\n"
    rows = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in pairs)
    body = f"<p><strong>{html.escape(headline(message))}</strong></p><table>{rows}</table>"
    return subject, text, body


@hookimpl(trylast=True)
def notification_channels():
    return [NotificationChannel(KIND, SCHEMA, "Email through the SMTP server", validate)]


@hookimpl(trylast=True)
def notify(kind, config, message, outbound):
    if kind != KIND:
        return None
    subject, text, body = render(config, message)
    send_mail(outbound.settings, config["recipients"], subject, text, html=body,
              headers={"X-Trailseal-Delivery": message["delivery_id"]})
    return True
