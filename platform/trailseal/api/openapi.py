"""OpenAPI 3.1 document generated from the schemas that validate requests."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ..schemas import (
    AccessLogPage,
    AlertOut,
    AlertPage,
    AlertStatusIn,
    AnomalyPage,
    AnomalyQuery,
    BatchCreated,
    BiasMetricList,
    BiasMetricQuery,
    ChainVerification,
    CheckpointIn,
    CheckpointKey,
    CheckpointMade,
    CheckpointPage,
    ConsistencyProof,
    CorrectedInsights,
    CorrectionIn,
    DashboardStats,
    DeliveryList,
    DeliveryOut,
    ErasureIn,
    ErasureOut,
    ErrorResponse,
    EventCreated,
    EventIn,
    EventOut,
    EventPage,
    EventQuery,
    ExplanationOut,
    ExportBundle,
    ExportFilters,
    ExportJob,
    FeedbackIn,
    FeedbackResult,
    Health,
    HoldReleaseIn,
    InclusionProof,
    IntegrationIn,
    IntegrationList,
    IntegrationOut,
    IntegrationTestResult,
    LegalHoldIn,
    LegalHoldList,
    LegalHoldOut,
    ModelList,
    ModelQuery,
    ReportScheduleIn,
    ReportScheduleList,
    ReportScheduleOut,
    RetentionIn,
    RetentionOut,
    SearchIn,
    SearchOut,
    SettingsIn,
    SettingsOut,
    SubjectExport,
    SummaryOut,
    TagRulesIn,
    TagRulesOut,
    TenantDeletionCancelIn,
    TenantDeletionConfirmIn,
    TenantDeletionIn,
    TenantDeletionOut,
    TenantDeletionState,
    ThresholdIn,
    ThresholdOut,
    UsageOut,
    UsageQuery,
)
from ..version import __version__

bp = Blueprint("openapi", __name__)
MODELS: list[type[BaseModel]] = [
    EventIn, EventCreated, BatchCreated, EventOut, EventPage, ChainVerification, ErrorResponse,
    AlertOut, AlertPage, AlertStatusIn, AccessLogPage, DashboardStats, Health,
    AnomalyPage, FeedbackIn, FeedbackResult, ThresholdIn, ThresholdOut, ModelList,
    BiasMetricList, CorrectionIn, CorrectedInsights, TagRulesIn, TagRulesOut, SearchIn,
    SearchOut, ExportFilters, SubjectExport, ExportJob, UsageOut,
    IntegrationIn, IntegrationOut, IntegrationList, IntegrationTestResult, DeliveryOut,
    DeliveryList,
    ReportScheduleIn, ReportScheduleOut, ReportScheduleList,
    SearchOut, ExportFilters, SubjectExport, ExportJob,
    SettingsIn, SettingsOut, SummaryOut, ExplanationOut,
    CheckpointIn, CheckpointPage, CheckpointMade, CheckpointKey, InclusionProof, ConsistencyProof, ExportBundle,
    RetentionIn, RetentionOut, LegalHoldIn, LegalHoldOut, LegalHoldList, HoldReleaseIn,
    ErasureIn, ErasureOut,
    TenantDeletionIn, TenantDeletionConfirmIn, TenantDeletionCancelIn, TenantDeletionOut,
    TenantDeletionState,
]
METHODS = ("get", "post", "put", "patch", "delete")


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}",
                                         by_alias=True)
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    schemas["EventBatchIn"] = {
        "type": "object", "additionalProperties": False, "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1, "maxItems": 1000,
                                  "items": {"$ref": "#/components/schemas/EventIn"}}},
    }
    return schemas


def _query_parameters(model: type[BaseModel] = EventQuery) -> list[dict[str, Any]]:
    """The query parameters of a query model (repeatable ones exploded, as forms send them)."""
    schema = model.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        param = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param["explode"] = True
            param["style"] = "form"
        params.append(param)
    return params


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _header(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests allowed per window for this API key "
                                         "(sent on API-key requests when limiting is on).",
                          "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current window.",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Unix time at which the window ends.",
                          "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"}},
    "Idempotent-Replayed": {"description": "`true` when this is the remembered answer to an "
                                           "earlier request with the same Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]}},
    "Allow": {"description": "The methods this path has.", "schema": {"type": "string"}},
    "X-Export-Head-Seq": {"description": "The chain head (seq) when the export began: it "
                                         "holds no event appended after it.",
                          "schema": {"type": "integer"}},
}
RATE_HEADERS = {name: _header(name) for name in
                ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}


def _error(description: str, **headers: Any) -> dict[str, Any]:
    response = {"description": description, **_ref("ErrorResponse")}
    if headers:
        response["headers"] = headers
    return response


ERRORS = {
    "400": _error("Malformed request: bad JSON, bad cursor, control characters in the URL"),
    "401": _error("Missing or invalid credentials"),
    "403": _error("Credential lacks the permission"),
    "422": _error("Validation failed, or an unknown query parameter"),
    "429": _error("Rate limited", **{"Retry-After": _header("Retry-After")}),
}
BODY_ERRORS = {
    "413": _error("Body over TRAILSEAL_MAX_CONTENT_LENGTH (1 MiB)"),
    "415": _error("Body not application/json"),
}


def _ok(description: str, model: str | None = None, status: str = "200",
        replayable: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "headers": dict(RATE_HEADERS)}
    if model:
        response.update(_ref(model))
    if replayable:
        response["headers"]["Idempotent-Replayed"] = _header("Idempotent-Replayed")
    return {status: response}


def _file_ok(head_seq: bool = True) -> dict[str, Any]:
    """200 of an export: a file of the format asked for."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    headers = dict(RATE_HEADERS)
    if head_seq:
        headers["X-Export-Head-Seq"] = _header("X-Export-Head-Seq")
    return {"200": {"description": "The file (`Content-Disposition: attachment`)",
                    "headers": headers,
                    "content": {"text/csv": binary, "application/pdf": binary}}}


def _op(summary: str, operation_id: str, tag: str, permission: str, ok: dict[str, Any], *,
        parameters: list | None = None, body: str | None = None,
        errors: dict[str, Any] | None = None, description: str | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "operationId": operation_id, "tags": [tag],
                          "parameters": parameters or [],
                          "responses": {**ok, **ERRORS, **(errors or {})},
                          "x-permission": permission}
    if description:
        op["description"] = description
    if body:
        op["requestBody"] = {"required": True, **_ref(body)}
        op["responses"].update(BODY_ERRORS)
    return op


def _not_allowed(path: str, method: str, allowed: list[str]) -> dict[str, Any]:
    why = " Audit events are append-only." if path.startswith("/api/v1/events") else ""
    return {"summary": f"{method.upper()} is not allowed", "tags": ["meta"],
            "operationId": f"notAllowed{method.title()}{''.join(x.title() for x in re.findall(r'[a-z]+', path))}",
            "description": f"Answers 405 with `Allow: {', '.join(m.upper() for m in allowed)}`.{why}",
            "security": [],
            "responses": {"405": _error("Method not allowed here", Allow=_header("Allow")),
                          "400": ERRORS["400"]}}


def _answers_405(adapter, url: str, method: str) -> bool:
    """Whether ``method url`` is a 405 (and not, say, another route's GET, as
    ``GET /events/batch`` is ``GET /events/{event_id}``)."""
    try:
        adapter.match(url, method.upper())
    except MethodNotAllowed:
        return True
    except NotFound:
        return False
    return False


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


LIMIT = _param("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
               "Page size.")
CURSOR = _param("cursor", {"type": "string"},
                "`next_cursor` of the previous page (same endpoint and filters).")
BOOLEAN = {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]}


def build_spec(app) -> dict[str, Any]:
    """The OpenAPI document for the routes registered on ``app``."""
    query = _query_parameters()
    idem = {"name": "Idempotency-Key", "in": "header", "required": False,
            "description": "1–200 printable characters (UTF-8); see Idempotency.",
            "schema": {"type": "string", "maxLength": 200}}
    conflict = {"409": _error("Idempotency-Key reused with another body")}
    not_found = {"404": _error("No such item in this tenant")}
    paths: dict[str, Any] = {
        "/api/v1/events": {
            "post": _op("Append one event", "createEvent", "events", "audit:write",
                        _ok("Appended", "EventCreated", "201", replayable=True),
                        parameters=[idem], body="EventIn", errors=conflict),
            "get": _op("List events (newest first)", "listEvents", "events", "audit:read",
                       _ok("A page (cut early by size; page until next_cursor is null)",
                           "EventPage"), parameters=query),
        },
        "/api/v1/events/batch": {
            "post": _op("Append up to 1000 events atomically", "createEventsBatch", "events",
                        "audit:write", _ok("Appended", "BatchCreated", "201", replayable=True),
                        parameters=[idem], body="EventBatchIn", errors=conflict),
        },
        "/api/v1/events/{event_id}": {
            "get": _op("One event", "getEvent", "events", "audit:read",
                       _ok("The event", "EventOut"),
                       parameters=[_path_param("event_id", "The event's id (UUID).")],
                       errors=not_found),
        },
        "/api/v1/events/{event_id}/insights": {
            "patch": _op("Correct an event's category or risk level", "correctEventInsights",
                         "classification", "audit:review",
                         _ok("The corrected insights", "CorrectedInsights"),
                         parameters=[_path_param("event_id", "The event's id (UUID).")],
                         body="CorrectionIn", errors=not_found,
                         description="API keys only. Stored with who and when; overrides "
                                     "the classifier for this event and is a training "
                                     "label. The event itself never changes."),
        },
        "/api/v1/rules/tags": {
            "get": _op("Business-rule tags: built-in and the tenant's own", "getTagRules",
                       "classification", "audit:admin", _ok("The rules", "TagRulesOut")),
            "put": _op("Replace the tenant's own tag rules", "putTagRules", "classification",
                       "audit:admin", _ok("The rules", "TagRulesOut"), body="TagRulesIn",
                       description="API keys only. Validated; a bad rule is a 422 naming "
                                   "it by its path (rules[2].when.any[0].op). They tag events "
                                   "enriched from then on."),
        },
        "/api/v1/timeline": {
            "get": _op("Events oldest first, with insights", "timeline", "events", "audit:read",
                       _ok("A page", "EventPage"), parameters=query),
        },
        "/api/v1/dashboard/stats": {
            "get": _op("Dashboard statistics (cached 30 s)", "dashboardStats", "statistics",
                       "audit:read", _ok("Statistics", "DashboardStats"),
                       parameters=[_param("as_of", {"type": "string", "format": "date-time"},
                                          "End of the windows (RFC 3339, 1970–9998); "
                                          "default now (then cached).")]),
        },
        "/api/v1/chain/verify": {
            "get": _op("Verify the tenant's hash chain", "verifyChain", "integrity",
                       "audit:read", _ok("Verification report", "ChainVerification"),
                       parameters=[_param("full", BOOLEAN, "Decode every record and compare "
                                          "it with its columns field by field (slower).")]),
        },
        "/api/v1/alerts": {
            "get": _op("Alerts, newest first", "listAlerts", "alerts", "audit:read",
                       _ok("A page of alerts", "AlertPage"),
                       parameters=[LIMIT, _param("status", {"enum": ["open", "acknowledged",
                                                                     "resolved"]},
                                                 "Only alerts with this status."), CURSOR]),
        },
        "/api/v1/alerts/{alert_id}": {
            "patch": _op("Acknowledge or resolve an alert", "updateAlert", "alerts",
                         "audit:admin", _ok("The alert", "AlertOut"),
                         parameters=[_path_param("alert_id", "The alert's id (UUID).")],
                         body="AlertStatusIn", errors=not_found),
        },
        "/api/v1/anomalies": {
            "get": _op("Anomaly alerts with their events, newest detection first",
                       "listAnomalies", "anomalies", "audit:read",
                       _ok("A page (cut early by size; page until next_cursor is null)",
                           "AnomalyPage"), parameters=_query_parameters(AnomalyQuery)),
        },
        "/api/v1/anomalies/{alert_id}/feedback": {
            "post": _op("Mark an anomaly a false positive, or confirm it", "giveAnomalyFeedback",
                        "anomalies", "audit:review", _ok("Recorded", "FeedbackResult", "201"),
                        parameters=[_path_param("alert_id", "The anomaly alert's id (UUID).")],
                        body="FeedbackIn",
                        errors={"404": _error("No anomaly alert with this id in this tenant")},
                        description="API keys only. A false positive resolves the alert; a "
                                    "confirmation acknowledges it while it is open."),
        },
        "/api/v1/anomalies/settings": {
            "get": _op("The anomaly threshold", "getAnomalySettings", "anomalies", "audit:read",
                       _ok("The threshold", "ThresholdOut")),
            "put": _op("Set the anomaly threshold", "putAnomalySettings", "anomalies",
                       "audit:admin", _ok("The threshold", "ThresholdOut"), body="ThresholdIn",
                       description="API keys only."),
        },
        "/api/v1/usage": {
            "get": _op("The tenant's usage per day", "getUsage", "usage", "audit:admin",
                       _ok("API calls, job compute seconds and storage", "UsageOut"),
                       parameters=_query_parameters(UsageQuery),
                       description="UTC days, both included; at most 366. Storage is the "
                                   "latest hourly snapshot (taken now when there is none)."),
        },
        "/api/v1/models": {
            "get": _op("Model versions, newest first (no artifacts)", "listModels", "anomalies",
                       "audit:read", _ok("The models", "ModelList"),
                       parameters=_query_parameters(ModelQuery)),
        },
        "/api/v1/bias-metrics": {
            "get": _op("Detection rates per group, newest first", "listBiasMetrics",
                       "anomalies", "audit:read", _ok("The figures", "BiasMetricList"),
                       parameters=_query_parameters(BiasMetricQuery)),
        },
        "/api/v1/search": {
            "post": _op("Search the trail in plain language", "search", "search", "audit:read",
                        _ok("The best events, best first (and the answer when asked)",
                            "SearchOut"), body="SearchIn",
                        description="API keys only. Hybrid ranking: vector similarity and "
                                    "full-text search fused by reciprocal rank. The ranking "
                                    "is cached for 10 minutes per query, filters and limit. "
                                    "Recorded in the access log with the body."),
        },
        "/api/v1/export/{format_name}": {
            "post": _op("Export the events matching filters as a file", "exportEvents",
                        "exports", "audit:export", _file_ok(),
                        parameters=[_path_param("format_name", "A registered export format: "
                                                "`csv` or `pdf` with the exports plugin.")],
                        body="ExportFilters",
                        errors={**_ok("Too many events to write while you wait: a worker "
                                      "writes the file; poll the job (Location) and download "
                                      "it from its download_url", "ExportJob", "202"),
                                "404": _error("No export format of this name (the "
                                              "registered ones are in details.formats)"),
                                "422": _error("Invalid filters, or more events than a "
                                              "document format holds "
                                              "(TRAILSEAL_EXPORT_MAX_EVENTS)")},
                        description="Every event matching the filters of `GET /events` (sent "
                                    "as a JSON body, without paging), oldest first, up to the "
                                    "chain head when the export began (header "
                                    "`X-Export-Head-Seq`). CSV is streamed whatever the size; "
                                    "cells a spreadsheet would run as formulas start with "
                                    "`'`. PDF is a report (summary, statistics, charts, "
                                    "events, chain verification). Recorded in the access log "
                                    "with its filters."),
        },
        "/api/v1/export/jobs/{job_id}": {
            "get": _op("The status of an export a worker writes", "getExportJob", "exports",
                       "audit:export", _ok("The job", "ExportJob"),
                       parameters=[_path_param("job_id", "The job's id (from the 202).")],
                       errors={"404": _error("No such job in this tenant (or it expired)")}),
        },
        "/api/v1/export/jobs/{job_id}/file": {
            "get": _op("Download the file of a finished export job", "downloadExportJob",
                       "exports", "audit:export", _file_ok(head_seq=False),
                       parameters=[_path_param("job_id", "The job's id (from the 202).")],
                       errors={"404": _error("No such job in this tenant, or its file "
                                             "expired"),
                               "409": _error("The job is not done (details.status)")}),
        },
        "/api/v1/subjects/{subject_id}/export": {
            "get": _op("Every event by or about a person (data subject access)",
                       "exportSubject", "exports", "audit:export",
                       _ok("The events, oldest first (streamed)", "SubjectExport"),
                       parameters=[_path_param("subject_id", "The person's id as events "
                                               "name it (`actor.id` or `entity.id`).")],
                       errors={"404": _error("No event by or about this id in this tenant")},
                       description="Events whose actor or entity is the subject, decrypted, "
                                   "with their insights. Recorded in the access log."),
        },
        "/api/v1/subjects/{subject_id}/erase": {
            "post": _op("Erase a data subject, keeping the chain (GDPR)", "eraseSubject",
                        "exports", "audit:admin", _ok("What was erased", "ErasureOut"),
                        body="ErasureIn",
                        parameters=[_path_param("subject_id", "The person's id as events "
                                                "name it (`actor.id`, or `entity.id` of an "
                                                "entity of a person type).")],
                        errors={"404": _error("Neither a key for nor an event naming this id "
                                              "in this tenant"),
                                "422": _error("Missing or invalid reason")},
                        description="API keys only. Destroys the subject's key: the "
                                    "`ip_address`, `user_agent` and `action_details` of every "
                                    "event by the subject, or about it as an entity of a "
                                    "person type, read `[erased]` from then on (events "
                                    "written later too). The events stay in the chain and "
                                    "verify. Removes embeddings and full-text rows (rebuilt "
                                    "from the erased text), clears insight texts, prediction "
                                    "features and alert details of those events, deletes "
                                    "the tenant's stored summaries, kept export files and "
                                    "cached search rankings. Idempotent (`already_erased`); "
                                    "recorded with its reason and in the access log."),
        },
        "/api/v1/reports/schedules": {
            "post": _op("Schedule a report mailed as an attachment", "createReportSchedule",
                        "reports", "audit:admin",
                        _ok("The schedule (Location: its URL)", "ReportScheduleOut", "201"),
                        body="ReportScheduleIn",
                        errors={"422": _error("Invalid body, cron, time zone, format or "
                                              "recipients; more than 100 schedules; or "
                                              "outgoing mail not configured (the message "
                                              "says which; details.field names the field)")},
                        description="API keys only. The cron expression (five fields, at "
                                    "most every 15 minutes) is read in `timezone`; each "
                                    "report holds the events matching `filters` since the "
                                    "previous report, written in `format` and mailed to "
                                    "`recipients`. A slot missed while nothing ran is sent "
                                    "once, not once per missed slot."),
            "get": _op("The tenant's report schedules", "listReportSchedules", "reports",
                       "audit:export", _ok("The schedules, by name", "ReportScheduleList"),
                       description="With the state of their runs (`next_run`, `last_run`, "
                                   "`last_status`, `last_error`). At most 100 per tenant."),
        },
        "/api/v1/reports/schedules/{schedule_id}": {
            "get": _op("One report schedule", "getReportSchedule", "reports", "audit:export",
                       _ok("The schedule", "ReportScheduleOut"),
                       parameters=[_path_param("schedule_id", "The schedule's id (UUID).")],
                       errors=not_found),
            "delete": _op("Delete a report schedule", "deleteReportSchedule", "reports",
                          "audit:admin",
                          {"204": {"description": "Deleted: no further report is sent",
                                   "headers": dict(RATE_HEADERS)}},
                          parameters=[_path_param("schedule_id", "The schedule's id (UUID).")],
                          errors=not_found, description="API keys only."),
        },
        "/api/v1/reports/schedules/{schedule_id}/run": {
            "post": _op("Send a schedule's report now", "runReportSchedule", "reports",
                        "audit:admin",
                        _ok("Queued: a worker writes and mails the report; poll the schedule "
                            "(Location) for last_status", "ReportScheduleOut", "202"),
                        parameters=[_path_param("schedule_id", "The schedule's id (UUID).")],
                        errors={**not_found,
                                "422": _error("Outgoing mail is not configured (the reason)")},
                        description="API keys only; takes no body. The report covers the "
                                    "events since the previous report up to now; "
                                    "`next_run` does not change."),
        },
        "/api/v1/settings": {
            "get": _op("The tenant's settings (time zone)", "getSettings", "settings",
                       "audit:read", _ok("The settings", "SettingsOut")),
            "put": _op("Change the tenant's settings", "putSettings", "settings",
                       "audit:admin", _ok("The settings", "SettingsOut"), body="SettingsIn",
                       description="API keys only. Settings not sent keep their value. "
                                   "`timezone` must be an IANA zone name of the server's "
                                   "time zone database (422 otherwise, nothing changed)."),
        },
        "/api/v1/summary/{period}": {
            "get": _op("Daily, weekly or monthly summary", "getSummary", "summaries",
                       "audit:read", _ok("The summary", "SummaryOut"),
                       parameters=[_path_param("period", "`daily`, `weekly` (ISO week, "
                                               "Monday to Monday) or `monthly` (422 "
                                               "otherwise)."),
                                   _param("date", {"type": "string", "format": "date"},
                                          "A day of the period wanted (YYYY-MM-DD, "
                                          "1971–9998), in the tenant's time zone; default: "
                                          "the last complete period.")],
                       description="The window is exact in the tenant's time zone (`GET "
                                   "/settings`): from local midnight to the next period's "
                                   "local midnight (23 or 25 h for a day across a "
                                   "daylight-saving change). Complete periods are stored "
                                   "(by the `summaries` job or the first read) and served "
                                   "from storage (`stored: true`); a period under way is "
                                   "computed on every read. The narrative cites only events "
                                   "of the window. Recorded in the access log."),
        },
        "/api/v1/events/{event_id}/explain": {
            "get": _op("Explain an event", "explainEvent", "summaries", "audit:read",
                       _ok("The explanation", "ExplanationOut"),
                       parameters=[_path_param("event_id", "The event's id (UUID).")],
                       errors=not_found,
                       description="What happened, who, the actor's events in the 24 h "
                                   "before, events on the same entity within 24 h, insights, "
                                   "the anomaly explanation when the event is one, the "
                                   "likely impact, and a narrative citing only the events "
                                   "shown. Recorded in the access log."),
        },
        "/api/v1/checkpoints": {
            "get": _op("Signed checkpoints, newest first", "listCheckpoints", "integrity",
                       "audit:read", _ok("A page of checkpoints", "CheckpointPage"),
                       parameters=[LIMIT, CURSOR]),
            "post": _op("Sign a checkpoint of the chain head now", "createCheckpoint",
                        "integrity", "audit:admin",
                        {**_ok("Signed", "CheckpointMade", "201"),
                         **_ok("No event since the latest checkpoint: that one",
                               "CheckpointMade")},
                        errors={"409": _error("No events yet, or the chain is broken or no "
                                              "longer the tree signed before "
                                              "(code chain_broken): nothing is signed")},
                        body="CheckpointIn",
                        description="API keys only. The body, when sent, is `{}`. The hourly "
                                    "job and `trailseal checkpoint` "
                                    "make them too. A C2SP tlog-checkpoint signed note; a "
                                    "copy goes to the witness (file and/or webhook)."),
        },
        "/api/v1/checkpoints/public-key": {
            "get": _op("The key that signs checkpoints", "getCheckpointKey", "integrity",
                       "audit:read", _ok("The public key", "CheckpointKey"),
                       description="Compare it with the key obtained out of band before "
                                   "trusting anything it verifies."),
        },
        "/api/v1/checkpoints/consistency": {
            "get": _op("Consistency proof between two checkpoints", "getConsistencyProof",
                       "integrity", "audit:read", _ok("The proof", "ConsistencyProof"),
                       parameters=[
                           {**_param("from", {"type": "integer", "minimum": 1},
                                     "Tree size of the older checkpoint."), "required": True},
                           {**_param("to", {"type": "integer", "minimum": 1},
                                     "Tree size of the newer checkpoint."), "required": True}],
                       errors={"404": _error("No checkpoint at one of the tree sizes")}),
        },
        "/api/v1/events/{event_id}/proof": {
            "get": _op("An event's inclusion proof in the latest checkpoint", "getEventProof",
                       "integrity", "audit:read", _ok("The proof", "InclusionProof"),
                       parameters=[_path_param("event_id", "The event's id (UUID).")],
                       errors={**not_found,
                               "409": _error("No checkpoint covers the event yet")}),
        },
        "/api/v1/chain/bundle": {
            "get": _op("Export bundle for trailseal-verify", "getChainBundle", "integrity",
                       "audit:export", _ok("The bundle (streamed)", "ExportBundle"),
                       parameters=[
                           _param("from_seq", {"type": "integer", "minimum": 1},
                                  "First event (default 1)."),
                           _param("to_seq", {"type": "integer", "minimum": 1},
                                  "Last event (default: the latest checkpoint's tree size).")],
                       errors={"409": _error("No checkpoint yet, or to_seq past the latest"),
                               "422": _error("Bad range, or more than "
                                             "TRAILSEAL_BUNDLE_MAX_EVENTS events")},
                       description="The stored records and columns of the events, the "
                                   "checkpoints, the range and consistency proofs and the "
                                   "public key: everything `trailseal-verify` checks without "
                                   "the server. Recorded in the access log."),
        },
        "/api/v1/access-log": {
            "get": _op("Access log of the trail, newest first", "listAccessLog", "access",
                       "audit:admin", _ok("A page of entries", "AccessLogPage"),
                       parameters=[LIMIT, CURSOR]),
        },
        **_integration_paths(),
        **_retention_paths(),
        **_tenant_deletion_paths(),
    }
    adapter = app.url_map.bind("localhost")
    for path, ops in paths.items():
        allowed = [m for m in METHODS if m in ops]
        path_params = [p for p in ops[allowed[0]]["parameters"] if p["in"] == "path"]
        sample = re.sub(r"\{\w+\}", "00000000-0000-4000-8000-000000000000", path)
        for method in METHODS:
            if method not in ops and _answers_405(adapter, sample, method):
                ops[method] = {**_not_allowed(path, method, allowed), "parameters": path_params}
    paths["/healthz"] = {"get": {
        "summary": "Health of the database and Redis", "operationId": "health", "tags": ["meta"],
        "security": [],
        "responses": {"200": {"description": "Both answer", **_ref("Health")},
                      "503": {"description": "One does not answer", **_ref("Health")}}}}
    paths["/metrics"] = {"get": {
        "summary": "Prometheus metrics (queue depths; no tenant data)", "operationId": "metrics",
        "tags": ["meta"], "security": [],
        "responses": {"200": {"description": "Prometheus text format 0.0.4",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    paths["/api/v1/openapi.json"] = {"get": {
        "summary": "This document", "operationId": "openapi", "tags": ["meta"], "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Trailseal API", "version": __version__,
                 "description": "Tamper-evident, multi-tenant audit trail. Events are "
                                "append-only. Every error has the shape of ErrorResponse."},
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "events", "description": "Append and read the trail"},
            {"name": "integrity", "description": "Hash-chain verification, signed "
                                                 "checkpoints, proofs and bundles"},
            {"name": "alerts", "description": "Chain breaks, anomalies and plugin alerts"},
            {"name": "anomalies", "description": "Anomaly alerts, analyst verdicts, the "
                                                 "threshold, models and fairness figures"},
            {"name": "classification", "description": "Category and risk corrections, "
                                                      "business-rule tags"},
            {"name": "search", "description": "Questions in plain language, cited answers"},
            {"name": "exports", "description": "Files of the trail (CSV, PDF) and a "
                                               "person's events (JSON)"},
            {"name": "reports", "description": "Scheduled reports mailed as attachments"},
            {"name": "access", "description": "Who read the trail"},
            {"name": "notifications", "description": "Channels alerts are sent to, their "
                                                     "deliveries and dead letters"},
            {"name": "statistics", "description": "Dashboard figures"},
            {"name": "usage", "description": "API calls, compute and storage per tenant"},
            {"name": "settings", "description": "Tenant settings (time zone)"},
            {"name": "summaries", "description": "Period summaries and event explanations, "
                                                 "narrated and cited"},
            {"name": "meta", "description": "Health, metrics, this document, 405s"},
            {"name": "retention", "description": "Retention period, purges and legal holds"},
            {"name": "tenant", "description": "Deleting the whole tenant: request, a second "
                                              "admin's confirmation, archive, purge"},
        ],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "headers": HEADERS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "API key: Authorization: Bearer tsk_…"}},
        },
    }


def _integration_paths() -> dict[str, Any]:
    """The notification endpoints (``audit:admin``; changes with API keys only)."""
    integration = _path_param("integration_id", "The integration's id (UUID).")
    missing = {"404": _error("No such integration in this tenant")}
    no_body = "Takes no body (or `{}`)."
    return {
        "/api/v1/integrations": {
            "post": _op("Add a notification channel", "createIntegration", "notifications",
                        "audit:admin", _ok("The integration, secrets redacted",
                                           "IntegrationOut", "201"), body="IntegrationIn",
                        errors={"409": _error("An integration of this name exists"),
                                "422": _error("Invalid body or config (the reason names the "
                                              "field), a refused URL, or a channel that is "
                                              "not installed")},
                        description="API keys only. `config` is checked against the "
                                    "channel's JSON Schema; URLs must be https and resolve "
                                    "to public addresses (unless the host is in "
                                    "TRAILSEAL_WEBHOOK_ALLOW_HOSTS). Secrets are encrypted "
                                    "and never returned."),
            "get": _op("The tenant's notification channels", "listIntegrations",
                       "notifications", "audit:admin",
                       _ok("Oldest first, secrets redacted", "IntegrationList")),
        },
        "/api/v1/integrations/{integration_id}": {
            "delete": _op("Delete a notification channel and its deliveries",
                          "deleteIntegration", "notifications", "audit:admin",
                          {"204": {"description": "Deleted", "headers": dict(RATE_HEADERS)}},
                          parameters=[integration], errors=missing,
                          description="API keys only."),
        },
        "/api/v1/integrations/{integration_id}/test": {
            "post": _op("Send a test message now", "testIntegration", "notifications",
                        "audit:admin", _ok("Whether the receiver accepted it",
                                           "IntegrationTestResult"),
                        parameters=[integration], errors={**missing, **BODY_ERRORS},
                        description=f"API keys only. {no_body} Not retried."),
        },
        "/api/v1/integrations/{integration_id}/deliveries": {
            "get": _op("A channel's deliveries, newest first (dead letters with "
                       "status=dead)", "listDeliveries", "notifications", "audit:admin",
                       _ok("The deliveries", "DeliveryList"),
                       parameters=[integration, LIMIT, _param(
                           "status", {"enum": ["pending", "delivered", "failed", "dead"]},
                           "Only deliveries with this status.")], errors=missing),
        },
        "/api/v1/integrations/{integration_id}/deliveries/{delivery_id}/redeliver": {
            "post": _op("Send a failed or dead delivery again", "redeliver", "notifications",
                        "audit:admin", _ok("The delivery, pending again", "DeliveryOut",
                                           "202"),
                        parameters=[integration, _path_param("delivery_id",
                                                             "The delivery's id (UUID).")],
                        errors={"404": _error("No such delivery of this integration"),
                                "409": _error("The delivery is delivered or pending "
                                              "(details.status)"), **BODY_ERRORS},
                        description=f"API keys only. {no_body} The whole retry schedule "
                                    "starts again."),
        },
    }


def _retention_paths() -> dict[str, Any]:
    """Retention and legal hold (changes: ``audit:admin`` with API keys only)."""
    hold = _path_param("hold_id", "The hold's id (UUID).")
    return {
        "/api/v1/retention": {
            "get": _op("Retention period, purges so far and what may go next", "getRetention",
                       "retention", "audit:read", _ok("The policy and status", "RetentionOut"),
                       description="Recorded in the access log."),
            "put": _op("Set the retention period", "putRetention", "retention", "audit:admin",
                       _ok("The policy and status", "RetentionOut"), body="RetentionIn",
                       description="API keys only. `days` from 1 to 36500 (422 otherwise, "
                                   "nothing changed). The daily `retention` job archives and "
                                   "then removes the expired prefix of the chain."),
        },
        "/api/v1/legal-holds": {
            "get": _op("The tenant's legal holds, newest first", "listLegalHolds", "retention",
                       "audit:read", _ok("The holds", "LegalHoldList"),
                       parameters=[_param("active", {"type": "boolean"},
                                          "Only active (true) or released (false) holds."),
                                   _param("limit", {"type": "integer", "minimum": 1,
                                                    "maximum": 500, "default": 100},
                                          "Holds returned at most.")]),
            "post": _op("Place a legal hold on the tenant or one entity", "createLegalHold",
                        "retention", "audit:admin", _ok("The hold", "LegalHoldOut", "201"),
                        body="LegalHoldIn",
                        description="API keys only. While a hold is active, retention "
                                    "removes none of its events (the whole tenant's, or "
                                    "those of `entity_type`/`entity_id`) nor any event after "
                                    "the first held one. Recorded with who and when."),
        },
        "/api/v1/legal-holds/{hold_id}/release": {
            "post": _op("Release a legal hold", "releaseLegalHold", "retention", "audit:admin",
                        _ok("The released hold", "LegalHoldOut"), body="HoldReleaseIn",
                        parameters=[hold],
                        errors={"404": _error("No such hold in this tenant"),
                                "409": _error("The hold was already released")},
                        description="API keys only. A released hold stays in the list "
                                    "with who released it, when and why."),
        },
    }


def _tenant_deletion_paths() -> dict[str, Any]:
    """Tenant deletion (``audit:admin``; changes with API keys only)."""
    not_open = _error("The request is not awaiting confirmation (details.state)")
    return {
        "/api/v1/tenant/deletion": {
            "get": _op("The tenant's newest deletion request and its steps",
                       "getTenantDeletion", "tenant", "audit:admin",
                       _ok("The request, or null", "TenantDeletionState"),
                       description="Recorded in the access log. An unconfirmed request past "
                                   "`confirm_by` is shown expired (cancelled)."),
            "post": _op("Request the deletion of the whole tenant", "requestTenantDeletion",
                        "tenant", "audit:admin", _ok("The request", "TenantDeletionOut", "201"),
                        body="TenantDeletionIn",
                        errors={"409": _error("A deletion is already requested")},
                        description="API keys only. Appends `tenant.deletion_requested` to "
                                    "the trail. "
                                    "Another admin credential must confirm it within "
                                    "`TRAILSEAL_TENANT_DELETION_CONFIRM_HOURS` (72)."),
        },
        "/api/v1/tenant/deletion/confirm": {
            "post": _op("Confirm a deletion request (a second admin)", "confirmTenantDeletion",
                        "tenant", "audit:admin", _ok("The confirmed request", "TenantDeletionOut"),
                        body="TenantDeletionConfirmIn",
                        errors={"403": _error("The credential that requested it cannot confirm "
                                              "it"),
                                "404": _error("No such request in this tenant"),
                                "409": not_open},
                        description="API keys only. Appends `tenant.deletion_confirmed` and "
                                    "closes the chain "
                                    "(appends answer 409 `tenant_closed` from then on). The "
                                    "job then archives the trail and marks the tenant "
                                    "deleted: its users and API keys stop working. The purge, "
                                    "the tenant's retention period later, destroys its data "
                                    "keys."),
        },
        "/api/v1/tenant/deletion/cancel": {
            "post": _op("Cancel an unconfirmed deletion request", "cancelTenantDeletion",
                        "tenant", "audit:admin", _ok("The cancelled request", "TenantDeletionOut"),
                        body="TenantDeletionCancelIn",
                        errors={"404": _error("No such request in this tenant"),
                                "409": not_open},
                        description="API keys only. Appends `tenant.deletion_cancelled`. "
                                    "A confirmed "
                                    "deletion is undone only by an operator "
                                    "(`trailseal tenant-deletion restore`) before its purge."),
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document (no authentication needed)."""
    # Built once per app: the routes and schemas do not change while it runs.
    spec = current_app.extensions.get("trailseal.openapi")
    if spec is None:
        spec = current_app.extensions["trailseal.openapi"] = build_spec(current_app)
    return jsonify(spec)
