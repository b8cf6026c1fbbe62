"""What the monthly training job and ``trailseal classify`` do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from ..common import event_count
from .classifier import choose_model

OWN_MODEL_AFTER = 1000  # a tenant with more events than this is trained on the schedule
RANGE = 1000  # events per enrichment range


def monthly_training() -> dict[str, Any]:
    """The monthly job: new models for every tenant past ``OWN_MODEL_AFTER`` events (a
    tenant whose labels cannot train one keeps its model, or the baseline)."""
    from trailseal.jobs import current_services

    from .training import train_tenant

    svc = current_services()
    done: dict[str, Any] = {}
    for t in svc.tenant_ids():
        if event_count(svc, str(t)) > OWN_MODEL_AFTER:
            try:
                done[str(t)] = train_tenant(svc, str(t),
                                            created_by="monthly schedule")["version"]
            except ValueError as exc:
                done[str(t)] = f"kept the previous model: {exc}"
    return done


def reclassify(svc, tenant_id: str, *, hours: float | None = 24.0) -> dict[str, Any]:
    """Enrich again the tenant's events that occurred in the last ``hours`` (all with None),
    so the current model and tag rules apply to them (detectors reuse their logged features,
    so anomaly verdicts only change with the model or threshold). What it did."""
    from trailseal.jobs import enrich_events

    start = None if hours is None else datetime.now(UTC) - timedelta(hours=hours)
    count = 0
    first_seq = None
    last_seq = 0
    for batch in svc.iter_events(tenant_id, start=start, batch=RANGE):
        enrich_events(str(tenant_id), batch[0].seq, batch[-1].seq)
        count += len(batch)
        first_seq = batch[0].seq if first_seq is None else first_seq
        last_seq = batch[-1].seq
    review = tagged = 0
    if count:
        with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
            review, tagged = conn.execute(text(
                "SELECT count(*) FILTER (WHERE i.review_required), "
                "count(*) FILTER (WHERE cardinality(i.tags) > 0) "
                "FROM event_insights i JOIN audit_logs a ON a.tenant_id = i.tenant_id "
                "AND a.id = i.event_id WHERE a.seq BETWEEN :f AND :l"),
                {"f": first_seq, "l": last_seq}).one()
    _, version, scope = choose_model(svc, tenant_id)
    return {"events": count, "review": int(review), "tagged": int(tagged),
            "model_version": version, "model_scope": scope}
