"""Ingest: validate → encrypt → chain-append, in one transaction per call.

Everything that does not need the chain head (validation, ids, encryption; ``records``)
happens before the head is locked, so the lock is held only for hashing and one multi-row
INSERT. The bulk path (``bulk.append_stream``) reuses ``lock_head`` and ``write_batch``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from ..errors import Conflict, NotFound, ValidationFailed
from ..schemas import TEXT_PATTERN, EventIn
from .records import FIELD_JOIN, PreparedBatch, link_batch, prepare_batch
from .subject_keys import ensure_subject_keys, event_keys, person_entity_types, subjects_of

# Raw SQL on the hot path measured by bench/bench_ingest.py and bench/bench_post_event.py.
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
  string_to_array(coalesce(u.tags, ''), chr(29)), u.key_id, %(idempotency_key)s,
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
  string_to_array(convert_from(%(record)b, 'UTF8'), chr(31)),
  string_to_array(%(key_id)s, chr(31))
) WITH ORDINALITY AS u(id, occurred_at, event_type, actor_id, actor_type, actor_role,
  actor_department, entity_type, entity_id, severity, source, tags, previous_hash, hash,
  record, key_id, n)
"""


class TenantClosed(Conflict):
    """The tenant's chain is closed by a confirmed deletion: no event may be appended."""

    code = "tenant_closed"


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


def lock_head(cur, tenant_id: uuid.UUID) -> tuple[int, str]:
    """Lock the tenant's chain head row (serialising its appends) and return it."""
    cur.execute(
        "SELECT last_seq, last_hash, closed_at FROM chain_heads WHERE tenant_id = %s "
        "FOR UPDATE", (tenant_id,),
    )
    head = cur.fetchone()
    if head is None:
        raise NotFound("tenant not found", {"tenant_id": str(tenant_id)})
    if head[2] is not None:
        # A confirmed tenant deletion closed the chain (the database refuses it too).
        raise TenantClosed("the tenant is being deleted: its trail takes no more events",
                           {"closed_at": head[2].isoformat()})
    return head[0], head[1]


def write_batch(cur, tenant_id: uuid.UUID, batch: PreparedBatch) -> AppendResult:
    """INSERT the linked batch and move the chain head (the head row is locked)."""
    cur.execute(INSERT_SQL, {
        **batch.columns,
        "tenant": tenant_id, "received_at": batch.received_at,
        "idempotency_key": batch.single_key, "first_seq": batch.seqs[0],
        "previous_hash": FIELD_JOIN.join(batch.prevs), "hash": FIELD_JOIN.join(batch.hashes),
        "record": b"\x1f".join(batch.blobs),
    })
    cur.execute(
        "UPDATE chain_heads SET last_seq = %s, last_hash = %s, updated_at = now() "
        "WHERE tenant_id = %s",
        (batch.seqs[-1], batch.hashes[-1], tenant_id),
    )
    return AppendResult(batch.ids, batch.seqs, batch.hashes)


def append_in(svc, cur, tenant_id: uuid.UUID, events: list[EventIn]) -> AppendResult:
    """Append validated events inside the caller's transaction (``cur`` from
    ``svc.db.cursor(tenant_id)``), so they commit or roll back with the caller's other
    writes. The caller runs ``svc.after_ingest(tenant_id, result)`` after the commit."""
    subject_keys = ensure_subject_keys(
        svc, tenant_id, subjects_of(events, person_entity_types(svc.config)))
    keys = event_keys(svc, cur, tenant_id, subject_keys)
    batch = prepare_batch(str(tenant_id), keys, events, None)
    link_batch(batch, *lock_head(cur, tenant_id))
    return write_batch(cur, tenant_id, batch)


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
    subject_keys = ensure_subject_keys(
        svc, tenant_id, subjects_of(events, person_entity_types(svc.config)))
    with svc.db.cursor(tenant_id) as cur:
        keys = event_keys(svc, cur, tenant_id, subject_keys)
        # Everything but seq/previous_hash is prepared before the chain head is locked.
        batch = prepare_batch(str(tenant_id), keys, events, single_key)
        # The chain head row lock serialises appends of this tenant (one lock per batch).
        head = lock_head(cur, tenant_id)
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
        link_batch(batch, *head)
        result = write_batch(cur, tenant_id, batch)
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
