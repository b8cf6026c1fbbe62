"""Daily, weekly and monthly summaries of a tenant's trail, cut in the tenant's time zone,
narrated and cited, and stored once a period is complete so reading one is instant.

Windows are exact local calendar periods: ``[first instant of the first local day, first
instant of the next period)``. A local day is 23 or 25 hours long across a daylight-saving
change (or 23.5/24.5 h where the change is 30 minutes); the window is computed from the
zone's rules, never by adding 24 h. Weekly periods are ISO weeks (Monday to Monday),
monthly periods calendar months.

Storage (``audit_summaries``): only complete periods (window end at or before now) are
stored; a period still under way is computed on every read and never stored. A stored
summary is served as long as it was cut in the tenant's current time zone and no event of
its window was appended after it was computed (``head_seq``); otherwise it is computed
again and replaced. Insights that change after a summary was stored (an analyst's
correction, a late anomaly score) show in the next summary computed, not in a stored one.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Text,
    and_,
    any_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ..errors import ValidationFailed
from ..tables import audit_anomalies, audit_logs, audit_summaries, chain_heads, event_insights
from .access import AccessRecord, audited_read
from .chain import format_ts
from .narration import cited_ids, ground_answer, narrate_text
from .settings import tenant_zone
from .tenancy import Principal

PERIODS = ("daily", "weekly", "monthly")
YEARS = (1971, 9998)  # dates a summary can be asked for (the previous period must exist)
DATE_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
CRITICAL_MAX = 20  # critical changes listed (all are counted)
TOP_MAX = 5  # anomalies, actors and notable events listed
ACTOR_SAMPLE = 3  # event ids shown per top actor (the latest)
#: Tags that mark an event as failed: the event's own ``failed`` or the built-in rule's tag.
FAILURE_TAGS = ("failed", "failed-action")
#: Categories whose events change who may do what.
PERMISSION_CATEGORIES = ("access_control", "user_management")
DELETION_WORDS = re.compile(r"(delete|destroy|remove|purge|terminate|drop|erase|wipe)",
                            re.IGNORECASE)
RISK_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

a = audit_logs.alias("a")
i = event_insights.alias("i")
an = audit_anomalies.alias("an")
EVENTS = a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id, i.c.event_id == a.c.id))


# --- windows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One period of a tenant: its local days ``[first_day, next_day)`` in ``zone`` and the
    same span as UTC instants ``[start, end)``."""

    period: str
    zone: ZoneInfo
    first_day: date
    next_day: date
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"start": format_ts(self.start), "end": format_ts(self.end),
                "start_local": self.start.astimezone(self.zone).isoformat(),
                "end_local": self.end.astimezone(self.zone).isoformat(),
                "first_day": self.first_day.isoformat(),
                "last_day": (self.next_day - timedelta(days=1)).isoformat(),
                "hours": (self.end - self.start).total_seconds() / 3600}


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of the local ``day`` in ``zone``, as UTC.

    That is local midnight; where the clocks skip midnight (a change at 00:00, as in
    America/Santiago), it is the instant of the change, which is what reading the skipped
    00:00 with the offset in force before it gives (``fold=0``); where midnight occurs
    twice, the first."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def period_days(period: str, day: date) -> tuple[date, date]:
    """The local days ``[first, next)`` of the ``period`` containing ``day``."""
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    if period == "monthly":
        first = day.replace(day=1)
        following = (first.replace(year=first.year + 1, month=1) if first.month == 12
                     else first.replace(month=first.month + 1))
        return first, following
    raise ValidationFailed(f"period must be one of {', '.join(PERIODS)}, got {period[:40]!r}",
                           {"periods": list(PERIODS)})


def window_of(period: str, day: date, zone: ZoneInfo) -> Window:
    """The window of the ``period`` containing local ``day`` in ``zone``."""
    first, following = period_days(period, day)
    return Window(period, zone, first, following, local_midnight(first, zone),
                  local_midnight(following, zone))


def previous_window(w: Window) -> Window:
    """The period just before ``w`` (its end is ``w.start``)."""
    return window_of(w.period, w.first_day - timedelta(days=1), w.zone)


def last_complete_day(period: str, now: datetime, zone: ZoneInfo) -> date:
    """A local day of the last ``period`` that ended at or before ``now`` in ``zone``."""
    first, _ = period_days(period, now.astimezone(zone).date())
    return first - timedelta(days=1)


def parse_period(period: str) -> str:
    """``period`` when it is daily, weekly or monthly (422 otherwise)."""
    if period not in PERIODS:
        raise ValidationFailed(
            f"period must be one of {', '.join(PERIODS)}, got {period[:40]!r}",
            {"periods": list(PERIODS)})
    return period


def parse_date(raw: str | None) -> date | None:
    """The ``date`` query parameter: ``YYYY-MM-DD``, a real date from 1971 to 9998 (422
    otherwise); None when absent."""
    if raw is None:
        return None
    if not DATE_FORMAT.fullmatch(raw):
        raise ValidationFailed("date must be a calendar date YYYY-MM-DD, e.g. 2026-11-20")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(f"date {raw!r} is not a day of the calendar") from None
    if not YEARS[0] <= day.year <= YEARS[1]:
        raise ValidationFailed(f"date must fall between {YEARS[0]} and {YEARS[1]}")
    return day


# --- figures -----------------------------------------------------------------------------


def _in(w: Window):
    return and_(a.c.occurred_at >= w.start, a.c.occurred_at < w.end)


def _has_tag(column, tags: tuple[str, ...]):
    return or_(*[literal(t, Text) == any_(column) for t in tags])


FAILED = or_(_has_tag(a.c.tags, FAILURE_TAGS), _has_tag(i.c.tags, FAILURE_TAGS))
PRIVILEGE_TAGGED = _has_tag(i.c.tags, ("privilege-change",))
DELETION_TAGGED = _has_tag(i.c.tags, ("deletion",))


def _critical(deletion_types: list[str]):
    """Critical changes: high or critical risk, permission and role changes, deletions (an
    event type of ``deletion_types``, or the ``deletion`` tag) and critical severity. The
    deletion types are found once per window, in Python, from the window's event types,
    rather than by a regular expression on every row."""
    deletion = DELETION_TAGGED
    if deletion_types:
        deletion = or_(a.c.event_type.in_(deletion_types), DELETION_TAGGED)
    return or_(i.c.risk_level.in_(("high", "critical")), i.c.category.in_(PERMISSION_CATEGORIES),
               PRIVILEGE_TAGGED, deletion, a.c.severity == "critical")


NOTABLE = or_(i.c.is_anomaly.is_(True), i.c.risk_level.in_(("high", "critical")),
              a.c.severity.in_(("high", "critical")))
EVENT_FIELDS = (a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type, a.c.actor_id,
                a.c.entity_type, a.c.entity_id, a.c.severity, a.c.tags, i.c.category,
                i.c.risk_level, i.c.tags.label("insight_tags"), i.c.is_anomaly,
                i.c.anomaly_score)


def _rank(column, ranks: dict[str, int]):
    return case(*[(column == k, v) for k, v in ranks.items()], else_=0)


def _reasons(r) -> list[str]:
    """Why an event is a critical change or notable, in words."""
    tags = set(r["tags"] or []) | set(r["insight_tags"] or [])
    reasons = []
    if r["is_anomaly"]:
        reasons.append("anomaly")
    if r["risk_level"] in ("high", "critical"):
        reasons.append(f"{r['risk_level']} risk")
    if r["category"] in PERMISSION_CATEGORIES or "privilege-change" in tags:
        reasons.append("permission or role change")
    if DELETION_WORDS.search(r["event_type"]) or "deletion" in tags:
        reasons.append("deletion")
    if r["severity"] in ("high", "critical"):
        reasons.append(f"{r['severity']} severity")
    return reasons


def _event_brief(r) -> dict[str, Any]:
    return {"id": str(r["id"]), "seq": r["seq"], "occurred_at": format_ts(r["occurred_at"]),
            "event_type": r["event_type"], "actor": r["actor_id"],
            "entity": {"type": r["entity_type"], "id": r["entity_id"]},
            "severity": r["severity"], "category": r["category"],
            "risk_level": r["risk_level"], "reasons": _reasons(r)}


def _counts(conn: Connection, w: Window) -> dict[str, int]:
    row = conn.execute(select(func.count().label("events"),
                              func.count().filter(FAILED).label("failures"))
                       .select_from(EVENTS).where(_in(w))).mappings().one()
    return {"events": row["events"], "failures": row["failures"]}


def _change(now: int, before: int) -> dict[str, Any]:
    return {"difference": now - before,
            "percent": round(100.0 * (now - before) / before, 1) if before else None}


def _window_counts(conn: Connection, w: Window) -> tuple[dict[str, Any], list[str]]:
    """Every count of the window in one pass over its events: grouped by what the counts
    depend on (a few hundred groups at most), then summed here. Also the window's event
    types that are deletions."""
    category = func.coalesce(i.c.category, "uncategorized").label("category")
    groups = conn.execute(
        select(a.c.severity, a.c.event_type, category, i.c.risk_level,
               PRIVILEGE_TAGGED.label("privilege"), DELETION_TAGGED.label("deletion"),
               func.coalesce(i.c.is_anomaly, False).label("anomaly"),
               FAILED.label("failed"), func.count().label("n"))
        .select_from(EVENTS).where(_in(w))
        # by position: the expressions carry bind parameters, which would differ if repeated
        .group_by(*[literal_column(str(k)) for k in range(1, 9)])
    ).mappings().all()
    deletion_types = sorted({g["event_type"] for g in groups
                             if DELETION_WORDS.search(g["event_type"])})
    severity = dict.fromkeys(SEVERITY_RANK, 0)
    categories: dict[str, int] = {}
    out = {"events": 0, "failures": 0, "critical": 0, "anomalies": 0}
    for g in groups:
        n = g["n"]
        out["events"] += n
        severity[g["severity"]] = severity.get(g["severity"], 0) + n
        categories[g["category"]] = categories.get(g["category"], 0) + n
        if g["failed"]:
            out["failures"] += n
        if g["anomaly"]:
            out["anomalies"] += n
        if (g["risk_level"] in ("high", "critical") or g["category"] in PERMISSION_CATEGORIES
                or g["privilege"] or g["deletion"] or g["event_type"] in deletion_types
                or g["severity"] == "critical"):
            out["critical"] += n
    out["by_severity"] = severity
    out["by_category"] = dict(sorted(categories.items(), key=lambda kv: (-kv[1], kv[0])))
    return out, deletion_types


def compute_figures(conn: Connection, w: Window, now: datetime) -> dict[str, Any]:
    """Everything a summary states about ``w``, read in the caller's transaction (of the
    tenant): totals, the change from the previous period, critical changes, anomalies, top
    actors and notable events, each naming the events it rests on."""
    prev = previous_window(w)
    totals, deletion_types = _window_counts(conn, w)
    before = _counts(conn, prev)
    ends = conn.execute(select(a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type).where(_in(w))
                        .order_by(a.c.occurred_at, a.c.seq).limit(1)).mappings().first()
    last = conn.execute(select(a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type).where(_in(w))
                        .order_by(a.c.occurred_at.desc(), a.c.seq.desc()).limit(1)
                        ).mappings().first()
    critical_where = _critical(deletion_types)
    critical = conn.execute(
        select(*EVENT_FIELDS).select_from(EVENTS).where(_in(w), critical_where)
        .order_by(_rank(i.c.risk_level, RISK_RANK).desc(),
                  _rank(a.c.severity, SEVERITY_RANK).desc(), a.c.occurred_at.desc(),
                  a.c.seq.desc())
        .limit(CRITICAL_MAX)).mappings().all()

    alert_id = (select(an.c.id).where(an.c.kind == "anomaly", an.c.event_id == a.c.id)
                .order_by(an.c.created_at.desc()).limit(1).scalar_subquery())
    anomalies = conn.execute(
        select(*EVENT_FIELDS, alert_id.label("alert_id")).select_from(EVENTS)
        .where(_in(w), i.c.is_anomaly.is_(True))
        .order_by(i.c.anomaly_score.desc().nulls_last(), a.c.occurred_at.desc(),
                  a.c.seq.desc())
        .limit(TOP_MAX)).mappings().all()

    n = func.count().label("n")
    actors = conn.execute(
        select(a.c.actor_id, n).where(_in(w)).group_by(a.c.actor_id)
        .order_by(n.desc(), a.c.actor_id).limit(TOP_MAX)).mappings().all()
    samples: dict[str, list[str]] = {r["actor_id"]: [] for r in actors}
    if samples:
        rn = func.row_number().over(partition_by=a.c.actor_id,
                                    order_by=(a.c.occurred_at.desc(), a.c.seq.desc()))
        sub = (select(a.c.actor_id, a.c.id, rn.label("rn"))
               .where(_in(w), a.c.actor_id.in_(list(samples))).subquery())
        for actor, eid in conn.execute(select(sub.c.actor_id, sub.c.id)
                                       .where(sub.c.rn <= ACTOR_SAMPLE)
                                       .order_by(sub.c.actor_id, sub.c.rn)):
            samples[actor].append(str(eid))

    notable = conn.execute(
        select(*EVENT_FIELDS).select_from(EVENTS).where(_in(w), NOTABLE)
        .order_by(case((i.c.is_anomaly.is_(True), 1), else_=0).desc(),
                  _rank(i.c.risk_level, RISK_RANK).desc(),
                  _rank(a.c.severity, SEVERITY_RANK).desc(),
                  a.c.occurred_at.desc(), a.c.seq.desc())
        .limit(TOP_MAX)).mappings().all()

    return {
        "period": w.period,
        "timezone": w.zone.key,
        "window": w.to_dict(),
        "complete": w.end <= now,
        "totals": {"events": totals["events"], "failures": totals["failures"],
                   "by_severity": totals["by_severity"], "by_category": totals["by_category"],
                   "first_event_id": str(ends["id"]) if ends else None,
                   "last_event_id": str(last["id"]) if last else None},
        "previous": {"window": prev.to_dict(), "events": before["events"],
                     "failures": before["failures"]},
        "change": {"events": _change(totals["events"], before["events"]),
                   "failures": _change(totals["failures"], before["failures"])},
        "critical_changes": {"count": totals["critical"],
                             "events": [_event_brief(r) for r in critical]},
        "anomalies": {"count": totals["anomalies"],
                      "top": [{**_event_brief(r), "alert_id": str(r["alert_id"])
                               if r["alert_id"] else None,
                               "anomaly_score": r["anomaly_score"]} for r in anomalies]},
        "top_actors": [{"actor": r["actor_id"], "events": r["n"],
                        "event_ids": samples[r["actor_id"]]} for r in actors],
        "notable_events": [_event_brief(r) for r in notable],
    }


# --- narrative, storage, reading ---------------------------------------------------------


def events_in_window(conn: Connection, ids: list[str], w: Window) -> dict[str, dict[str, Any]]:
    """Of ``ids``, the events of the tenant (the transaction's) that occurred in ``w``, by
    id: what a summary's narrative may cite."""
    wanted = []
    for x in ids:
        try:
            wanted.append(uuid.UUID(x))
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = conn.execute(select(a.c.id, a.c.seq, a.c.occurred_at, a.c.event_type)
                        .where(a.c.id.in_(wanted), _in(w))).mappings().all()
    return {str(r["id"]): {"seq": r["seq"], "occurred_at": format_ts(r["occurred_at"]),
                           "event_type": r["event_type"]} for r in rows}


def _head_seq(conn: Connection, tenant_id: uuid.UUID) -> int:
    return conn.execute(select(chain_heads.c.last_seq)
                        .where(chain_heads.c.tenant_id == tenant_id)).scalar_one_or_none() or 0


def _stored(conn: Connection, tenant_id: uuid.UUID, w: Window) -> dict[str, Any] | None:
    """The stored summary of ``w`` while it still holds: cut in the same zone with the same
    end, and no event of the window appended since it was computed.

    The check reads only the events appended since the last check: when none of them is in
    the window, the row's ``head_seq`` moves up to the chain head, so a summary read often
    costs one index lookup, and one read long after costs one pass over what came since."""
    row = conn.execute(select(audit_summaries).where(
        audit_summaries.c.period == w.period, audit_summaries.c.period_start == w.start)
    ).mappings().first()
    if row is None or row["timezone"] != w.zone.key or row["period_end"] != w.end:
        return None
    head = _head_seq(conn, tenant_id)
    if head > row["head_seq"]:
        late = conn.execute(
            select(a.c.seq).where(a.c.tenant_id == tenant_id, a.c.seq > row["head_seq"],
                                  a.c.seq <= head, _in(w)).limit(1)).first()
        if late is not None:
            return None
        conn.execute(audit_summaries.update().where(
            audit_summaries.c.tenant_id == tenant_id, audit_summaries.c.period == w.period,
            audit_summaries.c.period_start == w.start,
            audit_summaries.c.head_seq < head).values(head_seq=head))
    return row["content"]


def summarise(svc, tenant_id: uuid.UUID, w: Window, now: datetime | None = None, *,
              store: bool = True) -> dict[str, Any]:
    """Compute the summary of ``w`` for a tenant: the figures, the narrative (``narrate``
    kind ``summary``, its citations kept only for events of the tenant in ``w``) and its
    sources; stored when the period is complete and narrated (and ``store``)."""
    now = now or datetime.now(UTC)
    with svc.db.transaction(tenant_id) as conn:
        head = _head_seq(conn, tenant_id)
        figures = compute_figures(conn, w, now)
    text = narrate_text(svc, "summary", figures, str(tenant_id))
    with svc.db.transaction(tenant_id) as conn:
        allowed = events_in_window(conn, cited_ids(text), w)
        narrative, sources = ground_answer(text, allowed)
        content = {**figures, "narrative": narrative or _no_narrative(figures),
                   "sources": sources, "computed_at": format_ts(now)}
        # a summary without its narrative (no narrator answered, or it failed) is not kept:
        # the next read tries again
        if store and figures["complete"] and narrative:
            stmt = pg_insert(audit_summaries).values(
                tenant_id=tenant_id, period=w.period, period_start=w.start, period_end=w.end,
                timezone=w.zone.key, head_seq=head, content=content)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["tenant_id", "period", "period_start"],
                set_={"period_end": stmt.excluded.period_end,
                      "timezone": stmt.excluded.timezone, "head_seq": stmt.excluded.head_seq,
                      "content": stmt.excluded.content, "computed_at": func.now()}))
    return content


def _no_narrative(figures: dict[str, Any]) -> str:
    n = figures["totals"]["events"]
    return (f"No narrative could be composed; {n} event(s) in this period." if n
            else "No events in this period.")


def read_summary(svc, principal: Principal, period: str, day: date | None,
                 access: AccessRecord, now: datetime | None = None) -> dict[str, Any]:
    """The summary of the caller's ``period`` containing local ``day`` (default: the last
    complete one), the read recorded in the access log: the stored one when it still holds
    (``"stored": true``), computed otherwise (and stored when the period is complete)."""
    parse_period(period)
    now = now or datetime.now(UTC)
    with audited_read(svc, principal, access) as conn:
        zone = tenant_zone(conn)
        w = window_of(period, day or last_complete_day(period, now, zone), zone)
        stored = _stored(conn, principal.tenant_id, w)
    if stored is not None:
        return {**stored, "stored": True}
    return {**summarise(svc, principal.tenant_id, w, now), "stored": False}


def store_due_summaries(svc, tenant_id: uuid.UUID, now: datetime | None = None) -> list[str]:
    """Compute and store the tenant's last complete daily, weekly and monthly summaries that
    are not stored yet (or no longer hold); the periods computed."""
    now = now or datetime.now(UTC)
    done = []
    for period in PERIODS:
        with svc.db.transaction(tenant_id) as conn:
            zone = tenant_zone(conn)
            w = window_of(period, last_complete_day(period, now, zone), zone)
            fresh = _stored(conn, tenant_id, w) is not None
        if not fresh:
            summarise(svc, tenant_id, w, now)
            done.append(period)
    return done


def delete_stored_summaries(conn: Connection, before: datetime | None = None) -> int:
    """Delete the tenant's stored summaries (of the transaction's tenant), all of them or
    those of windows starting before ``before``: what erasure calls, since summaries name
    actors and cite events. They are recomputed on the next read. The count deleted."""
    stmt = audit_summaries.delete()
    if before is not None:
        stmt = stmt.where(audit_summaries.c.period_start < before)
    return conn.execute(stmt).rowcount
