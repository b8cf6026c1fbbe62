"""REST API v1 endpoints. The ledger is append-only: there are no update or delete routes."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import orjson
import redis
from flask import Blueprint, current_app, g, jsonify, request

from ..errors import BadRequest, NotFound, ValidationFailed
from ..schemas import EventQuery
from ..services import stats as stats_service
from ..services.access import list_access, record_access
from ..services.alerts import list_alerts, set_alert_status
from ..services.events import get_event, list_events
from ..services.ingest import append_events, request_fingerprint, validate_events
from ..services.integrity import verify_chain
from .requests import (
    bool_param,
    endpoint,
    json_body,
    limit_param,
    parse_query,
    path_for_log,
    query_for_log,
)

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
IDEMPOTENCY_KEY_MAX = 200


def _svc():
    return current_app.extensions["trailseal"]


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


@contextmanager
def audited():
    """A tenant transaction whose first statement records this read in the access log.

    A read that finds nothing (404) is still recorded: probing for ids is worth auditing.
    """
    not_found = None
    with _svc().db.cursor(g.principal.tenant_id) as cur:
        record_access(
            cur, g.principal, endpoint=path_for_log(), method=request.method,
            query=query_for_log(), remote_addr=request.remote_addr,
        )
        try:
            yield cur
        except NotFound as exc:
            not_found = exc  # leave the block normally so the access record commits
    if not_found is not None:
        raise not_found


@bp.post("/events")
@endpoint("audit:write", allow_session=False)
def create_event():
    """Append one event. 201 `{id, seq, hash}`."""
    body = json_body()
    events = validate_events([body])
    key = _idempotency_key()
    result = append_events(
        _svc(), g.principal.tenant_id, events, idempotency_key=key,
        request_hash=request_fingerprint(body) if key else None,
    )
    resp = jsonify({"id": result.ids[0], "seq": result.seqs[0], "hash": result.hashes[0]})
    resp.status_code = 201
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


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
    events = validate_events(raw)
    key = _idempotency_key()
    result = append_events(
        _svc(), g.principal.tenant_id, events, idempotency_key=key,
        request_hash=request_fingerprint(body) if key else None,
    )
    resp = jsonify({"ids": result.ids, "first_seq": result.first_seq, "last_seq": result.last_seq})
    resp.status_code = 201
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


@bp.get("/events")
@endpoint("audit:read", *EventQuery.model_fields)
def events_index():
    """Filtered, paginated events, newest first."""
    q = parse_query(EventQuery)
    with audited() as cur:
        return jsonify(list_events(_svc(), cur, g.principal.tenant_id, q,
                                   max_bytes=_page_bytes()))


@bp.get("/events/<event_id>")
@endpoint("audit:read")
def event_show(event_id: str):
    """One event; another tenant's id answers 404."""
    with audited() as cur:
        return jsonify(get_event(_svc(), cur, g.principal.tenant_id, event_id))


@bp.get("/timeline")
@endpoint("audit:read", *EventQuery.model_fields)
def timeline():
    """Events oldest first, with AI insights when present."""
    q = parse_query(EventQuery)
    with audited() as cur:
        return jsonify(list_events(_svc(), cur, g.principal.tenant_id, q, chronological=True,
                                   max_bytes=_page_bytes()))


@bp.get("/dashboard/stats")
@endpoint("audit:read", "as_of")
def dashboard_stats():
    """Counts for 24h/7d/30d, top actors and event types, category and severity breakdowns."""
    svc = _svc()
    as_of_raw = request.args.get("as_of")
    as_of = _as_of(as_of_raw) if as_of_raw else None
    cache_key = f"trailseal:stats:{g.principal.tenant_id}"
    with audited() as cur:
        if as_of is None:
            cached = _cache_get(svc, cache_key)
            if cached is not None:
                data = orjson.loads(cached)
                data["cached"] = True
                return jsonify(data)
        data = stats_service.compute_stats(cur, g.principal.tenant_id, as_of or datetime.now(UTC))
    if as_of is None:
        _cache_set(svc, cache_key, orjson.dumps(data), int(svc.config["STATS_CACHE_SECONDS"]))
    data["cached"] = False
    return jsonify(data)


def _cache_get(svc, key: str) -> bytes | None:
    try:
        return svc.redis.get(key)
    except redis.RedisError:
        return None  # the cache is an optimisation: compute instead


def _cache_set(svc, key: str, value: bytes, ttl: int) -> None:
    try:
        svc.redis.set(key, value, ex=ttl)
    except redis.RedisError:
        pass


@bp.get("/chain/verify")
@endpoint("audit:read", "full")
def chain_verify():
    """Walk the tenant's chain and name the first broken event (``full=true``: decode every
    record instead of trusting matching ``columns_hash`` values)."""
    full = bool_param("full")
    with audited():
        pass
    report = verify_chain(_svc(), g.principal.tenant_id, full=full)
    return jsonify(report.to_dict())


@bp.get("/alerts")
@endpoint("audit:read", "limit", "status", "cursor")
def alerts_index():
    """Alerts (chain breaks, anomalies), newest first, one page at a time; ``status``
    filters."""
    limit = limit_param()
    with audited() as cur:
        return jsonify(list_alerts(cur, limit, request.args.get("status"),
                                   request.args.get("cursor")))


@bp.patch("/alerts/<alert_id>")
@endpoint("audit:admin", allow_session=False)
def alert_update(alert_id: str):
    """Acknowledge or resolve an alert: body ``{"status": "acknowledged"|"resolved"|"open"}``."""
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"status"}:
        raise ValidationFailed('body must be {"status": "open"|"acknowledged"|"resolved"}')
    with _svc().db.cursor(g.principal.tenant_id) as cur:
        changed_by = f"{g.principal.kind}:{g.principal.id}"
        return jsonify(set_alert_status(cur, alert_id, body["status"], changed_by))


@bp.get("/access-log")
@endpoint("audit:admin", "limit", "cursor")
def access_log_index():
    """Who read the trail: access records, newest first, one page at a time (this read is
    recorded too)."""
    limit = limit_param()
    with audited() as cur:
        return jsonify(list_access(cur, limit, request.args.get("cursor")))


def _page_bytes() -> int:
    return int(_svc().config["PAGE_MAX_BYTES"])


def _as_of(raw: str) -> datetime:
    """``as_of``: an RFC 3339 timestamp between 1970 and 9998 (the windows reach 30 days
    back from it, so the far ends of the calendar cannot be computed)."""
    try:
        as_of = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValidationFailed("as_of must be an RFC 3339 timestamp") from None
    if as_of.tzinfo is None:
        raise ValidationFailed("as_of needs a UTC offset")
    try:
        as_of = as_of.astimezone(UTC)
    except OverflowError:
        as_of = None
    if as_of is None or not 1970 <= as_of.year <= 9998:
        raise ValidationFailed("as_of must fall between 1970 and 9998")
    return as_of
