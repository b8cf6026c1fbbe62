"""Scheduled reports by mail: the report mailer (``report_mailer``) that sends each report
with its file attached over SMTP, with the ``TRAILSEAL_SMTP_*`` settings.

A first-party plugin (entry point ``reports``). The core stores the schedules, times them
and writes each report with the registered exporter; this plugin only mails it, so an
installed plugin that answers ``report_mailer`` first (another transport) replaces it.
Disable it with ``TRAILSEAL_DISABLE_PLUGINS=reports``: schedules are then refused, and due
ones fail with the reason until a mailer is installed.
"""

from __future__ import annotations

from typing import Any

from trailseal import hookimpl
from trailseal.types import ScheduledReport

from ..mailer import Attachment, mail_configured, send_mail


class SmtpReportMailer:
    """Mails a scheduled report: plain text saying what it covers, the file attached."""

    name = "smtp"

    def problem(self, config: dict[str, Any]) -> str | None:
        """``trailseal_plugins.mailer.mail_configured``: why mail cannot be sent, or None."""
        return mail_configured(config)

    def send(self, config: dict[str, Any], report: ScheduledReport) -> str:
        """Send the report to its recipients in one message; its Message-ID. Raises
        ``MailError`` with the server's reason when it was not accepted."""
        return send_mail(
            config, report.recipients, report.subject, report.text,
            # the MIME type without parameters (``text/csv; charset=utf-8``): the part's
            # own headers carry those
            attachments=[Attachment(report.filename, report.content,
                                    report.media_type.split(";")[0].strip())],
            headers={"X-Trailseal-Report-Schedule": report.schedule_id})


@hookimpl(trylast=True)
def report_mailer():
    return SmtpReportMailer()
