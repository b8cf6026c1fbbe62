"""Ingest: validate → encrypt → chain-append, in one transaction per call.

Everything that does not need the chain head (validation, ids, encryption) happens before
the head is locked, so the lock is held only for hashing and one multi-row INSERT.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from ..errors import Conflict, NotFound, ValidationFailed
from ..schemas import TEXT_PATTERN, EventIn
from .chain import TAG_SEP, build_record, format_ts, record_hash
from .crypto import encrypt_field

# Binary parameters (%b): psycopg sends the arrays without text escaping.
INSERT_SQL = """
INSERT INTO audit_logs (id, tenant_id, seq, occurred_at, received_at, event_type, actor_id,
  actor_type, actor_role, actor_department, entity_type, entity_id, severity, source, tags,
  key_id, idempotency_key, previous_hash, hash, record)
SELECT u.id, %(tenant)b, u.seq, u.occurred_at, %(received_at)b, u.event_type, u.actor_id,
  u.actor_type, u.actor_role, u.actor_department, u.entity_type, u.entity_id, u.severity,
  u.source, string_to_array(u.tags, chr(29)), %(key_id)b, u.idempotency_key, u.previous_hash,
  u.hash, u.record
FROM unnest(%(id)b::uuid[], %(seq)b::int8[], %(occurred_at)b::timestamptz[],
  %(event_type)b::text[], %(actor_id)b::text[], %(actor_type)b::text[], %(actor_role)b::text[],
  %(actor_department)b::text[], %(entity_type)b::text[], %(entity_id)b::text[],
  %(severity)b::text[], %(source)b::text[], %(tags)b::text[], %(idempotency_key)b::text[],
  %(previous_hash)b::text[], %(hash)b::text[], %(record)b::bytea[])
  AS u(id, seq, occurred_at, event_type, actor_id, actor_type, actor_role, actor_department,
       entity_type, entity_id, severity, source, tags, idempotency_key, previous_hash, hash,
       record)
"""


def time_ordered_uuid() -> uuid.UUID:
    """A UUIDv7: millisecond timestamp first, so primary-key inserts append to the index."""
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(raw))


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


def _b64(blob: bytes | None) -> str | None:
    return None if blob is None else base64.b64encode(blob).decode("ascii")


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
    tenant_text = str(tenant_id)
    received_at = datetime.now(UTC)
    received_text = format_ts(received_at)
    n = len(events)
    ids = [time_ordered_uuid() for _ in range(n)]
    single_key = idempotency_key if n == 1 else None
    replay: AppendResult | None = None
    with svc.db.cursor(tenant_id) as cur:
        key_id, dek = svc.keyring.active_key(cur, tenant_id)
        # Everything but seq/previous_hash, prepared before the chain head is locked.
        partial: list[dict] = []
        for eid, ev in zip(ids, events, strict=True):
            details = ev.action_details
            eid_text = str(eid)  # AAD and record both use the text form: convert once
            partial.append({
                "id": eid_text, "tenant_id": tenant_text,
                "occurred_at": format_ts(ev.occurred_at), "received_at": received_text,
                "event_type": ev.event_type, "actor_id": ev.actor.id,
                "actor_type": ev.actor.type, "actor_role": ev.actor.role,
                "actor_department": ev.actor.department, "entity_type": ev.entity.type,
                "entity_id": ev.entity.id, "severity": ev.severity, "source": ev.source,
                "tags": ev.tags, "key_id": key_id, "idempotency_key": single_key,
                "ip_address": _b64(None if ev.ip_address is None else encrypt_field(
                    dek, tenant_text, eid_text, "ip_address", ev.ip_address.encode())),
                "user_agent": _b64(None if ev.user_agent is None else encrypt_field(
                    dek, tenant_text, eid_text, "user_agent", ev.user_agent.encode())),
                "action_details": _b64(None if details is None else encrypt_field(
                    dek, tenant_text, eid_text, "action_details",
                    orjson.dumps(details, option=orjson.OPT_SORT_KEYS))),
            })

        # The chain head row lock serialises appends of this tenant (one lock per batch).
        cur.execute(
            "SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s FOR UPDATE",
            (tenant_id,),
        )
        head = cur.fetchone()
        if head is None:
            raise NotFound("tenant not found", {"tenant_id": tenant_text})
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
                replay = AppendResult(stored["ids"], stored["seqs"], stored["hashes"], True)
        if replay is None:
            last_seq, prev = head
            seqs, prevs, hashes, records = [], [], [], []
            for i, fields in enumerate(partial):
                seq = last_seq + 1 + i
                fields["seq"] = seq
                fields["previous_hash"] = prev
                record = build_record(fields)
                h = record_hash(record)
                seqs.append(seq)
                prevs.append(prev)
                hashes.append(h)
                records.append(record)
                prev = h
            cur.execute(INSERT_SQL, {
                "tenant": tenant_id, "received_at": received_at, "key_id": key_id, "id": ids,
                "seq": seqs, "occurred_at": [ev.occurred_at for ev in events],
                "event_type": [ev.event_type for ev in events],
                "actor_id": [ev.actor.id for ev in events],
                "actor_type": [ev.actor.type for ev in events],
                "actor_role": [ev.actor.role for ev in events],
                "actor_department": [ev.actor.department for ev in events],
                "entity_type": [ev.entity.type for ev in events],
                "entity_id": [ev.entity.id for ev in events],
                "severity": [ev.severity for ev in events],
                "source": [ev.source for ev in events],
                "tags": [TAG_SEP.join(ev.tags) for ev in events],
                "idempotency_key": [single_key] * n,
                "previous_hash": prevs, "hash": hashes, "record": records,
            })
            cur.execute(
                "UPDATE chain_heads SET last_seq = %s, last_hash = %s, updated_at = now() "
                "WHERE tenant_id = %s",
                (seqs[-1], hashes[-1], tenant_id),
            )
            result = AppendResult([str(i) for i in ids], seqs, hashes)
            if idempotency_key is not None:
                cur.execute(
                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, status_code, response) "
                    "VALUES (%s, %s, %s, 201, %s::jsonb)",
                    (tenant_id, idempotency_key, request_hash,
                     orjson.dumps({"ids": result.ids, "seqs": seqs, "hashes": hashes}).decode()),
                )
    if replay is not None:
        return replay
    svc.after_ingest(tenant_id, result)
    return result
