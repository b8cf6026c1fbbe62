"""Request and response schemas. The same models validate requests and generate OpenAPI."""

from __future__ import annotations

import ipaddress
import re
import socket
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

SEVERITIES = ("info", "low", "medium", "high", "critical")
Severity = Literal["info", "low", "medium", "high", "critical"]


# Checked by pydantic-core's regex engine (no Python call per string).
TEXT_PATTERN = r"^[^\x00\x1c-\x1f]*$"


def _text(max_length: int, min_length: int = 1):
    return Annotated[
        str,
        StringConstraints(min_length=min_length, max_length=max_length, pattern=TEXT_PATTERN),
    ]


EventType = Annotated[
    str,
    StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"),
]


def json_depth(value: Any, limit: int) -> int:
    """Depth of a JSON value, stopping early (and reporting limit+1) once past ``limit``.

    A scalar has depth 1, a container one more than its deepest member. Only containers are
    walked, so a flat object costs one pass over its values.
    """
    if not isinstance(value, dict | list):
        return 1
    stack = [(value, 1)]
    deepest = 1
    while stack:
        item, depth = stack.pop()
        members = item.values() if isinstance(item, dict) else item
        child = depth + 1
        for v in members:
            if isinstance(v, dict | list):
                if child > limit:
                    return child
                stack.append((v, child))
            elif child > deepest:
                deepest = child
                if deepest > limit:
                    return deepest
        if depth > deepest:
            deepest = depth
    return deepest


MAX_DETAILS_DEPTH = 16

# RFC 3339 date-time with an offset and at most microseconds, which is what PostgreSQL keeps:
# a 7th fractional digit would be dropped, and pydantic's lax mode would otherwise also take
# numbers (and numeric strings) as Unix times. Refusing both keeps what is stored exactly
# what was sent.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})"
)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value  # from Python callers (the service layer), already exact
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string, e.g. 2026-11-20T10:00:00Z")
    if not RFC3339.fullmatch(value):
        if re.fullmatch(r".*\.\d{7,}.*", value):
            raise ValueError("at most 6 fractional-second digits (microseconds) are kept")
        if re.fullmatch(r".*:\d{2}(\.\d+)? \d{2}:\d{2}", value):
            raise ValueError("the offset's '+' arrived as a space: send it as %2B in a URL")
        raise ValueError(
            "must be an RFC 3339 timestamp with a UTC offset, e.g. 2026-11-20T10:00:00Z"
        )
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


class Actor(BaseModel):
    """Who did it."""

    model_config = ConfigDict(extra="forbid")
    id: _text(256)
    type: _text(64)
    role: _text(128) | None = None
    department: _text(128) | None = None


class Entity(BaseModel):
    """What it was done to."""

    model_config = ConfigDict(extra="forbid")
    type: _text(128)
    id: _text(256)


class EventIn(BaseModel):
    """One audit event as sent by an integrator."""

    model_config = ConfigDict(extra="forbid")
    event_type: EventType = Field(description="Dotted name, e.g. `invoice.deleted`.")
    occurred_at: Timestamp = Field(
        description="RFC 3339 timestamp with a UTC offset, at most 6 fractional digits."
    )
    actor: Actor
    entity: Entity
    severity: Severity
    source: _text(128) | None = None
    ip_address: str | None = Field(default=None, description="IPv4 or IPv6 address (encrypted at rest).")
    user_agent: _text(1024, 0) | None = Field(default=None, description="Encrypted at rest.")
    action_details: dict[str, Any] | None = Field(
        default=None, description="Free-form JSON object (encrypted at rest), depth ≤ 16."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=50)

    @field_validator("occurred_at")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        try:
            utc = value.astimezone(UTC)
        except OverflowError:  # e.g. year 1 with a positive offset
            raise ValueError("occurred_at must fall between 1970 and 9998") from None
        if not (1970 <= utc.year <= 9998):
            raise ValueError("occurred_at must fall between 1970 and 9998")
        return utc

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            # Fast path: inet_pton accepts only the canonical dotted quad (no leading zeros),
            # which is exactly what ipaddress would print back.
            socket.inet_pton(socket.AF_INET, value)
            return value
        except (OSError, ValueError):
            pass
        if "%" in value:
            # ipaddress accepts any text as an IPv6 zone id ("::1%<anything>"); a zone names
            # a local interface and means nothing in an audit record.
            raise ValueError("IPv6 zone ids (%…) are not accepted")
        try:
            ipaddress.ip_address(value)
        except ValueError as exc:
            raise ValueError("not an IPv4 or IPv6 address") from exc
        return value  # stored as sent: validated, never rewritten

    @field_validator("action_details")
    @classmethod
    def _details_depth(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and json_depth(value, MAX_DETAILS_DEPTH) > MAX_DETAILS_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DETAILS_DEPTH} levels")
        return value

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return value if len(value) < 2 else list(dict.fromkeys(value))


class EventCreated(BaseModel):
    id: str
    seq: int
    hash: str


class BatchCreated(BaseModel):
    ids: list[str]
    first_seq: int
    last_seq: int


class Insights(BaseModel):
    anomaly_score: float | None = None
    is_anomaly: bool | None = None
    category: str | None = None
    risk_level: str | None = None
    tags: list[str] = []
    ai_insights: dict[str, Any] = {}
    review_required: bool = False


class EventOut(BaseModel):
    """A stored event, decrypted, with its chain position and any AI insights."""

    id: str
    seq: int
    occurred_at: str
    received_at: str
    event_type: str
    actor: Actor
    entity: Entity
    severity: Severity
    source: str | None
    ip_address: str | None = Field(description="`[erased]` once a subject of the event is "
                                               "erased")
    user_agent: str | None = Field(description="`[erased]` once a subject of the event is "
                                               "erased")
    action_details: dict[str, Any] | Literal["[erased]"] | None = Field(
        description="The details sent; the string `[erased]` once a subject of the event is "
                    "erased")
    tags: list[str]
    idempotency_key: str | None
    previous_hash: str
    hash: str
    insights: Insights | None = None


class SearchResult(EventOut):
    """An event as `GET /api/v1/events/{id}` returns it, plus its search score."""

    score: float = Field(description="Reciprocal-rank fusion of the vector and full-text "
                                      "ranks; higher is better.")


class SearchSource(BaseModel):
    """An event an answer cites."""

    id: str
    seq: int
    occurred_at: str
    event_type: str


class SearchOut(BaseModel):
    """Search results, best first; with `answer: true` also the answer and its sources."""

    results: list[SearchResult]
    answer: str | None = Field(default=None, description="Present when asked for: plain "
                                                         "text, each claim citing `[event id]`.")
    sources: list[SearchSource] | None = Field(default=None, description="The events the "
                                               "answer cites (all among the results).")
    cached: bool = Field(description="True when the ranking came from the 10-minute cache.")


class EventPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


class ChainVerification(BaseModel):
    tenant_id: str
    intact: bool
    events_checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None
    broken_event_id: str | None
    reason: Literal["modified", "missing", "reordered", "inserted", "rewritten",
                    "forged_checkpoint"] | None
    detail: str | None
    checkpoints_checked: int = Field(
        0, description="Signed checkpoints the stored log was found to match (each covers "
                       "the events up to its tree size)")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class EventFilters(BaseModel):
    """The filters of the events API: `GET /api/v1/events` (query string) and the
    `filters` object of `POST /api/v1/search`."""

    model_config = ConfigDict(extra="forbid")
    start: Timestamp | None = None
    end: Timestamp | None = None
    event_type: list[EventType] = []
    actor: _text(256) | None = None
    entity_type: _text(128) | None = None
    entity_id: _text(256) | None = None
    severity: list[Severity] = []
    category: _text(64) | None = None
    risk_level: _text(32) | None = None
    tag: list[Tag] = []


class EventQuery(EventFilters):
    """Filters of `GET /api/v1/events` (query string), the page size and the cursor."""

    limit: int = Field(default=50, ge=1, le=500)
    cursor: _text(200) | None = None


SEARCH_QUERY_MAX = 1000  # characters of a search question


class SearchIn(BaseModel):
    """Body of `POST /api/v1/search`."""

    model_config = ConfigDict(extra="forbid")
    query: _text(SEARCH_QUERY_MAX) = Field(
        description="A question or keywords in plain language (1–1000 characters).")
    filters: EventFilters = Field(default_factory=EventFilters,
                                  description="The events API's filters; only matching events "
                                              "are ranked.")
    limit: int = Field(default=10, ge=1, le=100, description="Results wanted (1–100).")
    answer: bool = Field(default=False, description="Also compose a cited answer.")

    @field_validator("query")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must contain more than white space")
        return value
class ExportFilters(EventFilters):
    """Body of `POST /api/v1/export/{format_name}`: the filters of `GET /api/v1/events`
    (without paging; an export holds every matching event, oldest first), with at most 50
    event types and 50 tags."""

    event_type: list[EventType] = Field(default=[], max_length=50)
    tag: list[Tag] = Field(default=[], max_length=50)


class ExportJob(BaseModel):
    """A document export written by a worker (`202` of `POST /api/v1/export/{format_name}`)."""

    id: str
    format: str
    status: Literal["queued", "running", "done", "failed"]
    filters: dict[str, Any] = Field(description="The filters that were set.")
    event_count: int
    head_seq: int = Field(description="The chain head the export stops at.")
    requested_by: str
    requested_at: str = Field(description="RFC 3339, UTC (`Z`).")
    finished_at: str | None
    size: int | None = Field(description="Bytes of the file once done.")
    error: str | None
    download_url: str | None = Field(description="Where to download the file once done.")


class SubjectExport(BaseModel):
    """Every event by or about one person (`actor.id` or `entity.id` equals the subject)."""

    subject_id: str
    generated_at: str = Field(description="RFC 3339, UTC (`Z`).")
    events: list[EventOut] = Field(description="Oldest first.")
    count: int


# --- response bodies (documented in the OpenAPI document) ---------------------------------

AlertStatus = Literal["open", "acknowledged", "resolved"]


class AlertOut(BaseModel):
    """An alert: a chain break, an anomaly, or one a plugin raised."""

    id: str
    kind: str = Field(description="`chain_broken`, `anomaly`, or a plugin's kind.")
    severity: Severity
    title: str
    details: dict[str, Any]
    status: AlertStatus
    event_id: str | None = Field(description="The event it is about, when there is one.")
    created_at: str = Field(description="RFC 3339, UTC (`Z`).")
    status_changed_by: str | None = Field(
        description="`api_key:<id>` or `user:<id>` of the last status change; null if none.")
    status_changed_at: str | None = Field(description="When the status last changed (`Z`).")


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    next_cursor: str | None


class AlertStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: AlertStatus


class AccessEntry(BaseModel):
    """One read of the trail."""

    id: int
    principal_type: Literal["api_key", "user", "system"]
    principal_id: str
    endpoint: str = Field(description="The path read (cut at 512 characters).")
    method: str
    query: dict[str, Any] = Field(description="The query string (capped, see the API guide).")
    remote_addr: str | None
    accessed_at: str = Field(description="RFC 3339, UTC (`Z`).")


class AccessLogPage(BaseModel):
    entries: list[AccessEntry]
    next_cursor: str | None


class NamedCount(BaseModel):
    name: str | None
    count: int


class WindowCounts(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    last_24h: int = Field(alias="24h")
    last_7d: int = Field(alias="7d")
    last_30d: int = Field(alias="30d")
    total: int


class DashboardStats(BaseModel):
    """Counts per window ending at ``as_of``; rankings and breakdowns over 30 days."""

    as_of: str
    counts: WindowCounts
    top_actors: list[NamedCount]
    top_event_types: list[NamedCount]
    severity_breakdown: dict[str, int]
    category_breakdown: dict[str, int]
    window: Literal["30d"]
    cached: bool


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]


# --- anomalies ----------------------------------------------------------------------------

AnomalySeverity = Literal["low", "medium", "high", "critical"]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class AnomalyQuery(BaseModel):
    """Filters of `GET /api/v1/anomalies` (query string)."""

    model_config = ConfigDict(extra="forbid")
    start: Timestamp | None = Field(default=None, description="Detected at or after (RFC 3339).")
    end: Timestamp | None = Field(default=None, description="Detected before (RFC 3339).")
    min_score: Score | None = Field(default=None, description="Anomaly score at least this (0–1).")
    status: AlertStatus | None = Field(default=None, description="Only alerts with this status.")
    severity: list[AnomalySeverity] = Field(
        default=[], description="Alert severity; several values match any of them.")
    limit: int = Field(default=50, ge=1, le=100, description="Page size.")
    cursor: _text(200) | None = Field(
        default=None, description="`next_cursor` of the previous page (same filters).")


class ModelQuery(BaseModel):
    """Filters of `GET /api/v1/models` (query string)."""

    model_config = ConfigDict(extra="forbid")
    model_type: _text(64) | None = Field(default=None, description="Only models of this type.")
    limit: int = Field(default=50, ge=1, le=100, description="How many, newest first.")


class BiasMetricQuery(BaseModel):
    """Filters of `GET /api/v1/bias-metrics` (query string)."""

    model_config = ConfigDict(extra="forbid")
    dimension: _text(64) | None = Field(
        default=None, description="Only this dimension (e.g. `actor_role`, `overall`).")
    limit: int = Field(default=100, ge=1, le=500, description="How many, newest first.")


class FeedbackIn(BaseModel):
    """An analyst's verdict on an anomaly alert."""

    model_config = ConfigDict(extra="forbid")
    is_false_positive: bool = Field(strict=True, description="`true`: not an anomaly; "
                                    "`false`: confirmed.")
    notes: _text(2000, 0) = Field(default="", description="Free text, at most 2000 characters.")


class ThresholdIn(BaseModel):
    """The tenant's anomaly threshold."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(strict=True, gt=0.0, lt=1.0, allow_inf_nan=False,
                             description="Scores at or above it flag an event (0 < t < 1).")


class FeedbackOut(BaseModel):
    is_false_positive: bool
    notes: str
    given_by: str = Field(description="`api_key:<id>` or `user:<id>`.")
    given_at: str = Field(description="RFC 3339, UTC (`Z`).")


class FeedbackResult(BaseModel):
    alert: AlertOut
    feedback: FeedbackOut


class AnomalyOut(AlertOut):
    """An anomaly alert with its event, the events around it and the latest verdict."""

    score: float | None = Field(description="`details.anomaly_score`.")
    event: EventOut | None = Field(description="The event (null once it is gone).")
    related_events: list[EventOut] = Field(
        description="Up to 20 events by the same actor or on the same entity within an hour "
                    "either side, oldest first.")
    explanation: dict[str, Any] | None
    affected_entities: list[dict[str, Any]]
    suggested_actions: list[str]
    model_version: str | None
    detected_at: str | None
    feedback: FeedbackOut | None = Field(description="The latest verdict, or null.")


class AnomalyPage(BaseModel):
    anomalies: list[AnomalyOut]
    next_cursor: str | None


class ThresholdOut(BaseModel):
    threshold: float
    default: float
    updated_by: str | None
    updated_at: str | None


class ModelOut(BaseModel):
    """A model version of the registry (its artifact is not shown)."""

    id: str
    model_type: str
    version: str
    trained_from: str | None
    trained_to: str | None
    training_events: int
    features: list[Any]
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifact_format: str
    artifact_sha256: str
    is_active: bool
    created_by: str
    created_at: str


class ModelList(BaseModel):
    models: list[ModelOut]


class BiasMetricOut(BaseModel):
    """Detection rate of one group in one detection run."""

    id: int
    run_id: str
    model_version: str
    window_start: str
    window_end: str
    dimension: str
    group: str
    events: int
    flagged: int
    rate: float
    overall_rate: float
    ci_low: float
    ci_high: float
    status: Literal["ok", "too_small", "alert"]
    computed_at: str


class BiasMetricList(BaseModel):
    metrics: list[BiasMetricOut]


Category = Literal["authentication", "access_control", "user_management", "data_access",
                   "data_modification", "data_export", "configuration_change", "financial",
                   "security", "integration_system"]
RiskLevel = Literal["low", "medium", "high", "critical"]


class CorrectionIn(BaseModel):
    """An analyst's correction of an event's category and/or risk level (at least one field)."""

    model_config = ConfigDict(extra="forbid")
    category: Category | None = Field(default=None, description="The right category.")
    risk_level: RiskLevel | None = Field(default=None, description="The right risk level.")
    notes: _text(2000, 0) = Field(default="", description="Why, at most 2000 characters.")


class CorrectionOut(BaseModel):
    category: str | None
    risk_level: str | None
    notes: str
    corrected_by: str = Field(description="`api_key:<id>` or `user:<id>` of the latest.")
    corrected_at: str = Field(description="RFC 3339, UTC (`Z`), of the latest.")
    corrections: int = Field(description="How many corrections the event has had.")


class CorrectedInsights(BaseModel):
    event_id: str
    category: str | None
    risk_level: str | None
    review_required: bool
    correction: CorrectionOut


class TagRulesIn(BaseModel):
    """The tenant's own tag rules (they replace the previous ones; `[]` removes them)."""

    model_config = ConfigDict(extra="forbid")
    rules: list[dict[str, Any]] = Field(
        max_length=100, description="At most 100 rules `{tag, description, when}`; see the "
                                    "API reference for the condition language.")


class TagRulesOut(BaseModel):
    builtin: list[dict[str, Any]] = Field(description="Rules every tenant has.")
    custom: list[dict[str, Any]] = Field(description="This tenant's own rules.")
    updated_by: str | None
    updated_at: str | None


# --- usage ---------------------------------------------------------------------------


def _day(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError("a day is written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_day)]


class UsageQuery(BaseModel):
    """Period of `GET /api/v1/usage` (query string): UTC days, both included."""

    model_config = ConfigDict(extra="forbid")
    first_day: Day | None = Field(default=None, description="YYYY-MM-DD (default: the first "
                                                             "of last_day's month).")
    last_day: Day | None = Field(default=None, description="YYYY-MM-DD (default: today, "
                                                            "UTC).")


class StorageOut(BaseModel):
    events_stored: int
    bytes_events: int = Field(description="The event records (canonical JSON with the "
                                          "encrypted fields' ciphertext).")
    bytes_insights: int
    bytes_embeddings: int
    bytes_search: int = Field(description="The full-text index of the decrypted text.")
    bytes_total: int
    snapshot_at: str


class UsageDay(BaseModel):
    day: str
    api_calls: int
    job_seconds: float
    storage: StorageOut | None = Field(description="The day's latest storage snapshot.")


class UsageTotals(BaseModel):
    api_calls: int
    job_seconds: float


class UsageOut(BaseModel):
    """A tenant's usage over a period."""

    tenant_id: str
    start: str
    end: str
    days: list[UsageDay]
    totals: UsageTotals
    events_in_chain: int = Field(description="Events in the chain now.")
    storage: StorageOut = Field(description="The latest storage snapshot.")


# --- notifications -------------------------------------------------------------------

class IntegrationIn(BaseModel):
    """A notification channel to add. ``config`` is checked against the JSON Schema of the
    channel ``type`` (see the admin guide, Notification channels)."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="`slack`, `teams`, `zapier`, `webhook`, `email`, or a "
                                  "plugin's channel.")
    name: str = Field(min_length=1, max_length=100, description="Unique in the tenant.")
    config: dict[str, Any] = Field(description="The channel's settings. Secrets (URLs with "
                                               "tokens, signing secrets) are stored "
                                               "encrypted and never returned.")
    min_severity: Severity = Field(default="medium",
                                        description="Alerts of this severity or above are "
                                                    "sent.")


class IntegrationOut(BaseModel):
    """A notification channel, secrets redacted (`********`, URLs as scheme and host)."""

    id: str
    type: str
    name: str
    min_severity: Severity
    config: dict[str, Any]
    created_by: str
    created_at: str = Field(description="RFC 3339, UTC (`Z`).")


class IntegrationList(BaseModel):
    integrations: list[IntegrationOut]


class IntegrationTestResult(BaseModel):
    """What became of a test message."""

    delivered: bool
    error: str | None = Field(description="Why it was not accepted.")
    delivery_id: str = Field(description="The test message's delivery id (header "
                                         "`Trailseal-Delivery` of webhooks).")


class DeliveryOut(BaseModel):
    """One alert's delivery to one integration (its id is the same on every attempt)."""

    id: str
    integration_id: str
    alert_id: str
    status: Literal["pending", "delivered", "failed", "dead"]
    attempts: int = Field(description="Attempts since it was created or redelivered.")
    last_error: str | None
    last_status_code: int | None = Field(description="HTTP status of the last refusal.")
    next_attempt_at: str | None = Field(description="When the next retry is due (`Z`).")
    created_at: str
    updated_at: str
    delivered_at: str | None
    redelivered_by: str | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


# --- scheduled reports --------------------------------------------------------------------

REPORT_RECIPIENTS_MAX = 20
# An address as mail servers take it: ASCII local part (RFC 5322 atext and dots) and a
# domain of dot-separated labels; no spaces, commas, angle brackets or line breaks, so an
# address can never add a header or another recipient.
EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                   r"@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")


def _email(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # pydantic says "must be a string"
    if len(value) > 254 or not EMAIL.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not an email address (name@example.com)")
    return value


EmailAddress = Annotated[str, BeforeValidator(_email)]


class ReportScheduleIn(BaseModel):
    """Body of `POST /api/v1/reports/schedules`."""

    model_config = ConfigDict(extra="forbid")
    name: _text(200) = Field(description="What the report is called (its mail's subject).")
    cron: _text(200) = Field(description="Five-field cron expression read in `timezone` "
                                         "(`0 9 * * 1`: Mondays 09:00), at most every 15 "
                                         "minutes; `@daily`, `@weekly`... are accepted.")
    timezone: _text(64) = Field(default="UTC", description="IANA time zone of the cron "
                                                           "expression, e.g. Europe/Berlin.")
    filters: ExportFilters = Field(default_factory=ExportFilters,
                                   description="The events API's filters. Without `start` "
                                               "and `end` each report covers the period since "
                                               "the previous one.")
    format: _text(32) = Field(description="A registered export format (`csv`, `pdf`).")
    recipients: list[EmailAddress] = Field(min_length=1, max_length=REPORT_RECIPIENTS_MAX,
                                           description="1–20 email addresses.")

    @field_validator("recipients")
    @classmethod
    def _unique_recipients(cls, value: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for address in value:
            seen.setdefault(address.lower(), address)
        return list(seen.values())


class ReportScheduleOut(BaseModel):
    """A report schedule and the state of its runs."""

    id: str
    name: str
    cron: str
    timezone: str
    filters: dict[str, Any] = Field(description="The filters that were set.")
    format: str
    recipients: list[str]
    created_by: str = Field(description="`api_key:<id>` or `user:<id>`.")
    created_at: str = Field(description="RFC 3339, UTC (`Z`).")
    next_run: str = Field(description="The next slot, RFC 3339, UTC (`Z`).")
    last_run: str | None = Field(description="When the last run started (`Z`), or null.")
    last_status: Literal["running", "sent", "failed"] | None
    last_error: str | None = Field(description="Why the last run failed, or null.")
    covered_until: str = Field(description="The events that occurred before this were "
                                           "reported (`Z`): the next report starts here.")
    runs: int = Field(description="How many runs have started.")


class ReportScheduleList(BaseModel):
    schedules: list[ReportScheduleOut]


# --- tenant settings, summaries and explanations -------------------------------------------


class SettingsIn(BaseModel):
    """Tenant settings to change (only those sent change)."""

    model_config = ConfigDict(extra="forbid")
    timezone: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="An IANA time zone name (`Europe/Berlin`, `America/New_York`, `UTC`): "
                    "where the tenant's days, weeks and months begin (summaries).")


class SettingOut(BaseModel):
    value: Any
    default: Any
    updated_by: str | None
    updated_at: str | None


class SettingsOut(BaseModel):
    """The tenant's settings, each with its default and who set it when."""

    timezone: SettingOut


class SummaryWindow(BaseModel):
    start: str = Field(description="First instant, UTC (RFC 3339, `Z`).")
    end: str = Field(description="First instant of the next period (excluded), UTC.")
    start_local: str = Field(description="`start` in the tenant's time zone, with offset.")
    end_local: str = Field(description="`end` in the tenant's time zone, with offset.")
    first_day: str = Field(description="First local day (YYYY-MM-DD).")
    last_day: str = Field(description="Last local day (YYYY-MM-DD).")
    hours: float = Field(description="Length in hours (a local day is 23 or 25 h across a "
                                     "daylight-saving change).")


class SummaryEvent(BaseModel):
    """An event a summary names: its place in the chain, what, who, and why it is named."""

    id: str
    seq: int
    occurred_at: str
    event_type: str
    actor: str
    entity: Entity
    severity: str
    category: str | None
    risk_level: str | None
    reasons: list[str] = Field(description="anomaly, high/critical risk, permission or role "
                                           "change, deletion, high/critical severity.")


class SummaryAnomaly(SummaryEvent):
    alert_id: str | None
    anomaly_score: float | None


class SummaryOut(BaseModel):
    """A daily, weekly or monthly summary of the tenant's trail."""

    period: Literal["daily", "weekly", "monthly"]
    timezone: str
    window: SummaryWindow
    complete: bool = Field(description="False while the period is under way (then computed "
                                       "on every read, never stored).")
    totals: dict[str, Any] = Field(description="`events`, `failures`, `by_severity`, "
                                               "`by_category`, `first_event_id`, "
                                               "`last_event_id`.")
    previous: dict[str, Any] = Field(description="The previous period: `window`, `events`, "
                                                 "`failures`.")
    change: dict[str, Any] = Field(description="`events` and `failures`: `{difference, "
                                               "percent}` (percent null when the previous "
                                               "period had none).")
    critical_changes: dict[str, Any] = Field(description="`count` and the first 20 `events` "
                                                         "(SummaryEvent), riskiest first.")
    anomalies: dict[str, Any] = Field(description="`count` and the `top` 5 (SummaryAnomaly), "
                                                  "highest score first.")
    top_actors: list[dict[str, Any]] = Field(description="Up to 5 `{actor, events, "
                                                         "event_ids}` (their latest 3 ids).")
    notable_events: list[SummaryEvent]
    narrative: str = Field(description="Plain text, each claim about events citing "
                                       "`[event id]`; only events of the window are cited.")
    sources: list[SearchSource]
    computed_at: str
    stored: bool = Field(description="True when served from the stored summaries.")


class ExplanationOut(BaseModel):
    """An event explained: structured fields, a narrative and its sources."""

    event: EventOut
    what_happened: str
    who: Actor
    actor_context: dict[str, Any] = Field(
        description="The actor's events in the 24 h before: `events`, `event_types` "
                    "[{event_type, count}], `recent_events` (latest 10), "
                    "`first_time_this_type`.")
    related_events: dict[str, Any] = Field(
        description="Events on the same entity within 24 h either side: `count` and up to 20 "
                    "`events` (nearest in time, listed oldest first).")
    insights: dict[str, Any] | None = Field(
        description="`category`, `risk_level`, `tags`, `review_required`, `anomaly_score`, "
                    "`is_anomaly` (null before enrichment).")
    anomaly: dict[str, Any] | None = Field(
        description="When the event is an anomaly: `alert_id`, `status`, `severity`, "
                    "`score`, `detector`, `summary` (a sentence) and the top 5 "
                    "`contributions` [{feature, label, value, contribution}].")
    impact: dict[str, Any] = Field(description="`level` (low…critical) and `statements`.")
    narrative: str = Field(description="Plain text, each claim citing `[event id]` of the "
                                       "event, the actor's recent events or related events.")
    sources: list[SearchSource]
# --- signed checkpoints and proofs -----------------------------------------------------------


class CheckpointIn(BaseModel):
    """The body of ``POST /checkpoints``: none, or an empty object."""

    model_config = ConfigDict(extra="forbid")


class CheckpointOut(BaseModel):
    tree_size: int = Field(description="Events covered: seq 1..tree_size")
    root: str = Field(description="The RFC 9162 Merkle tree head (hex) over the events' "
                                  "chain hashes")
    note: str = Field(description="The checkpoint as a C2SP tlog-checkpoint signed note")
    key_name: str
    created_at: str


class CheckpointPage(BaseModel):
    checkpoints: list[CheckpointOut]
    next_cursor: str | None


class CheckpointMade(BaseModel):
    created: bool = Field(description="False: no event since the latest checkpoint, which "
                                      "is returned")
    checkpoint: CheckpointOut
    witness: dict[str, Any] = Field(description="Where the copy went: `file`, "
                                                "`webhook_status`, or `file_error`/"
                                                "`webhook_error`")


class CheckpointKey(BaseModel):
    algorithm: Literal["ed25519"]
    name: str = Field(description="The key name; every tenant's origin starts with it")
    vkey: str = Field(description="Signed-note verifier key: name+key id+base64(0x01||key)")
    public_key: str = Field(description="The raw 32-byte Ed25519 public key, base64")
    origin: str = Field(description="This tenant's checkpoint origin: <name>/<tenant id>")


class InclusionProof(BaseModel):
    event_id: str
    seq: int
    hash: str = Field(description="The event's chain hash: the Merkle leaf")
    leaf_index: int = Field(description="seq - 1")
    tree_size: int
    root: str
    checkpoint: str = Field(description="The signed note of the checkpoint proved against")
    proof: list[str] = Field(description="RFC 9162 inclusion path, hex, from the leaf up")
    verified: bool = Field(description="Whether the proof checks out here (false: the "
                                        "stored log no longer matches the checkpoint)")


class ConsistencyProof(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: int = Field(alias="from")
    to: int
    from_root: str
    to_root: str
    from_checkpoint: str
    to_checkpoint: str
    proof: list[str] = Field(description="RFC 9162 consistency proof, hex")
    verified: bool


class ExportBundle(BaseModel):
    format: Literal["trailseal-bundle/1"]
    tenant_id: str
    origin: str
    generated_at: str
    public_key: dict[str, Any]
    from_seq: int
    to_seq: int
    checkpoints: list[CheckpointOut] = Field(description="The latest checkpoint last; "
                                                         "earlier ones within the range first")
    proofs: dict[str, Any] = Field(description="`range`: the subtree hashes around the "
                                               "events; `consistency`: from each earlier "
                                               "checkpoint to the latest")
    events: list[dict[str, Any]] = Field(description="`seq`, `hash`, `record` (the hashed "
                                                     "canonical JSON) and the stored `columns`")


# --- retention and legal hold -----------------------------------------------------------


class RetentionIn(BaseModel):
    """The body of ``PUT /retention``."""

    model_config = ConfigDict(extra="forbid")
    days: int = Field(ge=1, le=36_500, strict=True,
                      description="Retention period in days (1–36500): events whose "
                                  "`occurred_at` is older are archived and removed by the "
                                  "daily job, unless held.")


class RetentionPolicy(BaseModel):
    days: int
    default_days: int = Field(description="The period of a tenant that set none (7 years).")
    updated_by: str | None
    updated_at: str | None


class RetentionPurge(BaseModel):
    from_seq: int
    to_seq: int
    events_removed: int
    archive: str = Field(description="The archive file's name (in TRAILSEAL_ARCHIVE_DIR/"
                                     "<tenant id>/)")
    archive_sha256: str
    retention_days: int
    purged_by: str
    purged_at: str


class RetentionOut(BaseModel):
    """The retention policy and what it did and would do."""

    policy: RetentionPolicy
    purged_through: int = Field(description="Events 1..purged_through were removed (0: none); "
                                            "the chain verifies from the next one")
    expiring: dict[str, int] = Field(description="`from_seq`..`to_seq` (`events` of them) "
                                                 "may go at the next run: expired, unheld, "
                                                 "checkpointed, in whole blocks of 64")
    active_holds: int
    tenant_on_hold: bool
    purges: list[RetentionPurge] = Field(description="The latest 20 purges, newest first")


class LegalHoldIn(BaseModel):
    """The body of ``POST /legal-holds``."""

    model_config = ConfigDict(extra="forbid")
    scope: Literal["tenant", "entity"]
    entity_type: str | None = Field(default=None, min_length=1, max_length=128,
                                    pattern=TEXT_PATTERN,
                                    description="With scope `entity`: the events' entity.type")
    entity_id: str | None = Field(default=None, min_length=1, max_length=256,
                                  pattern=TEXT_PATTERN,
                                  description="With scope `entity`: the events' entity.id")
    reason: str = Field(min_length=1, max_length=1000, pattern=TEXT_PATTERN)


class HoldReleaseIn(BaseModel):
    """The body of ``POST /legal-holds/{hold_id}/release``."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, pattern=TEXT_PATTERN)


class LegalHoldOut(BaseModel):
    id: str
    scope: Literal["tenant", "entity"]
    entity_type: str | None
    entity_id: str | None
    reason: str
    created_by: str
    created_at: str
    released_by: str | None
    released_at: str | None
    release_reason: str | None
    active: bool


class LegalHoldList(BaseModel):
    holds: list[LegalHoldOut] = Field(description="Newest first")
# --- GDPR erasure ------------------------------------------------------------------------------


class ErasureIn(BaseModel):
    """The body of ``POST /subjects/{id}/erase``."""

    model_config = ConfigDict(extra="forbid")
    reason: _text(1000) = Field(description="Why the subject is erased (e.g. the request's "
                                            "reference); kept in the erasure record.")


class ErasureOut(BaseModel):
    subject_id: str
    erasure_id: str
    erased_at: str = Field(description="When the subject's key was destroyed (the first "
                                       "erasure's time when asked again)")
    already_erased: bool = Field(description="The key had been destroyed by an earlier "
                                             "erasure; nothing more was destroyed")
    key_destroyed: bool = Field(description="This request destroyed a stored key")
    events_erased: int = Field(description="Events by or about the subject whose sensitive "
                                           "fields now read `[erased]`")
    events_not_erased: dict[str, int] = Field(
        description="Events naming the subject whose fields stay readable: `legacy` "
                    "(written before per-subject keys), `entity_not_person` (the subject is "
                    "their entity, of a type that is not a person)")
    derived_removed: dict[str, int] = Field(
        description="Derived rows removed or cleared: `embeddings`, `search_rows`, "
                    "`insight_texts`, `predictions`, `alert_details`, `summaries`, "
                    "`export_files`, `search_cache`")


class TenantDeletionIn(BaseModel):
    """The body of ``POST /tenant/deletion``."""

    model_config = ConfigDict(extra="forbid")
    reason: _text(1000) = Field(description="Why the tenant is to be deleted (e.g. the "
                                            "contract's end); kept in the deletion record "
                                            "and the trail.")


class TenantDeletionConfirmIn(BaseModel):
    """The body of ``POST /tenant/deletion/confirm``."""

    model_config = ConfigDict(extra="forbid")
    deletion_id: _text(64) = Field(description="The id of the request being confirmed.")


class TenantDeletionCancelIn(BaseModel):
    """The body of ``POST /tenant/deletion/cancel``."""

    model_config = ConfigDict(extra="forbid")
    deletion_id: _text(64) = Field(description="The id of the request being cancelled.")
    reason: _text(1000)


class TenantDeletionStep(BaseModel):
    step: str = Field(description="requested, confirmed, cancelled, expired, archived, "
                                  "marked, purged, restored or failed")
    actor: str
    at: str
    details: dict[str, Any]


class TenantDeletionOut(BaseModel):
    id: str
    state: str = Field(description="requested, confirmed, archived, marked, purged, "
                                   "cancelled or restored")
    reason: str
    requested_by: str
    requested_at: str
    confirm_by: str | None = Field(description="When an unconfirmed request expires")
    confirmed_by: str | None
    confirmed_at: str | None
    cancelled_by: str | None
    cancelled_at: str | None
    cancel_reason: str | None
    archived_at: str | None
    archives: list[dict[str, Any]] | None = Field(
        description="The encrypted archives of the trail: seq range, file name, SHA-256")
    head_seq: int | None
    head_hash: str | None
    checkpoint_note: str | None = Field(description="The signed checkpoint of the closed "
                                                    "chain the archives verify against")
    public_key: str | None = Field(description="The checkpoint key (vkey)")
    marked_at: str | None
    retention_days: int | None
    purge_after: str | None = Field(description="Earliest purge: the mark plus the "
                                                "retention period")
    purged_by: str | None
    purged_at: str | None
    purge_result: dict[str, Any] | None
    restored_by: str | None
    restored_at: str | None
    restore_reason: str | None
    steps: list[TenantDeletionStep] | None = None
    archive_job: str | None = None


class TenantDeletionState(BaseModel):
    deletion: TenantDeletionOut | None
