"""Alerts: recorded in ``audit_anomalies`` and announced through ``anomaly_detected``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from ..types import Alert

log = logging.getLogger(__name__)


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
    """Store an alert and fire ``anomaly_detected``; an open alert with the same
    ``dedupe_key`` is not raised twice (returns None then)."""
    if dedupe_key:
        details = {**details, "dedupe_key": dedupe_key}
    alert_id = uuid.uuid4()
    with svc.db.cursor(tenant_id) as cur:
        if dedupe_key:
            cur.execute(
                "SELECT 1 FROM audit_anomalies WHERE kind = %s AND status = 'open' "
                "AND details->>'dedupe_key' = %s",
                (kind, dedupe_key),
            )
            if cur.fetchone() is not None:
                return None
        linked = None
        if event_id:
            # A deleted event cannot be referenced; its id stays in the details.
            cur.execute("SELECT id FROM audit_logs WHERE id = %s", (uuid.UUID(event_id),))
            found = cur.fetchone()
            linked = found[0] if found else None
        cur.execute(
            "INSERT INTO audit_anomalies (id, tenant_id, event_id, kind, severity, title, details) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
            (alert_id, tenant_id, linked, kind, severity, title, orjson.dumps(details).decode()),
        )
    alert = Alert(str(alert_id), str(tenant_id), kind, severity, title, details, event_id)
    try:
        svc.pm.hook.anomaly_detected(alert=alert)
    except Exception:  # a failing plugin must not undo a recorded alert
        log.exception("anomaly_detected hook failed for alert %s", alert_id)
    return alert


def list_alerts(svc, cur, limit: int = 50) -> list[dict[str, Any]]:
    cur.execute(
        "SELECT id, kind, severity, title, details, status, event_id, created_at "
        "FROM audit_anomalies ORDER BY created_at DESC LIMIT %s",
        (limit,),
    )
    return [
        {"id": str(r[0]), "kind": r[1], "severity": r[2], "title": r[3], "details": r[4],
         "status": r[5], "event_id": str(r[6]) if r[6] else None, "created_at": r[7].isoformat()}
        for r in cur.fetchall()
    ]
