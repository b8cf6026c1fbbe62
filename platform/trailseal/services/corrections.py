"""Analysts' corrections of an event's category and risk level, and the tenant's tag rules.

A correction is stored with who and when (``insight_corrections``, insert-only) and applied
to the event's insights in the same transaction; the event itself never changes. For each
field the latest correction counts: it overrides every classifier for that event (also
when the event is enriched again) and is a training label for the next model.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ..errors import NotFound, ValidationFailed
from ..rules import BUILTIN_TAG_RULES
from ..tables import audit_logs, event_insights
from ..tables import insight_corrections as corrections
from ..types import CATEGORIES, RISK_LEVELS
from .access import AccessRecord, audited_read
from .chain import format_ts
from .settings import TAG_RULES, read_setting, set_setting
from .tenancy import Principal

NOTES_MAX = 2000


def _check(category: Any, risk_level: Any, notes: Any) -> None:
    if category is not None and category not in CATEGORIES:
        raise ValidationFailed(f"category must be one of: {', '.join(CATEGORIES)}",
                               {"allowed": list(CATEGORIES)})
    if risk_level is not None and risk_level not in RISK_LEVELS:
        raise ValidationFailed(f"risk_level must be one of: {', '.join(RISK_LEVELS)}",
                               {"allowed": list(RISK_LEVELS)})
    if not isinstance(notes, str) or len(notes) > NOTES_MAX or "\x00" in notes:
        raise ValidationFailed(f"notes must be text of at most {NOTES_MAX} characters")
    if category is None and risk_level is None and not notes:
        raise ValidationFailed("give at least one of category, risk_level or notes")


def correct_insights(svc, tenant_id: uuid.UUID, event_id: str, *, category: str | None = None,
                     risk_level: str | None = None, notes: str = "",
                     corrected_by: str) -> dict[str, Any]:
    """Record a correction and apply it to the event's insights (created when the event
    has none yet). The event's corrected insights ``{event_id, category, risk_level,
    review_required, correction}``. 404 for an id that is not an event of this tenant."""
    _check(category, risk_level, notes)
    try:
        eid = uuid.UUID(event_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no event {event_id!r}") from None
    with svc.db.transaction(tenant_id) as conn:
        if conn.execute(select(audit_logs.c.seq).where(audit_logs.c.id == eid)).first() is None:
            raise NotFound(f"no event {event_id!r}")
        conn.execute(corrections.insert().values(
            tenant_id=tenant_id, event_id=eid, category=category, risk_level=risk_level,
            notes=notes, corrected_by=corrected_by))
        latest = select_corrections(conn, [eid])[str(eid)]
        current = conn.execute(
            select(event_insights.c.ai_insights).where(event_insights.c.event_id == eid)
            .with_for_update()).first()
        ai = dict(current[0]) if current else {}
        ai["correction"] = latest
        values = {"ai_insights": ai, "review_required": False}
        if latest["category"] is not None:
            values["category"] = latest["category"]
        if latest["risk_level"] is not None:
            values["risk_level"] = latest["risk_level"]
        stmt = pg_insert(event_insights).values(
            event_id=eid, tenant_id=tenant_id, anomaly_score=None, is_anomaly=None,
            category=values.get("category"), risk_level=values.get("risk_level"), tags=[],
            ai_insights=ai, model_versions={}, review_required=False)
        row = conn.execute(
            stmt.on_conflict_do_update(index_elements=["tenant_id", "event_id"], set_=values)
            .returning(event_insights.c.category, event_insights.c.risk_level,
                       event_insights.c.review_required)
        ).mappings().one()
    return {"event_id": str(eid), "category": row["category"],
            "risk_level": row["risk_level"], "review_required": row["review_required"],
            "correction": latest}


def select_corrections(conn: Connection,
                       event_ids: Iterable[uuid.UUID] | None = None) -> dict[str, dict]:
    """Per corrected event (of the caller's tenant transaction), the latest value of each
    field: ``{category, risk_level, notes, corrected_by, corrected_at, corrections}``
    (``corrections``: how many were made). All corrected events when ``event_ids`` is None."""
    stmt = select(corrections).order_by(corrections.c.event_id, corrections.c.corrected_at,
                                        corrections.c.id)
    if event_ids is not None:
        ids = list(event_ids)
        if not ids:
            return {}
        stmt = stmt.where(corrections.c.event_id.in_(ids))
    out: dict[str, dict] = {}
    for r in conn.execute(stmt).mappings():
        key = str(r["event_id"])
        entry = out.setdefault(key, {"category": None, "risk_level": None, "notes": "",
                                     "corrections": 0})
        for name in ("category", "risk_level"):
            if r[name] is not None:
                entry[name] = r[name]
        if r["notes"]:
            entry["notes"] = r["notes"]
        entry["corrected_by"] = r["corrected_by"]
        entry["corrected_at"] = format_ts(r["corrected_at"])
        entry["corrections"] += 1
    return out


def latest_corrections(svc, tenant_id: uuid.UUID | str,
                       event_ids: Iterable[str] | None = None) -> dict[str, dict]:
    """``select_corrections`` in a transaction of its own (event ids as text)."""
    tid = uuid.UUID(str(tenant_id))
    ids = None
    if event_ids is not None:
        ids = [uuid.UUID(e) for e in event_ids]
        if not ids:
            return {}
    with svc.db.transaction(tid) as conn:
        return select_corrections(conn, ids)


# --- tag rules ----------------------------------------------------------------------------

def _rules_answer(described: dict[str, Any]) -> dict[str, Any]:
    return {"builtin": BUILTIN_TAG_RULES, "custom": described["value"],
            "updated_by": described["updated_by"], "updated_at": described["updated_at"]}


def read_tag_rules(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The built-in tag rules and the tenant's own ``{builtin, custom, updated_by,
    updated_at}``, the read recorded in the access log."""
    with audited_read(svc, principal, access) as conn:
        return _rules_answer(read_setting(conn, TAG_RULES))


def write_tag_rules(svc, tenant_id: uuid.UUID, rules: Any, updated_by: str) -> dict[str, Any]:
    """Replace the tenant's own tag rules (validated; ``ValidationFailed`` names the first
    problem by its path). They tag events enriched from now on."""
    try:
        set_setting(svc, tenant_id, TAG_RULES, rules, updated_by)
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None
    with svc.db.transaction(tenant_id) as conn:
        return _rules_answer(read_setting(conn, TAG_RULES))
