"""Parsing request bodies and query strings into schema objects, with clear 4xx errors."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from flask import current_app, request
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ..schemas import json_depth

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


def parse_query(model: type[BaseModel]) -> BaseModel:
    """Validate the query string against ``model`` (repeatable keys become lists)."""
    data: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if any("\x00" in v for v in values):
            raise ValidationFailed(f"query parameter {key!r} contains a NUL character")
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


def query_for_log() -> dict[str, Any]:
    """The query string as recorded in the access log."""
    return {key: request.args.getlist(key) if key in REPEATABLE else request.args.get(key)
            for key in request.args}
