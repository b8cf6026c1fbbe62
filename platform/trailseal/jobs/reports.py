"""Scheduled-report jobs: every minute the due reports of every tenant are sent, and
``POST /api/v1/reports/schedules/{id}/run`` queues one run now (see
``services.report_runs``)."""

from __future__ import annotations

import logging
from typing import Any

from ..core import current_services
from ..services import report_runs

log = logging.getLogger(__name__)


def send_due_reports() -> dict[str, int]:
    """Claim and send every due scheduled report (the recurring job); counts by outcome."""
    outcomes = report_runs.run_due_reports(current_services())
    counts = {"sent": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome["status"]] += 1
    if outcomes:
        log.info("scheduled reports: %s", counts)
    return counts


def run_report_now(tenant_id: str, schedule_id: str) -> dict[str, Any] | None:
    """Send one schedule's report now (queued by the API); its outcome."""
    return report_runs.run_report_now(current_services(), tenant_id, schedule_id)
