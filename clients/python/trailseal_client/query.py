"""Query strings for the API: RFC 3339 timestamps, repeated parameters, exact encoding."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

Pairs = list[tuple[str, str]]


def format_timestamp(value: datetime | str) -> str:
    """An RFC 3339 timestamp with its UTC offset, e.g. ``2026-11-20T11:00:00+01:00``.

    A naive datetime is refused: the trail is in absolute time and guessing the zone would
    silently shift a query by hours. Strings are passed on as given.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or an RFC 3339 string, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{value!r} has no time zone; use e.g. datetime.now(timezone.utc)")
    if offset % timedelta(minutes=1):
        # RFC 3339 offsets are whole minutes (some historical zones are not).
        value = value.astimezone(timezone.utc)
    return value.isoformat()


def add(pairs: Pairs, name: str, value: object) -> None:
    """Append ``name=value`` unless value is None; a list (or tuple, set) repeats the name."""
    if value is None:
        return
    if isinstance(value, (str, int, datetime)):
        values: Iterable[object] = [value]
    elif isinstance(value, Iterable):
        values = value
    else:
        raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}")
    for item in values:
        if isinstance(item, datetime):
            pairs.append((name, format_timestamp(item)))
        elif isinstance(item, bool):
            pairs.append((name, "true" if item else "false"))
        elif isinstance(item, (str, int)):
            pairs.append((name, str(item)))
        else:
            raise TypeError(f"{name} values must be strings, got {type(item).__name__}")


def encode(pairs: Pairs) -> str:
    """Percent-encode every reserved character: a ``+`` in an offset becomes ``%2B``
    (left bare, the server would read it as a space)."""
    return urlencode(pairs, quote_via=quote, safe="")
