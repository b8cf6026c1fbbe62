"""Running scheduled reports: find the due schedules of every tenant, claim each one, write
its report with the registered exporter and hand it to the report mailer.

**Claiming.** A schedule is due when ``next_run <= now``. The scheduler claims it by moving
``next_run`` to the first slot after *now* with a compare-and-set on the value it read
(``UPDATE ... WHERE id = :id AND next_run = :seen``): of two schedulers that read the same
due schedule, one update matches and the other changes nothing, so a slot is sent at most
once. Because the new ``next_run`` is the first slot after now (not the slot after the
missed one), a schedule that missed several slots while nothing ran sends ONE report.

**The period.** Without ``start``/``end`` in its filters, a report covers the events that
occurred from ``covered_until`` (where the last report sent stops; for a new schedule the
slot before its first one) up to the latest slot that has passed, so consecutive reports
neither overlap nor leave gaps, and the one report after downtime covers everything
missed. A failed send keeps ``covered_until``: the next slot's report covers the failed
period too (there is no other retry). Filters with their own ``start`` or ``end`` are a
fixed period: every report covers exactly that.

**Runs are at most once.** The claim commits before the report is written: a scheduler that
dies mid-run leaves ``last_status`` ``running`` and the next slot's report covers the
period. Every run is recorded in the access log (principal ``system``,
``report-schedule:<id>``) with its filters, like an export.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from ..errors import TrailsealError
from ..schemas import ExportFilters
from ..tables import audit_scheduled_reports as sched
from ..types import ScheduledReport
from .access import AccessRecord
from .chain import format_ts
from .exports import begin_export, filters_for_log, find_exporter, iter_events
from .integrity import verify_chain
from .report_timing import ScheduleInvalid, next_slot, parse_zone, previous_slot
from .reports import report_mailer, schedule_to_dict
from .tenancy import Principal, get_tenant

log = logging.getLogger(__name__)

DUE_BATCH = 100  # due schedules read per query
ERROR_MAX = 1000  # characters of a failure's reason kept


class ReportFailed(Exception):
    """A report could not be written or sent; the message is recorded as the run's error."""


@dataclass(frozen=True)
class Claim:
    """A run this scheduler owns: the schedule as it was claimed, and the period to cover."""

    schedule: dict[str, Any]
    tenant_id: uuid.UUID
    period_start: datetime
    period_end: datetime


def due_schedules(svc, now: datetime, limit: int = DUE_BATCH) -> list[tuple[uuid.UUID, uuid.UUID, datetime]]:
    """``(tenant id, schedule id, next_run)`` of schedules due at ``now``, every tenant's,
    oldest slot first."""
    fn = func.trailseal_due_report_schedules(now, limit).table_valued(
        "tenant_id", "id", "next_run")
    with svc.db.transaction() as conn:
        return [tuple(r) for r in conn.execute(select(fn.c.tenant_id, fn.c.id, fn.c.next_run))]


def _latest_slot_at(cron: str, zone, now: datetime, seen: datetime) -> datetime:
    """The latest slot at or before ``now`` (never before ``seen``, the claimed slot)."""
    latest = previous_slot(cron, zone, now + timedelta(microseconds=1))
    return max(latest, seen)


def claim_schedule(svc, tenant_id: uuid.UUID, schedule_id: uuid.UUID, seen: datetime,
                   now: datetime) -> Claim | None:
    """Claim a due schedule whose ``next_run`` was read as ``seen``: move ``next_run`` to
    the first slot after ``now`` and mark the run started. None when another scheduler
    claimed it first (or it is gone)."""
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(select(sched).where(sched.c.id == schedule_id)).mappings().first()
        if row is None or row["next_run"] != seen:
            return None
        try:
            zone = parse_zone(row["timezone"])
            following = next_slot(row["cron"], zone, now)
            end = _latest_slot_at(row["cron"], zone, now, seen)
        except ScheduleInvalid as exc:  # the zone left the tz database: try again tomorrow
            log.error("report schedule %s cannot be timed: %s", schedule_id, exc)
            zone, following, end = None, now + timedelta(days=1), now
        claimed = conn.execute(
            update(sched).where(sched.c.id == schedule_id, sched.c.next_run == seen)
            .values(next_run=following, last_run=now, last_status="running", last_error=None,
                    runs=sched.c.runs + 1)
            .returning(*sched.c)).mappings().first()
    if claimed is None:
        return None
    # covered_until as the claim left it (a report sent meanwhile counts)
    return Claim(schedule_to_dict(claimed), tenant_id, claimed["covered_until"], end)


def start_run_now(svc, tenant_id: uuid.UUID, schedule_id: uuid.UUID, now: datetime) -> Claim | None:
    """Mark a run asked for outside the schedule (``POST .../run``) started, without
    touching ``next_run``: it covers from where the last report stops up to ``now``."""
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(
            update(sched).where(sched.c.id == schedule_id)
            .values(last_run=now, last_status="running", last_error=None,
                    runs=sched.c.runs + 1)
            .returning(*sched.c)).mappings().first()
    if row is None:
        return None
    return Claim(schedule_to_dict(row), tenant_id, row["covered_until"], now)


def _period_filters(claim: Claim) -> ExportFilters:
    filters = ExportFilters.model_validate(claim.schedule["filters"])
    if filters.start is not None or filters.end is not None:
        return filters  # a fixed period, as the schedule's author set it
    # A report asked for now may already cover past a slot a late scheduler runs: that
    # report's period is then empty, never reaching back.
    start = min(claim.period_start, claim.period_end)
    return filters.model_copy(update={"start": start, "end": claim.period_end})


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "report"


def write_report(svc, claim: Claim) -> ScheduledReport:
    """The report of a claimed run: the file written by the schedule's exporter and the
    mail around it. ``ReportFailed`` with the reason when it cannot be written."""
    schedule = claim.schedule
    try:
        exporter = find_exporter(svc.pm, schedule["format"])
    except TrailsealError as exc:
        raise ReportFailed(exc.message) from None
    filters = _period_filters(claim)
    principal = Principal("system", f"report-schedule:{schedule['id']}", claim.tenant_id,
                          frozenset())
    access = AccessRecord(endpoint=f"/api/v1/reports/schedules/{schedule['id']}/run",
                          method="SCHEDULED", query=filters_for_log(filters))
    streams = callable(getattr(exporter, "stream", None))
    scope, total = begin_export(svc, principal, filters, access, count=not streams)
    context = dict(scope.context)
    if not streams:
        limit = int(svc.config["EXPORT_MAX_EVENTS"])
        if total > limit:
            raise ReportFailed(f"{total} events match; a {exporter.name} report holds at "
                               f"most {limit} (TRAILSEAL_EXPORT_MAX_EVENTS). Narrow the "
                               "filters or choose csv")
        context.update(event_count=total,
                       chain=verify_chain(svc, claim.tenant_id).to_dict())
    content = _write_file(exporter, iter_events(svc, scope), context, streams,
                          int(svc.config["REPORT_MAX_BYTES"]))
    tenant = get_tenant(svc, claim.tenant_id)
    start = format_ts(filters.start) if filters.start else None
    end = format_ts(filters.end) if filters.end else None
    period = f"{start or 'the beginning'} to {end or 'now'}"
    extension = getattr(exporter, "extension", exporter.name)
    stamp = (filters.end or claim.period_end).astimezone(UTC).strftime("%Y%m%d-%H%M")
    return ScheduledReport(
        tenant_id=str(claim.tenant_id), schedule_id=schedule["id"],
        schedule_name=schedule["name"], recipients=tuple(schedule["recipients"]),
        subject=f"{schedule['name']} ({tenant['name']}): {period}",
        text=_mail_text(schedule, tenant, exporter.name, period, total),
        filename=f"trailseal-{tenant['slug']}-{_slug(schedule['name'])}-{stamp}.{extension}",
        content=content, media_type=exporter.media_type, period_start=start, period_end=end)


def _write_file(exporter, events, context: dict[str, Any], streams: bool,
                max_bytes: int) -> bytes:
    """The report file, refused (``ReportFailed``) past ``max_bytes``: a streamed format is
    stopped as soon as it passes the limit, a document (bounded by its event count) once
    written."""
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        if streams:
            for chunk in exporter.stream(events, context):
                spool.write(chunk)
                if spool.tell() > max_bytes:
                    break
        else:
            exporter.export(events, context, spool)
        size = spool.tell()
        if size > max_bytes:
            raise ReportFailed(f"the {exporter.name} report is over {max_bytes} bytes "
                               f"({size} written), the limit of mail attachments "
                               "(TRAILSEAL_REPORT_MAX_BYTES). Narrow the filters or run the "
                               "schedule more often")
        spool.seek(0)
        return spool.read()


def _mail_text(schedule: dict[str, Any], tenant: dict[str, Any], format_name: str,
               period: str, total: int | None) -> str:
    """The plain-text body of a report's mail: what is attached and what it covers."""
    lines = [f"{schedule['name']}: the {format_name.upper()} report of tenant "
             f"{tenant['name']} ({tenant['slug']}) is attached.", "",
             f"Period (UTC): {period}",
             f"Schedule: {schedule['cron']} ({schedule['timezone']})"]
    if total is not None:
        lines.append(f"Events: {total}")
    others = {k: v for k, v in schedule["filters"].items() if k not in ("start", "end")}
    if others:
        lines.append("Filters: " + ", ".join(f"{k}={v}" for k, v in sorted(others.items())))
    lines += ["", f"Sent by Trailseal for report schedule {schedule['id']}."]
    return "\n".join(lines) + "\n"


def _finish(svc, claim: Claim, status: str, error: str | None = None) -> None:
    values: dict[str, Any] = {"last_status": status, "last_error": error}
    if status == "sent":
        # GREATEST: a run now that finished after a later scheduled run does not move the
        # start of the next report back.
        values["covered_until"] = func.greatest(sched.c.covered_until, claim.period_end)
    with svc.db.transaction(claim.tenant_id) as conn:
        conn.execute(update(sched).where(sched.c.id == uuid.UUID(claim.schedule["id"]))
                     .values(**values))


def deliver(svc, claim: Claim) -> dict[str, Any]:
    """Write and mail the report of a claimed run and record the outcome on the schedule:
    ``{"schedule_id", "status": "sent"|"failed", "error", "message_id"}``. Never raises for
    a report that could not be written or sent: the reason is stored as ``last_error``."""
    sid = claim.schedule["id"]
    try:
        mailer = report_mailer(svc.pm)
        if mailer is None:
            raise ReportFailed("no report mailer is installed (the 'reports' plugin)")
        problem = mailer.problem(svc.config)
        if problem:
            raise ReportFailed(problem)
        report = write_report(svc, claim)
        message_id = mailer.send(svc.config, report)
    except Exception as exc:  # noqa: BLE001 - a plugin's or the mail server's failure
        reason = (str(exc).strip() or type(exc).__name__)[:ERROR_MAX]
        if not isinstance(exc, ReportFailed):
            log.warning("report schedule %s of tenant %s failed: %s", sid, claim.tenant_id,
                        reason, exc_info=True)
        _finish(svc, claim, "failed", reason)
        return {"schedule_id": sid, "status": "failed", "error": reason, "message_id": None}
    _finish(svc, claim, "sent")
    return {"schedule_id": sid, "status": "sent", "error": None, "message_id": message_id}


def run_due_reports(svc, now: datetime | None = None) -> list[dict[str, Any]]:
    """Claim and send every schedule due at ``now`` (default: the clock), of every tenant;
    the outcome of each run this call claimed (runs other schedulers claimed are not in
    it)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    outcomes: list[dict[str, Any]] = []
    tried: set[uuid.UUID] = set()
    while True:
        due = [d for d in due_schedules(svc, now) if d[1] not in tried]
        if not due:
            return outcomes
        for tenant_id, schedule_id, seen in due:
            tried.add(schedule_id)
            claim = claim_schedule(svc, tenant_id, schedule_id, seen, now)
            if claim is not None:
                outcomes.append(deliver(svc, claim))


def run_report_now(svc, tenant_id: uuid.UUID | str, schedule_id: uuid.UUID | str,
                   now: datetime | None = None) -> dict[str, Any] | None:
    """Send a schedule's report now, outside its slots (its ``next_run`` stays); the
    outcome, or None when the schedule is gone."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    claim = start_run_now(svc, uuid.UUID(str(tenant_id)), uuid.UUID(str(schedule_id)), now)
    return deliver(svc, claim) if claim is not None else None
