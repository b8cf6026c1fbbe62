"""Figures of an export, gathered in one pass over its events (for the PDF report)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


@dataclass
class ExportStatistics:
    """Counts of an export's events by day, category, severity, risk, type and actor, and
    the flagged anomalies."""

    total: int = 0
    per_day: Counter = field(default_factory=Counter)
    anomalies_per_day: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    severities: Counter = field(default_factory=Counter)
    risks: Counter = field(default_factory=Counter)
    event_types: Counter = field(default_factory=Counter)
    actors: Counter = field(default_factory=Counter)
    review_required: int = 0
    scored: int = 0
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    first: str | None = None
    last: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        """Count one API event object (events come oldest first)."""
        self.total += 1
        day = event["occurred_at"][:10]
        self.per_day[day] += 1
        self.first = self.first or event["occurred_at"]
        self.last = event["occurred_at"]
        self.severities[event["severity"]] += 1
        self.event_types[event["event_type"]] += 1
        self.actors[event["actor"]["id"]] += 1
        insights = event.get("insights") or {}
        self.categories[insights.get("category") or "unclassified"] += 1
        if insights.get("risk_level"):
            self.risks[insights["risk_level"]] += 1
        if insights.get("review_required"):
            self.review_required += 1
        if insights.get("anomaly_score") is not None:
            self.scored += 1
        if insights.get("is_anomaly"):
            self.anomalies_per_day[day] += 1
            self.anomalies.append({
                "seq": event["seq"], "occurred_at": event["occurred_at"],
                "event_type": event["event_type"], "actor": event["actor"]["id"],
                "entity": f"{event['entity']['type']}:{event['entity']['id']}",
                "score": insights.get("anomaly_score"),
                "summary": (insights.get("ai_insights") or {}).get("summary")
                if isinstance(insights.get("ai_insights"), dict) else None,
            })

    def days(self) -> list[str]:
        """Every day from the first event's to the last's (days without events included)."""
        if not self.per_day:
            return []
        first = date.fromisoformat(min(self.per_day))
        last = date.fromisoformat(max(self.per_day))
        return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]

    def top_anomalies(self, n: int = 5) -> list[dict[str, Any]]:
        """The ``n`` flagged events with the highest scores."""
        return sorted(self.anomalies, key=lambda x: -(x["score"] or 0))[:n]
