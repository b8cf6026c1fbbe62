"""Alerts: recorded in ``audit_anomalies`` and announced through ``anomaly_detected``."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson
from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, RowMapping

from ..errors import NotFound, ValidationFailed
from ..tables import audit_anomalies as anomalies
from ..tables import audit_logs
from ..types import ALERT_SEVERITIES, Alert
from .access import AccessRecord, audited_read
from .chain import format_ts
from .paging import decode_cursor, encode_cursor, time_part, uuid_part
from .tenancy import Principal

log = logging.getLogger(__name__)
STATUSES = ("open", "acknowledged", "resolved")


def insert_alert(
    conn: Connection,
    tenant_id: uuid.UUID,
    *,
    kind: str,
    severity: str,
    title: str,
    details: dict[str, Any],
    event_id: str | None = None,
    dedupe_key: str | None = None,
) -> Alert | None:
    """Insert an alert in the caller's transaction; None when an alert with the same
    ``kind`` and ``dedupe_key`` already exists (whatever its status; race-free)."""
    alert_id = uuid.uuid4()
    linked = None
    if event_id:
        # A deleted event cannot be referenced; its id stays in the details.
        linked = conn.execute(
            select(audit_logs.c.id).where(audit_logs.c.id == uuid.UUID(event_id))
        ).scalar_one_or_none()
    stmt = (
        pg_insert(anomalies)
        .values(id=alert_id, tenant_id=tenant_id, event_id=linked, kind=kind,
                severity=severity, title=title, details=details, dedupe_key=dedupe_key)
        .on_conflict_do_nothing(index_elements=["tenant_id", "kind", "dedupe_key"])
        .returning(anomalies.c.id)
    )
    if conn.execute(stmt).first() is None:
        return None
    return Alert(str(alert_id), str(tenant_id), kind, severity, title, details, event_id)


def announce_alert(svc, alert: Alert) -> None:
    """Fire ``anomaly_detected`` for a committed alert, then queue its deliveries to the
    tenant's integrations; a failing plugin or queue is logged only (the delivery sweep
    sends what was stored)."""
    from .deliveries import queue_alert_deliveries  # deliveries builds on this module

    try:
        svc.pm.hook.anomaly_detected(alert=alert)
    except Exception:
        log.exception("anomaly_detected hook failed for alert %s", alert.id)
    try:
        queue_alert_deliveries(svc, alert)
    except Exception:
        log.exception("could not queue the deliveries of alert %s", alert.id)


def record_alert(svc, tenant_id: uuid.UUID, **fields: Any) -> Alert | None:
    """Store an alert in its own transaction, then announce it (see ``insert_alert``)."""
    with svc.db.transaction(tenant_id) as conn:
        alert = insert_alert(conn, tenant_id, **fields)
    if alert is not None:
        announce_alert(svc, alert)
    return alert


CORE_KINDS = ("chain_broken", "tenant_deletion")  # raised only by Trailseal itself
KIND = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def raise_alert(svc, tenant_id: uuid.UUID | str, *, kind: str, title: str, severity: str,
                event_id: str | None = None, details: dict[str, Any] | None = None,
                dedupe_key: str | None = None) -> Alert | None:
    """Raise an alert for a tenant, as the built-in detectors do: stored in
    ``audit_anomalies``, shown by ``GET /api/v1/alerts`` and announced once through
    ``anomaly_detected``. Returns the alert, or None when one with the same ``kind`` and
    ``dedupe_key`` exists already (an alert about an event dedupes on the event by default).
    Raises ``ValidationFailed`` for a bad kind, title, severity or details, ``NotFound``
    for an event the tenant does not have."""
    tid = uuid.UUID(str(tenant_id))
    if not isinstance(kind, str) or not KIND.fullmatch(kind) or kind in CORE_KINDS:
        raise ValidationFailed("kind must be 1–64 of a-z 0-9 _ . - (starting with a letter) "
                               f"and not one of Trailseal's own ({', '.join(CORE_KINDS)})")
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 300 or "\x00" in title:
        raise ValidationFailed("title must be 1–300 characters")
    if severity not in ALERT_SEVERITIES:
        raise ValidationFailed(f"severity must be one of {', '.join(ALERT_SEVERITIES)}")
    details = {} if details is None else details
    if not isinstance(details, dict):
        raise ValidationFailed("details must be a JSON object (a dict)")
    try:
        orjson.dumps(details)
    except TypeError as exc:
        raise ValidationFailed(f"details must be JSON-serialisable: {exc}") from None
    if event_id is not None:
        try:
            event_uuid = uuid.UUID(str(event_id))
        except ValueError:
            raise NotFound(f"no event {event_id!r}") from None
        with svc.db.transaction(tid) as conn:
            found = conn.execute(
                select(audit_logs.c.id).where(audit_logs.c.id == event_uuid)
            ).first()
        if found is None:
            raise NotFound(f"no event {event_id!r} in this tenant")
        event_id = str(event_uuid)
        dedupe_key = dedupe_key or f"event:{event_id}"
    return record_alert(svc, tid, kind=kind, severity=severity, title=title.strip(),
                        details=details, event_id=event_id, dedupe_key=dedupe_key)


ALERT_COLUMNS = (anomalies.c.id, anomalies.c.kind, anomalies.c.severity, anomalies.c.title,
                 anomalies.c.details, anomalies.c.status, anomalies.c.event_id,
                 anomalies.c.created_at, anomalies.c.status_changed_by,
                 anomalies.c.status_changed_at)


def _alert_dict(r: RowMapping) -> dict[str, Any]:
    return {"id": str(r["id"]), "kind": r["kind"], "severity": r["severity"],
            "title": r["title"], "details": r["details"], "status": r["status"],
            "event_id": str(r["event_id"]) if r["event_id"] else None,
            "created_at": format_ts(r["created_at"]),
            "status_changed_by": r["status_changed_by"],
            "status_changed_at": format_ts(r["status_changed_at"]) if r["status_changed_at"]
            else None}


def list_alerts(conn: Connection, limit: int = 50, status: str | None = None,
                cursor: str | None = None) -> dict[str, Any]:
    """One page of alerts, newest first, optionally only those with ``status``:
    ``{"alerts": [...], "next_cursor": str | None}``."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    filters = {"status": status}
    stmt = select(*ALERT_COLUMNS)
    if status:
        stmt = stmt.where(anomalies.c.status == status)
    if cursor:
        created_at, alert_id = decode_cursor(cursor, "alerts", filters, (time_part, uuid_part))
        stmt = stmt.where(tuple_(anomalies.c.created_at, anomalies.c.id)
                          < tuple_(literal(created_at), literal(alert_id)))
    stmt = stmt.order_by(anomalies.c.created_at.desc(), anomalies.c.id.desc()).limit(limit + 1)
    rows = conn.execute(stmt).mappings().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor("alerts", filters,
                                    [format_ts(last["created_at"]), str(last["id"])])
    return {"alerts": [_alert_dict(r) for r in rows], "next_cursor": next_cursor}


def read_alerts_page(svc, principal: Principal, access: AccessRecord, *, limit: int = 50,
                     status: str | None = None, cursor: str | None = None) -> dict[str, Any]:
    """``list_alerts`` for the caller's tenant, recorded in the access log in the same
    transaction."""
    with audited_read(svc, principal, access) as conn:
        return list_alerts(conn, limit, status, cursor)


def set_alert_status(svc, tenant_id: uuid.UUID, alert_id: str, status: str,
                     changed_by: str) -> dict[str, Any]:
    """Acknowledge, resolve or reopen an alert in a transaction of its own, recording who
    did it and when (alerts, like the trail, are never deleted)."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    try:
        aid = uuid.UUID(alert_id)
    except ValueError:
        raise NotFound(f"no alert {alert_id!r}") from None
    stmt = (
        update(anomalies)
        .where(anomalies.c.id == aid)
        .values(status=status, status_changed_by=changed_by, status_changed_at=func.now())
        .returning(*ALERT_COLUMNS)
    )
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound(f"no alert {alert_id!r}")
    return _alert_dict(row)
