"""Public types passed through hooks: dataclasses Trailseal hands to plugins, and the
Protocols the objects plugins return must satisfy. Plugins import these, never internals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, runtime_checkable


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


#: Confidence below which a prediction is flagged for review (``review_required``).
REVIEW_BELOW = 0.6

#: The event taxonomy: the categories classifiers assign and analysts correct.
CATEGORIES = ("authentication", "access_control", "user_management", "data_access",
              "data_modification", "data_export", "configuration_change", "financial",
              "security", "integration_system")
#: Risk levels, lowest first.
RISK_LEVELS = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Finding:
    """A detector's verdict on one event.

    A detector gives a finding only for events it scored. An event no detector gave a finding
    for keeps ``anomaly_score`` and ``is_anomaly`` null in its insights: "not scored", which
    is not the same as "scored and normal" (``is_anomaly`` false).

    ``explanation`` is shown with the event and copied into the alert of a flagged event.
    Keys Trailseal understands: ``summary`` (one plain-language sentence), ``contributions``
    (``[{"feature", "label", "value", "contribution"}]``, strongest first),
    ``affected_entities`` (``[{"type", "id"}]``) and ``suggested_actions`` (sentences).
    """

    event_id: str
    score: float
    is_anomaly: bool
    explanation: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""
    #: How sure the detector is of its verdict, 0–1 (None: it does not say). Below
    #: ``REVIEW_BELOW`` the event's insights get ``review_required``.
    confidence: float | None = None
    #: The feature values the verdict used, by name (logged in ``ai_predictions``).
    features: dict[str, float] = field(default_factory=dict)
    #: The alert severity the detector proposes for a flagged event (low, medium, high,
    #: critical); None lets Trailseal choose from the event's own severity.
    severity: str | None = None


@dataclass(frozen=True)
class Classification:
    """A classifier's verdict on one event. ``category`` is one of ``CATEGORIES`` and
    ``risk_level`` one of ``RISK_LEVELS`` (other values are dropped); ``confidence`` is the
    lower of ``category_confidence`` and ``risk_confidence`` when those are given."""

    event_id: str
    category: str | None = None
    risk_level: str | None = None
    confidence: float = 1.0
    tags: tuple[str, ...] = ()
    review_required: bool = False
    model_version: str = ""
    category_confidence: float | None = None
    risk_confidence: float | None = None


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


# --- what plugins return ------------------------------------------------------------------


@runtime_checkable
class Detector(Protocol):
    """Scores events for anomalies (``register_detectors``)."""

    name: str

    def score(self, events: Sequence[Event]) -> Iterable[Finding]:
        """Findings for the events it scored (none for an event means "not scored")."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """Assigns categories, risk levels and tags (``register_classifiers``)."""

    name: str

    def classify(self, events: Sequence[Event]) -> Iterable[Classification]:
        """Verdicts for the events it classified."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors (what an ``embed_texts`` implementation wraps)."""

    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, all of the same length."""
        ...


@runtime_checkable
class Narrator(Protocol):
    """Writes plain-language text from retrieved events (what ``narrate`` wraps)."""

    name: str

    def narrate(self, kind: str, context: dict[str, Any]) -> str:
        """Text of ``kind`` (summary, explanation, answer) grounded in ``context``."""
        ...


@runtime_checkable
class Exporter(Protocol):
    """Writes events in a file format (``export_formats``): the format of
    ``POST /api/v1/export/{name}``.

    ``events`` are API event objects (``GET /api/v1/events/{id}``), oldest first, read page
    by page as the exporter iterates. ``context`` holds ``tenant`` (``id``, ``name``,
    ``slug``), ``filters`` (those set), ``period`` (``start``, ``end``, None when open),
    ``generated_at``, ``generated_by`` and ``head_seq``; a document export (no ``stream``)
    also gets ``event_count`` and ``chain`` (the chain verification report).

    Optional attributes: ``extension`` (of the file name; ``name`` otherwise) and
    ``stream(events, context) -> Iterator[bytes]``. An exporter with ``stream`` is streamed
    to the client chunk by chunk, whatever the size of the export; one without writes the
    whole file with ``export`` (in the worker above ``TRAILSEAL_EXPORT_SYNC_MAX_EVENTS``
    events) and is refused above ``TRAILSEAL_EXPORT_MAX_EVENTS`` events.
    """

    name: str
    media_type: str

    def export(self, events: Iterable[dict[str, Any]], context: dict[str, Any],
               out: IO[bytes]) -> None:
        """Write the events (API event objects) to ``out``."""
        ...


@dataclass(frozen=True)
class ImportedEvent:
    """An event body an importer read, and where in its source it was (e.g. ``record 3``,
    ``line 12``), so that a body failing validation is reported by its position."""

    body: dict[str, Any]
    position: str


@dataclass(frozen=True)
class ImportProblem:
    """A record an importer skipped: the source (file path, ``-`` for standard input), the
    position in it (``record 3``, ``line 12``, or ``file`` for the whole file) and why."""

    source: str
    position: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.position}: {self.message}"


@runtime_checkable
class Importer(Protocol):
    """Reads events of another format (``importers``; ``trailseal import --format <name>``)."""

    name: str

    def parse(self, stream: IO[bytes], source: str
              ) -> Iterable[ImportedEvent | ImportProblem | dict[str, Any]]:
        """Read ``stream`` (the file named ``source``): yield each event body (as
        ``POST /events`` takes it), best wrapped in an ``ImportedEvent`` naming its position,
        and an ``ImportProblem`` for each record it skips. Never raise for bad input."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers alerts over one channel kind (what ``notify`` wraps)."""

    kind: str

    def send(self, config: dict[str, Any], message: dict[str, Any]) -> None:
        """Deliver ``message``; raise to have the delivery retried."""
        ...


@dataclass(frozen=True)
class NotificationChannel:
    """A notification channel kind and the JSON Schema of its configuration."""

    kind: str
    config_schema: dict[str, Any] = field(default_factory=dict)
    description: str = ""
