"""The chain's record format: what an event's chain hash covers and how a record links to
the one before it. Shared by the server (``trailseal.services.chain``) and the verifier.

An event's chain hash is SHA-256 (hex) of its ``record``: the canonical JSON (sorted keys,
UTF-8, no whitespace) of all its fields, ciphertext (base64) for the encrypted ones, with
its ``seq`` and ``previous_hash`` (the chain hash of the event before it; 64 zeros for the
first). Format 2 records also hold ``columns_hash``: SHA-256 (hex) of the projection string
of the indexed columns, then seq, occurred_at and received_at as big-endian int64 (the
times in µs since 2000-01-01 UTC).
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
NULL_MARK = "\x1e"  # stands for NULL in the projection string
FIELD_SEP = "\x1f"
TAG_SEP = "\x1d"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # binary timestamptz counts µs from here
_ONE_US = timedelta(microseconds=1)
_NAIVE_EPOCH = datetime(2000, 1, 1)
pack_seq_times = struct.Struct(">qqq").pack

# The stored columns of an event, each a copy of the record's field of the same name.
COLUMNS = ("id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
           "actor_type", "actor_role", "actor_department", "entity_type", "entity_id",
           "severity", "source", "tags", "key_id", "idempotency_key", "previous_hash")


def record_hash(record: bytes) -> str:
    """An event's chain hash: SHA-256 (hex) of its canonical record."""
    return hashlib.sha256(record).hexdigest()


def format_ts(value: datetime) -> str:
    """Canonical timestamp: UTC, microseconds, ``Z`` suffix."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def ts_micros(text: str) -> int:
    """A canonical timestamp as PostgreSQL's binary form: microseconds since 2000-01-01 UTC."""
    if len(text) == 27 and text[26] == "Z":  # the canonical form: skip the time zone maths
        try:
            d = datetime.fromisoformat(text[:26]) - _NAIVE_EPOCH
            return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
        except (TypeError, ValueError):
            pass
    return (datetime.fromisoformat(text) - PG_EPOCH) // _ONE_US


def projection_of(rec: dict[str, Any]) -> str:
    """The projection string of the indexed columns, computed from a decoded record (the
    server's ``PROJECTION_SQL`` computes the same from the stored columns)."""
    tags = rec["tags"]
    role, dept, source, ikey = (rec["actor_role"], rec["actor_department"], rec["source"],
                                rec["idempotency_key"])
    return FIELD_SEP.join((
        rec["id"], rec["tenant_id"], rec["event_type"], rec["actor_id"], rec["actor_type"],
        NULL_MARK if role is None else role, NULL_MARK if dept is None else dept,
        rec["entity_type"], rec["entity_id"], rec["severity"],
        NULL_MARK if source is None else source, str(len(tags)), TAG_SEP.join(tags),
        rec["key_id"], NULL_MARK if ikey is None else ikey,
        str((role is None) + (dept is None) + (source is None) + (ikey is None)),
        rec["previous_hash"],
    ))


def columns_digest(projection: str | bytes, seq: int, occurred_us: int, received_us: int) -> str:
    """The ``columns_hash`` of a row from its projection string (str, or its UTF-8 bytes)
    and its binary seq and timestamps."""
    if isinstance(projection, str):
        projection = projection.encode()
    return hashlib.sha256(projection + pack_seq_times(seq, occurred_us, received_us)).hexdigest()


def record_columns_hash(rec: dict[str, Any]) -> str:
    """The ``columns_hash`` a format-2 record must hold, computed from its own fields."""
    return columns_digest(projection_of(rec), rec["seq"], ts_micros(rec["occurred_at"]),
                          ts_micros(rec["received_at"]))
