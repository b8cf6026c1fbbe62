"""Ingest: validate → encrypt → chain-append, in one transaction per call.

Everything that does not need the chain head (validation, ids, encryption) happens before
the head is locked, so the lock is held only for hashing and one multi-row INSERT.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ..errors import Conflict, NotFound, ValidationFailed
from ..schemas import EventIn
from .chain import event_hash
from .crypto import encrypt_field

INSERT_SQL = """
INSERT INTO audit_logs (id, tenant_id, seq, occurred_at, received_at, event_type, actor_id,
  actor_type, actor_role, actor_department, entity_type, entity_id, severity, source, tags,
  ip_address, user_agent, action_details, key_id, idempotency_key, previous_hash, hash)
SELECT u.id, %(tenant)s, u.seq, u.occurred_at, u.received_at, u.event_type, u.actor_id,
  u.actor_type, u.actor_role, u.actor_department, u.entity_type, u.entity_id, u.severity,
  u.source, string_to_array(u.tags, chr(31)), u.ip_address, u.user_agent, u.action_details,
  %(key_id)s, u.idempotency_key, u.previous_hash, u.hash
FROM unnest(%(id)s::uuid[], %(seq)s::int8[], %(occurred_at)s::timestamptz[],
  %(received_at)s::timestamptz[], %(event_type)s::text[], %(actor_id)s::text[],
  %(actor_type)s::text[], %(actor_role)s::text[], %(actor_department)s::text[],
  %(entity_type)s::text[], %(entity_id)s::text[], %(severity)s::text[], %(source)s::text[],
  %(tags)s::text[], %(ip_address)s::bytea[], %(user_agent)s::bytea[],
  %(action_details)s::bytea[], %(idempotency_key)s::text[], %(previous_hash)s::text[],
  %(hash)s::text[])
  AS u(id, seq, occurred_at, received_at, event_type, actor_id, actor_type, actor_role,
       actor_department, entity_type, entity_id, severity, source, tags, ip_address,
       user_agent, action_details, idempotency_key, previous_hash, hash)
"""


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


def validate_events(raw_events: list[Any]) -> list[EventIn]:
    """Validate every event; the first invalid one raises 422 naming its index."""
    out: list[EventIn] = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict):
            raise ValidationFailed(
                f"event {index} is not a JSON object", {"index": index, "errors": []}
            )
        try:
            out.append(EventIn.model_validate(raw))
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            raise ValidationFailed(
                f"event {index} is invalid: {errors[0]['msg']} at "
                f"{'.'.join(str(p) for p in errors[0]['loc']) or '(root)'}",
                {"index": index, "errors": errors},
            ) from None
    return out


def request_fingerprint(body: Any) -> str:
    """Stable hash of a request body, for Idempotency-Key comparisons."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
    received_at = datetime.now(UTC)
    n = len(events)
    ids = [uuid.uuid4() for _ in range(n)]
    cols: dict[str, list] = {k: [] for k in (
        "occurred_at", "event_type", "actor_id", "actor_type", "actor_role",
        "actor_department", "entity_type", "entity_id", "severity", "source", "tags",
        "ip_address", "user_agent", "action_details", "idempotency_key")}
    replay: AppendResult | None = None
    with svc.db.cursor(tenant_id) as cur:
        key_id, dek = svc.keyring.active_key(cur, tenant_id)
        tag_lists = []
        for i, ev in enumerate(events):
            eid = ids[i]
            cols["occurred_at"].append(ev.occurred_at)
            cols["event_type"].append(ev.event_type)
            cols["actor_id"].append(ev.actor.id)
            cols["actor_type"].append(ev.actor.type)
            cols["actor_role"].append(ev.actor.role)
            cols["actor_department"].append(ev.actor.department)
            cols["entity_type"].append(ev.entity.type)
            cols["entity_id"].append(ev.entity.id)
            cols["severity"].append(ev.severity)
            cols["source"].append(ev.source)
            tag_lists.append(ev.tags)
            cols["tags"].append("\x1f".join(ev.tags))
            cols["ip_address"].append(
                None if ev.ip_address is None
                else encrypt_field(dek, tenant_id, eid, "ip_address", ev.ip_address.encode())
            )
            cols["user_agent"].append(
                None if ev.user_agent is None
                else encrypt_field(dek, tenant_id, eid, "user_agent", ev.user_agent.encode())
            )
            cols["action_details"].append(
                None if ev.action_details is None
                else encrypt_field(
                    dek, tenant_id, eid, "action_details",
                    orjson.dumps(ev.action_details, option=orjson.OPT_SORT_KEYS),
                )
            )
            cols["idempotency_key"].append(idempotency_key if n == 1 else None)

        # The chain head row lock serialises appends of this tenant (one lock per batch).
        cur.execute(
            "SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s FOR UPDATE",
            (tenant_id,),
        )
        head = cur.fetchone()
        if head is None:
            raise NotFound("tenant not found", {"tenant_id": str(tenant_id)})
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
            seqs, prevs, hashes = [], [], []
            for i in range(n):
                seq = last_seq + 1 + i
                row = (
                    ids[i], tenant_id, seq, cols["occurred_at"][i], received_at,
                    cols["event_type"][i], cols["actor_id"][i], cols["actor_type"][i],
                    cols["actor_role"][i], cols["actor_department"][i], cols["entity_type"][i],
                    cols["entity_id"][i], cols["severity"][i], cols["source"][i], tag_lists[i],
                    cols["ip_address"][i], cols["user_agent"][i], cols["action_details"][i],
                    key_id, cols["idempotency_key"][i], prev,
                )
                h = event_hash(row)
                seqs.append(seq)
                prevs.append(prev)
                hashes.append(h)
                prev = h
            params = dict(cols)
            params.update(
                tenant=tenant_id, key_id=key_id, id=ids, seq=seqs,
                received_at=[received_at] * n, previous_hash=prevs, hash=hashes,
            )
            cur.execute(INSERT_SQL, params)
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
