"""Public dataclasses passed through hooks. Plugins import these, never internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """A stored audit event as plugins see it (decrypted)."""

    id: str
    tenant_id: str
    seq: int
    occurred_at: str
    event_type: str
    actor_id: str
    actor_type: str
    actor_role: str | None
    actor_department: str | None
    entity_type: str
    entity_id: str
    severity: str
    source: str | None
    tags: tuple[str, ...]
    ip_address: str | None = None
    user_agent: str | None = None
    action_details: dict[str, Any] | None = None

    def text(self) -> str:
        """A one-line description used for embeddings and summaries."""
        who = f"{self.actor_type} {self.actor_id}"
        if self.actor_role:
            who += f" ({self.actor_role})"
        return (
            f"{self.occurred_at} {who} {self.event_type} {self.entity_type} {self.entity_id} "
            f"severity={self.severity}" + (f" source={self.source}" if self.source else "")
        )


@dataclass(frozen=True)
class Finding:
    """A detector's verdict on one event."""

    event_id: str
    score: float
    is_anomaly: bool
    explanation: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""


@dataclass(frozen=True)
class Classification:
    """A classifier's verdict on one event."""

    event_id: str
    category: str | None = None
    risk_level: str | None = None
    confidence: float = 1.0
    tags: tuple[str, ...] = ()
    review_required: bool = False
    model_version: str = ""


@dataclass(frozen=True)
class Alert:
    """An alert raised for a tenant (chain break, anomaly...)."""

    id: str
    tenant_id: str
    kind: str
    severity: str
    title: str
    details: dict[str, Any]
    event_id: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """A recurring job for the scheduler (``register_jobs``)."""

    func: Any
    queue: str = "default"
    cron: str | None = None
    interval: int | None = None
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    timeout: int = 600  # seconds a run may take before the worker stops it
