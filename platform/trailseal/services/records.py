"""The record format as Trailseal writes it: ids, encryption of the sensitive fields, the
canonical record with its ``columns_hash``, ``previous_hash`` and ``seq``, and the joined
indexed columns. ``chain`` reads and verifies the same format; the two live side by side.

Everything here but ``link_batch`` runs before a chain head is known (in a helper process
during a bulk append), so it is plain data in, plain data out.
"""

from __future__ import annotations

import hashlib
import os
import time
from binascii import b2a_base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from ..schemas import EventIn
from .chain import (
    CANONICAL_VERSION,
    FIELD_SEP,
    NULL_MARK,
    PG_EPOCH,
    TAG_SEP,
    format_ts,
    pack_seq_times,
)
from .crypto import NONCE_BYTES, encrypt_field
from .subject_keys import EventKeys

# Values of one column travel joined by U+001F (validated text never contains U+001C..U+001F;
# canonical JSON escapes every control character), NULL as U+001E.
# The same separators as the projection string verification reads (chain.FIELD_SEP/NULL_MARK).
FIELD_JOIN, NULL_JOIN = FIELD_SEP, NULL_MARK
_ONE_US = timedelta(microseconds=1)


def _joined(values) -> str:
    return FIELD_JOIN.join([NULL_JOIN if v is None else v for v in values])


def time_ordered_ids(n: int) -> list[str]:
    """``n`` UUIDv7 strings sharing this millisecond (random bits from one ``urandom`` call):
    the timestamp comes first, so primary-key inserts append to the index."""
    ms = (time.time_ns() // 1_000_000).to_bytes(6, "big").hex()
    head = f"{ms[:8]}-{ms[8:12]}-7"
    rand = os.urandom(10 * n).hex()
    out = []
    for i in range(0, 20 * n, 20):
        r = rand[i:i + 20]
        # version nibble 7; variant bits 10 on the clock_seq high byte
        out.append(f"{head}{r[1:4]}-{_VARIANT[r[4]]}{r[5:8]}-{r[8:20]}")
    return out


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else b2a_base64(blob, newline=False).decode("ascii")


@dataclass
class PreparedBatch:
    """One batch on its way to the ledger: validated, encrypted and serialised; ``link_batch``
    then gives it seqs and chains it onto a head. Plain data, so a helper process can
    prepare it (``append_stream``)."""

    ids: list[str]
    parts: list[tuple[bytes, bytes, bytes, bytes]]  # record bytes around columns_hash,
    #                                                 previous_hash and seq
    projections: list[str]  # each event's projection string up to its previous_hash
    occurred_us: list[int]
    received_us: int
    columns: dict[str, str]  # the indexed columns, joined (see INSERT_SQL)
    received_at: datetime
    key_id: str  # the tenant data key the batch's event keys derive from
    single_key: str | None
    seqs: list[int] | None = None
    prevs: list[str] | None = None
    hashes: list[str] | None = None
    blobs: list[bytes] | None = None


_COLUMNS_KEY = b'"columns_hash":"'
_PREV_KEY = b'"previous_hash":"'
_SEQ_KEY = b',"seq":0,'


def _split_record(blob: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Cut a record serialised with ``columns_hash=""``, ``previous_hash=""`` and ``seq=0``
    around those three values. Each key occurs once, at the top level: inside a JSON string
    every quote is escaped, so ``"previous_hash":"`` cannot appear there."""
    i = blob.index(_COLUMNS_KEY) + len(_COLUMNS_KEY)
    j = blob.index(_PREV_KEY, i) + len(_PREV_KEY)
    k = blob.index(_SEQ_KEY, j)
    return blob[:i], blob[i:j], blob[j:k + 7], blob[k + 8:]


def prepare_batch(tenant_text: str, keys: EventKeys, events: list[EventIn],
             single_key: str | None = None) -> PreparedBatch:
    """Ids, encryption, the canonical records (up to their columns_hash, seq and
    previous_hash) and the indexed columns: everything that does not need the chain head.
    Each event's fields are encrypted with its subjects' event key (``keys.for_event``) and
    its record names that key's ``key_id``."""
    received_at = datetime.now(UTC)
    received_text = format_ts(received_at)
    received_us = (received_at - PG_EPOCH) // _ONE_US
    ids = time_ordered_ids(len(events))
    nonces = os.urandom(NONCE_BYTES * 3 * len(events))
    dumps = orjson.dumps
    ikey = NULL_JOIN if single_key is None else single_key
    parts, occurred, occurred_us, projections, key_ids = [], [], [], [], []
    for_event = keys.for_event
    n = 0
    for eid, ev in zip(ids, events, strict=True):
        actor, entity = ev.actor, ev.entity
        key_id, dek = for_event(actor.id, entity.type, entity.id)
        key_ids.append(key_id)
        ip = ua = details = None
        if ev.ip_address is not None:
            ip = _b64(encrypt_field(dek, tenant_text, eid, "ip_address", ev.ip_address.encode(),
                                    nonces[n:n + NONCE_BYTES]))
        n += NONCE_BYTES
        if ev.user_agent is not None:
            ua = _b64(encrypt_field(dek, tenant_text, eid, "user_agent", ev.user_agent.encode(),
                                    nonces[n:n + NONCE_BYTES]))
        n += NONCE_BYTES
        if ev.action_details is not None:
            details = _b64(encrypt_field(
                dek, tenant_text, eid, "action_details",
                dumps(ev.action_details, option=orjson.OPT_SORT_KEYS), nonces[n:n + NONCE_BYTES]))
        n += NONCE_BYTES
        occurred_text = format_ts(ev.occurred_at)
        occurred.append(occurred_text)
        occurred_us.append((ev.occurred_at - PG_EPOCH) // _ONE_US)
        # chain.PROJECTION_SQL, without its last field (previous_hash)
        nulls = ((actor.role is None) + (actor.department is None) + (ev.source is None)
                 + (single_key is None))
        projections.append(FIELD_JOIN.join((
            eid, tenant_text, ev.event_type, actor.id, actor.type,
            NULL_JOIN if actor.role is None else actor.role,
            NULL_JOIN if actor.department is None else actor.department,
            entity.type, entity.id, ev.severity, NULL_JOIN if ev.source is None else ev.source,
            str(len(ev.tags)), TAG_SEP.join(ev.tags), key_id, ikey, str(nulls), "")))
        # Keys in sorted order: orjson keeps insertion order, so the bytes are canonical
        # without sorting each record (a test compares with a sorted dump).
        parts.append(_split_record(dumps({
            "action_details": details, "actor_department": actor.department,
            "actor_id": actor.id, "actor_role": actor.role, "actor_type": actor.type,
            "columns_hash": "", "entity_id": entity.id, "entity_type": entity.type,
            "event_type": ev.event_type, "id": eid, "idempotency_key": single_key,
            "ip_address": ip, "key_id": key_id, "occurred_at": occurred_text,
            "previous_hash": "", "received_at": received_text, "seq": 0,
            "severity": ev.severity, "source": ev.source, "tags": ev.tags,
            "tenant_id": tenant_text, "user_agent": ua, "v": CANONICAL_VERSION,
        })))
    actors = [ev.actor for ev in events]
    columns = {
        "id": FIELD_JOIN.join(ids),
        "occurred_at": FIELD_JOIN.join(occurred),
        "event_type": FIELD_JOIN.join([ev.event_type for ev in events]),
        "actor_id": FIELD_JOIN.join([a.id for a in actors]),
        "actor_type": FIELD_JOIN.join([a.type for a in actors]),
        "actor_role": _joined([a.role for a in actors]),
        "actor_department": _joined([a.department for a in actors]),
        "entity_type": FIELD_JOIN.join([ev.entity.type for ev in events]),
        "entity_id": FIELD_JOIN.join([ev.entity.id for ev in events]),
        "severity": FIELD_JOIN.join([ev.severity for ev in events]),
        "source": _joined([ev.source for ev in events]),
        "tags": FIELD_JOIN.join([TAG_SEP.join(ev.tags) if ev.tags else NULL_JOIN for ev in events]),
        "key_id": FIELD_JOIN.join(key_ids),
    }
    return PreparedBatch(ids, parts, projections, occurred_us, received_us, columns, received_at,
                  keys.tenant_key_id, single_key)


def link_batch(batch: PreparedBatch, last_seq: int, last_hash: str) -> None:
    """Give the batch its seqs and chain it onto ``(last_seq, last_hash)``."""
    seqs, prevs, hashes, blobs = [], [], [], []
    prev = last_hash
    sha256, pack, received_us = hashlib.sha256, pack_seq_times, batch.received_us
    for seq, (a, b, c, d), projection, occurred_us in zip(
            range(last_seq + 1, last_seq + 1 + len(batch.parts)), batch.parts,
            batch.projections, batch.occurred_us, strict=True):
        prev_bytes = prev.encode()
        columns_hash = sha256((projection + prev).encode()
                              + pack(seq, occurred_us, received_us)).hexdigest()
        blob = b"".join((a, columns_hash.encode(), b, prev_bytes, c, str(seq).encode(), d))
        h = sha256(blob).hexdigest()
        seqs.append(seq)
        prevs.append(prev)
        hashes.append(h)
        blobs.append(blob)
        prev = h
    batch.seqs, batch.prevs, batch.hashes, batch.blobs = seqs, prevs, hashes, blobs


