"""Cursors of every paged list: opaque to clients, bound to the list and the filters that
produced them, so a cursor from another endpoint or filter set is refused, not answered
with a wrong or empty page."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import BadRequest

INT64_MAX = 2**63 - 1


def filters_digest(filters: dict[str, Any]) -> str:
    """A short digest of a list's filters (cursor and page size excluded by the caller)."""
    canonical = orjson.dumps(filters, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()[:16]


def encode_cursor(scope: str, filters: dict[str, Any], position: list[Any]) -> str:
    """The cursor after ``position`` in list ``scope`` filtered by ``filters``."""
    raw = orjson.dumps([scope, filters_digest(filters), *position])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, filters: dict[str, Any],
                  checks: tuple[Callable[[Any], Any], ...]) -> list[Any]:
    """The position a cursor names, each part converted by its check (which raises
    ``ValueError`` or ``TypeError`` on anything ``encode_cursor`` would not have written).
    400 for a malformed cursor, and for one from another list or filter set."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 + len(checks)
            and all(isinstance(part, str) for part in value[:2])):
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page")
    if value[0] != scope or value[1] != filters_digest(filters):
        raise BadRequest(
            "cursor belongs to another list or filter set; page with the same endpoint and "
            "filters that returned it"
        )
    try:
        return [check(part) for check, part in zip(checks, value[2:], strict=True)]
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("cursor is not valid; pass next_cursor from a previous page") from None


def seq_part(value: Any) -> int:
    """A non-negative 64-bit integer position (``seq``, a bigserial id)."""
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise ValueError("not a position")
    return value


def time_part(value: Any):
    """A timestamp with its offset, as ``format_ts`` writes it."""
    from datetime import datetime

    if not isinstance(value, str):
        raise ValueError("not a time")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("not a time")
    return moment


def uuid_part(value: Any):
    """A UUID position (ties broken by id)."""
    import uuid

    if not isinstance(value, str):
        raise ValueError("not an id")
    return uuid.UUID(value)
