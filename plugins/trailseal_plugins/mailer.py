"""Outgoing mail for the email channel and scheduled reports: one SMTP conversation per
message, settings from the ``SMTP_*`` configuration keys (``TRAILSEAL_SMTP_HOST`` ...)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

SECURITY_MODES = ("starttls", "ssl", "none")


class MailError(Exception):
    """Mail could not be sent; the message says why (configuration or server reply)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/octet-stream"


def mail_configured(config: Mapping[str, Any]) -> str | None:
    """None when outgoing mail can be attempted, else the reason it cannot."""
    if not str(config.get("SMTP_HOST") or "").strip():
        return "outgoing mail is not configured (set TRAILSEAL_SMTP_HOST)"
    if str(config.get("SMTP_SECURITY") or "starttls") not in SECURITY_MODES:
        return f"TRAILSEAL_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}"
    return None


def build_message(config: Mapping[str, Any], recipients: Iterable[str], subject: str,
                  text: str, html: str | None = None,
                  attachments: Iterable[Attachment] = (),
                  headers: Mapping[str, str] | None = None) -> EmailMessage:
    """The message as it will be sent (plain text, optional HTML alternative, attachments)."""
    to = [r.strip() for r in recipients if r and r.strip()]
    if not to:
        raise MailError("no recipients")
    msg = EmailMessage()
    msg["From"] = str(config.get("SMTP_FROM") or "trailseal@localhost")
    msg["To"] = ", ".join(to)
    # Header injection: a subject is one line.
    msg["Subject"] = " ".join(str(subject).split())[:250]
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="trailseal")
    for name, value in (headers or {}).items():
        msg[name] = " ".join(str(value).split())
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for att in attachments:
        maintype, _, subtype = att.mimetype.partition("/")
        msg.add_attachment(att.content, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=att.filename)
    return msg


def send_mail(config: Mapping[str, Any], recipients: Iterable[str], subject: str, text: str,
              html: str | None = None, attachments: Iterable[Attachment] = (),
              headers: Mapping[str, str] | None = None) -> str:
    """Send one message; return its Message-ID. Raises ``MailError`` with the reason."""
    reason = mail_configured(config)
    if reason:
        raise MailError(reason)
    msg = build_message(config, recipients, subject, text, html, attachments, headers)
    host = str(config["SMTP_HOST"]).strip()
    port = int(config.get("SMTP_PORT") or 25)
    timeout = float(config.get("SMTP_TIMEOUT") or 10.0)
    security = str(config.get("SMTP_SECURITY") or "starttls")
    try:
        if security == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            client.ehlo()
            if security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailError(f"{host}:{port} does not offer STARTTLS "
                                    "(set TRAILSEAL_SMTP_SECURITY=none to send in clear)")
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            user = str(config.get("SMTP_USERNAME") or "")
            if user:
                client.login(user, str(config.get("SMTP_PASSWORD") or ""))
            refused = client.send_message(msg)
    except MailError:
        raise
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"{host}:{port}: {exc}") from exc
    if refused:
        raise MailError("recipients refused: " + ", ".join(sorted(refused)))
    return str(msg["Message-ID"])
