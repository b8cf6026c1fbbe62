"""The offline default narrator: composes answers from the events a search retrieved, with
fixed sentences and no model, so every claim is a fact read from the events and cites them.

A first-party plugin (entry point ``narrate_local``) implementing ``narrate`` with
``trylast=True``, so any installed narrator wins. It answers the kinds ``answer`` (from the
events a search retrieved), ``summary`` (from a period's statistics) and ``explanation``
(from one event's explanation); other kinds are left to other plugins.

Event contents are untrusted data: they are only ever quoted (in backticks, cut short,
with line breaks, backticks and square brackets removed), never read as instructions, so
text planted in an event cannot add a line, forge a citation or change which events are
cited. Which events are cited depends only on the retrieved list and its order.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from trailseal import hookimpl
from trailseal.types import words_of

#: Events the answer describes one by one (the best ones); the rest are counted.
LISTED = 5
QUOTE_MAX = 80
_UNSAFE = re.compile(r"[\x00-\x1f\x7f`\[\]]+")


def quote(value: Any, limit: int = QUOTE_MAX) -> str:
    """An event value as inert, short, one-line data."""
    text = _UNSAFE.sub(" ", str(value)).strip()
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return f"`{text}`"


def _cite(events: list[dict[str, Any]]) -> str:
    return "".join(f"[{e['id']}]" for e in events)


def _describe(e: dict[str, Any]) -> str:
    actor = e["actor"]
    entity = e["entity"]
    what = words_of(e["event_type"]) or e["event_type"]
    failed = ""
    if isinstance(e.get("tags"), list) and any(str(t) == "failed" for t in e["tags"]):
        failed = " (failed)"
    return (f"{e['occurred_at']}: {quote(actor['type'])} {quote(actor['id'])} — {quote(what)}"
            f"{failed} on {quote(entity['type'])} {quote(entity['id'])}, "
            f"severity {quote(e['severity'])}")


def compose_answer(question: str, events: list[dict[str, Any]]) -> str:
    """The answer to ``question`` from ``events`` (search results, best first): one claim
    per line, each citing the events it rests on."""
    if not events:
        return "No events match the question."
    lines = [f"{len(events)} event(s) match the question; the closest first:"]
    for e in events[:LISTED]:
        lines.append(f"- {_describe(e)} {_cite([e])}")
    if len(events) > 1:
        by_actor: dict[str, list[dict[str, Any]]] = {}
        by_type: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            by_actor.setdefault(e["actor"]["id"], []).append(e)
            by_type.setdefault(e["event_type"], []).append(e)
        actors = Counter({k: len(v) for k, v in by_actor.items()}).most_common(3)
        for actor, n in actors:
            lines.append(f"- {quote(actor)} is the actor of {n} of the {len(events)} events "
                         f"{_cite(by_actor[actor])}")
        types = Counter({k: len(v) for k, v in by_type.items()}).most_common(3)
        for event_type, n in types:
            lines.append(f"- {n} of the {len(events)} events are {quote(event_type)} "
                         f"{_cite(by_type[event_type])}")
        times = sorted(events, key=lambda e: e["occurred_at"])
        lines.append(f"- They span {times[0]['occurred_at']} to {times[-1]['occurred_at']} "
                     f"{_cite([times[0], times[-1]])}")
    return "\n".join(lines)


def _brief(e: dict[str, Any]) -> str:
    """A summary's event (``SummaryEvent``) in one line, without its citation."""
    why = ", ".join(e.get("reasons") or [])
    return (f"{e['occurred_at']}: {quote(e['actor'])} — {quote(e['event_type'])} on "
            f"{quote(e['entity']['type'])} {quote(e['entity']['id'])}"
            + (f" ({why})" if why else ""))


def _change(change: dict[str, Any], noun: str) -> str:
    pct = f" ({change['percent']:+.1f} %)" if change.get("percent") is not None else ""
    return f"{change['difference']:+d} {noun}{pct}"


def compose_summary(s: dict[str, Any]) -> str:
    """A period's summary (the ``summary`` context: its statistics) in plain text: the
    figures first, then each critical change, anomaly, busy actor and notable event with the
    events it rests on. Counts rest on the whole window: the totals line cites its first and
    last events."""
    w, totals = s["window"], s["totals"]
    period = f"{s['period'].capitalize()} summary, {w['first_day']}"
    if w["last_day"] != w["first_day"]:
        period += f" to {w['last_day']}"
    span = f"({s['timezone']}, {w['start_local']} to {w['end_local']})"
    if not totals["events"]:
        return (f"{period} {span}: no events were recorded. The previous period had "
                f"{s['previous']['events']}.")
    ends = [x for x in (totals.get("first_event_id"), totals.get("last_event_id")) if x]
    cite_ends = "".join(f"[{x}]" for x in dict.fromkeys(ends))
    severities = ", ".join(f"{k} {v}" for k, v in totals["by_severity"].items() if v)
    lines = [f"{period} {span}: {totals['events']} event(s), {totals['failures']} failed; "
             f"by severity {severities} {cite_ends}",
             f"Compared with the previous period ({s['previous']['events']} events): "
             f"{_change(s['change']['events'], 'events')}, "
             f"{_change(s['change']['failures'], 'failures')}."]
    categories = ", ".join(f"{quote(k)} {v}" for k, v in list(totals["by_category"].items())[:5])
    if categories:
        lines.append(f"Categories: {categories}.")
    cited: set[str] = set()
    critical = s["critical_changes"]
    if critical["count"]:
        lines.append(f"{critical['count']} critical change(s) (permission or role changes, "
                     f"deletions, high-risk events); the riskiest:")
        for e in critical["events"][:LISTED]:
            lines.append(f"- {_brief(e)} {_cite([e])}")
            cited.add(e["id"])
    else:
        lines.append("No critical changes (permission or role changes, deletions, high-risk "
                     "events).")
    anomalies = s["anomalies"]
    if anomalies["count"]:
        lines.append(f"{anomalies['count']} anomal{'y' if anomalies['count'] == 1 else 'ies'}; "
                     "the strongest:")
        for e in anomalies["top"]:
            score = (f", score {e['anomaly_score']:.2f}"
                     if isinstance(e.get("anomaly_score"), (int, float)) else "")
            lines.append(f"- {_brief(e)}{score} {_cite([e])}")
            cited.add(e["id"])
    else:
        lines.append("No anomalies were flagged.")
    for actor in s["top_actors"][:3]:
        ids = "".join(f"[{x}]" for x in actor["event_ids"])
        lines.append(f"Most active: {quote(actor['actor'])} with {actor['events']} event(s) "
                     f"{ids}")
    rest = [e for e in s["notable_events"] if e["id"] not in cited]
    if rest:
        lines.append("Also notable:")
        for e in rest:
            lines.append(f"- {_brief(e)} {_cite([e])}")
    return "\n".join(lines)


def compose_explanation(x: dict[str, Any]) -> str:
    """One event's explanation (the ``explanation`` context) in plain text, each claim
    citing the event or the other events it rests on."""
    e = x["event"]
    me = _cite([e])
    actor = x["who"]
    lines = [f"What happened: {quote(x['what_happened'], 300)} {me}"]
    role = f", role {quote(actor['role'])}" if actor.get("role") else ""
    dept = f", department {quote(actor['department'])}" if actor.get("department") else ""
    lines.append(f"Who: {quote(actor['type'])} {quote(actor['id'])}{role}{dept} {me}")
    ctx = x["actor_context"]
    if ctx["events"]:
        types = ", ".join(f"{quote(t['event_type'])} ×{t['count']}"
                          for t in ctx["event_types"][:5])
        lines.append(f"In the {ctx['window_hours']:.0f} h before, {quote(actor['id'])} had "
                     f"{ctx['events']} other event(s): {types} "
                     f"{_cite(ctx['recent_events'][:LISTED])}")
    else:
        lines.append(f"{quote(actor['id'])} had no other event in the "
                     f"{ctx['window_hours']:.0f} h before {me}")
    if ctx["first_time_this_type"]:
        lines.append(f"This is the first {quote(e['event_type'])} by {quote(actor['id'])} in "
                     f"this trail {me}")
    else:
        lines.append(f"{quote(actor['id'])} has done {quote(e['event_type'])} before {me}")
    related = x["related_events"]
    if related["count"]:
        lines.append(f"{related['count']} other event(s) on {quote(e['entity']['type'])} "
                     f"{quote(e['entity']['id'])} within {related['window_hours']:.0f} h:")
        for r in related["events"][:LISTED]:
            lines.append(f"- {r['occurred_at']}: {quote(r['actor'])} — "
                         f"{quote(r['event_type'])} {_cite([r])}")
    insights = x.get("insights")
    if insights:
        tags = ", ".join(quote(t) for t in insights.get("tags") or [])
        review = "; flagged for review" if insights.get("review_required") else ""
        lines.append(f"Classified {quote(insights.get('category') or 'uncategorized')}, risk "
                     f"{quote(insights.get('risk_level') or 'unknown')}"
                     + (f", tags {tags}" if tags else "") + f"{review} {me}")
    anomaly = x.get("anomaly")
    if anomaly:
        score = (f" (score {anomaly['score']:.2f})"
                 if isinstance(anomaly.get("score"), (int, float)) else "")
        why = f": {quote(anomaly['summary'], 300)}" if anomaly.get("summary") else ""
        lines.append(f"Flagged as an anomaly{score}{why} {me}")
        factors = ", ".join(
            f"{quote(c.get('label') or c.get('feature'))} ({c['contribution']:+.2f})"
            for c in anomaly.get("contributions") or []
            if isinstance(c.get("contribution"), (int, float)))
        if factors:
            lines.append(f"Strongest factors: {factors} {me}")
    impact = x["impact"]
    lines.append(f"Likely impact ({impact['level']}): {' '.join(impact['statements'])} {me}")
    return "\n".join(lines)


@hookimpl(trylast=True)
def narrate(kind: str, context: dict[str, Any], tenant_id: str) -> str | None:
    if kind == "summary":
        return compose_summary(context)
    if kind == "explanation":
        return compose_explanation(context)
    if kind != "answer":
        return None
    events = [e for e in context.get("events") or [] if isinstance(e, dict) and "id" in e]
    return compose_answer(str(context.get("question", "")), events)
