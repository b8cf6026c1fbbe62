"""REST API v1 endpoints. The ledger is append-only: there are no update or delete routes.

Views parse and validate the request and shape the response; the services they call own
the transactions (every read is recorded in the access log by the service that reads).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    request,
    send_file,
    stream_with_context,
)
from pydantic import TypeAdapter, ValidationError

from ..core import current_services
from ..errors import BadRequest, ValidationFailed
from ..schemas import (
    AnomalyQuery,
    BiasMetricQuery,
    CheckpointIn,
    CorrectionIn,
    ErasureIn,
    EventQuery,
    ExportFilters,
    FeedbackIn,
    ModelQuery,
    ReportScheduleIn,
    SearchIn,
    SettingsIn,
    TagRulesIn,
    ThresholdIn,
    Timestamp,
    UsageQuery,
)
from ..services.access import read_access_log
from ..services.alerts import read_alerts_page, set_alert_status
from ..services.anomalies import (
    give_feedback,
    read_anomalies_page,
    read_bias_metrics,
    read_models,
    read_threshold,
    write_threshold,
)
from ..services.chain import format_ts
from ..services.checkpoints import (
    begin_bundle,
    consistency,
    event_proof,
    iter_bundle,
    list_checkpoints,
    make_checkpoint,
    read_public_key,
)
from ..services.corrections import correct_insights, read_tag_rules, write_tag_rules
from ..services.erasure import erase_subject
from ..services.events import read_event, read_events_page
from ..services.explain import explain_event
from ..services.export_jobs import read_export_file, read_export_job, start_export_job
from ..services.export_rows import iter_event_rows, iter_event_text
from ..services.exports import (
    ExportScope,
    begin_export,
    begin_subject_export,
    checkpoint_headers,
    filters_for_log,
    find_exporter,
    iter_events,
)
from ..services.ingest import append_events, request_fingerprint, validate_events
from ..services.integrity import verify_chain, verify_chain_recorded
from ..services.reports import (
    create_schedule,
    delete_schedule,
    read_schedule,
    read_schedules,
    start_report_run,
)
from ..services.search import search_events
from ..services.settings import read_general_settings, write_general_settings
from ..services.stats import read_dashboard_stats
from ..services.summaries import parse_date, parse_period, read_summary
from ..services.usage import read_usage
from .requests import (
    access_record,
    body_access_record,
    bool_param,
    endpoint,
    json_body,
    limit_param,
    parse_body,
    parse_query,
)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
IDEMPOTENCY_KEY_MAX = 200


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    # WSGI hands header values over as latin-1; the bytes are what the client sent. Keep
    # UTF-8 exactly ("clé" stays "clé") and refuse bytes that are not UTF-8.
    try:
        key = key.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest("Idempotency-Key must be UTF-8 text") from None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1–{IDEMPOTENCY_KEY_MAX} printable characters")
    return key


@bp.post("/events")
@endpoint("audit:write", allow_session=False)
def create_event():
    """Append one event. 201 `{id, seq, hash}`."""
    body = json_body()
    events = validate_events([body])
    result = _append(body, events)
    return _created({"id": result.ids[0], "seq": result.seqs[0], "hash": result.hashes[0]},
                    result.replayed)


@bp.post("/events/batch")
@endpoint("audit:write", allow_session=False)
def create_events_batch():
    """Append up to 1000 events atomically. 201 `{ids, first_seq, last_seq}`."""
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"events"} or not isinstance(body["events"], list):
        raise ValidationFailed('body must be {"events": [...]}')
    raw = body["events"]
    limit = current_app.config["BATCH_MAX_EVENTS"]
    if not 1 <= len(raw) <= limit:
        raise ValidationFailed(f"a batch holds 1–{limit} events, got {len(raw)}",
                               {"count": len(raw), "max": limit})
    result = _append(body, validate_events(raw))
    return _created({"ids": result.ids, "first_seq": result.first_seq,
                     "last_seq": result.last_seq}, result.replayed)


def _append(body, events):
    """Append validated events for the caller, under the request's Idempotency-Key."""
    key = _idempotency_key()
    return append_events(
        current_services(), g.principal.tenant_id, events, idempotency_key=key,
        request_hash=request_fingerprint(body) if key else None,
    )


def _created(payload: dict, replayed: bool):
    """201 with the append's answer; a remembered answer says so in Idempotent-Replayed."""
    resp = jsonify(payload)
    resp.status_code = 201
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/events")
@endpoint("audit:read", *EventQuery.model_fields)
def events_index():
    """Filtered, paginated events, newest first."""
    q = parse_query(EventQuery)
    return jsonify(read_events_page(current_services(), g.principal, q, access_record(),
                                    max_bytes=_page_bytes()))


@bp.get("/events/<event_id>")
@endpoint("audit:read")
def event_show(event_id: str):
    """One event; another tenant's id answers 404."""
    return jsonify(read_event(current_services(), g.principal, event_id, access_record()))


@bp.patch("/events/<event_id>/insights")
@endpoint("audit:review", allow_session=False)
def event_insights_correct(event_id: str):
    """Correct an event's category and/or risk level: body ``{category?, risk_level?,
    notes?}``. Stored with who and when; overrides the classifier for this event and is a
    training label. The event itself never changes."""
    body = parse_body(CorrectionIn)
    corrected_by = f"{g.principal.kind}:{g.principal.id}"
    return jsonify(correct_insights(current_services(), g.principal.tenant_id, event_id,
                                    category=body.category, risk_level=body.risk_level,
                                    notes=body.notes, corrected_by=corrected_by))


@bp.get("/rules/tags")
@endpoint("audit:admin")
def tag_rules_show():
    """The built-in business-rule tags and the tenant's own."""
    return jsonify(read_tag_rules(current_services(), g.principal, access_record()))


@bp.put("/rules/tags")
@endpoint("audit:admin", allow_session=False)
def tag_rules_update():
    """Replace the tenant's own tag rules: body ``{"rules": [...]}`` (validated)."""
    body = parse_body(TagRulesIn)
    updated_by = f"{g.principal.kind}:{g.principal.id}"
    return jsonify(write_tag_rules(current_services(), g.principal.tenant_id, body.rules,
                                   updated_by))


@bp.get("/timeline")
@endpoint("audit:read", *EventQuery.model_fields)
def timeline():
    """Events oldest first, with AI insights when present."""
    q = parse_query(EventQuery)
    return jsonify(read_events_page(current_services(), g.principal, q, access_record(),
                                    chronological=True, max_bytes=_page_bytes()))


@bp.post("/search")
@endpoint("audit:read", allow_session=False)
def search():
    """Search the trail in plain language: body ``{query, filters?, limit?, answer?}``. The
    best events (as ``GET /events/{id}`` shows them, plus ``score``), and with ``answer``
    a cited answer and its sources. A read: recorded in the access log with the body."""
    body = parse_body(SearchIn)
    record = body_access_record(body.model_dump(mode="json", exclude_defaults=True))
    return jsonify(search_events(current_services(), g.principal, body, record))


@bp.get("/dashboard/stats")
@endpoint("audit:read", "as_of")
def dashboard_stats():
    """Counts for 24h/7d/30d, top actors and event types, category and severity breakdowns."""
    as_of_raw = request.args.get("as_of")
    as_of = _as_of(as_of_raw) if as_of_raw else None
    return jsonify(read_dashboard_stats(current_services(), g.principal, as_of,
                                        access_record()))


@bp.get("/chain/verify")
@endpoint("audit:read", "full")
def chain_verify():
    """Walk the tenant's chain and name the first broken event (``full=true``: decode every
    record instead of trusting matching ``columns_hash`` values)."""
    full = bool_param("full")
    report = verify_chain_recorded(current_services(), g.principal, access_record(),
                                   full=full)
    return jsonify(report.to_dict())


@bp.get("/alerts")
@endpoint("audit:read", "limit", "status", "cursor")
def alerts_index():
    """Alerts (chain breaks, anomalies), newest first, one page at a time; ``status``
    filters."""
    limit = limit_param()
    return jsonify(read_alerts_page(current_services(), g.principal, access_record(),
                                    limit=limit, status=request.args.get("status"),
                                    cursor=request.args.get("cursor")))


@bp.patch("/alerts/<alert_id>")
@endpoint("audit:admin", allow_session=False)
def alert_update(alert_id: str):
    """Acknowledge or resolve an alert: body ``{"status": "acknowledged"|"resolved"|"open"}``."""
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"status"}:
        raise ValidationFailed('body must be {"status": "open"|"acknowledged"|"resolved"}')
    changed_by = f"{g.principal.kind}:{g.principal.id}"
    return jsonify(set_alert_status(current_services(), g.principal.tenant_id, alert_id,
                                    body["status"], changed_by))


@bp.get("/access-log")
@endpoint("audit:admin", "limit", "cursor")
def access_log_index():
    """Who read the trail: access records, newest first, one page at a time (this read is
    recorded too)."""
    limit = limit_param()
    return jsonify(read_access_log(current_services(), g.principal, access_record(),
                                   limit=limit, cursor=request.args.get("cursor")))


@bp.get("/anomalies")
@endpoint("audit:read", *AnomalyQuery.model_fields)
def anomalies_index():
    """Anomaly alerts, newest detection first, each with its event, the events around it,
    the explanation and the latest verdict; filtered by detection time, score, status and
    severity."""
    q = parse_query(AnomalyQuery)
    return jsonify(read_anomalies_page(
        current_services(), g.principal, access_record(), start=q.start, end=q.end,
        min_score=q.min_score, status=q.status, severity=q.severity, limit=q.limit,
        cursor=q.cursor, max_bytes=_page_bytes()))


@bp.post("/anomalies/<alert_id>/feedback")
@endpoint("audit:review", allow_session=False)
def anomaly_feedback(alert_id: str):
    """An analyst's verdict on an anomaly: body ``{"is_false_positive": bool, "notes": str}``.
    A false positive resolves the alert; a confirmation acknowledges it while open. 201."""
    body = parse_body(FeedbackIn)
    given_by = f"{g.principal.kind}:{g.principal.id}"
    result = give_feedback(current_services(), g.principal.tenant_id, alert_id,
                           is_false_positive=body.is_false_positive, notes=body.notes,
                           given_by=given_by)
    resp = jsonify(result)
    resp.status_code = 201
    return resp


@bp.get("/anomalies/settings")
@endpoint("audit:read")
def anomaly_settings():
    """The tenant's anomaly threshold, its default, and who set it when."""
    return jsonify(read_threshold(current_services(), g.principal, access_record()))


@bp.put("/anomalies/settings")
@endpoint("audit:admin", allow_session=False)
def anomaly_settings_update():
    """Set the anomaly threshold: body ``{"threshold": 0 < number < 1}``."""
    body = parse_body(ThresholdIn)
    updated_by = f"{g.principal.kind}:{g.principal.id}"
    return jsonify(write_threshold(current_services(), g.principal.tenant_id, body.threshold,
                                   updated_by))


@bp.get("/models")
@endpoint("audit:read", *ModelQuery.model_fields)
def models_index():
    """Model versions of the registry, newest first (no artifacts)."""
    q = parse_query(ModelQuery)
    return jsonify(read_models(current_services(), g.principal, access_record(),
                               model_type=q.model_type, limit=q.limit))


@bp.get("/bias-metrics")
@endpoint("audit:read", *BiasMetricQuery.model_fields)
def bias_metrics_index():
    """Detection rates per group and overall, newest first."""
    q = parse_query(BiasMetricQuery)
    return jsonify(read_bias_metrics(current_services(), g.principal, access_record(),
                                     dimension=q.dimension, limit=q.limit))


@bp.get("/usage")
@endpoint("audit:admin", *UsageQuery.model_fields)
def usage_show():
    """The tenant's usage per UTC day: API calls, job compute seconds, and the latest
    storage snapshot (events and bytes stored)."""
    q = parse_query(UsageQuery)
    return jsonify(read_usage(current_services(), g.principal, access_record(),
                              start=q.first_day, end=q.last_day))


@bp.post("/export/<format_name>")
@endpoint("audit:export")
def export_events(format_name: str):
    """Every event matching the body's filters (those of ``GET /events``), oldest first, as a
    file in a registered export format (``csv``, ``pdf`` from the exports plugin). Formats
    that stream (CSV) are streamed page by page whatever the size; those that write a whole
    document (PDF) are written here up to ``EXPORT_SYNC_MAX_EVENTS`` events, by a worker
    above (202 with the job to poll), and refused above ``EXPORT_MAX_EVENTS`` (422).
    Recorded in the access log with its filters."""
    svc = current_services()
    exporter = find_exporter(svc.pm, format_name)
    filters = parse_body(ExportFilters)
    by_rows = callable(getattr(exporter, "stream_rows", None))
    streams = by_rows or callable(getattr(exporter, "stream", None))
    scope, total = begin_export(svc, g.principal, filters,
                                access_record(filters_for_log(filters)), count=not streams)
    headers = {"X-Export-Head-Seq": str(scope.head_seq), **checkpoint_headers(scope)}
    name = _export_filename(scope, getattr(exporter, "extension", exporter.name))
    if streams:
        writer = getattr(exporter, "row_writer", None)
        if by_rows and callable(writer) and callable(getattr(exporter, "stream_text", None)):
            chunks = exporter.stream_text(iter_event_text(svc, scope, writer),
                                          dict(scope.context))
        elif by_rows:
            chunks = exporter.stream_rows(iter_event_rows(svc, scope), dict(scope.context))
        else:
            chunks = exporter.stream(iter_events(svc, scope), dict(scope.context))
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return Response(stream_with_context(chunks), mimetype=exporter.media_type,
                        headers=headers)
    limit = int(svc.config["EXPORT_MAX_EVENTS"])
    if total > limit:
        raise ValidationFailed(
            f"{total} events match; a {exporter.name} export holds at most {limit}. Narrow "
            "the filters (start, end, event_type...) or export CSV, which has no limit",
            {"count": total, "max": limit, "format": exporter.name})
    if total > int(svc.config["EXPORT_SYNC_MAX_EVENTS"]):
        job = start_export_job(svc, g.principal, exporter.name, filters, scope, total)
        resp = jsonify(job)
        resp.status_code = 202
        resp.headers["Location"] = f"/api/v1/export/jobs/{job['id']}"
        resp.headers.update(headers)
        return resp
    report = verify_chain(svc, g.principal.tenant_id)
    context = {**scope.context, "event_count": total, "chain": report.to_dict()}
    # Documents are written whole: in memory while small, spilled to a temporary file after.
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    exporter.export(iter_events(svc, scope), context, spool)
    spool.seek(0)
    resp = send_file(spool, mimetype=exporter.media_type, as_attachment=True,
                     download_name=name, max_age=0)
    resp.headers.update(headers)
    return resp


@bp.get("/export/jobs/<job_id>")
@endpoint("audit:export")
def export_job_show(job_id: str):
    """The status of an export a worker writes (``download_url`` once done)."""
    return jsonify(read_export_job(current_services(), g.principal, job_id, access_record()))


@bp.get("/export/jobs/<job_id>/file")
@endpoint("audit:export")
def export_job_download(job_id: str):
    """The file of a finished export job (409 while it is being written)."""
    data, media_type, name = read_export_file(current_services(), g.principal, job_id,
                                              access_record())
    return Response(data, mimetype=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _export_filename(scope: ExportScope, extension: str) -> str:
    slug = scope.context["tenant"]["slug"]
    stamp = scope.context["generated_at"][:19].replace(":", "").replace("-", "")
    return f"trailseal-{slug}-{stamp}.{extension}"


@bp.get("/subjects/<subject_id>/export")
@endpoint("audit:export")
def subject_export(subject_id: str):
    """Every event by or about one person (actor or entity id equals ``subject_id``) as JSON,
    oldest first: a data subject's access request. Streamed page by page; 404 (recorded in
    the access log too) when no event names the subject."""
    svc = current_services()
    scope = begin_subject_export(svc, g.principal, subject_id, access_record())
    return Response(stream_with_context(_subject_json(svc, scope, subject_id)),
                    mimetype="application/json")


def _subject_json(svc, scope: ExportScope, subject_id: str) -> Iterator[bytes]:
    """``{"subject_id", "generated_at", "events": [...], "count"}`` in chunks of about 64 kB."""
    head = {"subject_id": subject_id, "generated_at": format_ts(datetime.now(UTC))}
    buffer = bytearray(orjson.dumps(head)[:-1] + b',"events":[')
    count = 0
    for event in iter_events(svc, scope):
        if count:
            buffer += b","
        buffer += orjson.dumps(event)
        count += 1
        if len(buffer) >= 64 * 1024:
            yield bytes(buffer)
            buffer.clear()
    buffer += b'],"count":%d}' % count
    yield bytes(buffer)


@bp.get("/checkpoints")
@endpoint("audit:read", "limit", "cursor")
def checkpoints_index():
    """The tenant's signed checkpoints (C2SP tlog-checkpoint notes), newest first."""
    limit = limit_param()
    return jsonify(list_checkpoints(current_services(), g.principal, access_record(),
                                    limit=limit, cursor=request.args.get("cursor")))


@bp.post("/checkpoints")
@endpoint("audit:admin", allow_session=False)
def checkpoint_create():
    """Sign a checkpoint of the chain head now (201), or return the latest one when no event
    was appended since (200). 409 when the tenant has no events or its chain is broken.
    No body, or ``{}``."""
    if request.content_type or request.get_data(cache=True):
        parse_body(CheckpointIn)
    result = make_checkpoint(current_services(), g.principal.tenant_id)
    resp = jsonify(result)
    resp.status_code = 201 if result["created"] else 200
    return resp


@bp.get("/checkpoints/public-key")
@endpoint("audit:read")
def checkpoint_public_key():
    """The instance's checkpoint verifier key (signed-note ``vkey`` and raw base64)."""
    return jsonify(read_public_key(current_services(), g.principal, access_record()))


@bp.get("/checkpoints/consistency")
@endpoint("audit:read", "from", "to")
def checkpoint_consistency():
    """The consistency proof between two checkpointed tree sizes ``from`` ≤ ``to``."""
    first, second = _size_param("from", required=True), _size_param("to", required=True)
    return jsonify(consistency(current_services(), g.principal, first, second,
                               access_record()))


@bp.get("/events/<event_id>/proof")
@endpoint("audit:read")
def event_inclusion_proof(event_id: str):
    """The event's inclusion proof in the latest checkpoint (409 when none covers it)."""
    return jsonify(event_proof(current_services(), g.principal, event_id, access_record()))


@bp.get("/chain/bundle")
@endpoint("audit:export", "from_seq", "to_seq")
def chain_bundle():
    """Events ``from_seq..to_seq`` (default: all the latest checkpoint covers) with their
    stored records and columns, the checkpoints, the proofs and the public key: what
    ``trailseal-verify`` checks without the server. Streamed."""
    svc = current_services()
    head, first, last = begin_bundle(svc, g.principal, _size_param("from_seq"),
                                     _size_param("to_seq"), access_record())
    name = f"trailseal-bundle-{g.principal.tenant_id}-{first}-{last}.json"
    return Response(stream_with_context(iter_bundle(svc, g.principal, head, first, last)),
                    mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _size_param(name: str, required: bool = False) -> int | None:
    """A tree size or seq query parameter: ASCII digits, 1 … 2^63-1 (422 otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        if required:
            raise ValidationFailed(f"{name} is required")
        return None
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not 1 <= int(raw) <= 2**63 - 1:
        raise ValidationFailed(f"{name} must be an integer from 1 to 2^63-1")
    return int(raw)


def _page_bytes() -> int:
    return int(current_services().config["PAGE_MAX_BYTES"])


_TIMESTAMP = TypeAdapter(Timestamp)


def _as_of(raw: str) -> datetime:
    """``as_of``: an RFC 3339 timestamp between 1970 and 9998 (the windows reach 30 days
    back from it, so the far ends of the calendar cannot be computed)."""
    try:  # the same rules as every other timestamp of the API
        as_of = _TIMESTAMP.validate_python(raw)
    except ValidationError as exc:
        raise ValidationFailed(f"as_of: {exc.errors()[0]['msg']}") from None
    try:
        as_of = as_of.astimezone(UTC)
    except OverflowError:
        as_of = None
    if as_of is None or not 1970 <= as_of.year <= 9998:
        raise ValidationFailed("as_of must fall between 1970 and 9998")
    return as_of


# --- notifications ---------------------------------------------------------------------


def _no_body() -> None:
    """Actions without parameters take no body or ``{}``; anything else is refused like a
    body of any other endpoint (415, 400, 422)."""
    if not request.content_length and not request.content_type and not request.get_data():
        return
    body = json_body()
    if not isinstance(body, dict) or body:
        raise ValidationFailed("this action takes no parameters: send no body or {}")


@bp.post("/integrations")
@endpoint("audit:admin", allow_session=False)
def integration_create():
    """Add a notification channel: body ``{type, name, config, min_severity}``. 201 with
    the integration, secrets redacted."""
    from ..services.integrations import create_integration

    resp = jsonify(create_integration(current_services(), g.principal, json_body()))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/integrations/{resp.get_json()['id']}"
    return resp


@bp.get("/integrations")
@endpoint("audit:admin")
def integrations_index():
    """The tenant's notification channels, oldest first, secrets redacted."""
    from ..services.integrations import list_integrations

    return jsonify(list_integrations(current_services(), g.principal, access_record()))


@bp.delete("/integrations/<integration_id>")
@endpoint("audit:admin", allow_session=False)
def integration_delete(integration_id: str):
    """Delete a notification channel and its deliveries. 204."""
    from ..services.integrations import delete_integration

    delete_integration(current_services(), g.principal, integration_id)
    return Response(status=204)


@bp.post("/integrations/<integration_id>/test")
@endpoint("audit:admin", allow_session=False)
def integration_test(integration_id: str):
    """Send a test message through a channel now: ``{delivered, error, delivery_id}``."""
    from ..services.deliveries import send_test

    _no_body()
    return jsonify(send_test(current_services(), g.principal, integration_id))


@bp.get("/integrations/<integration_id>/deliveries")
@endpoint("audit:admin", "status", "limit")
def integration_deliveries(integration_id: str):
    """A channel's deliveries, newest first; ``status=dead`` lists its dead letters."""
    from ..services.deliveries import list_deliveries

    return jsonify(list_deliveries(current_services(), g.principal, integration_id,
                                   access_record(), status=request.args.get("status"),
                                   limit=limit_param()))


@bp.post("/integrations/<integration_id>/deliveries/<delivery_id>/redeliver")
@endpoint("audit:admin", allow_session=False)
def integration_redeliver(integration_id: str, delivery_id: str):
    """Send a failed or dead delivery again, with a fresh retry schedule. 202."""
    from ..services.deliveries import redeliver

    _no_body()
    resp = jsonify(redeliver(current_services(), g.principal, integration_id, delivery_id))
    resp.status_code = 202
    return resp


# --- scheduled reports --------------------------------------------------------------------


@bp.post("/reports/schedules")
@endpoint("audit:admin", allow_session=False)
def report_schedule_create():
    """Schedule a report: body ``{name, cron, timezone, filters, format, recipients}``.
    Validated (cron, zone, format, addresses) and refused with the reason when reports
    cannot be mailed. 201 with the schedule and its ``next_run``."""
    body = parse_body(ReportScheduleIn)
    resp = jsonify(create_schedule(current_services(), g.principal, body))
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/reports/schedules/{resp.get_json()['id']}"
    return resp


@bp.get("/reports/schedules")
@endpoint("audit:export")
def report_schedules_index():
    """The tenant's report schedules, by name, with the state of their runs."""
    return jsonify(read_schedules(current_services(), g.principal, access_record()))


@bp.get("/reports/schedules/<schedule_id>")
@endpoint("audit:export")
def report_schedule_show(schedule_id: str):
    """One report schedule; another tenant's id answers 404."""
    return jsonify(read_schedule(current_services(), g.principal, schedule_id,
                                 access_record()))


@bp.delete("/reports/schedules/<schedule_id>")
@endpoint("audit:admin", allow_session=False)
def report_schedule_delete(schedule_id: str):
    """Delete a report schedule (no further report is sent). 204."""
    delete_schedule(current_services(), g.principal, schedule_id)
    return Response(status=204)


@bp.post("/reports/schedules/<schedule_id>/run")
@endpoint("audit:admin", allow_session=False)
def report_schedule_run(schedule_id: str):
    """Send a schedule's report now (its ``next_run`` stays): a worker writes and mails it.
    202 with the schedule; poll it for ``last_status``."""
    schedule = start_report_run(current_services(), g.principal, schedule_id)
    resp = jsonify(schedule)
    resp.status_code = 202
    resp.headers["Location"] = f"/api/v1/reports/schedules/{schedule['id']}"
    return resp


# --- tenant settings, summaries and explanations -------------------------------------------


@bp.get("/settings")
@endpoint("audit:read")
def settings_show():
    """The tenant's general settings (its time zone), each with its default and who set it
    when."""
    return jsonify(read_general_settings(current_services(), g.principal, access_record()))


@bp.put("/settings")
@endpoint("audit:admin", allow_session=False)
def settings_update():
    """Change general settings: body ``{"timezone": "Europe/Berlin"}`` (an IANA name).
    Settings not sent keep their value; a bad value changes nothing (422)."""
    body = parse_body(SettingsIn)
    values = body.model_dump(exclude_unset=True)
    if not values:
        raise ValidationFailed('body must set at least one setting, e.g. '
                               '{"timezone": "Europe/Berlin"}', {"settings": ["timezone"]})
    updated_by = f"{g.principal.kind}:{g.principal.id}"
    try:
        return jsonify(write_general_settings(current_services(), g.principal.tenant_id,
                                              values, updated_by))
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None


@bp.get("/summary/<period>")
@endpoint("audit:read", "date")
def summary_show(period: str):
    """The daily, weekly or monthly summary of the period containing ``date`` (YYYY-MM-DD,
    in the tenant's time zone; default: the last complete period): totals, change from the
    previous period, critical changes, anomalies, top actors, notable events and a cited
    narrative. Stored once the period is complete, so later reads are instant."""
    period = parse_period(period)
    day = parse_date(request.args.get("date"))
    return jsonify(read_summary(current_services(), g.principal, period, day,
                                access_record()))


@bp.get("/events/<event_id>/explain")
@endpoint("audit:read")
def event_explain(event_id: str):
    """One event explained: what happened, who, the actor's day before, related events on
    the same entity, insights and anomaly explanation, likely impact, a cited narrative."""
    return jsonify(explain_event(current_services(), g.principal, event_id, access_record()))


# --- retention and legal hold ---------------------------------------------------------------


@bp.get("/retention")
@endpoint("audit:read")
def retention_show():
    """The tenant's retention period, what was removed so far (and archived where), the
    active holds and what the next daily run may remove."""
    from ..services.retention import read_retention

    return jsonify(read_retention(current_services(), g.principal, access_record()))


@bp.put("/retention")
@endpoint("audit:admin", allow_session=False)
def retention_update():
    """Set the retention period: body ``{"days": 2557}`` (1–36500). Recorded in the access
    log with the value."""
    from ..schemas import RetentionIn
    from ..services.retention import write_retention_days

    body = parse_body(RetentionIn)
    return jsonify(write_retention_days(current_services(), g.principal, body.days,
                                        access_record(body.model_dump())))


@bp.get("/legal-holds")
@endpoint("audit:read", "active", "limit")
def legal_holds_index():
    """The tenant's legal holds, newest first; ``active=true|false`` filters."""
    from ..services.retention import list_holds

    active = bool_param("active") if "active" in request.args else None
    return jsonify(list_holds(current_services(), g.principal, access_record(), active=active,
                              limit=limit_param(default=100)))


@bp.post("/legal-holds")
@endpoint("audit:admin", allow_session=False)
def legal_hold_create():
    """Place a legal hold on the tenant (``{"scope": "tenant", "reason": …}``) or on one
    entity (``{"scope": "entity", "entity_type": …, "entity_id": …, "reason": …}``): 201.
    Retention then removes none of the held events nor anything after them."""
    from ..schemas import LegalHoldIn
    from ..services.retention import create_hold

    body = parse_body(LegalHoldIn)
    hold = create_hold(current_services(), g.principal, body.scope, body.entity_type,
                       body.entity_id, body.reason,
                       access_record(body.model_dump(exclude_none=True)))
    resp = jsonify(hold)
    resp.status_code = 201
    resp.headers["Location"] = f"/api/v1/legal-holds/{hold['id']}"
    return resp


@bp.post("/legal-holds/<hold_id>/release")
@endpoint("audit:admin", allow_session=False)
def legal_hold_release(hold_id: str):
    """Release an active hold: body ``{"reason": …}``; 404 unknown, 409 already released."""
    from ..schemas import HoldReleaseIn
    from ..services.retention import release_hold

    body = parse_body(HoldReleaseIn)
    return jsonify(release_hold(current_services(), g.principal, hold_id, body.reason,
                                access_record(body.model_dump())))
# --- GDPR erasure --------------------------------------------------------------------------


@bp.post("/subjects/<subject_id>/erase")
@endpoint("audit:admin", allow_session=False)
def subject_erase(subject_id: str):
    """Erase a data subject (an actor id, or the id of an entity of a person type): body
    ``{"reason": "..."}``. Destroys the subject's key, so the sensitive fields of its events
    read ``[erased]``; the events stay in the chain, which still verifies. Removes derived
    data (embeddings, full-text rows, insight texts, stored summaries, kept export files,
    cached search rankings). Idempotent; recorded. 404 when the tenant has no such subject."""
    body = parse_body(ErasureIn)
    return jsonify(erase_subject(current_services(), g.principal, subject_id, body.reason,
                                 access_record()))


# --- tenant deletion ---------------------------------------------------------------------


@bp.get("/tenant/deletion")
@endpoint("audit:admin")
def tenant_deletion_show():
    """The tenant's newest deletion request and its steps (``{"deletion": null}`` if none)."""
    from ..services.tenant_deletion import read_deletion

    return jsonify(read_deletion(current_services(), g.principal, access_record()))


@bp.post("/tenant/deletion")
@endpoint("audit:admin", allow_session=False)
def tenant_deletion_request():
    """Ask for the whole tenant to be deleted: body ``{"reason": …}``; 201. Another admin
    must confirm within ``TENANT_DELETION_CONFIRM_HOURS``; 409 when a request is open."""
    from ..schemas import TenantDeletionIn
    from ..services.tenant_deletion import request_deletion

    body = parse_body(TenantDeletionIn)
    found = request_deletion(current_services(), g.principal, body.reason,
                             access_record(body.model_dump()))
    resp = jsonify(found)
    resp.status_code = 201
    resp.headers["Location"] = "/api/v1/tenant/deletion"
    return resp


@bp.post("/tenant/deletion/confirm")
@endpoint("audit:admin", allow_session=False)
def tenant_deletion_confirm():
    """A second admin confirms: body ``{"deletion_id": …}``. The chain closes at once (no more
    events), the job archives it and marks the tenant deleted; 403 for the requester's own
    credential, 409 unless the request awaits confirmation."""
    from ..schemas import TenantDeletionConfirmIn
    from ..services.tenant_deletion import confirm_deletion

    body = parse_body(TenantDeletionConfirmIn)
    return jsonify(confirm_deletion(current_services(), g.principal, body.deletion_id,
                                    access_record(body.model_dump())))


@bp.post("/tenant/deletion/cancel")
@endpoint("audit:admin", allow_session=False)
def tenant_deletion_cancel():
    """Cancel a request not yet confirmed: body ``{"deletion_id": …, "reason": …}``."""
    from ..schemas import TenantDeletionCancelIn
    from ..services.tenant_deletion import cancel_deletion

    body = parse_body(TenantDeletionCancelIn)
    return jsonify(cancel_deletion(current_services(), g.principal, body.deletion_id,
                                   body.reason, access_record(body.model_dump())))
