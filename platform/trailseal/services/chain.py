"""The per-tenant SHA-256 hash chain: canonical records, hashing and verification.

The hash of an event is SHA-256 over the canonical JSON (sorted keys, UTF-8, no whitespace)
of its stored fields — ciphertext, base64-encoded, for the encrypted ones — together with its
``seq`` and ``previous_hash``. Anyone with read access can verify the chain without keys.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
CANONICAL_VERSION = 1

# Column order used by every query that feeds the chain.
CHAIN_COLUMNS = (
    "id", "tenant_id", "seq", "occurred_at", "received_at", "event_type", "actor_id",
    "actor_type", "actor_role", "actor_department", "entity_type", "entity_id", "severity",
    "source", "tags", "ip_address", "user_agent", "action_details", "key_id",
    "idempotency_key", "previous_hash", "hash",
)


def format_ts(value: datetime) -> str:
    """Canonical timestamp: UTC, microseconds, ``Z`` suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode("ascii")


def canonical_bytes(row: tuple) -> bytes:
    """Canonical JSON of a row laid out as ``CHAIN_COLUMNS`` (the trailing hash is ignored)."""
    return orjson.dumps(
        {
            "v": CANONICAL_VERSION,
            "id": str(row[0]),
            "tenant_id": str(row[1]),
            "seq": row[2],
            "occurred_at": format_ts(row[3]),
            "received_at": format_ts(row[4]),
            "event_type": row[5],
            "actor_id": row[6],
            "actor_type": row[7],
            "actor_role": row[8],
            "actor_department": row[9],
            "entity_type": row[10],
            "entity_id": row[11],
            "severity": row[12],
            "source": row[13],
            "tags": list(row[14] or ()),
            "ip_address": _b64(row[15]),
            "user_agent": _b64(row[16]),
            "action_details": _b64(row[17]),
            "key_id": row[18],
            "idempotency_key": row[19],
            "previous_hash": row[20],
        },
        option=orjson.OPT_SORT_KEYS,
    )


def event_hash(row: tuple) -> str:
    """SHA-256 (hex) of the canonical form of ``row``."""
    return hashlib.sha256(canonical_bytes(row)).hexdigest()


def _with_seq(row: tuple, seq: int) -> tuple:
    return row[:2] + (seq,) + row[3:]


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
    reason: str | None = None  # modified | missing | reordered | inserted
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChainWalker:
    """Checks rows in ``seq`` order, one at a time, and stops at the first break.

    ``lookup`` answers three questions about the stored log, asked only once a break is
    found (to tell an edit from a reordering, an insertion or a removal):
    ``by_hash(h)`` and ``by_previous_hash(h)`` return ``(seq, id)`` or None, ``id_at(seq)``
    returns the id stored at ``seq`` or None.
    """

    def __init__(self, tenant_id: str, head_seq: int, head_hash: str, lookup):
        self.tenant_id = tenant_id
        self.head_seq = head_seq
        self.head_hash = head_hash
        self.lookup = lookup
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.prev_row: tuple | None = None
        self.checked = 0
        self.broken: tuple[int, str | None, str, str] | None = None  # seq, id, reason, detail

    def feed(self, row: tuple) -> bool:
        """Check the next row; return False once the chain is found broken."""
        seq, event_id, stored_hash = row[2], str(row[0]), row[21]
        if seq > self.head_seq:
            return self._break(
                seq, event_id, "inserted",
                f"event {event_id} has seq {seq}, past the recorded chain head (seq {self.head_seq})",
            )
        if seq > self.expected_seq:
            return self._break(
                self.expected_seq, event_id, "missing",
                f"events {self.expected_seq}..{seq - 1} are missing before event {event_id} (seq {seq})",
            )
        if seq < self.expected_seq:
            return self._break(seq, event_id, "inserted", f"a second event claims seq {seq}")
        if event_hash(row) != stored_hash:
            return self._classify_mismatch(row)
        if row[20] != self.prev_hash:
            # Consistent with itself but not linked to its predecessor: the predecessor was
            # rewritten and re-hashed (nothing stored has the hash this row links to), or
            # this row was placed here.
            if self.prev_row is not None and self.lookup.by_hash(row[20]) is None:
                return self._break(
                    seq - 1, str(self.prev_row[0]), "modified",
                    f"event seq {seq - 1} was rewritten: its successor links to a hash "
                    f"({row[20][:16]}…) that no stored event has",
                )
            return self._break(
                seq, event_id, "inserted",
                f"event seq {seq} links to {row[20][:16]}…, not to the event before it",
            )
        self.prev_hash = stored_hash
        self.prev_row = row
        self.expected_seq += 1
        self.checked += 1
        return True

    def _original_seq(self, row: tuple) -> int | None:
        """The seq this row was hashed with, when it differs from its current one."""
        seq = row[2]
        candidates: list[int] = []
        if row[20] == GENESIS_HASH:
            candidates.append(1)
        else:
            pred = self.lookup.by_hash(row[20])
            if pred is not None:
                candidates.append(pred[0] + 1)
        succ = self.lookup.by_previous_hash(row[21])
        if succ is not None:
            candidates.append(succ[0] - 1)
        candidates += [seq - 1, seq + 1]
        for cand in candidates:
            if cand > 0 and cand != seq and event_hash(_with_seq(row, cand)) == row[21]:
                return cand
        return None

    def _classify_mismatch(self, row: tuple) -> bool:
        seq, event_id = row[2], str(row[0])
        original = self._original_seq(row)
        if original is None:
            return self._break(
                seq, event_id, "modified",
                f"the stored hash of event seq {seq} does not match its contents",
            )
        if original < seq:
            first = self.lookup.id_at(original)
            return self._break(
                original, str(first) if first else event_id, "inserted",
                f"event {event_id} was hashed at seq {original} but sits at seq {seq}: "
                f"{seq - original} event(s) were inserted before it",
            )
        if self.lookup.by_previous_hash(self.prev_hash) is not None:
            return self._break(
                seq, event_id, "reordered",
                f"event {event_id} was hashed at seq {original} but sits at seq {seq}",
            )
        return self._break(
            seq, event_id, "missing",
            f"events {seq}..{original - 1} were removed and the later events renumbered",
        )

    def _break(self, seq: int, event_id: str | None, reason: str, detail: str) -> bool:
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
                    last_seq, str(self.prev_row[0]) if self.prev_row else None, "modified",
                    "the last event's hash differs from the one recorded in the chain head",
                )
        if self.broken is not None:
            report.intact = False
            report.broken_seq, report.broken_event_id, report.reason, report.detail = self.broken
        return report
