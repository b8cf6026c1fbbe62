"""Anomaly alerts as analysts work them: a page of ``anomaly`` alerts with their events, the
events around them and the latest verdict; verdicts (false positive or confirmed); the
tenant's anomaly threshold; the model registry and fairness figures, read-only.

Every read here is recorded in the access log in the same transaction (``audited_read``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from ..db import driver_cursor
from ..errors import NotFound, ValidationFailed
from ..tables import anomaly_feedback as feedback
from ..tables import audit_anomalies as anomalies
from ..tables import audit_logs, bias_metrics, event_insights
from .access import AccessRecord, audited_read
from .alerts import ALERT_COLUMNS, STATUSES, _alert_dict
from .chain import format_ts
from .events import row_to_event
from .models import select_models
from .paging import decode_cursor, encode_cursor, time_part, uuid_part
from .settings import ANOMALY_THRESHOLD, read_setting, set_setting
from .tenancy import Principal

KIND = "anomaly"
SEVERITIES = ("low", "medium", "high", "critical")
PAGE_MAX = 100
RELATED_MAX = 20  # events shown around each anomaly
RELATED_WINDOW = timedelta(hours=1)  # either side of the event's occurred_at
NOTES_MAX = 2000

# ``details.anomaly_score`` when it is a JSON number (a plugin may raise ``anomaly`` alerts
# with details of its own: anything else reads as no score rather than failing the cast).
SCORE = case(
    (func.jsonb_typeof(anomalies.c.details["anomaly_score"]) == "number",
     anomalies.c.details["anomaly_score"].astext.cast(Float)),
    else_=None,
)


def _insight_columns(i) -> tuple:
    """What ``row_to_event`` reads of ``event_insights`` (alias ``i``), labelled as it reads."""
    return (i.c.event_id.is_not(None).label("has_insights"), i.c.anomaly_score, i.c.is_anomaly,
            i.c.category, i.c.risk_level, i.c.tags.label("insight_tags"), i.c.ai_insights,
            i.c.review_required)


def _events_of(alias, insights_alias):
    return alias.outerjoin(insights_alias, and_(insights_alias.c.tenant_id == alias.c.tenant_id,
                                                insights_alias.c.event_id == alias.c.id))


def _filter_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    try:
        return format_ts(value)
    except OverflowError:  # a far end of the calendar with an offset: keep it as sent
        return value.isoformat()


def _severities(severity: str | Iterable[str] | None) -> list[str]:
    if severity is None:
        return []
    values = [severity] if isinstance(severity, str) else list(severity)
    bad = [v for v in values if v not in SEVERITIES]
    if bad:
        raise ValidationFailed(f"severity must be one of {', '.join(SEVERITIES)}")
    return sorted(set(values), key=SEVERITIES.index)


def _check_page_args(min_score: float | None, status: str | None, limit: int) -> None:
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}")
    if min_score is not None and not (isinstance(min_score, (int, float))
                                      and not isinstance(min_score, bool)
                                      and 0.0 <= min_score <= 1.0):
        raise ValidationFailed("min_score must be a number from 0 to 1")
    if not (isinstance(limit, int) and 1 <= limit <= PAGE_MAX):
        raise ValidationFailed(f"limit must be an integer from 1 to {PAGE_MAX}")


def _event_by_id(svc, conn: Connection, tenant_id: uuid.UUID,
                 event_id: uuid.UUID) -> tuple[dict[str, Any] | None, int, dict | None]:
    """The event as ``GET /events/{id}`` shows it, its record's size, and the columns the
    related-events query starts from (None when the event is gone)."""
    e = audit_logs.alias("e")
    ei = event_insights.alias("ei")
    row = conn.execute(
        select(e.c.seq, e.c.occurred_at, e.c.record, *_insight_columns(ei), e.c.actor_id,
               e.c.entity_type, e.c.entity_id)
        .select_from(_events_of(e, ei)).where(e.c.id == event_id)
    ).mappings().first()
    if row is None:
        return None, 0, None
    with driver_cursor(conn) as cur:
        shown = row_to_event(svc, cur, tenant_id, row)
    return shown, len(row["record"]), row


def _related(svc, conn: Connection, tenant_id: uuid.UUID, event_id: uuid.UUID,
             base: dict) -> tuple[list[dict[str, Any]], int]:
    """Up to ``RELATED_MAX`` other events by the same actor or on the same entity within
    ``RELATED_WINDOW`` of the event, oldest first, and the size of their records."""
    r = audit_logs.alias("r")
    ri = event_insights.alias("ri")
    moment = base["occurred_at"]
    rows = conn.execute(
        select(r.c.seq, r.c.occurred_at, r.c.record, *_insight_columns(ri))
        .select_from(_events_of(r, ri))
        .where(r.c.id != event_id,
               r.c.occurred_at.between(moment - RELATED_WINDOW, moment + RELATED_WINDOW),
               or_(r.c.actor_id == base["actor_id"],
                   and_(r.c.entity_type == base["entity_type"],
                        r.c.entity_id == base["entity_id"])))
        .order_by(r.c.occurred_at, r.c.seq)
        .limit(RELATED_MAX)
    ).mappings().all()
    with driver_cursor(conn) as cur:
        shown = [row_to_event(svc, cur, tenant_id, row) for row in rows]
    return shown, sum(len(row["record"]) for row in rows)


def _latest_feedback(conn: Connection, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict]:
    if not alert_ids:
        return {}
    rank = func.row_number().over(partition_by=feedback.c.alert_id,
                                  order_by=(feedback.c.given_at.desc(), feedback.c.id.desc()))
    ranked = (select(feedback.c.alert_id, feedback.c.is_false_positive, feedback.c.notes,
                     feedback.c.given_by, feedback.c.given_at, rank.label("rank"))
              .where(feedback.c.alert_id.in_(alert_ids)).subquery("f"))
    rows = conn.execute(select(ranked).where(ranked.c.rank == 1)).mappings().all()
    return {row["alert_id"]: _feedback_dict(row) for row in rows}


def _feedback_dict(row) -> dict[str, Any]:
    return {"is_false_positive": row["is_false_positive"], "notes": row["notes"],
            "given_by": row["given_by"], "given_at": format_ts(row["given_at"])}


def _score(details: dict[str, Any]) -> float | None:
    value = details.get("anomaly_score")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _anomaly_fields(details: dict[str, Any]) -> dict[str, Any]:
    """What the alert's ``details`` say, as typed fields (``store_insights`` writes them;
    anything shaped otherwise, as a plugin's own ``anomaly`` alert may be, reads as empty)."""
    explanation = details.get("explanation")
    entities = details.get("affected_entities")
    actions = details.get("suggested_actions")
    version = details.get("model_version")
    detected = details.get("detected_at")
    return {
        "score": _score(details),
        "explanation": explanation if isinstance(explanation, dict) else None,
        "affected_entities": [x for x in entities if isinstance(x, dict)]
        if isinstance(entities, list) else [],
        "suggested_actions": [x for x in actions if isinstance(x, str)]
        if isinstance(actions, list) else [],
        "model_version": version if isinstance(version, str) else None,
        "detected_at": detected if isinstance(detected, str) else None,
    }


def list_anomalies(svc, conn: Connection, tenant_id: uuid.UUID, *,
                   start: datetime | None = None, end: datetime | None = None,
                   min_score: float | None = None, status: str | None = None,
                   severity: str | Iterable[str] | None = None, limit: int = 50,
                   cursor: str | None = None,
                   max_bytes: int = 4 * 1024 * 1024) -> dict[str, Any]:
    """One page of the tenant's ``anomaly`` alerts, newest detection first (``created_at``,
    then id): ``{"anomalies": [...], "next_cursor": str | None}``.

    Filters: detected in ``[start, end)``, ``details.anomaly_score >= min_score``, ``status``,
    ``severity`` (any of several). Each item is the alert plus its event, the events around
    it (``RELATED_MAX`` by the same actor or on the same entity, ``RELATED_WINDOW`` either
    side), the explanation and the latest feedback. Like event pages, a page also ends
    early, with a ``next_cursor``, once the event records it holds pass ``max_bytes`` (the
    first anomaly is always included).
    """
    severities = _severities(severity)
    _check_page_args(min_score, status, limit)
    filters = {"start": _filter_time(start), "end": _filter_time(end), "min_score": min_score,
               "status": status, "severity": severities}
    stmt = select(*ALERT_COLUMNS).where(anomalies.c.kind == KIND)
    if start is not None:
        stmt = stmt.where(anomalies.c.created_at >= start)
    if end is not None:
        stmt = stmt.where(anomalies.c.created_at < end)
    if min_score is not None:
        stmt = stmt.where(SCORE >= float(min_score))
    if status is not None:
        stmt = stmt.where(anomalies.c.status == status)
    if severities:
        stmt = stmt.where(anomalies.c.severity.in_(severities))
    if cursor:
        created_at, alert_id = decode_cursor(cursor, "anomalies", filters,
                                             (time_part, uuid_part))
        stmt = stmt.where(tuple_(anomalies.c.created_at, anomalies.c.id)
                          < tuple_(literal(created_at), literal(alert_id)))
    stmt = stmt.order_by(anomalies.c.created_at.desc(), anomalies.c.id.desc()).limit(limit + 1)
    rows = conn.execute(stmt).mappings().all()
    more = len(rows) > limit
    items: list[dict[str, Any]] = []
    used = 0
    for row in rows[:limit]:
        if items and used >= max_bytes:
            more = True
            break
        event, related, size = None, [], 0
        if row["event_id"] is not None:
            event, size, base = _event_by_id(svc, conn, tenant_id, row["event_id"])
            if base is not None:
                related, related_size = _related(svc, conn, tenant_id, row["event_id"], base)
                size += related_size
        used += size
        alert = _alert_dict(row)
        items.append({**alert, **_anomaly_fields(alert["details"]), "event": event,
                      "related_events": related, "_row": row})
    verdicts = _latest_feedback(conn, [item["_row"]["id"] for item in items])
    next_cursor = None
    if more and items:
        last = items[-1]["_row"]
        next_cursor = encode_cursor("anomalies", filters,
                                    [format_ts(last["created_at"]), str(last["id"])])
    for item in items:
        item["feedback"] = verdicts.get(item.pop("_row")["id"])
    return {"anomalies": items, "next_cursor": next_cursor}


def read_anomalies_page(svc, principal: Principal, access: AccessRecord, *,
                        start: datetime | None = None, end: datetime | None = None,
                        min_score: float | None = None, status: str | None = None,
                        severity: str | Iterable[str] | None = None, limit: int = 50,
                        cursor: str | None = None,
                        max_bytes: int = 4 * 1024 * 1024) -> dict[str, Any]:
    """``list_anomalies`` for the caller's tenant, recorded in the access log in the same
    transaction (one record for the whole page)."""
    with audited_read(svc, principal, access) as conn:
        return list_anomalies(svc, conn, principal.tenant_id, start=start, end=end,
                              min_score=min_score, status=status, severity=severity,
                              limit=limit, cursor=cursor, max_bytes=max_bytes)


def give_feedback(svc, tenant_id: uuid.UUID, alert_id: str, *, is_false_positive: bool,
                  notes: str = "", given_by: str) -> dict[str, Any]:
    """Record an analyst's verdict on an anomaly alert, in one transaction with its effect on
    the alert: a false positive resolves it, a confirmation acknowledges it while it is
    open (the status change is recorded as made by ``given_by``). ``{"alert", "feedback"}``.

    404 (``NotFound``) for an id that is not a UUID, not an alert of this tenant (another
    tenant's alert is invisible under row-level security) or not an ``anomaly`` alert."""
    if not isinstance(is_false_positive, bool):
        raise ValidationFailed("is_false_positive must be true or false")
    if not isinstance(notes, str) or len(notes) > NOTES_MAX or "\x00" in notes:
        raise ValidationFailed(f"notes must be text of at most {NOTES_MAX} characters")
    try:
        aid = uuid.UUID(alert_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no anomaly {alert_id!r}") from None
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(
            select(*ALERT_COLUMNS).where(anomalies.c.id == aid, anomalies.c.kind == KIND)
            .with_for_update()
        ).mappings().first()
        if row is None:
            raise NotFound(f"no anomaly {alert_id!r}")
        given = conn.execute(
            insert(feedback).values(tenant_id=tenant_id, alert_id=aid, event_id=row["event_id"],
                                    is_false_positive=is_false_positive, notes=notes,
                                    given_by=given_by)
            .returning(feedback.c.is_false_positive, feedback.c.notes, feedback.c.given_by,
                       feedback.c.given_at)
        ).mappings().one()
        if is_false_positive:
            status = "resolved"
        else:
            status = "acknowledged" if row["status"] == "open" else row["status"]
        if status != row["status"]:
            row = conn.execute(
                update(anomalies).where(anomalies.c.id == aid)
                .values(status=status, status_changed_by=given_by, status_changed_at=func.now())
                .returning(*ALERT_COLUMNS)
            ).mappings().one()
    return {"alert": _alert_dict(row), "feedback": _feedback_dict(given)}


def _threshold(described: dict[str, Any]) -> dict[str, Any]:
    return {"threshold": described["value"], "default": described["default"],
            "updated_by": described["updated_by"], "updated_at": described["updated_at"]}


def read_threshold(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The tenant's anomaly threshold ``{threshold, default, updated_by, updated_at}``, the
    read recorded in the access log."""
    with audited_read(svc, principal, access) as conn:
        return _threshold(read_setting(conn, ANOMALY_THRESHOLD))


def write_threshold(svc, tenant_id: uuid.UUID, value: Any, updated_by: str) -> dict[str, Any]:
    """Set the tenant's anomaly threshold (0 < value < 1; ``ValidationFailed`` otherwise);
    the answer of ``read_threshold``."""
    try:
        set_setting(svc, tenant_id, ANOMALY_THRESHOLD, value, updated_by)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    with svc.db.transaction(tenant_id) as conn:
        return _threshold(read_setting(conn, ANOMALY_THRESHOLD))


def read_models(svc, principal: Principal, access: AccessRecord, *,
                model_type: str | None = None, limit: int = 50) -> dict[str, Any]:
    """The tenant's model versions, newest first, without artifacts: ``{"models": [...]}``;
    the read recorded in the access log."""
    with audited_read(svc, principal, access) as conn:
        return {"models": select_models(conn, model_type, limit)}


BIAS_COLUMNS = (bias_metrics.c.id, bias_metrics.c.run_id, bias_metrics.c.model_version,
                bias_metrics.c.window_start, bias_metrics.c.window_end, bias_metrics.c.dimension,
                bias_metrics.c.grp, bias_metrics.c.events, bias_metrics.c.flagged,
                bias_metrics.c.rate, bias_metrics.c.overall_rate, bias_metrics.c.ci_low,
                bias_metrics.c.ci_high, bias_metrics.c.status, bias_metrics.c.computed_at)


def _bias_dict(row) -> dict[str, Any]:
    out = {name: row[name] for name in row.keys() if name != "grp"}
    out["group"] = row["grp"]
    out["run_id"] = str(row["run_id"])
    for name in ("window_start", "window_end", "computed_at"):
        out[name] = format_ts(row[name])
    return out


def read_bias_metrics(svc, principal: Principal, access: AccessRecord, *,
                      dimension: str | None = None, limit: int = 100) -> dict[str, Any]:
    """The tenant's detection rates per group, newest first: ``{"metrics": [...]}`` (the
    ``grp`` column is shown as ``group``); the read recorded in the access log."""
    stmt = select(*BIAS_COLUMNS)
    if dimension is not None:
        stmt = stmt.where(bias_metrics.c.dimension == dimension)
    stmt = stmt.order_by(bias_metrics.c.computed_at.desc(), bias_metrics.c.id.desc()).limit(limit)
    with audited_read(svc, principal, access) as conn:
        return {"metrics": [_bias_dict(r) for r in conn.execute(stmt).mappings()]}

