"""Alerts: recorded in ``audit_anomalies`` and announced through ``anomaly_detected``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from ..errors import NotFound, ValidationFailed
from ..types import Alert

log = logging.getLogger(__name__)
STATUSES = ("open", "acknowledged", "resolved")


def record_alert(
    svc,
    tenant_id: uuid.UUID,
    *,
    kind: str,
    severity: str,
    title: str,
    details: dict[str, Any],
    event_id: str | None = None,
    dedupe_key: str | None = None,
) -> Alert | None:
    """Store an alert and fire ``anomaly_detected``.

    An alert with the same ``kind`` and ``dedupe_key`` is raised once, whatever its status
    later becomes (returns None when it already exists), even under concurrent callers.
    """
    alert_id = uuid.uuid4()
    with svc.db.cursor(tenant_id) as cur:
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
    alert = Alert(str(alert_id), str(tenant_id), kind, severity, title, details, event_id)
    try:
        svc.pm.hook.anomaly_detected(alert=alert)
    except Exception:  # a failing plugin must not undo a recorded alert
        log.exception("anomaly_detected hook failed for alert %s", alert_id)
    return alert


def _alert_dict(r: tuple) -> dict[str, Any]:
    return {"id": str(r[0]), "kind": r[1], "severity": r[2], "title": r[3], "details": r[4],
            "status": r[5], "event_id": str(r[6]) if r[6] else None, "created_at": r[7].isoformat()}


ALERT_COLUMNS = "id, kind, severity, title, details, status, event_id, created_at"


def list_alerts(svc, cur, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """Newest alerts first, optionally only those with ``status``."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    where = "WHERE status = %s" if status else ""
    params = (status, limit) if status else (limit,)
    cur.execute(
        f"SELECT {ALERT_COLUMNS} FROM audit_anomalies {where} ORDER BY created_at DESC LIMIT %s",
        params,
    )
    return [_alert_dict(r) for r in cur.fetchall()]


def set_alert_status(cur, alert_id: str, status: str) -> dict[str, Any]:
    """Acknowledge or resolve an alert (the alert itself, like the trail, is never deleted)."""
    if status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    try:
        aid = uuid.UUID(alert_id)
    except ValueError:
        raise NotFound(f"no alert {alert_id!r}") from None
    cur.execute(
        f"UPDATE audit_anomalies SET status = %s WHERE id = %s RETURNING {ALERT_COLUMNS}",
        (status, aid),
    )
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id!r}")
    return _alert_dict(row)
