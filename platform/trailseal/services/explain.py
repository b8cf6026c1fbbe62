"""Explaining one event: what happened, who did it, what the actor did in the day before,
what else happened to the same entity, what enrichment concluded (category, risk, tags, the
anomaly explanation) and the likely impact; narrated (``narrate`` kind ``explanation``)
with citations kept only for the events shown."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, literal, select, tuple_
from sqlalchemy.engine import Connection

from ..tables import audit_anomalies, audit_logs
from ..types import words_of
from .access import AccessRecord, audited_read
from .chain import format_ts
from .events import get_event
from .narration import ground_answer, narrate_text
from .tenancy import Principal

RECENT = timedelta(hours=24)  # the actor's context: their events in the day before
RELATED = timedelta(hours=24)  # either side of the event, on the same entity
RELATED_MAX = 20
RECENT_IDS_MAX = 10
CONTRIBUTIONS_MAX = 5
FAILURE_TAGS = ("failed", "failed-action")
DELETION_TAGS = ("deletion",)

a = audit_logs.alias("a")
an = audit_anomalies.alias("an")

#: What an event of each category can affect (the first statement of ``impact``).
CATEGORY_IMPACT = {
    "authentication": "Affects who can sign in; repeated failures can mean someone is "
                      "guessing credentials.",
    "access_control": "Changes what someone may do: a wrong grant widens access to data or "
                      "systems.",
    "user_management": "Changes who has an account or a role: new or changed accounts can "
                       "carry access nobody reviewed.",
    "data_access": "Data was read: a confidentiality concern if the reader should not see it.",
    "data_modification": "Records changed: the integrity of the data depends on the change "
                         "being intended.",
    "data_export": "Data left the system: a possible disclosure if the destination is not "
                   "trusted.",
    "configuration_change": "System behaviour changed: security controls or logging may be "
                            "weaker.",
    "financial": "Money or financial records are involved: errors or fraud have a direct "
                 "cost.",
    "security": "A security control or finding is involved.",
    "integration_system": "An integration or automated system is involved: its effects can "
                          "reach other systems.",
}
SEVERITY_LEVEL = {"info": "low", "low": "low", "medium": "medium", "high": "high",
                  "critical": "critical"}


def _moment(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def _brief(r) -> dict[str, Any]:
    return {"id": str(r["id"]), "seq": r["seq"], "occurred_at": format_ts(r["occurred_at"]),
            "event_type": r["event_type"], "actor": r["actor_id"], "severity": r["severity"]}


def actor_context(conn: Connection, event: dict[str, Any]) -> dict[str, Any]:
    """The actor's events in the 24 h before this one (count, types, the latest ids) and
    whether this is the first event of its type by them in the trail."""
    at, seq, actor = _moment(event), event["seq"], event["actor"]["id"]
    before = tuple_(a.c.occurred_at, a.c.seq) < tuple_(literal(at), literal(seq))
    recent = and_(a.c.actor_id == actor, a.c.occurred_at >= at - RECENT, before)
    types = Counter({t: n for t, n in conn.execute(
        select(a.c.event_type, func.count()).where(recent).group_by(a.c.event_type))})
    latest = conn.execute(select(a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type,
                                 a.c.actor_id, a.c.severity).where(recent)
                          .order_by(a.c.occurred_at.desc(), a.c.seq.desc())
                          .limit(RECENT_IDS_MAX)).mappings().all()
    done_before = conn.execute(select(exists().where(
        a.c.actor_id == actor, a.c.event_type == event["event_type"], before))).scalar()
    return {"actor": actor, "window_hours": RECENT.total_seconds() / 3600,
            "events": sum(types.values()),
            "event_types": [{"event_type": t, "count": n}
                            for t, n in sorted(types.items(), key=lambda x: (-x[1], x[0]))],
            "recent_events": [_brief(r) for r in latest],
            "first_time_this_type": not done_before}


def related_events(conn: Connection, event: dict[str, Any]) -> dict[str, Any]:
    """Other events on the same entity within 24 h either side (oldest first)."""
    at = _moment(event)
    same = and_(a.c.entity_type == event["entity"]["type"],
                a.c.entity_id == event["entity"]["id"],
                a.c.occurred_at >= at - RELATED, a.c.occurred_at <= at + RELATED,
                a.c.id != uuid.UUID(event["id"]))
    count = conn.execute(select(func.count()).where(same)).scalar_one()
    rows = conn.execute(select(a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type, a.c.actor_id,
                               a.c.severity).where(same)
                        .order_by(func.abs(func.extract("epoch", a.c.occurred_at - at)),
                                  a.c.seq)
                        .limit(RELATED_MAX)).mappings().all()
    events = sorted((_brief(r) for r in rows), key=lambda e: (e["occurred_at"], e["seq"]))
    return {"window_hours": RELATED.total_seconds() / 3600, "count": count, "events": events}


def anomaly_of(conn: Connection, event: dict[str, Any]) -> dict[str, Any] | None:
    """The event's anomaly explanation: from its latest ``anomaly`` alert, else from the
    flagging detector's finding in its insights; None when it is not an anomaly."""
    insights = event.get("insights") or {}
    alert = conn.execute(select(an.c.id, an.c.severity, an.c.status, an.c.details)
                         .where(an.c.kind == "anomaly", an.c.event_id == uuid.UUID(event["id"]))
                         .order_by(an.c.created_at.desc()).limit(1)).mappings().first()
    explanation: dict[str, Any] = {}
    detector = None
    if alert is not None:
        details = alert["details"] or {}
        explanation = details.get("explanation") or {}
        detector = details.get("detector")
    elif insights.get("is_anomaly"):
        flagged = [(name, f) for name, f in
                   ((insights.get("ai_insights") or {}).get("anomaly") or {}).items()
                   if isinstance(f, dict) and f.get("is_anomaly")]
        if flagged:
            detector, finding = max(flagged, key=lambda x: x[1].get("score") or 0)
            explanation = finding.get("explanation") or {}
    else:
        return None
    if not isinstance(explanation, dict):
        explanation = {}
    contributions = explanation.get("contributions")
    if not isinstance(contributions, list):
        contributions = []
    return {
        "alert_id": str(alert["id"]) if alert is not None else None,
        "status": alert["status"] if alert is not None else None,
        "severity": alert["severity"] if alert is not None else None,
        "score": insights.get("anomaly_score"),
        "detector": detector,
        "summary": explanation.get("summary") if isinstance(explanation.get("summary"), str)
        else None,
        "contributions": [c for c in contributions if isinstance(c, dict)][:CONTRIBUTIONS_MAX],
    }


def _tags(event: dict[str, Any]) -> set[str]:
    insights = event.get("insights") or {}
    return set(event.get("tags") or []) | set(insights.get("tags") or [])


def what_happened(event: dict[str, Any]) -> str:
    """The event in one sentence of words."""
    actor, entity = event["actor"], event["entity"]
    who = f"{actor['type']} {actor['id']}"
    if actor.get("role"):
        who += f" ({actor['role']})"
    failed = " (it failed)" if _tags(event) & set(FAILURE_TAGS) else ""
    via = f" via {event['source']}" if event.get("source") else ""
    return (f"{who} performed {words_of(event['event_type']) or event['event_type']} "
            f"({event['event_type']}) on {entity['type']} {entity['id']}{via} at "
            f"{event['occurred_at']}, severity {event['severity']}{failed}.")


def likely_impact(event: dict[str, Any], anomaly: dict[str, Any] | None) -> dict[str, Any]:
    """A level (the risk level when classified, else from the severity) and statements of
    what the event can affect, from its category, tags, risk and anomaly."""
    insights = event.get("insights") or {}
    category, risk = insights.get("category"), insights.get("risk_level")
    level = risk or SEVERITY_LEVEL.get(event["severity"], "low")
    statements = []
    if category in CATEGORY_IMPACT:
        statements.append(CATEGORY_IMPACT[category])
    tags = _tags(event)
    if tags & set(DELETION_TAGS) or any(w in words_of(event["event_type"]).split()
                                        for w in ("delete", "remove", "destroy", "purge",
                                                  "terminate", "drop")):
        statements.append("Something was deleted: it may not be recoverable.")
    if "privilege-change" in tags:
        statements.append("Privileges changed: review that the new access is intended.")
    if tags & set(FAILURE_TAGS):
        statements.append("The action failed: nothing may have changed, but repeated "
                          "failures are worth a look.")
    if anomaly is not None:
        statements.append("It is unusual for this actor or this trail (an anomaly).")
    if risk in ("high", "critical"):
        statements.append(f"Assessed {risk} risk: confirm it was intended.")
    if not statements:
        statements.append("No particular impact is known for this kind of event.")
    return {"level": level, "statements": statements}


def explain_event(svc, principal: Principal, event_id: str,
                  access: AccessRecord) -> dict[str, Any]:
    """The explanation of one event of the caller's tenant (404 for any other id), the read
    recorded in the access log: structured fields plus ``narrative`` and ``sources``."""
    tid = principal.tenant_id
    with audited_read(svc, principal, access) as conn:
        event = get_event(svc, conn, tid, event_id)
        context = actor_context(conn, event)
        related = related_events(conn, event)
        anomaly = anomaly_of(conn, event)
    insights = event.get("insights")
    out: dict[str, Any] = {
        "event": event,
        "what_happened": what_happened(event),
        "who": dict(event["actor"]),
        "actor_context": context,
        "related_events": related,
        "insights": None if insights is None else {
            k: insights.get(k) for k in ("category", "risk_level", "tags", "review_required",
                                         "anomaly_score", "is_anomaly")},
        "anomaly": anomaly,
        "impact": likely_impact(event, anomaly),
    }
    text = narrate_text(svc, "explanation", out, str(tid))
    shown = {event["id"]: event, **{e["id"]: e for e in context["recent_events"]},
             **{e["id"]: e for e in related["events"]}}
    narrative, sources = ground_answer(text, shown)
    out["narrative"] = narrative or out["what_happened"] + f" [{event['id']}]"
    if not narrative:
        sources = [{"id": event["id"], "seq": event["seq"], "occurred_at": event["occurred_at"],
                    "event_type": event["event_type"]}]
    out["sources"] = sources
    return out
