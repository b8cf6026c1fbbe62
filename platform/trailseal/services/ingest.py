"""Ingest: validate → encrypt → chain-append, in one transaction per call.

Everything that does not need the chain head (validation, ids, encryption) happens before
the head is locked, so the lock is held only for hashing and one multi-row INSERT.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import time
import uuid
from binascii import b2a_base64
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from ..errors import Conflict, NotFound, ValidationFailed
from ..infra import helpers
from ..schemas import TEXT_PATTERN, EventIn
from .chain import CANONICAL_VERSION, PG_EPOCH, TAG_SEP, format_ts
from .crypto import NONCE_BYTES

# Columns travel as one string each, values joined by U+001F (validated text never contains
# U+001C..U+001F; canonical JSON escapes every control character), NULL as U+001E; the
# server splits them again. Far cheaper on the client than array parameters.
INSERT_SQL = """
INSERT INTO audit_logs (id, tenant_id, seq, occurred_at, received_at, event_type, actor_id,
  actor_type, actor_role, actor_department, entity_type, entity_id, severity, source, tags,
  key_id, idempotency_key, previous_hash, hash, record)
SELECT u.id::uuid, %(tenant)s, %(first_seq)s + u.n - 1, u.occurred_at::timestamptz,
  %(received_at)s, u.event_type, u.actor_id, u.actor_type, u.actor_role, u.actor_department,
  u.entity_type, u.entity_id, u.severity, u.source,
  string_to_array(coalesce(u.tags, ''), chr(29)), %(key_id)s, %(idempotency_key)s,
  u.previous_hash, u.hash, convert_to(u.record, 'UTF8')
FROM unnest(
  string_to_array(%(id)s, chr(31)), string_to_array(%(occurred_at)s, chr(31)),
  string_to_array(%(event_type)s, chr(31)), string_to_array(%(actor_id)s, chr(31)),
  string_to_array(%(actor_type)s, chr(31)), string_to_array(%(actor_role)s, chr(31), chr(30)),
  string_to_array(%(actor_department)s, chr(31), chr(30)),
  string_to_array(%(entity_type)s, chr(31)), string_to_array(%(entity_id)s, chr(31)),
  string_to_array(%(severity)s, chr(31)), string_to_array(%(source)s, chr(31), chr(30)),
  string_to_array(%(tags)s, chr(31), chr(30)), string_to_array(%(previous_hash)s, chr(31)),
  string_to_array(%(hash)s, chr(31)),
  string_to_array(convert_from(%(record)b, 'UTF8'), chr(31))
) WITH ORDINALITY AS u(id, occurred_at, event_type, actor_id, actor_type, actor_role,
  actor_department, entity_type, entity_id, severity, source, tags, previous_hash, hash,
  record, n)
"""
_US, _NULL = "\x1f", "\x1e"
_ONE_US = timedelta(microseconds=1)
_PACK3 = struct.Struct(">qqq").pack


def _joined(values) -> str:
    return _US.join([_NULL if v is None else v for v in values])


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


@dataclass
class AppendResult:
    """What an append returns (and what an idempotent replay returns again)."""

    ids: list[str]
    seqs: list[int]
    hashes: list[str]
    replayed: bool = False

    @property
    def first_seq(self) -> int:
        return self.seqs[0]

    @property
    def last_seq(self) -> int:
        return self.seqs[-1]


log = logging.getLogger(__name__)
_EVENT_LIST = TypeAdapter(list[EventIn])


def validate_events(raw_events: list[Any]) -> list[EventIn]:
    """Validate every event; the first invalid one raises 422 naming its index."""
    try:
        return _EVENT_LIST.validate_python(raw_events)
    except ValidationError as exc:
        by_index: dict[int, list[dict]] = {}
        for e in exc.errors(include_url=False, include_input=False):
            index, *loc = e["loc"]
            msg = e["msg"]
            if e["type"] == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == TEXT_PATTERN:
                msg = "must not contain NUL or separator control characters (U+001C–U+001F)"
            by_index.setdefault(int(index), []).append({"loc": loc, "msg": msg, "type": e["type"]})
    index = min(by_index)
    errors = by_index[index]
    if not isinstance(raw_events[index], dict):
        raise ValidationFailed(f"event {index} is not a JSON object",
                               {"index": index, "errors": errors})
    raise ValidationFailed(
        f"event {index} is invalid: {errors[0]['msg']} at "
        f"{'.'.join(str(p) for p in errors[0]['loc']) or '(root)'}",
        {"index": index, "errors": errors},
    )


def request_fingerprint(body: Any) -> str:
    """Stable hash of a request body, for Idempotency-Key comparisons."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else b2a_base64(blob, newline=False).decode("ascii")


@dataclass
class _Batch:
    """One batch on its way to the ledger: validated, encrypted and serialised; ``_link``
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
    key_id: str
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


def _prepare(tenant_text: str, key_id: str, dek, events: list[EventIn],
             single_key: str | None = None) -> _Batch:
    """Ids, encryption, the canonical records (up to their columns_hash, seq and
    previous_hash) and the indexed columns: everything that does not need the chain head."""
    received_at = datetime.now(UTC)
    received_text = format_ts(received_at)
    received_us = (received_at - PG_EPOCH) // _ONE_US
    ids = time_ordered_ids(len(events))
    nonces = os.urandom(NONCE_BYTES * 3 * len(events))
    encrypt, dumps = dek.encrypt, orjson.dumps
    aad_prefix = tenant_text + "|"
    ikey = _NULL if single_key is None else single_key
    parts, occurred, occurred_us, projections = [], [], [], []
    n = 0
    for eid, ev in zip(ids, events, strict=True):
        actor, entity = ev.actor, ev.entity
        aad = aad_prefix + eid
        ip = ua = details = None
        if ev.ip_address is not None:
            nonce = nonces[n:n + NONCE_BYTES]
            ip = _b64(nonce + encrypt(nonce, ev.ip_address.encode(),
                                      (aad + "|ip_address").encode()))
        n += NONCE_BYTES
        if ev.user_agent is not None:
            nonce = nonces[n:n + NONCE_BYTES]
            ua = _b64(nonce + encrypt(nonce, ev.user_agent.encode(),
                                      (aad + "|user_agent").encode()))
        n += NONCE_BYTES
        if ev.action_details is not None:
            nonce = nonces[n:n + NONCE_BYTES]
            details = _b64(nonce + encrypt(
                nonce, dumps(ev.action_details, option=orjson.OPT_SORT_KEYS),
                (aad + "|action_details").encode()))
        n += NONCE_BYTES
        occurred_text = format_ts(ev.occurred_at)
        occurred.append(occurred_text)
        occurred_us.append((ev.occurred_at - PG_EPOCH) // _ONE_US)
        # chain.PROJECTION_SQL, without its last field (previous_hash)
        nulls = ((actor.role is None) + (actor.department is None) + (ev.source is None)
                 + (single_key is None))
        projections.append(_US.join((
            eid, tenant_text, ev.event_type, actor.id, actor.type,
            _NULL if actor.role is None else actor.role,
            _NULL if actor.department is None else actor.department,
            entity.type, entity.id, ev.severity, _NULL if ev.source is None else ev.source,
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
        "id": _US.join(ids),
        "occurred_at": _US.join(occurred),
        "event_type": _US.join([ev.event_type for ev in events]),
        "actor_id": _US.join([a.id for a in actors]),
        "actor_type": _US.join([a.type for a in actors]),
        "actor_role": _joined([a.role for a in actors]),
        "actor_department": _joined([a.department for a in actors]),
        "entity_type": _US.join([ev.entity.type for ev in events]),
        "entity_id": _US.join([ev.entity.id for ev in events]),
        "severity": _US.join([ev.severity for ev in events]),
        "source": _joined([ev.source for ev in events]),
        "tags": _US.join([TAG_SEP.join(ev.tags) if ev.tags else _NULL for ev in events]),
    }
    return _Batch(ids, parts, projections, occurred_us, received_us, columns, received_at,
                  key_id, single_key)


def _link(batch: _Batch, last_seq: int, last_hash: str) -> None:
    """Give the batch its seqs and chain it onto ``(last_seq, last_hash)``."""
    seqs, prevs, hashes, blobs = [], [], [], []
    prev = last_hash
    sha256, pack, received_us = hashlib.sha256, _PACK3, batch.received_us
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


def _lock_head(cur, tenant_id: uuid.UUID) -> tuple[int, str]:
    cur.execute(
        "SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s FOR UPDATE",
        (tenant_id,),
    )
    head = cur.fetchone()
    if head is None:
        raise NotFound("tenant not found", {"tenant_id": str(tenant_id)})
    return head


def _write(cur, tenant_id: uuid.UUID, batch: _Batch) -> AppendResult:
    """INSERT the linked batch and move the chain head (the head row is locked)."""
    cur.execute(INSERT_SQL, {
        **batch.columns,
        "tenant": tenant_id, "received_at": batch.received_at, "key_id": batch.key_id,
        "idempotency_key": batch.single_key, "first_seq": batch.seqs[0],
        "previous_hash": _US.join(batch.prevs), "hash": _US.join(batch.hashes),
        "record": b"\x1f".join(batch.blobs),
    })
    cur.execute(
        "UPDATE chain_heads SET last_seq = %s, last_hash = %s, updated_at = now() "
        "WHERE tenant_id = %s",
        (batch.seqs[-1], batch.hashes[-1], tenant_id),
    )
    return AppendResult(batch.ids, batch.seqs, batch.hashes)


def append_events(
    svc,
    tenant_id: uuid.UUID,
    events: list[EventIn],
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> AppendResult:
    """Append validated events to the tenant's chain atomically; fire hooks after commit."""
    tenant_id = uuid.UUID(str(tenant_id))
    if not events:
        raise ValidationFailed("nothing to append: the batch is empty")
    single_key = idempotency_key if len(events) == 1 else None
    with svc.db.cursor(tenant_id) as cur:
        key_id, dek = svc.keyring.active_key(cur, tenant_id)
        # Everything but seq/previous_hash is prepared before the chain head is locked.
        batch = _prepare(str(tenant_id), key_id, dek, events, single_key)
        # The chain head row lock serialises appends of this tenant (one lock per batch).
        head = _lock_head(cur, tenant_id)
        if idempotency_key is not None:
            cur.execute(
                "SELECT request_hash, response FROM idempotency_keys "
                "WHERE tenant_id = %s AND key = %s",
                (tenant_id, idempotency_key),
            )
            seen = cur.fetchone()
            if seen is not None:
                if seen[0] != request_hash:
                    raise Conflict(
                        "Idempotency-Key was already used with a different request body",
                        {"idempotency_key": idempotency_key},
                    )
                stored = seen[1]
                return AppendResult(stored["ids"], stored["seqs"], stored["hashes"], True)
        _link(batch, *head)
        result = _write(cur, tenant_id, batch)
        if idempotency_key is not None:
            cur.execute(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status_code, response) "
                "VALUES (%s, %s, %s, 201, %s::jsonb)",
                (tenant_id, idempotency_key, request_hash,
                 orjson.dumps({"ids": result.ids, "seqs": result.seqs,
                               "hashes": result.hashes}).decode()),
            )
    svc.after_ingest(tenant_id, result)
    return result


# --------------------------------------------------------------------------------------------
# Bulk append: a helper process validates, encrypts and serialises while this one writes
# --------------------------------------------------------------------------------------------

_HELPER_KEYS: dict[tuple[str, str], Any] = {}  # (tenant, key id) -> AESGCM, inside a helper


def parse_documents(raw: list[Any]) -> list[Any]:
    """Decode the items of a raw batch that are JSON documents (bytes or str, e.g. the lines
    of a JSON Lines file); dicts pass through. A bad document raises 422 naming its index."""
    out = []
    for index, item in enumerate(raw):
        if isinstance(item, bytes | bytearray | memoryview | str):
            try:
                item = orjson.loads(item)
            except orjson.JSONDecodeError as exc:
                msg = f"not valid JSON ({exc.msg} at column {exc.colno})"
                raise ValidationFailed(f"event {index} is {msg}", {
                    "index": index,
                    "errors": [{"loc": [], "msg": msg, "type": "json_invalid"}],
                }) from None
        out.append(item)
    return out


def _prepare_raw(tenant_text: str, key_id: str, key: bytes, raw: list[Any]) -> tuple[str, Any]:
    """Parse, validate and prepare one raw batch in a helper process: ``("ok", _Batch)`` or
    ``("invalid", (message, details))``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    dek = _HELPER_KEYS.get((tenant_text, key_id))
    if dek is None:
        if len(_HELPER_KEYS) > 64:
            _HELPER_KEYS.clear()
        dek = _HELPER_KEYS[(tenant_text, key_id)] = AESGCM(key)
    try:
        events = validate_events(parse_documents(raw))
    except ValidationFailed as exc:
        return "invalid", (exc.message, exc.details)
    return "ok", _prepare(tenant_text, key_id, dek, events)


@dataclass
class StreamResult:
    """What ``append_stream`` committed."""

    batches: int = 0
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    def add(self, result: AppendResult) -> None:
        self.batches += 1
        self.events += len(result.ids)
        if self.first_seq is None:
            self.first_seq = result.first_seq
        self.last_seq = result.last_seq


def append_stream(
    svc,
    tenant_id: uuid.UUID,
    batches: Iterable[list[Any]],
    *,
    workers: int | None = None,
    on_batch: Callable[[AppendResult], None] | None = None,
) -> StreamResult:
    """Validate and append many batches of raw events (bulk import); each batch is atomic.

    A batch is a list of event dicts or of JSON documents (bytes or str, one event each,
    such as the lines of a JSON Lines file), which the helpers decode.

    Helper processes validate, encrypt and serialise the next batches while this process
    links each batch to the chain head under the head lock, writes and commits it.
    ``workers``: None uses the shared helper pool (on a multi-core machine), 0 does
    everything in this process, N >= 1 starts a pool of N helpers for this call. Stops at
    the first invalid batch (422 naming the batch and the event; nothing of that batch is
    written) or failed write; every batch before it stays committed, and the error says
    how far it got.
    """
    tenant_id = uuid.UUID(str(tenant_id))
    tenant_text = str(tenant_id)
    if workers is None and not helpers.multi_core():
        workers = 0
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT 1 FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        if cur.fetchone() is None:
            raise NotFound("tenant not found", {"tenant_id": tenant_text})
        key_id, dek = svc.keyring.active_key(cur, tenant_id)
        material = svc.keyring.key_material(cur, tenant_id, key_id) if workers != 0 else None

    done = StreamResult()
    numbered = ((number, raw) for number, raw in enumerate(batches) if raw)

    def commit(batch: _Batch) -> None:
        with svc.db.cursor(tenant_id) as cur:
            _link(batch, *_lock_head(cur, tenant_id))
            result = _write(cur, tenant_id, batch)
        # Count it at once, so an error or interrupt from here on reports it as written.
        done.add(result)
        if on_batch is not None:
            on_batch(result)
        svc.after_ingest(tenant_id, result)

    def invalid(number: int, message: str, details: Any) -> ValidationFailed:
        return ValidationFailed(
            f"batch {number}: {message}",
            {"batch": number, **(details or {}), "committed_events": done.events,
             "last_seq": done.last_seq},
        )

    def inline(items) -> None:
        for number, raw in items:
            try:
                events = validate_events(parse_documents(raw))
            except ValidationFailed as exc:
                raise invalid(number, exc.message, exc.details) from None
            commit(_prepare(tenant_text, key_id, dek, events))

    if workers == 0:
        inline(numbered)
        return done

    if workers is None:
        pool, own_pool, depth = helpers.shared_pool(), False, helpers.helper_count() + 2
    else:
        pool, own_pool, depth = helpers.new_pool(workers), True, workers + 2
    pending: deque = deque()  # (number, raw batch, future), oldest first
    source_error: list[BaseException] = []  # raised by the caller's iterator while reading ahead

    broken = False  # a helper died: the rest is done in this process

    def submit_next() -> None:
        nonlocal broken
        if source_error:
            return
        try:
            item = next(numbered, None)
        except Exception as exc:  # noqa: BLE001 - re-raised once the batches before it are in
            source_error.append(exc)
            return
        if item is None:
            return
        number, raw = item
        future = None
        if not broken:
            try:
                future = helpers.submit(pool, _prepare_raw, tenant_text, key_id, material, raw)
            except (helpers.BrokenProcessPool, RuntimeError):
                broken = True
        pending.append((number, raw, future))

    try:
        for _ in range(depth):  # keep every helper busy and one batch in hand
            submit_next()
        while pending and not broken:
            number, raw, future = pending[0]
            try:
                status, value = helpers.result(future)
            except helpers.BrokenProcessPool:
                broken = True
                break
            pending.popleft()
            if status == "invalid":
                raise invalid(number, *value)
            submit_next()
            commit(value)
    finally:
        for _, _, future in pending:
            if future is not None:
                helpers.abandon(future)
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if broken:  # a helper died: finish in this process, nothing is lost or written twice
        log.warning("a helper process died during a bulk append; continuing in-process")
        helpers.discard_pool(pool)
        inline([(number, raw) for number, raw, _ in pending])
        inline(numbered)
    if source_error:
        raise source_error[0]
    return done
