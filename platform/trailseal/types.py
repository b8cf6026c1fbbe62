"""Public types passed through hooks: dataclasses Trailseal hands to plugins, and the
Protocols the objects plugins return must satisfy. Plugins import these, never internals."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        """The event as one line of plain text: what embeddings, the full-text index and the
        narrators read (see ``render_event_text`` for the exact form)."""
        return render_event_text(self)

    def embedding_text(self) -> str:
        """The event as a short line of words: what embedders read (see
        ``render_embedding_text``)."""
        return render_embedding_text(self)


#: Longest rendering ``Event.text`` returns (characters); details past it are left out.
TEXT_MAX_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CAMEL = re.compile(r"[A-Z]+[0-9]*(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")


def words_of(name: str) -> str:
    """``iam.CreateUser`` -> ``iam create user``: the words of an identifier, lower case."""
    return " ".join(w.lower() for w in _CAMEL.findall(name))


def _detail_pairs(value: Any, key: str = "", out: list[str] | None = None,
                  depth: int = 0) -> list[str]:
    """``key: value`` for each leaf of the decrypted details, depth first, in stored order
    (the leaf's own key, not its path: short, and what a person would call it)."""
    out = [] if out is None else out
    if depth > 8:
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            _detail_pairs(v, str(k), out, depth + 1)
    elif isinstance(value, list):
        for v in value[:20]:
            _detail_pairs(v, key, out, depth + 1)
    elif value is not None and value != "":
        out.append(f"{key}: {value}" if key else str(value))
    return out


def short_id(value: str) -> str:
    """The last segment of a path- or ARN-like id (``arn:aws:iam::1:user/alice`` ->
    ``alice``), the id itself when it has none."""
    tail = re.split(r"[/:]", value)[-1]
    return tail or value


def render_event_text(e: Event) -> str:
    """The documented rendering of an event (docs/admin-guide.md, "Semantic search"):

    ``<event type words> (<event type>) on <entity type> <entity short id> by <actor type>
    <actor short id> [(<role>, <department>)] [via <source>]; severity <severity>;
    [tags <tags>;] [from <ip address>;] [actor <actor id>;] [entity <entity id>;]
    [details: <key: value>; ...]``

    What happened comes first, in words and with short ids (the last segment of an ARN or
    path), so an embedder that reads only the beginning (a token limit) still sees it; the
    full ids and the decrypted details follow for full-text search. The details are
    included: this text is derived data as sensitive as the details themselves. Control
    characters become spaces; the text is cut at ``TEXT_MAX_CHARS``."""
    actor, entity = short_id(e.actor_id), short_id(e.entity_id)
    who = f"{e.actor_type} {actor}"
    about = ", ".join(x for x in (e.actor_role, e.actor_department) if x)
    if about:
        who += f" ({about})"
    parts = [f"{words_of(e.event_type)} ({e.event_type}) on {e.entity_type} {entity} by {who}"
             + (f" via {e.source}" if e.source else ""),
             f"severity {e.severity}"]
    if e.tags:
        parts.append("tags " + ", ".join(e.tags))
    if e.ip_address:
        parts.append(f"from {e.ip_address}")
    if actor != e.actor_id:
        parts.append(f"actor {e.actor_id}")
    if entity != e.entity_id:
        parts.append(f"entity {e.entity_id}")
    if e.action_details:
        parts.append("details: " + "; ".join(_detail_pairs(e.action_details)))
    # control characters (NUL above all, which PostgreSQL text cannot hold) become spaces
    text = _CONTROL.sub(" ", "; ".join(parts))
    return text if len(text) <= TEXT_MAX_CHARS else text[:TEXT_MAX_CHARS]


#: The version of ``render_embedding_text``: embedders name their vectors with it, so a change
#: of the rendering is a change of model and the backlog job embeds every event again.
EMBEDDING_TEXT_VERSION = 2
_MOSTLY_WORDS = 0.25  # an id with more digits than this share is a number, not a name


_TOKEN = re.compile(r"[A-Z0-9]{12,}")  # AKIAIOSFODNN7EXAMPLE: a key id, not a word


def _wordy(value: str) -> bool:
    """Whether an id reads as a name (``alice``, ``orders-db``) rather than a number or a
    random token (``i-0a1b2c3d``, ``017622104382``, ``AKIAIOSFODNN7EXAMPLE``): those cost
    an embedder many word pieces and mean nothing to it."""
    return (bool(value) and sum(c.isdigit() for c in value) <= _MOSTLY_WORDS * len(value)
            and not _TOKEN.search(value))


def render_embedding_text(e: Event) -> str:
    """The short rendering embedders read (docs/admin-guide.md, "Semantic search"):

    ``<event type words> on <entity type words> [<entity short id>] by <actor type words>
    [<actor short id>] [(<role>, <department>)]; [<tags>;] severity <severity>;
    [<key> <value>; ...]``

    Only words: the event type as words (not also as its identifier), ids only when they read
    as names (``_wordy``), tags without ``key:value`` ones (an event id means nothing to a
    model), details as ``key value`` with wordy values only. A local embedder reads only
    its first few dozen word pieces, and the time it takes grows with them: every piece
    should say something. The full rendering (``render_event_text``) stays what the
    full-text index and the narrators read."""
    actor, entity = short_id(e.actor_id), short_id(e.entity_id)
    head = f"{words_of(e.event_type)} on {words_of(e.entity_type)}"
    if _wordy(entity):
        head += f" {entity}"
    head += f" by {words_of(e.actor_type)}"
    if _wordy(actor):
        head += f" {actor}"
    about = ", ".join(x for x in (e.actor_role, e.actor_department) if x)
    if about:
        head += f" ({about})"
    parts = [head]
    tags = [t for t in e.tags if ":" not in t]
    if tags:
        parts.append(" ".join(tags))
    parts.append(f"severity {e.severity}")
    if e.action_details:
        for pair in _detail_pairs(e.action_details):
            key, _, value = pair.rpartition(": ")
            if _wordy(value) and len(value) <= 80:
                parts.append(f"{key} {value}".strip())
    text = _CONTROL.sub(" ", "; ".join(parts))
    return text if len(text) <= TEXT_MAX_CHARS else text[:TEXT_MAX_CHARS]


#: Confidence below which a prediction is flagged for review (``review_required``).
REVIEW_BELOW = 0.6

#: The event taxonomy: the categories classifiers assign and analysts correct.
CATEGORIES = ("authentication", "access_control", "user_management", "data_access",
              "data_modification", "data_export", "configuration_change", "financial",
              "security", "integration_system")
#: Risk levels, lowest first.
RISK_LEVELS = ("low", "medium", "high", "critical")
#: Alert severities, lowest first (an integration's ``min_severity`` is one of them).
ALERT_SEVERITIES = ("info", "low", "medium", "high", "critical")


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
class DashboardPage:
    """An analyst dashboard page (``register_dashboards``), mounted under ``/dash/<path>``.

    ``layout`` is called with the signed-in ``trailseal.types.Viewer`` on each visit and
    returns the page's Dash component tree. The page is listed in the navigation, in
    ``order``, for users holding ``permission``; others get a "not allowed" page."""

    path: str
    title: str
    layout: Any
    permission: str = "audit:read"
    order: int = 100


@dataclass(frozen=True)
class Viewer:
    """The signed-in user a dashboard page is shown to."""

    tenant_id: str
    tenant_name: str
    user_id: str
    permissions: frozenset[str]
    #: The page address's query string (``?actor=ana``), for pages that keep state there.
    query: str = ""

    def can(self, permission: str) -> bool:
        return permission in self.permissions or "audit:admin" in self.permissions


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


#: The fields of an event row, the flat form of the API's event object that streamed
#: exporters with ``stream_rows`` receive (a tuple per event, in this order). Text and
#: numbers as in the event object; ``tags``, ``action_details``, ``insight_tags`` and
#: ``ai_insights`` as their compact JSON text (``None`` where the object has null). The
#: last seven come from ``insights``: all ``None`` when the event has no insights yet
#: (``insight_tags`` is never ``None`` when it has).
EVENT_ROW_FIELDS = (
    "id", "seq", "occurred_at", "received_at", "event_type",
    "actor_id", "actor_type", "actor_role", "actor_department",
    "entity_type", "entity_id", "severity", "source", "tags",
    "ip_address", "user_agent", "action_details", "idempotency_key",
    "previous_hash", "hash",
    "category", "risk_level", "insight_tags", "anomaly_score", "is_anomaly",
    "review_required", "ai_insights",
)


@runtime_checkable
class Exporter(Protocol):
    """Writes events in a file format (``export_formats``): the format of
    ``POST /api/v1/export/{name}``.

    ``events`` are API event objects (``GET /api/v1/events/{id}``), oldest first, read page
    by page as the exporter iterates. ``context`` holds ``tenant`` (``id``, ``name``,
    ``slug``), ``filters`` (those set), ``period`` (``start``, ``end``, None when open),
    ``generated_at``, ``generated_by``, ``head_seq`` and ``checkpoint`` (the signed checkpoint
    that covers the export: ``tree_size``, ``root``, ``note``, ``key_name``, ``created_at``,
    ``covers_all``; None before the tenant's first checkpoint); a document export (no ``stream``)
    also gets ``event_count`` and ``chain`` (the chain verification report).

    Optional attributes: ``extension`` (of the file name; ``name`` otherwise),
    ``stream_rows(batches, context) -> Iterator[bytes]`` (preferred over ``stream`` when both
    exist: ``batches`` are lists of event rows, see ``EVENT_ROW_FIELDS``, read by the core's
    fast export path), ``row_writer`` with ``stream_text(texts, context) -> Iterator[bytes]``
    (preferred over ``stream_rows``: ``row_writer(rows) -> str`` is a module-level function,
    importable by name, that writes a list of event rows; the core runs it in helper
    processes as well as its own on several cores and hands ``stream_text`` the texts in
    order) and ``stream(events, context) -> Iterator[bytes]``. An exporter with
    ``stream_rows`` or ``stream`` is streamed
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
    """A notification channel kind (``notification_channels``) and the JSON Schema
    (draft 2020-12) of its configuration, which ``POST /api/v1/integrations`` checks.

    In the schema, ``"writeOnly": true`` marks a secret property (a URL holding a token, a
    signing secret): stored encrypted and never shown again. ``"format": "uri"`` marks a
    URL the channel sends to: refused unless https and public (see the admin guide, SSRF
    rules). ``validate(config, settings)``, when given, checks what a schema cannot (with
    ``settings`` the application's configuration) and returns the reason a valid-looking
    configuration is refused, or None."""

    kind: str
    config_schema: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    validate: Callable[[dict[str, Any], Mapping[str, Any]], str | None] | None = None


@runtime_checkable
class Outbound(Protocol):
    """What ``notify`` sends with: requests guarded against server-side request forgery
    (each URL checked again at send time, connected to the checked address, redirects not
    followed) and the application's settings (``SMTP_*`` for mail)."""

    settings: Mapping[str, Any]

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; the 2xx status, or an exception saying why it was not accepted."""
        ...

    def post_json(self, url: str, payload: Any, headers: Mapping[str, str] | None = None) -> int:
        """POST ``payload`` as JSON (``post``)."""


@dataclass(frozen=True)
class ScheduledReport:
    """A scheduled report ready to be sent (what ``ReportMailer.send`` gets): the mail's
    recipients, subject and text, and the report file to attach."""

    tenant_id: str
    schedule_id: str
    schedule_name: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    filename: str
    content: bytes
    media_type: str
    #: The period the report covers (RFC 3339, UTC; ``start`` None when open).
    period_start: str | None
    period_end: str | None


@runtime_checkable
class ReportMailer(Protocol):
    """Sends scheduled reports by mail (``report_mailer``)."""

    name: str

    def problem(self, config: dict[str, Any]) -> str | None:
        """Why reports cannot be mailed with this configuration, or None when they can."""
        ...

    def send(self, config: dict[str, Any], report: ScheduledReport) -> str:
        """Mail ``report`` to its recipients with the file attached; a message id. Raise
        (any exception; its message is recorded as the run's error) when it was not sent."""
        ...
