"""Outgoing mail against a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import pytest

from trailseal_plugins.mailer import Attachment, MailError, mail_configured, send_mail


def test_sends_text_html_and_attachment(smtp_receiver):
    cfg = smtp_receiver.config()
    msg_id = send_mail(cfg, ["a@example.com", " b@example.com "], "Weekly\r\nBcc: x@evil",
                       "plain body", html="<p>html body</p>",
                       attachments=[Attachment("r.pdf", b"%PDF-1.4 x", "application/pdf")])
    [mail] = smtp_receiver.wait_for(1)
    assert mail.recipients == ["a@example.com", "b@example.com"]
    assert mail.subject == "Weekly Bcc: x@evil"  # one line: no header injection
    assert mail.message["Bcc"] is None
    assert mail.message["Message-ID"] == msg_id
    assert "plain body" in mail.text()
    assert mail.attachments() == [("r.pdf", b"%PDF-1.4 x")]


@pytest.mark.parametrize("cfg,reason", [
    ({}, "not configured"),
    ({"SMTP_HOST": "127.0.0.1", "SMTP_SECURITY": "tls13"}, "SMTP_SECURITY"),
])
def test_configuration_refused_with_reason(cfg, reason):
    assert reason in mail_configured(cfg)
    with pytest.raises(MailError, match=reason):
        send_mail(cfg, ["a@example.com"], "s", "t")


def test_no_recipients_and_unreachable_server(smtp_receiver):
    cfg = smtp_receiver.config()
    with pytest.raises(MailError, match="no recipients"):
        send_mail(cfg, ["  "], "s", "t")
    smtp_receiver.close()
    with pytest.raises(MailError, match="127.0.0.1"):
        send_mail(cfg, ["a@example.com"], "s", "t")


def test_starttls_required_but_not_offered(smtp_receiver):
    cfg = dict(smtp_receiver.config(), SMTP_SECURITY="starttls")
    with pytest.raises(MailError, match="STARTTLS"):
        send_mail(cfg, ["a@example.com"], "s", "t")
    assert smtp_receiver.messages == []
