"""What the classification models read of an event.

- **Text** for TF-IDF: the words of the event type, the entity type and the action details'
  keys and short text values (``iam.AttachUserPolicy`` → iam attach user policy), plus
  one token per structured value: actor type and role, entity type, severity, source
  (``actor_type=service``).
- **Numbers**: hour of day (cyclical) and weekend, the largest amount and record count in
  the details (log scale), whether the event failed, the severity as a level, and what the
  keyword rules say (their category, one column each, and their risk level).

``content_key`` is the SHA-256 of exactly these inputs: two events with the same key get
the same prediction from the same model, which is what the cache relies on.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

import numpy as np
import orjson

from trailseal.rules import words
from trailseal.types import CATEGORIES, RISK_LEVELS, Event

from ..anomaly.features import amount_of, failed
from .weak import rule_labels

DETAIL_KEYS_MAX = 24  # detail keys read per event (top level and one level down)
VALUE_MAX = 40  # longest text value whose words are read
COUNT_KEYS = ("records", "record_count", "rows", "count", "items", "objects", "files")
SEVERITY_LEVEL = {"info": 0.0, "low": 1.0, "medium": 2.0, "high": 3.0, "critical": 4.0}
NUMERIC = ("hour_sin", "hour_cos", "weekend", "log_amount", "log_records", "failed",
           "severity_level", "rule_risk", "rule_abstains",
           *(f"rule_{c}" for c in CATEGORIES))


def _detail_words(details: object) -> list[str]:
    if not isinstance(details, dict):
        return []
    out: list[str] = []
    seen = 0
    for scope in (details, *(v for v in details.values() if isinstance(v, dict))):
        for key, value in scope.items():
            if seen >= DETAIL_KEYS_MAX:
                return out
            seen += 1
            if isinstance(key, str):
                out.extend(words(key))
            if isinstance(value, str) and len(value) <= VALUE_MAX:
                out.extend(w for w in words(value) if not w.isdigit())
    return out


def text_of(e: Event) -> str:
    """The document TF-IDF reads."""
    parts = words(e.event_type) + words(e.entity_type or "") + _detail_words(e.action_details)
    for name in ("actor_type", "actor_role", "entity_type", "severity", "source"):
        value = getattr(e, name)
        if value:
            parts.append(f"{name}={str(value)[:40].lower().replace(' ', '_')}")
    return " ".join(parts)


def _records(details: object) -> float:
    if not isinstance(details, dict):
        return 0.0
    best = 0.0
    for key in COUNT_KEYS:
        value = details.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            best = max(best, math.log10(1.0 + abs(value)))
    return best


def _hour(occurred_at: str) -> tuple[int, int]:
    try:
        moment = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    except ValueError:
        return 12, 2
    return moment.hour, moment.weekday()


def numbers_of(e: Event) -> list[float]:
    """The numeric columns (``NUMERIC``)."""
    hour, weekday = _hour(e.occurred_at)
    category, risk = rule_labels(e)
    amount = amount_of(e.action_details)
    return [
        math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
        1.0 if weekday >= 5 else 0.0, amount or 0.0, _records(e.action_details),
        1.0 if failed(e) else 0.0, SEVERITY_LEVEL.get(e.severity, 1.0),
        float(RISK_LEVELS.index(risk)), 1.0 if category is None else 0.0,
        *(1.0 if category == c else 0.0 for c in CATEGORIES),
    ]


def key_of(text: str, numbers: list[float]) -> str:
    """SHA-256 of what the models read of an event (its text and numbers)."""
    return hashlib.sha256(orjson.dumps([text, numbers])).hexdigest()


def content_key(e: Event) -> str:
    """``key_of`` an event."""
    return key_of(text_of(e), numbers_of(e))


def inputs(events: list[Event]) -> tuple[list[str], np.ndarray]:
    """Texts and the numeric matrix of a batch."""
    return ([text_of(e) for e in events],
            np.array([numbers_of(e) for e in events], dtype=np.float64).reshape(-1, len(NUMERIC)))
