"""The offline default narrator: composes answers from the events a search retrieved, with
fixed sentences and no model, so every claim is a fact read from the events and cites them.

A first-party plugin (entry point ``narrate_local``) implementing ``narrate`` with
``trylast=True``, so any installed narrator wins. It answers ``kind == "answer"`` only
(other kinds are left to other plugins).

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


def quote(value: Any) -> str:
    """An event value as inert, short, one-line data."""
    text = _UNSAFE.sub(" ", str(value)).strip()
    if len(text) > QUOTE_MAX:
        text = text[:QUOTE_MAX - 1] + "…"
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


@hookimpl(trylast=True)
def narrate(kind: str, context: dict[str, Any], tenant_id: str) -> str | None:
    if kind != "answer":
        return None
    events = [e for e in context.get("events") or [] if isinstance(e, dict) and "id" in e]
    return compose_answer(str(context.get("question", "")), events)
