"""Records built the slow, obvious way, for tests: the reference the writer
(``services.records``) and the verifier (``services.chain``) are checked against."""

from __future__ import annotations

from typing import Any

import orjson

from trailseal.services.chain import (
    CANONICAL_VERSION,
    COLUMNS_HASH,
    columns_digest,
    projection_of,
    record_hash,
    ts_micros,
)


def build_record(fields: dict[str, Any]) -> bytes:
    """The canonical bytes of an event (current format), sorted with a plain dump. ``fields`` holds every stored
    field, with timestamps already formatted and ciphertexts base64-encoded (or None);
    ``columns_hash`` is computed from them."""
    rec = {**fields, "v": CANONICAL_VERSION}
    rec[COLUMNS_HASH] = columns_digest(projection_of(rec), rec["seq"],
                                       ts_micros(rec["occurred_at"]),
                                       ts_micros(rec["received_at"]))
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


def rehash_with_seq(record: bytes, seq: int) -> tuple[bytes, str]:
    """The record and hash an event would have at another ``seq`` ."""
    rec = orjson.loads(record)
    rec["seq"] = seq
    if COLUMNS_HASH in rec:
        rec[COLUMNS_HASH] = columns_digest(projection_of(rec), seq, ts_micros(rec["occurred_at"]),
                                           ts_micros(rec["received_at"]))
    raw = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
    return raw, record_hash(raw)
