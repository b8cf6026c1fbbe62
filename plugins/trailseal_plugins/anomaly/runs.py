"""Detection and training runs: what the hourly and weekly jobs and the ``trailseal detect``
and ``trailseal train`` commands do, and the fairness figures recorded on each run."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from ..common import event_count
from .detector import NAME, OWN_MODEL_AFTER

RANGE_MAX = 1000  # longest seq range enriched at once
BIAS_WINDOW_DAYS = 7
BIAS_MIN_EVENTS = 30  # a group with fewer scored events is recorded, never alerted on
BIAS_RELATIVE = 0.20  # a group's rate more than 20 % away from the overall rate...
BIAS_Z = 1.96  # ...with its whole 95 % Wilson interval beyond that margin
BIAS_DIMENSIONS = ("actor_role", "actor_department", "entity_type")


def wilson_interval(flagged: int, events: int, z: float = BIAS_Z) -> tuple[float, float]:
    """The Wilson score interval of a rate ``flagged / events``."""
    if events <= 0:
        return 0.0, 1.0
    p = flagged / events
    denom = 1 + z * z / events
    centre = (p + z * z / (2 * events)) / denom
    half = z * math.sqrt(p * (1 - p) / events + z * z / (4 * events * events)) / denom
    low = 0.0 if flagged <= 0 else max(0.0, min(p, centre - half))
    high = 1.0 if flagged >= events else min(1.0, max(p, centre + half))
    return low, high


def bias_status(flagged: int, events: int, overall_rate: float) -> str:
    """``too_small`` under ``BIAS_MIN_EVENTS`` scored events; ``alert`` when the group's
    detection rate differs from the overall rate by more than 20 % relative *and* the whole
    95 % Wilson interval of the group's rate lies beyond that margin (above
    ``1.2 × overall`` or below ``0.8 × overall``), so noise in a modest group does not
    alert; ``ok`` otherwise. With an overall rate of 0 no group can differ."""
    if events < BIAS_MIN_EVENTS:
        return "too_small"
    low, high = wilson_interval(flagged, events)
    if low > (1 + BIAS_RELATIVE) * overall_rate or high < (1 - BIAS_RELATIVE) * overall_rate:
        return "alert"
    return "ok"


def record_bias(svc, tenant_id: str, model_version: str, *, end: datetime | None = None,
                days: int = BIAS_WINDOW_DAYS) -> list[dict[str, Any]]:
    """Detection rates per actor role, department and entity type over the last ``days``
    days of scored events, stored in ``bias_metrics`` (one run id); a ``bias`` alert for
    each group in ``alert``. The rows written."""
    tid = uuid.UUID(str(tenant_id))
    end = end or datetime.now(UTC)
    start = end - timedelta(days=days)
    run_id = uuid.uuid4()
    written: list[dict[str, Any]] = []
    with svc.db.transaction(tid) as conn:
        base = ("FROM audit_logs a JOIN event_insights i ON i.tenant_id = a.tenant_id "
                "AND i.event_id = a.id WHERE i.anomaly_score IS NOT NULL "
                "AND a.occurred_at >= :s AND a.occurred_at < :e")
        total, flagged = conn.execute(text(
            f"SELECT count(*), count(*) FILTER (WHERE i.is_anomaly) {base}"),
            {"s": start, "e": end}).one()
        if not total:
            return []
        overall = flagged / total
        for dim in BIAS_DIMENSIONS:
            groups = conn.execute(text(
                f"SELECT coalesce(a.{dim}, '(none)') AS grp, count(*) AS n, "
                f"count(*) FILTER (WHERE i.is_anomaly) AS f {base} GROUP BY 1 ORDER BY 1"),
                {"s": start, "e": end}).all()
            for grp, n, f in groups:
                low, high = wilson_interval(f, n)
                row = {"tenant_id": tid, "run_id": run_id, "model_version": model_version,
                       "window_start": start, "window_end": end, "dimension": dim,
                       "grp": grp, "events": n, "flagged": f, "rate": f / n,
                       "overall_rate": overall, "ci_low": low, "ci_high": high,
                       "status": bias_status(f, n, overall)}
                conn.execute(text(
                    "INSERT INTO bias_metrics (tenant_id, run_id, model_version, window_start, "
                    "window_end, dimension, grp, events, flagged, rate, overall_rate, ci_low, "
                    "ci_high, status) VALUES (:tenant_id, :run_id, :model_version, "
                    ":window_start, :window_end, :dimension, :grp, :events, :flagged, :rate, "
                    ":overall_rate, :ci_low, :ci_high, :status)"), row)
                written.append(row)
    for row in written:
        if row["status"] == "alert":
            direction = "more" if row["rate"] > overall else "less"
            svc.raise_alert(
                tid, kind="bias", severity="medium",
                title=(f"Anomaly detection flags {row['dimension']} {row['grp']!s:.60} "
                       f"{direction} often than the rest"),
                details={"dimension": row["dimension"], "group": row["grp"],
                         "events": row["events"], "flagged": row["flagged"],
                         "rate": round(row["rate"], 5), "overall_rate": round(overall, 5),
                         "interval_95": [round(row["ci_low"], 5), round(row["ci_high"], 5)],
                         "window_end": end.isoformat(), "model_version": model_version},
                dedupe_key=f"bias:{row['dimension']}:{row['grp']}:{end.date().isoformat()}")
    return written


def unscored_ranges(svc, tenant_id: str, since: datetime | None,
                    rescore: bool = False) -> list[tuple[int, int]]:
    """Seq ranges (at most ``RANGE_MAX`` long) of events received since ``since`` (all
    when None) that have no anomaly score yet (every one with ``rescore``)."""
    where = ["true"] if since is None else ["a.received_at >= :since"]
    if not rescore:
        where.append("(i.event_id IS NULL OR i.anomaly_score IS NULL)")
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        seqs = conn.execute(text(
            "SELECT a.seq FROM audit_logs a LEFT JOIN event_insights i "
            "ON i.tenant_id = a.tenant_id AND i.event_id = a.id WHERE "
            + " AND ".join(where) + " ORDER BY a.seq"), {"since": since}).scalars().all()
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][1] + 1 and seq - ranges[-1][0] < RANGE_MAX:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def detect(svc, tenant_id: str, *, hours: float | None = 24, rescore: bool = False
           ) -> dict[str, Any]:
    """Score the tenant's unscored events received in the last ``hours`` (all with None;
    every event of the window with ``rescore``) through the enrichment pipeline, then record
    the fairness figures. Idempotent: scored events are skipped, alerts dedupe per event.
    What it did."""
    from trailseal.jobs import enrich_events

    since = None if hours is None else datetime.now(UTC) - timedelta(hours=hours)
    tid = str(uuid.UUID(str(tenant_id)))
    ranges = unscored_ranges(svc, tid, since, rescore)
    with svc.db.transaction(uuid.UUID(tid)) as conn:
        alerts_before = conn.execute(text(
            "SELECT count(*) FROM audit_anomalies WHERE kind = 'anomaly'")).scalar()
    scored = 0
    for first, last in ranges:
        scored += enrich_events(tid, first, last)
    with svc.db.transaction(uuid.UUID(tid)) as conn:
        alerts_after = conn.execute(text(
            "SELECT count(*) FROM audit_anomalies WHERE kind = 'anomaly'")).scalar()
        latest = conn.execute(text(
            "SELECT model_version FROM ai_predictions WHERE producer = :p "
            "ORDER BY created_at DESC, id DESC LIMIT 1"), {"p": NAME}).scalar()
        flagged = conn.execute(text(
            "SELECT count(*) FROM audit_logs a JOIN event_insights i ON "
            "i.tenant_id = a.tenant_id AND i.event_id = a.id WHERE i.is_anomaly AND "
            "(CAST(:since AS timestamptz) IS NULL OR a.received_at >= :since)"),
            {"since": since}).scalar()
    # the fairness figures of the last 7 days, on every run (nothing scored now or not)
    bias = record_bias(svc, tid, latest or "none")
    return {"tenant": tid, "scored": scored, "flagged_in_window": int(flagged),
            "alerts_raised": int(alerts_after - alerts_before), "model_version": latest,
            "bias_groups": len(bias),
            "bias_alerts": sum(1 for r in bias if r["status"] == "alert")}


def hourly_detection() -> dict[str, Any]:
    """The hourly job: ``detect`` over the last 24 hours, for every tenant."""
    from trailseal.jobs import current_services

    svc = current_services()
    return {str(t): detect(svc, str(t), hours=24) for t in svc.tenant_ids()}


def weekly_training() -> dict[str, Any]:
    """The weekly job: a new model for every tenant past the own-model line, on its last
    30 days (a tenant whose window is empty keeps its model)."""
    from trailseal.jobs import current_services

    from .training import train_tenant

    svc = current_services()
    done: dict[str, Any] = {}
    for t in svc.tenant_ids():
        if event_count(svc, str(t)) > OWN_MODEL_AFTER:
            try:
                done[str(t)] = train_tenant(svc, str(t), created_by="weekly schedule")["version"]
            except ValueError as exc:
                done[str(t)] = f"kept the previous model: {exc}"
    return done
