"""Narrated text grounded in events: calling the ``narrate`` hook safely, and keeping only
the citations a caller allows (answers, summaries, explanations all go through here).

A narrator cites each claim's events as ``[<event id>]``, one claim per line. Whatever it
writes, only ids the caller vouches for survive: a citation of any other id is removed, and
a line whose every citation was removed goes with them. The text of events is untrusted, and
so is a narrator's reply; grounding is what makes a citation trustworthy.
"""

from __future__ import annotations

import logging
import re
from typing import Any

log = logging.getLogger(__name__)

CITATION = re.compile(r"\[([0-9a-fA-F-]{36})\]")


def cited_ids(text: str) -> list[str]:
    """The ids ``text`` cites, lower case, in order of first citation."""
    seen: list[str] = []
    for x in CITATION.findall(text or ""):
        x = x.lower()
        if x not in seen:
            seen.append(x)
    return seen


def ground_answer(text: str, retrieved: dict[str, dict[str, Any]]) -> tuple[str, list[dict]]:
    """Keep only what the retrieved events support: a citation ``[id]`` of an event that was
    not retrieved is removed, and a line whose every citation was removed goes with them.
    Returns the answer and its sources (the cited events, in order of first citation);
    ``retrieved`` maps event ids to objects holding at least ``seq``, ``occurred_at`` and
    ``event_type``."""
    kept_lines: list[str] = []
    cited: list[str] = []
    for line in (text or "").splitlines():
        ids = CITATION.findall(line)
        valid = [x.lower() for x in ids if x.lower() in retrieved]
        if ids and not valid:
            continue
        line = CITATION.sub(lambda m: m.group(0) if m.group(1).lower() in retrieved else "",
                            line)
        kept_lines.append(line.rstrip())
        for x in valid:
            if x not in cited:
                cited.append(x)
    sources = [{"id": x, "seq": retrieved[x]["seq"], "occurred_at": retrieved[x]["occurred_at"],
                "event_type": retrieved[x]["event_type"]} for x in cited]
    return "\n".join(kept_lines).strip(), sources


def narrate_text(svc, kind: str, context: dict[str, Any], tenant_id: str) -> str:
    """The ``narrate`` hook's text of ``kind`` (``""`` when no narrator answers, or when one
    fails: a narrator's failure must never fail the read it decorates)."""
    try:
        text = svc.pm.hook.narrate(kind=kind, context=context, tenant_id=str(tenant_id))
    except Exception:  # noqa: BLE001 - a plugin's failure leaves the figures standing
        log.exception("narrate failed for kind %r", kind)
        return ""
    return text if isinstance(text, str) else ""
