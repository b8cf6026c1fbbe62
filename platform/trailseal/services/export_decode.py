"""Decoding stored rows into event rows, without the database: what the CSV export's
helper processes run (``page_in_helper``), and the loop the exporting process runs too
(``export_rows``). It imports only what decoding needs, so a helper process stays small.
"""

from __future__ import annotations

import hashlib
from array import array
from binascii import a2b_base64
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .chain import CANONICAL_VERSION

_EVENT_KEYS = frozenset((
    "action_details", "actor_department", "actor_id", "actor_role", "actor_type",
    "columns_hash", "entity_id", "entity_type", "event_type", "id", "idempotency_key",
    "ip_address", "key_id", "occurred_at", "previous_hash", "received_at", "seq",
    "severity", "source", "tags", "tenant_id", "user_agent", "v",
))
# A record with as many keys and each read key present is one of these (a missing key
# raises KeyError, which sends the record to the reference path).
_KEY_COUNT = len(_EVENT_KEYS)
NO_INSIGHTS = (None, None, None, None, None, None, None)
MAX_CIPHERS = 1024  # AESGCM objects kept between pages (2.5 kB each)


def pair_of(key_id: str, actor_id: Any, entity_id: Any) -> tuple:
    """What a per-subject event key depends on: the key id (which names its mode), the
    actor, and the entity when the mode is actor+entity (``:ae``)."""
    return (key_id, actor_id, entity_id if key_id[-3:] == ":ae" else None)


def fitting_records(page: list[tuple]) -> tuple[list[bytes], list[bytes | None]]:
    """The records and insights of a page's fitting rows (those with their record)."""
    records = [row[2] for row in page]
    if records and records[-1] is None:
        del records[records.index(None):]
    return records, [row[3] for row in page[:len(records)]]


def parsed_records(records: list[bytes]) -> list[Any]:
    """The parsed records (None for one that is not JSON)."""
    loads = orjson.loads
    parsed: list[Any] = []
    for record in records:
        try:
            parsed.append(loads(record))
        except ValueError:
            parsed.append(None)
    return parsed


def pack_page(records: list[bytes], insights: list[bytes | None]) -> tuple:
    """A page's records and insights as two byte strings and their lengths: what a helper
    process is sent (one copy each, where a list of values is pickled value by value).
    Insights of None are packed empty (an insights text never is)."""
    return (b"".join(records), array("I", map(len, records)).tobytes(),
            b"".join([i or b"" for i in insights]),
            array("I", [len(i) if i else 0 for i in insights]).tobytes())


def unpack_page(packed: tuple) -> tuple[list[bytes], list[bytes | None]]:
    """``pack_page``'s records and insights again."""
    records_blob, record_sizes, insights_blob, insight_sizes = packed

    def cut(blob: bytes, sizes: bytes) -> list[bytes]:
        ends = list(accumulate(array("I", sizes)))
        return [blob[start:end] for start, end in zip([0, *ends], ends, strict=False)]

    return cut(records_blob, record_sizes), [i or None for i in cut(insights_blob,
                                                                   insight_sizes)]


def decode_page(records: list[bytes], insights_of: list[bytes | None], parsed: list[Any],
                tenant_prefix: bytes, aes_of: Callable[[dict[str, Any], str], Any],
                reference: Callable[[int, bytes, bytes | None], Any],
                errors: tuple[type[BaseException], ...] = ()) -> list[Any]:
    """The event rows of a page's records (their insights alongside): ``aes_of(record,
    key_id)`` gives the cipher of a record's fields (raising ``LookupError`` when there is
    none to use, or one of ``errors``), and a row this path does not read itself is
    ``reference(index, record, insights)``."""
    out: list[Any] = []
    append = out.append
    loads, dumps, sha256 = orjson.loads, orjson.dumps, hashlib.sha256
    seen_insights: dict[bytes | None, tuple] = {None: NO_INSIGHTS}
    for n, (record, insights, rec) in enumerate(zip(records, insights_of, parsed,
                                                    strict=True)):
        try:
            if rec is None or len(rec) != _KEY_COUNT or rec["v"] != CANONICAL_VERSION:
                raise LookupError("another record format")
            eid = rec["id"]
            decrypt = aes_of(rec, rec["key_id"]).decrypt
            prefix = tenant_prefix + eid.encode() + b"|"
            ip = rec["ip_address"]
            if ip is not None:
                blob = a2b_base64(ip)
                ip = decrypt(blob[:12], blob[12:], prefix + b"ip_address").decode()
            ua = rec["user_agent"]
            if ua is not None:
                blob = a2b_base64(ua)
                ua = decrypt(blob[:12], blob[12:], prefix + b"user_agent").decode()
            details = rec["action_details"]
            if details is not None:
                blob = a2b_base64(details)
                details = decrypt(blob[:12], blob[12:], prefix + b"action_details").decode()
            insight = seen_insights.get(insights)
            if insight is None:
                category, risk, tags, score, flagged, review, ai = loads(insights)
                insight = (category, risk, dumps(tags).decode() if tags else "[]",
                           None if score is None else float(score), flagged, review,
                           dumps(ai).decode() if ai else "{}")
                if len(seen_insights) < 256:  # the same insights recur (defaults)
                    seen_insights[insights] = insight
            tags = rec["tags"]
            append((eid, rec["seq"], rec["occurred_at"], rec["received_at"],
                    rec["event_type"], rec["actor_id"], rec["actor_type"],
                    rec["actor_role"], rec["actor_department"], rec["entity_type"],
                    rec["entity_id"], rec["severity"], rec["source"],
                    None if tags is None else dumps(tags).decode(), ip, ua, details,
                    rec["idempotency_key"], rec["previous_hash"],
                    sha256(record).hexdigest(), *insight))
        except (LookupError, ValueError, TypeError, InvalidTag, *errors):
            # Not a record this path knows (or one that fails): the reference path reads
            # it, or raises the API's error for it.
            append(reference(n, record, insights))
    return out


# Ciphers of the raw keys a helper process was given, kept between the pages of one
# export (dropped when the next export begins: keys stay no longer than their export).
_HELPER_CIPHERS: dict[bytes, Any] = {}
_HELPER_EXPORT: list[str] = [""]


def page_in_helper(export: str, tenant_prefix: bytes, packed: tuple,
                   tenant_keys: dict[str, bytes], event_keys: dict[tuple, bytes | None],
                   write: Callable[[list], str]) -> list[str | int]:
    """In a helper process: a page (``pack_page``) decoded with the raw keys it was given
    and written with ``write``; a row it cannot read here is left as its index in the
    page, for the exporting process's reference path."""
    if _HELPER_EXPORT[0] != export:
        _HELPER_CIPHERS.clear()
        _HELPER_EXPORT[0] = export

    def aes_of(rec: dict[str, Any], key_id: str):
        if ":" in key_id:
            raw = event_keys.get(pair_of(key_id, rec["actor_id"], rec["entity_id"]))
        else:
            raw = tenant_keys.get(key_id)
        if raw is None:
            raise LookupError("no key given: the exporting process reads this row")
        aes = _HELPER_CIPHERS.get(raw)
        if aes is None:
            if len(_HELPER_CIPHERS) >= MAX_CIPHERS:
                _HELPER_CIPHERS.clear()
            aes = _HELPER_CIPHERS[raw] = AESGCM(raw)
        return aes

    records, insights = unpack_page(packed)
    rows = decode_page(records, insights, parsed_records(records), tenant_prefix, aes_of,
                       lambda n, *_: n)
    out: list[str | int] = []
    run: list[tuple] = []
    for row in rows:
        if type(row) is int:
            if run:
                out.append(write(run))
                run = []
            out.append(row)
        else:
            run.append(row)
    if run:
        out.append(write(run))
    return out
