"""Report schedules (``audit_scheduled_reports``): validation, storage and reading.

A schedule names a cron expression read in an IANA time zone, the events API's filters, a
registered export format and 1–20 recipients. It is refused with the reason (422) when any
of those is wrong and when scheduled reports cannot be mailed (no mailer installed, or
outgoing mail not configured: the ``report_mailer`` hook says why). Running schedules is
``services.report_runs``; when they run is ``services.report_timing``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from ..errors import NotFound, ValidationFailed
from ..schemas import ReportScheduleIn
from ..tables import audit_scheduled_reports as sched
from ..types import ReportMailer
from .access import AccessRecord, audited_read
from .chain import format_ts
from .exports import filters_for_log, registered_exporters
from .report_timing import ScheduleInvalid, check_schedule, next_slot, previous_slot
from .tenancy import Principal

#: The job that runs a schedule now, by import path (services never import jobs).
RUN_NOW_JOB = "trailseal.jobs.reports.run_report_now"

log = logging.getLogger(__name__)

SCHEDULES_MAX = 100  # per tenant: the list is one page


def report_mailer(pm) -> ReportMailer | None:
    """The mailer of scheduled reports the plugins offer (``report_mailer``), or None."""
    found = pm.hook.report_mailer()
    if found is not None and not isinstance(found, ReportMailer):
        log.error("report_mailer returned %r, which is not a trailseal.types.ReportMailer",
                  found)
        return None
    return found


def mail_problem(svc) -> str | None:
    """Why scheduled reports cannot be mailed now, or None when they can."""
    mailer = report_mailer(svc.pm)
    if mailer is None:
        return ("no report mailer is installed (the first-party one is the 'reports' "
                "plugin; is it in TRAILSEAL_DISABLE_PLUGINS?)")
    return mailer.problem(svc.config)


def _schedule_id(raw: str) -> uuid.UUID:
    """A schedule id from a URL; 404 for anything that is not one (as for unknown ids)."""
    try:
        return uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        shown = raw if len(raw) <= 64 else raw[:64] + "…"
        raise NotFound(f"no report schedule {shown!r} in this tenant") from None


def schedule_to_dict(row) -> dict[str, Any]:
    """A stored schedule as the API shows it."""
    return {
        "id": str(row["id"]), "name": row["name"], "cron": row["cron"],
        "timezone": row["timezone"], "filters": row["filters"], "format": row["format"],
        "recipients": list(row["recipients"]), "created_by": row["created_by"],
        "created_at": format_ts(row["created_at"]), "next_run": format_ts(row["next_run"]),
        "last_run": format_ts(row["last_run"]) if row["last_run"] else None,
        "last_status": row["last_status"], "last_error": row["last_error"],
        "covered_until": format_ts(row["covered_until"]),
        "runs": row["runs"],
    }


def create_schedule(svc, principal: Principal, body: ReportScheduleIn, *,
                    now: datetime | None = None) -> dict[str, Any]:
    """Validate and store a schedule of the caller's tenant; the stored schedule. 422 with
    the reason (``details.field`` names the field) for a bad cron, zone or format, and when
    reports cannot be mailed."""
    now = now or datetime.now(UTC)
    exporters = registered_exporters(svc.pm)
    if body.format not in exporters:
        raise ValidationFailed(
            f"unknown report format {body.format!r}; this server writes: "
            f"{', '.join(sorted(exporters)) or 'nothing (no exporter installed)'}",
            {"field": "format", "formats": sorted(exporters)})
    try:
        cron, zone = check_schedule(body.cron, body.timezone, now=now)
    except ScheduleInvalid as exc:
        raise ValidationFailed(str(exc), {"field": exc.field}) from None
    problem = mail_problem(svc)
    if problem:
        raise ValidationFailed(f"scheduled reports are sent by mail, and {problem}",
                               {"field": None, "reason": problem})
    first = next_slot(cron, zone, now)
    values = {
        "id": uuid.uuid4(), "tenant_id": principal.tenant_id, "name": body.name,
        "cron": cron, "timezone": body.timezone, "filters": filters_for_log(body.filters),
        "format": body.format, "recipients": list(body.recipients),
        "created_by": f"{principal.kind}:{principal.id}", "created_at": now,
        "next_run": first, "covered_until": previous_slot(cron, zone, first), "runs": 0,
    }
    with svc.db.transaction(principal.tenant_id) as conn:
        held = conn.execute(select(func.count()).select_from(sched)).scalar_one()
        if held >= SCHEDULES_MAX:
            raise ValidationFailed(f"a tenant has at most {SCHEDULES_MAX} report schedules; "
                                   "delete one first", {"field": None, "max": SCHEDULES_MAX})
        row = conn.execute(insert(sched).values(**values).returning(*sched.c)).mappings().one()
    return schedule_to_dict(row)


def list_schedules(conn: Connection) -> list[dict[str, Any]]:
    """The schedules of the transaction's tenant, by name."""
    rows = conn.execute(select(sched).order_by(sched.c.name, sched.c.created_at)).mappings()
    return [schedule_to_dict(r) for r in rows]


def read_schedules(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """``{"schedules": [...]}`` of the caller's tenant (the read is recorded)."""
    with audited_read(svc, principal, access) as conn:
        return {"schedules": list_schedules(conn)}


def read_schedule(svc, principal: Principal, schedule_id: str,
                  access: AccessRecord) -> dict[str, Any]:
    """One schedule of the caller's tenant; 404 for any other id (recorded too)."""
    sid = _schedule_id(schedule_id)
    with audited_read(svc, principal, access) as conn:
        row = conn.execute(select(sched).where(sched.c.id == sid)).mappings().first()
        if row is None:
            raise NotFound(f"no report schedule {schedule_id!r} in this tenant")
        return schedule_to_dict(row)


def delete_schedule(svc, principal: Principal, schedule_id: str) -> None:
    """Delete a schedule of the caller's tenant (no further report is sent); 404 for any
    other id."""
    sid = _schedule_id(schedule_id)
    with svc.db.transaction(principal.tenant_id) as conn:
        gone = conn.execute(delete(sched).where(sched.c.id == sid).returning(sched.c.id)).first()
    if gone is None:
        raise NotFound(f"no report schedule {schedule_id!r} in this tenant")


def start_report_run(svc, principal: Principal, schedule_id: str) -> dict[str, Any]:
    """Queue a run of a schedule now (its ``next_run`` stays): a worker writes and mails the
    report. The schedule; 404 for another tenant's id, 422 when reports cannot be mailed."""
    schedule = find_schedule(svc, principal, schedule_id)
    problem = mail_problem(svc)
    if problem:
        raise ValidationFailed(f"scheduled reports are sent by mail, and {problem}",
                               {"reason": problem})
    svc.queues["default"].enqueue(RUN_NOW_JOB, str(principal.tenant_id), schedule["id"],
                                  job_timeout=3600, result_ttl=3600, failure_ttl=7 * 86400)
    return schedule


def find_schedule(svc, principal: Principal, schedule_id: str) -> dict[str, Any]:
    """A schedule of the caller's tenant without recording a read (for a run); 404 else."""
    sid = _schedule_id(schedule_id)
    with svc.db.transaction(principal.tenant_id) as conn:
        row = conn.execute(select(sched).where(sched.c.id == sid)).mappings().first()
    if row is None:
        raise NotFound(f"no report schedule {schedule_id!r} in this tenant")
    return schedule_to_dict(row)
