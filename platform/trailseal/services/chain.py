"""The per-tenant SHA-256 hash chain: canonical records, hashing and verification.

Each event is stored with ``record``: the canonical JSON (sorted keys, UTF-8, no whitespace)
of all its fields — ciphertext, base64-encoded, for the encrypted ones — including its
``seq`` and ``previous_hash``. ``hash`` is SHA-256 of exactly those bytes, so anyone with
read access can verify the chain without keys. The other columns are a projection of the
record for indexing and filtering; verification checks that projection too, so a column
edited behind the record's back is caught like an edited record.

Format 2 (``"v": 2``) adds ``columns_hash``: SHA-256 (hex) of the projection string
followed by ``seq``, ``occurred_at`` and ``received_at`` as big-endian int64 (the timestamps
in PostgreSQL's binary form, µs since 2000-01-01 UTC). Verification computes the same digest
from the stored columns (PostgreSQL joins them into the projection string), so an intact row
is checked by comparing two hashes instead of decoding its record; any row where they differ
is decoded and checked field by field, which also covers format-1 records.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass
from typing import Any

import orjson

# The record format lives with the standalone verifier, so the two cannot drift; these
# names stay importable from here for the rest of the server.
from trailseal_verify.records import (  # noqa: F401
    FIELD_SEP,
    GENESIS_HASH,
    NULL_MARK,
    PG_EPOCH,
    TAG_SEP,
    columns_digest,
    format_ts,
    pack_seq_times,
    projection_of,
    record_hash,
    ts_micros,
)

from ..infra.copy_binary import CHAIN_RECORD_AT, chain_layout, encode_tuple, message_fields

CANONICAL_VERSION = 2
COLUMNS_HASH = "columns_hash"

# The projection of the record that the indexed columns hold, as one string. Text fields
# never contain the separators U+001C..U+001F (validation rejects them). The string is
# unambiguous against any edit of the columns: a NULL shows as U+001E and the number of
# NULLs among the nullable columns is part of it (so a NULL cannot turn into the text
# U+001E unseen), and the tags come with their count and NULL elements as U+001E (so tags
# cannot be merged, split or padded unseen).
# Timestamps travel separately as binary microseconds (formatting them costs the server
# more than everything else together).
PROJECTION_SQL = (
    "concat_ws(chr(31), id, tenant_id, event_type, actor_id, actor_type, "
    "coalesce(actor_role, chr(30)), coalesce(actor_department, chr(30)), entity_type, "
    "entity_id, severity, coalesce(source, chr(30)), cardinality(tags), "
    "array_to_string(tags, chr(29), chr(30)), key_id, coalesce(idempotency_key, chr(30)), "
    "num_nulls(actor_role, actor_department, source, idempotency_key), previous_hash)"
)
# What verification reads per row: seq, the stored hash, the record and the row's columns
# as the bytes ``columns_hash`` covers (the projection string in UTF-8, then seq,
# occurred_at and received_at as big-endian int64), so one hashlib call digests them.
# The digest is computed by the reader, not the server: PostgreSQL's built-in sha256()
# costs several times what hashlib costs.
VERIFY_COLUMNS = (
    f"seq, hash, record, convert_to({PROJECTION_SQL}, 'UTF8') || int8send(seq) "
    "|| timestamptz_send(occurred_at) || timestamptz_send(received_at)"
)
VERIFY_FROM = "audit_logs"
_sha256 = hashlib.sha256
_UNPACK3 = struct.Struct(">qqq").unpack_from
_INT8 = struct.Struct(">q").pack
_COLUMNS_HASH_AT = b'"columns_hash":"'
_FIELD_SEP_B = FIELD_SEP.encode()
# In a row's column bytes: the separator and previous_hash that end the projection string,
# then seq, occurred_at and received_at (3 × int64).
_LINK_FROM, _LINK_TO = -(1 + 64 + 24), -24








def split_columns(columns: bytes) -> tuple[bytes, int | None, int | None]:
    """A verification row's column bytes as (projection string in UTF-8, occurred_at µs,
    received_at µs); the timestamps are None when the bytes are too short to hold them."""
    if len(columns) < 24:
        return columns, None, None
    _, occurred_us, received_us = _UNPACK3(columns, len(columns) - 24)
    return columns[:-24], occurred_us, received_us


def _int8(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big", signed=True) if raw else 0


def row_from_fields(fields: list[bytes | None]) -> tuple:
    """One verification tuple's raw fields as a ``ChainWalker`` row, whatever they hold (a
    tampered row may carry NULLs or odd sizes; the walker then reports it)."""
    f = (fields + [None] * 4)[:4]
    return (_int8(f[0]), "" if f[1] is None else f[1].decode("utf-8", "replace"),
            f[2] or b"", f[3] or b"")






@dataclass
class ChainReport:
    """Result of walking one tenant's chain."""

    tenant_id: str
    intact: bool
    events_checked: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    broken_event_id: str | None = None
    reason: str | None = None  # modified | missing | reordered | inserted | rewritten
    #                            | forged_checkpoint
    detail: str | None = None
    checkpoints_checked: int = 0  # signed checkpoints the log was found to match

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _event_id(row: tuple) -> str | None:
    """The event id of a verification row (or of its COPY message): the one its record
    names, else its id column."""
    if isinstance(row, bytes):
        row = row_from_fields(message_fields(row) or [])
    try:
        event_id = orjson.loads(row[2])["id"]
        if isinstance(event_id, str):
            return event_id
    except (orjson.JSONDecodeError, KeyError, TypeError, IndexError):
        pass
    try:
        return split_columns(row[3])[0].split(_FIELD_SEP_B, 1)[0].decode("utf-8", "replace") or None
    except (AttributeError, IndexError, TypeError):
        return None


def seq_runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as runs of consecutive ones, ``(first, last)`` each."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


class NoLookup:
    """The lookups of a ``ChainWalker`` that only needs to know whether its range is intact
    (it names no event beyond the range)."""

    def by_hash(self, h):
        return None

    def by_previous_hash(self, h):
        return None

    def id_at(self, seq):
        return None


class ChainWalker:
    """Checks rows (laid out as ``VERIFY_COLUMNS``) in ``seq`` order and stops at the first
    break.

    ``lookup`` answers questions about the stored log, asked only once a break is found:
    ``by_hash(h)`` and ``by_previous_hash(h)`` return ``(seq, id)`` or None, ``id_at(seq)``
    the id stored at ``seq`` or None.
    """

    def __init__(self, tenant_id: str, head_seq: int, head_hash: str, lookup, *, fast: bool = True):
        self.fast = fast  # False: decode every record (tests compare the two paths)
        self.tenant_id = tenant_id
        self.head_seq = head_seq
        self.head_hash = head_hash
        self.lookup = lookup
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.prev_row: tuple | None = None
        self.checked = 0
        self.broken: tuple[int, str | None, str, str] | None = None  # seq, id, reason, detail
        self._last_received: tuple[str, int] = ("", 0)
        self.first_link: str | None = None  # see the prev_hash setter

    def feed(self, row: tuple) -> bool:
        """Check the next row; return False once the chain is found broken.

        A row is ``(seq, hash, record, columns)``: the stored hash, the record's bytes and
        the row's column bytes (see ``VERIFY_COLUMNS``).

        Fast path (format 2): the row's seq is the next one, its record hashes to its
        ``hash``, its ``previous_hash`` column is the previous row's hash and its record
        holds the ``columns_hash`` computed here from its columns. A canonical record holds
        the key once, so the columns are the ones the record was written with, seq and
        previous_hash included. Anything else is decided by ``check``."""
        seq, stored_hash, record, columns = row
        if self.fast and isinstance(seq, int) and isinstance(stored_hash, str):
            verdict = self.feed_message(encode_tuple(
                [_INT8(seq), stored_hash.encode("utf-8", "surrogatepass"), record, columns]))
            if verdict is not None:
                return verdict
        return self.check(row)

    def feed_message(self, msg: bytes | memoryview) -> bool | None:
        """``feed`` for a binary COPY data message holding one row of ``VERIFY_COLUMNS``,
        read in place (the hot path of verification; ``feed`` comes here too); None when
        the message is not one tuple of that layout (the caller then decodes it and calls
        ``feed``)."""
        got = chain_layout(msg, 0, len(msg))
        if got is None or got[3] != len(msg):
            return None
        seq, stored, end, _ = got
        msg = bytes(msg)
        view = memoryview(msg)
        actual = _sha256(view[CHAIN_RECORD_AT:end]).hexdigest()
        if (self.fast and seq == self.expected_seq and seq <= self.head_seq
                and len(msg) - end - 4 >= -_LINK_FROM
                and msg[_LINK_FROM:_LINK_TO] == self._prev_tail and actual.encode() == stored
                and msg.find(b'%s%s"' % (_COLUMNS_HASH_AT, _sha256(view[end + 4:]).hexdigest()
                                         .encode()), CHAIN_RECORD_AT, end) >= 0):
            self._prev_hash = actual  # _advance, inlined on the hot path
            self._prev_tail = _FIELD_SEP_B + stored
            self.prev_row = msg  # decoded when a report needs it
            self.expected_seq += 1
            self.checked += 1
            return True
        return self.check(row_from_fields(message_fields(msg)), actual)

    def _advance(self, row: tuple, stored_hash: str) -> None:
        self._prev_hash = stored_hash
        self._prev_tail = _FIELD_SEP_B + stored_hash.encode()
        self.prev_row = row
        self.expected_seq += 1
        self.checked += 1

    @property
    def prev_hash(self) -> str:
        """The hash the next row must link to."""
        return self._prev_hash

    @prev_hash.setter
    def prev_hash(self, value: str | None) -> None:
        """None: start mid-chain, taking the first row's link on trust (it is kept in
        ``first_link`` for the caller to check against the row before)."""
        self._prev_hash = value
        self._prev_tail = None if value is None else _FIELD_SEP_B + value.encode()

    def check(self, row: tuple, actual_hash: str | None = None) -> bool:
        """The full check of a row: decode the record and compare it field by field.
        ``actual_hash``: the record's SHA-256 when the caller has computed it already."""
        seq, stored_hash, record, columns = row
        projection, occurred_us, received_us = split_columns(columns)
        if seq != self.expected_seq or seq > self.head_seq:
            return self._seq_break(row)
        if (actual_hash or _sha256(record).hexdigest()) != stored_hash:
            return self._break(seq, row, "modified",
                               f"the stored hash of event seq {seq} does not match its record")
        try:
            rec = orjson.loads(record)
            if rec["seq"] != seq:
                return self._moved(row, rec["seq"])
            received = rec["received_at"]
            if received != self._last_received[0]:  # a batch shares one received_at
                self._last_received = (received, ts_micros(received))
            consistent = (received_us == self._last_received[1]
                          and projection_of(rec).encode() == projection
                          and occurred_us == ts_micros(rec["occurred_at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return self._break(seq, row, "modified",
                               f"the record of event seq {seq} is not a valid event record")
        if not consistent:
            return self._break(seq, row, "modified",
                               f"the stored columns of event seq {seq} differ from its hashed record")
        if self._prev_hash is None:  # the first row of a range: its caller checks the link
            self.first_link = self._prev_hash = rec["previous_hash"]
        if rec["previous_hash"] != self.prev_hash:
            # Consistent with itself but not linked to its predecessor: the predecessor was
            # rewritten and re-hashed (nothing stored has the hash this row links to), or
            # this row was placed here.
            if self.prev_row is not None and self.lookup.by_hash(rec["previous_hash"]) is None:
                return self._break(
                    seq - 1, self.prev_row, "modified",
                    f"event seq {seq - 1} was rewritten: its successor links to a hash "
                    f"({rec['previous_hash'][:16]}…) that no stored event has",
                )
            return self._break(seq, row, "inserted",
                               f"event seq {seq} links to {rec['previous_hash'][:16]}…, "
                               "not to the event before it")
        self._advance(row, stored_hash)
        return True

    def _seq_break(self, row: tuple) -> bool:
        seq = row[0]
        if seq > self.head_seq:
            return self._break(seq, row, "inserted",
                               f"event seq {seq} lies past the recorded chain head "
                               f"(seq {self.head_seq})")
        if seq > self.expected_seq:
            return self._break(self.expected_seq, row, "missing",
                               f"events {self.expected_seq}..{seq - 1} are missing before "
                               f"event {_event_id(row)} (seq {seq})")
        return self._break(seq, row, "inserted", f"a second event claims seq {seq}")

    def _moved(self, row: tuple, original: int) -> bool:
        """The row sits at another seq than the one it was hashed with."""
        seq = row[0]
        if original < seq:
            first = self.lookup.id_at(original)
            return self._break(
                original, None, "inserted",
                f"event {_event_id(row)} was hashed at seq {original} but sits at seq {seq}: "
                f"{seq - original} event(s) were inserted before it",
                event_id=str(first) if first else _event_id(row),
            )
        if self.lookup.by_previous_hash(self.prev_hash) is not None:
            return self._break(seq, row, "reordered",
                               f"event {_event_id(row)} was hashed at seq {original} "
                               f"but sits at seq {seq}")
        return self._break(seq, row, "missing",
                           f"events {seq}..{original - 1} were removed and later events renumbered")

    def _break(self, seq: int, row: tuple | None, reason: str, detail: str,
               event_id: str | None = None) -> bool:
        if event_id is None and row is not None:
            event_id = _event_id(row)
        self.broken = (seq, event_id, reason, detail)
        return False

    def finish(self) -> ChainReport:
        """Compare the walk's end with the recorded chain head and build the report."""
        report = ChainReport(
            tenant_id=self.tenant_id, intact=True, events_checked=self.checked,
            head_seq=self.head_seq, head_hash=self.head_hash,
        )
        if self.broken is None:
            last_seq = self.expected_seq - 1
            if last_seq < self.head_seq:
                self.broken = (
                    last_seq + 1, None, "missing",
                    f"the chain head records seq {self.head_seq}, the log ends at seq {last_seq}",
                )
            elif self.prev_hash != self.head_hash:
                self.broken = (
                    last_seq, _event_id(self.prev_row) if self.prev_row else None, "modified",
                    "the last event's hash differs from the one recorded in the chain head",
                )
        if self.broken is not None:
            report.intact = False
            report.broken_seq, report.broken_event_id, report.reason, report.detail = self.broken
        return report
