"""Parsing request bodies and query strings into schema objects, with clear 4xx errors."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import current_app, request
from pydantic import BaseModel, ValidationError

from ..auth import require
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ..schemas import json_depth
from ..services.access import AccessRecord

REPEATABLE = {"event_type", "severity", "tag"}
LONG_NUMBER = re.compile(rb"\d{19,}")
INT64 = (-(2**63), 2**63 - 1)


def _check_integer_range(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not INT64[0] <= item <= INT64[1]:
            raise ValidationFailed("integers must fit in 64 bits (−2^63 … 2^63−1)",
                                   {"value": str(item)})
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_body() -> Any:
    """The request's JSON body: 415 for another content type, 413 when too large,
    400 when malformed or nested too deeply."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {request.content_type or 'none'!r}"
        )
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if LONG_NUMBER.search(raw):
        # orjson turns integers beyond 64 bits into floats; re-read exactly and refuse them
        # rather than store a different number than was sent.
        _check_integer_range(json.loads(raw))
    max_depth = current_app.config["MAX_JSON_DEPTH"]
    if json_depth(body, max_depth) > max_depth:
        raise BadRequest(f"JSON nested deeper than {max_depth} levels")
    return body


def pydantic_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def endpoint(permission: str, *params: str, allow_session: bool = True) -> Callable:
    """Decorator of every authenticated API view: the caller must hold ``permission``
    (``auth.require``), and query parameters other than ``params`` are refused with 422
    before the view runs, so nothing unexpected reaches it or the access log."""
    accepted = frozenset(params)

    def wrap(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            check_query_params(accepted)
            return view(*args, **kwargs)

        checked.accepted_params = accepted
        return require(permission, allow_session=allow_session)(checked)

    return wrap


def check_query_params(accepted: Iterable[str]) -> None:
    """422 naming every query parameter outside ``accepted``."""
    accepted = frozenset(accepted)
    unknown = sorted(set(request.args) - accepted)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:10])
        raise ValidationFailed(
            f"unknown query parameter(s): {shown}"
            + (f"; this endpoint accepts: {', '.join(sorted(accepted))}" if accepted
               else "; this endpoint takes no query parameters"),
            {"unknown": [name[:40] for name in unknown[:10]], "accepted": sorted(accepted)},
        )


def reject_control_characters() -> None:
    """``before_request`` of the API: 400 for a NUL or another C0 control character in the
    path or the query string. No endpoint has a use for them, PostgreSQL text cannot hold
    NUL, and the access log must not record them."""
    if request.path.startswith("/api/"):
        check_control_characters()


def check_control_characters() -> None:
    """400 for a control character in this request's path or query string."""
    if _has_control(request.path):
        raise BadRequest("the URL path contains a control character")
    for key, value in request.args.items(multi=True):
        if _has_control(key) or _has_control(value):
            raise BadRequest(f"query parameter {key[:40]!r} contains a control character")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def limit_param(default: int = 50, maximum: int = 500) -> int:
    """The ``limit`` query parameter: ASCII digits from 1 to ``maximum`` (422 otherwise)."""
    raw = request.args.get("limit", str(default))
    # str.isdigit() is true for "²" and other digits int() refuses: match ASCII only.
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not 1 <= int(raw) <= maximum:
        raise ValidationFailed(f"limit must be an integer from 1 to {maximum}")
    return int(raw)


TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def bool_param(name: str, default: bool = False) -> bool:
    """A boolean query parameter: true/false, 1/0, yes/no or on/off, any case (422 else)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValidationFailed(f"{name} must be true or false (also 1/0, yes/no, on/off)")


def parse_query(model: type[BaseModel]) -> BaseModel:
    """Validate the query string against ``model`` (repeatable keys become lists)."""
    # Views declare their parameters with ``endpoint``, which refused any other already.
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        data[key] = values if key in REPEATABLE else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = pydantic_errors(exc)
        first = errors[0]
        raise ValidationFailed(
            f"invalid query parameter {'.'.join(str(p) for p in first['loc'])}: {first['msg']}",
            {"errors": errors},
        ) from None


def parse_body(model: type[BaseModel]) -> BaseModel:
    """The request's JSON body (``json_body``) validated against ``model``: 422 naming the
    first problem, with every one in ``details.errors``."""
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = pydantic_errors(exc)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(
            f"invalid body{' at ' + where if where else ''}: {first['msg']}",
            {"errors": errors},
        ) from None


LOG_VALUE_MAX = 256  # characters of one query value kept in the access log
LOG_VALUES_MAX = 20  # values of a repeatable parameter kept in the access log
LOG_PATH_MAX = 512  # characters of the path kept in the access log


def _clip(text: str) -> str:
    return text if len(text) <= LOG_VALUE_MAX else text[:LOG_VALUE_MAX] + "…"


def query_for_log() -> dict[str, Any]:
    """The query string as recorded in the access log, capped (the log is append-only, so a
    crafted request must not be able to make one record large)."""
    logged: dict[str, Any] = {}
    for key in list(request.args)[:LOG_VALUES_MAX]:
        if key in REPEATABLE:
            values = request.args.getlist(key)
            logged[_clip(key)] = [_clip(v) for v in values[:LOG_VALUES_MAX]]
            if len(values) > LOG_VALUES_MAX:
                logged[_clip(key)].append(f"… {len(values) - LOG_VALUES_MAX} more")
        else:
            logged[_clip(key)] = _clip(request.args.get(key, ""))
    return logged


def path_for_log() -> str:
    """The request path as recorded in the access log, capped."""
    path = request.path
    return path if len(path) <= LOG_PATH_MAX else path[:LOG_PATH_MAX] + "…"


def body_for_log(values: dict[str, Any]) -> dict[str, Any]:
    """Request-body parameters (an export's filters) as the access log records them, capped
    like a query string."""
    logged: dict[str, Any] = {}
    for key, value in list(values.items())[:LOG_VALUES_MAX]:
        if isinstance(value, list):
            kept = [_clip(str(v)) for v in value[:LOG_VALUES_MAX]]
            if len(value) > LOG_VALUES_MAX:
                kept.append(f"… {len(value) - LOG_VALUES_MAX} more")
            logged[_clip(key)] = kept
        else:
            logged[_clip(key)] = _clip(str(value))
    return logged


def access_record(body: dict[str, Any] | None = None) -> AccessRecord:
    """This request as the access log records it (path, method, query, caller's address);
    ``body``: parameters sent in the body instead of the query string (an export's filters),
    recorded with the query."""
    query = query_for_log()
    if body is not None:
        query = {**query, **body_for_log(body)}
    return AccessRecord(endpoint=path_for_log(), method=request.method, query=query,
                        remote_addr=request.remote_addr)


def _clip_json(value: Any, depth: int = 0) -> Any:
    """A JSON value with every string clipped and every list or object capped."""
    if isinstance(value, str):
        return _clip(value)
    if depth > 4:
        return "…"
    if isinstance(value, list):
        return [_clip_json(v, depth + 1) for v in value[:LOG_VALUES_MAX]]
    if isinstance(value, dict):
        return {_clip(str(k)): _clip_json(v, depth + 1)
                for k, v in list(value.items())[:LOG_VALUES_MAX]}
    return value


def body_access_record(body: dict[str, Any]) -> AccessRecord:
    """A read whose parameters come in a JSON body (``POST /search``) as the access log
    records it: the validated body in place of the query string, capped the same way."""
    return AccessRecord(endpoint=path_for_log(), method=request.method,
                        query=_clip_json(body), remote_addr=request.remote_addr)
