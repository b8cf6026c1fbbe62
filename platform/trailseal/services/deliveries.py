"""Deliveries of alerts to integrations (``audit_deliveries``): one per (alert,
integration), sent through the channel's ``notify`` hook with retries.

The database is the source of truth. Announcing an alert inserts a ``pending`` delivery for
every integration of the tenant whose ``min_severity`` the alert meets (the id is derived
from both, so a second announcement adds nothing) and queues a job for each. An attempt
locks its row, sends, and records the outcome: ``delivered``; ``failed`` with the next try
``TRAILSEAL_NOTIFY_RETRY_SCHEDULE`` seconds later; or ``dead`` once the schedule is used up.
A sweep (``deliver_due``, a scheduled job) sends whatever is due, so a lost job or a crash
loses nothing. Receivers see the same delivery id on every attempt and can deduplicate.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from ..infra import outbound as http_out
from ..tables import audit_anomalies as anomalies
from ..tables import audit_deliveries as deliveries
from ..tables import audit_integrations as integrations
from ..types import ALERT_SEVERITIES, Alert
from .access import AccessRecord, audited_read
from .chain import format_ts
from .integrations import load_integration
from .tenancy import Principal, get_tenant

log = logging.getLogger(__name__)
DELIVER_JOB = "trailseal.jobs.notifications.deliver_notification"
DELIVERY_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")
STATUSES = ("pending", "delivered", "failed", "dead")
ERROR_MAX = 1000
SWEEP_BATCH = 200


def delivery_id(alert_id: str | uuid.UUID, integration_id: str | uuid.UUID) -> uuid.UUID:
    """The one id a delivery of ``alert_id`` to ``integration_id`` can have."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{alert_id}:{integration_id}")


def retry_schedule(config: Mapping[str, Any]) -> list[int]:
    """Seconds before each retry (``NOTIFY_RETRY_SCHEDULE``)."""
    raw = config.get("NOTIFY_RETRY_SCHEDULE", "")
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    try:
        delays = [int(float(x)) for x in items if str(x).strip()]
    except (TypeError, ValueError, OverflowError):
        delays = [-1]
    if any(d < 0 for d in delays):
        raise ConfigurationError(
            f"TRAILSEAL_NOTIFY_RETRY_SCHEDULE must be comma-separated seconds (0 or more), "
            f"got {raw!r}")
    return delays


def severity_rank(severity: str) -> int:
    return ALERT_SEVERITIES.index(severity) if severity in ALERT_SEVERITIES else 0


class Outbound:
    """``trailseal.types.Outbound``: SSRF-guarded requests with this deployment's allow
    list and timeout, and its settings."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        return http_out.post(url, body, headers,
                             allow_hosts=http_out.allow_list(self.settings.get(
                                 "WEBHOOK_ALLOW_HOSTS")),
                             timeout=float(self.settings.get("NOTIFY_TIMEOUT") or 10.0))

    def post_json(self, url: str, payload: Any, headers: Mapping[str, str] | None = None) -> int:
        return self.post(url, orjson.dumps(payload),
                         {"Content-Type": "application/json", **(headers or {})})


def alert_message(tenant: dict[str, Any], integration: dict[str, Any], alert: dict[str, Any],
                  delivery: str, *, test: bool = False) -> dict[str, Any]:
    """What a channel renders: ``{delivery_id, type ("alert"|"test"), tenant, integration,
    alert}`` (JSON-safe)."""
    return {
        "delivery_id": delivery, "type": "test" if test else "alert",
        "tenant": {"id": tenant["id"], "slug": tenant["slug"], "name": tenant["name"]},
        "integration": {"id": integration["id"], "name": integration["name"]},
        "alert": alert,
    }


def send(svc, tenant_id: uuid.UUID, integration: dict[str, Any], message: dict[str, Any]) -> None:
    """Send one message through the channel's ``notify``; raises with the reason when it
    was not delivered (no plugin for the kind, refused URL, receiver error)."""
    handled = svc.pm.hook.notify(kind=integration["kind"], config=integration["config"],
                                 message=message, tenant_id=str(tenant_id),
                                 outbound=Outbound(svc.config))
    if not handled:
        raise RuntimeError(f"no installed plugin delivers {integration['kind']!r} "
                           "notifications")


# --- queueing ------------------------------------------------------------------------


def queue_alert_deliveries(svc, alert: Alert) -> list[str]:
    """Create the deliveries of a committed alert (one per matching integration, none
    twice) and queue their first attempt; the ids created now."""
    tid = uuid.UUID(alert.tenant_id)
    rank = severity_rank(alert.severity)
    matching = [s for s in ALERT_SEVERITIES if severity_rank(s) <= rank]
    with svc.db.transaction(tid) as conn:
        targets = conn.execute(select(integrations.c.id)
                               .where(integrations.c.min_severity.in_(matching))).scalars().all()
        if not targets:
            return []
        rows = [{"id": delivery_id(alert.id, iid), "tenant_id": tid, "integration_id": iid,
                 "alert_id": uuid.UUID(alert.id), "status": "pending", "attempts": 0,
                 "next_attempt_at": datetime.now(UTC)} for iid in targets]
        created = conn.execute(pg_insert(deliveries).values(rows)
                               .on_conflict_do_nothing().returning(deliveries.c.id)
                               ).scalars().all()
    for did in created:
        enqueue_attempt(svc, tid, did)
    return [str(d) for d in created]


def enqueue_attempt(svc, tenant_id: uuid.UUID, did: uuid.UUID | str) -> None:
    """Queue an attempt now; when Redis is down the sweep sends it instead."""
    try:
        svc.queues["default"].enqueue(DELIVER_JOB, str(tenant_id), str(did), job_timeout=120,
                                      result_ttl=3600, failure_ttl=7 * 86400)
    except redis.RedisError:
        log.warning("could not queue delivery %s; the sweep will send it", did)


# --- attempts ------------------------------------------------------------------------


def attempt_delivery(svc, tenant_id: uuid.UUID | str, did: uuid.UUID | str,
                     now: datetime | None = None) -> str | None:
    """Send a delivery if it is due at ``now`` (default: the clock); its status after, or
    None when it does not exist or another attempt holds it. Never sends a delivered or
    dead one."""
    tid = uuid.UUID(str(tenant_id))
    now = now or datetime.now(UTC)
    schedule = retry_schedule(svc.config)  # a bad setting fails before anything is sent
    # The row stays locked while the request is out (bounded by NOTIFY_TIMEOUT): a
    # concurrent attempt (job and sweep) skips it instead of sending it a second time.
    with svc.db.transaction(tid) as conn:
        row = conn.execute(select(*deliveries.c).where(deliveries.c.id == uuid.UUID(str(did)))
                           .with_for_update(skip_locked=True)).mappings().first()
        if row is None:
            return None
        if row["status"] not in ("pending", "failed") or (
                row["next_attempt_at"] is not None and row["next_attempt_at"] > now):
            return row["status"]
        alert = conn.execute(select(*anomalies.c).where(anomalies.c.id == row["alert_id"])
                             ).mappings().one()
        attempts = row["attempts"] + 1
        values: dict[str, Any] = {"attempts": attempts, "updated_at": now}
        try:
            integration = load_integration(svc, conn, tid, row["integration_id"])
            message = alert_message(get_tenant(svc, tid), integration, _alert_dict(alert),
                                    str(row["id"]))
            send(svc, tid, integration, message)
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is this attempt's error
            status = getattr(exc, "status", None)
            values.update(last_error=(str(exc) or type(exc).__name__)[:ERROR_MAX],
                          last_status_code=status if isinstance(status, int) else None)
            if attempts <= len(schedule):
                values.update(status="failed",
                              next_attempt_at=now + timedelta(seconds=schedule[attempts - 1]))
            else:
                values.update(status="dead", next_attempt_at=None)
            log.info("delivery %s attempt %d failed: %s", row["id"], attempts,
                     values["last_error"])
        else:
            values.update(status="delivered", delivered_at=now, next_attempt_at=None,
                          last_status_code=None)
        conn.execute(update(deliveries).where(deliveries.c.id == row["id"]).values(**values))
    return values["status"]


def _alert_dict(row) -> dict[str, Any]:
    return {"id": str(row["id"]), "kind": row["kind"], "severity": row["severity"],
            "title": row["title"], "details": row["details"],
            "event_id": str(row["event_id"]) if row["event_id"] else None,
            "created_at": format_ts(row["created_at"])}


def deliver_due(svc, now: datetime | None = None) -> dict[str, int]:
    """Attempt every delivery of every tenant that is due at ``now`` (default: the clock);
    how many ended in each status."""
    from .tenancy import tenant_ids

    now = now or datetime.now(UTC)
    counts: dict[str, int] = {}
    for tid in tenant_ids(svc):
        with svc.db.transaction(tid) as conn:
            due = conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.status.in_(("pending", "failed")),
                       or_(deliveries.c.next_attempt_at.is_(None),
                           deliveries.c.next_attempt_at <= now))
                .order_by(deliveries.c.next_attempt_at).limit(SWEEP_BATCH)).scalars().all()
        for did in due:
            status = attempt_delivery(svc, tid, did, now)
            if status:
                counts[status] = counts.get(status, 0) + 1
    return counts


# --- the API -------------------------------------------------------------------------


def _delivery_dict(r) -> dict[str, Any]:
    def ts(v):
        return format_ts(v) if v else None

    return {"id": str(r["id"]), "integration_id": str(r["integration_id"]),
            "alert_id": str(r["alert_id"]), "status": r["status"], "attempts": r["attempts"],
            "last_error": r["last_error"], "last_status_code": r["last_status_code"],
            "next_attempt_at": ts(r["next_attempt_at"]), "created_at": ts(r["created_at"]),
            "updated_at": ts(r["updated_at"]), "delivered_at": ts(r["delivered_at"]),
            "redelivered_by": r["redelivered_by"]}


def _uuid_or_404(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        raise NotFound(f"no {what} {value[:64]!r}") from None


def list_deliveries(svc, principal: Principal, integration_id: str, access: AccessRecord, *,
                    status: str | None = None, limit: int = 50) -> dict[str, Any]:
    """An integration's deliveries, newest first (``status="dead"``: its dead letters)."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    iid = _uuid_or_404(integration_id, "integration")
    with audited_read(svc, principal, access) as conn:
        if conn.execute(select(integrations.c.id).where(integrations.c.id == iid)).first() is None:
            raise NotFound(f"no integration {integration_id[:64]!r}")
        stmt = select(*deliveries.c).where(deliveries.c.integration_id == iid)
        if status:
            stmt = stmt.where(deliveries.c.status == status)
        rows = conn.execute(stmt.order_by(deliveries.c.created_at.desc(), deliveries.c.id)
                            .limit(limit)).mappings().all()
    return {"deliveries": [_delivery_dict(r) for r in rows]}


def redeliver(svc, principal: Principal, integration_id: str, delivery: str) -> dict[str, Any]:
    """Send a failed or dead delivery again now, with the whole retry schedule ahead of it
    (409 for one delivered or still pending)."""
    iid = _uuid_or_404(integration_id, "integration")
    did = _uuid_or_404(delivery, "delivery")
    with svc.db.transaction(principal.tenant_id) as conn:
        row = conn.execute(select(*deliveries.c).where(
            and_(deliveries.c.id == did, deliveries.c.integration_id == iid))
            .with_for_update()).mappings().first()
        if row is None:
            raise NotFound(f"no delivery {delivery[:64]!r} of integration "
                           f"{integration_id[:64]!r}")
        if row["status"] not in ("failed", "dead"):
            raise Conflict(f"delivery {did} is {row['status']}; only failed or dead "
                           "deliveries are sent again", {"status": row["status"]})
        row = conn.execute(
            update(deliveries).where(deliveries.c.id == did)
            .values(status="pending", attempts=0, next_attempt_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                    redelivered_by=f"{principal.kind}:{principal.id}")
            .returning(*deliveries.c)).mappings().one()
    enqueue_attempt(svc, principal.tenant_id, did)
    return _delivery_dict(row)


def send_test(svc, principal: Principal, integration_id: str) -> dict[str, Any]:
    """Send a test message through an integration now (no delivery row, no retry):
    ``{delivered, error}``."""
    tid = principal.tenant_id
    with svc.db.transaction(tid) as conn:
        integration = load_integration(svc, conn, tid, integration_id)
    now = format_ts(datetime.now(UTC))
    alert = {"id": None, "kind": "test", "severity": "info",
             "title": f"Test notification from Trailseal ({integration['name']})",
             "details": {"requested_by": f"{principal.kind}:{principal.id}"},
             "event_id": None, "created_at": now}
    message = alert_message(get_tenant(svc, tid), integration, alert, str(uuid.uuid4()),
                            test=True)
    try:
        send(svc, tid, integration, message)
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        return {"delivered": False, "error": (str(exc) or type(exc).__name__)[:ERROR_MAX],
                "delivery_id": message["delivery_id"]}
    return {"delivered": True, "error": None, "delivery_id": message["delivery_id"]}
