"""Alerts: recorded in ``audit_anomalies`` and announced through ``anomaly_detected``."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson

from ..errors import NotFound, ValidationFailed
from ..types import Alert
from .chain import format_ts
from .paging import decode_cursor, encode_cursor, time_part, uuid_part

log = logging.getLogger(__name__)
STATUSES = ("open", "acknowledged", "resolved")


def insert_alert(
    cur,
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
        cur.execute("SELECT id FROM audit_logs WHERE id = %s", (uuid.UUID(event_id),))
        found = cur.fetchone()
        linked = found[0] if found else None
    cur.execute(
        "INSERT INTO audit_anomalies (id, tenant_id, event_id, kind, severity, title, details, "
        "dedupe_key) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s) "
        "ON CONFLICT (tenant_id, kind, dedupe_key) DO NOTHING RETURNING id",
        (alert_id, tenant_id, linked, kind, severity, title, orjson.dumps(details).decode(),
         dedupe_key),
    )
    if cur.fetchone() is None:
        return None
    return Alert(str(alert_id), str(tenant_id), kind, severity, title, details, event_id)


def announce_alert(svc, alert: Alert) -> None:
    """Fire ``anomaly_detected`` for a committed alert; a failing plugin is logged only."""
    try:
        svc.pm.hook.anomaly_detected(alert=alert)
    except Exception:
        log.exception("anomaly_detected hook failed for alert %s", alert.id)


def record_alert(svc, tenant_id: uuid.UUID, **fields: Any) -> Alert | None:
    """Store an alert in its own transaction, then announce it (see ``insert_alert``)."""
    with svc.db.cursor(tenant_id) as cur:
        alert = insert_alert(cur, tenant_id, **fields)
    if alert is not None:
        announce_alert(svc, alert)
    return alert


ALERT_SEVERITIES = ("info", "low", "medium", "high", "critical")
CORE_KINDS = ("chain_broken",)  # raised only by Trailseal itself
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
        with svc.db.cursor(tid) as cur:
            cur.execute("SELECT 1 FROM audit_logs WHERE id = %s", (event_uuid,))
            if cur.fetchone() is None:
                raise NotFound(f"no event {event_id!r} in this tenant")
        event_id = str(event_uuid)
        dedupe_key = dedupe_key or f"event:{event_id}"
    return record_alert(svc, tid, kind=kind, severity=severity, title=title.strip(),
                        details=details, event_id=event_id, dedupe_key=dedupe_key)


def _alert_dict(r: tuple) -> dict[str, Any]:
    return {"id": str(r[0]), "kind": r[1], "severity": r[2], "title": r[3], "details": r[4],
            "status": r[5], "event_id": str(r[6]) if r[6] else None, "created_at": format_ts(r[7]),
            "status_changed_by": r[8], "status_changed_at": format_ts(r[9]) if r[9] else None}


ALERT_COLUMNS = ("id, kind, severity, title, details, status, event_id, created_at, "
                 "status_changed_by, status_changed_at")


def list_alerts(cur, limit: int = 50, status: str | None = None,
                cursor: str | None = None) -> dict[str, Any]:
    """One page of alerts, newest first, optionally only those with ``status``:
    ``{"alerts": [...], "next_cursor": str | None}``."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    filters = {"status": status}
    where, params = [], []
    if status:
        where.append("status = %s")
        params.append(status)
    if cursor:
        created_at, alert_id = decode_cursor(cursor, "alerts", filters, (time_part, uuid_part))
        where.append("(created_at, id) < (%s, %s)")
        params += [created_at, alert_id]
    sql = f"SELECT {ALERT_COLUMNS} FROM audit_anomalies"
    if where:
        sql += " WHERE " + " AND ".join(where)
    cur.execute(sql + " ORDER BY created_at DESC, id DESC LIMIT %s", [*params, limit + 1])
    rows = cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("alerts", filters, [format_ts(rows[-1][7]), str(rows[-1][0])])
    return {"alerts": [_alert_dict(r) for r in rows], "next_cursor": next_cursor}


def set_alert_status(cur, alert_id: str, status: str, changed_by: str) -> dict[str, Any]:
    """Acknowledge or resolve an alert, recording who did it and when (alerts, like the
    trail, are never deleted)."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    try:
        aid = uuid.UUID(alert_id)
    except ValueError:
        raise NotFound(f"no alert {alert_id!r}") from None
    cur.execute(
        "UPDATE audit_anomalies SET status = %s, status_changed_by = %s, "
        f"status_changed_at = now() WHERE id = %s RETURNING {ALERT_COLUMNS}",
        (status, changed_by, aid),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id!r}")
    return _alert_dict(row)
