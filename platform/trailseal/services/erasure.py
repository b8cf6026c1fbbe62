"""GDPR erasure that keeps the chain: destroy a subject's key, remove what was derived from
its events, record the erasure.

The events stay in the ledger untouched (the hash covers their ciphertext, which does not
change), so chain verification and ``trailseal-verify`` pass afterwards; their sensitive
fields read ``[erased]`` because the subject's key, which their event key derives from, is
gone (see ``subject_keys``).
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from ..db import driver_cursor
from ..errors import NotFound, ValidationFailed
from ..schemas import TEXT_PATTERN
from .access import AccessRecord, audited_read
from .chain import format_ts
from .subject_keys import SUBJECT_KEY_TTL, erasure_counter
from .summaries import delete_stored_summaries
from .tenancy import Principal

log = logging.getLogger(__name__)

# Events by or about the subject: the actor, or the entity when it names a person (the events
# erasure makes unreadable) and any other event whose entity id is the subject (whose
# derived data goes too: it names the subject).
_NAMING = "(a.actor_id = %(s)s OR a.entity_id = %(s)s)"


def _check_subject(subject_id: str) -> None:
    if not subject_id or not re.match(TEXT_PATTERN, subject_id):
        raise ValidationFailed("subject id must be 1–256 characters without control "
                               "separators (U+001C–U+001F) or NUL", {"subject_id": subject_id[:80]})
    if len(subject_id) > 256:  # no actor or entity id is that long: like any unknown subject
        raise NotFound(f"no subject {subject_id[:80]!r} in this tenant",
                       {"subject_id": subject_id[:80]})


def erase_subject(svc, principal: Principal, subject_id: str, reason: str,
                  access: AccessRecord | None = None) -> dict[str, Any]:
    """Erase a subject of the caller's tenant: overwrite its key with a tombstone, clear the
    derived data of every event naming it, record the erasure (and, given ``access``, the
    request in the access log). Idempotent: asking again destroys nothing more and says so.
    ``NotFound`` when the tenant has neither a key for nor an event naming the subject."""
    _check_subject(subject_id)
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise ValidationFailed("reason must be 1–1000 characters")
    tenant_id = principal.tenant_id
    # Which events are unreadable now is written in each event's key_id (":a" actor key,
    # ":ae" actor and entity keys), not decided by today's PERSON_ENTITY_TYPES.
    params = {"t": tenant_id, "s": subject_id}
    context = (audited_read(svc, principal, access) if access is not None
               else svc.db.transaction(tenant_id))
    with context as conn, driver_cursor(conn) as cur:
        # Serialises with appends of the tenant (they lock the same row): no event about the
        # subject commits between the count and the destruction of the key.
        cur.execute("SELECT 1 FROM chain_heads WHERE tenant_id = %s FOR UPDATE", (tenant_id,))
        cur.execute("SELECT wrapped_key IS NOT NULL, erased_at FROM subject_keys "
                    "WHERE tenant_id = %(t)s AND subject_id = %(s)s FOR UPDATE", params)
        key_row = cur.fetchone()
        cur.execute(f"""
            SELECT
              count(*) FILTER (WHERE (a.actor_id = %(s)s AND a.key_id LIKE '%%:a%%')
                               OR (a.entity_id = %(s)s AND a.key_id LIKE '%%:ae')),
              count(*) FILTER (WHERE a.key_id NOT LIKE '%%:%%'),
              count(*) FILTER (WHERE a.actor_id <> %(s)s AND a.key_id LIKE '%%:a')
            FROM audit_logs a WHERE a.tenant_id = %(t)s AND {_NAMING}""", params)
        erased, legacy, entity_only = cur.fetchone()
        if key_row is None and erased + legacy + entity_only == 0:
            # (audited_read commits the access record of this 404 too)
            raise NotFound(f"no subject {subject_id[:80]!r} in this tenant",
                           {"subject_id": subject_id[:80]})
        now = datetime.now(UTC)
        key_destroyed = bool(key_row and key_row[0])
        already = key_row is not None and key_row[1] is not None
        if key_row is None:
            # Only old events name it (or none of a person type): the tombstone still makes
            # every later event about the subject unreadable.
            cur.execute("INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key, "
                        "erased_at) VALUES (%(t)s, %(s)s, NULL, %(now)s)", {**params, "now": now})
            erased_at = now
        elif not already:
            cur.execute("UPDATE subject_keys SET wrapped_key = NULL, erased_at = %(now)s "
                        "WHERE tenant_id = %(t)s AND subject_id = %(s)s", {**params, "now": now})
            erased_at = now
        else:
            erased_at = key_row[1]
        derived = _remove_derived(cur, params)
        derived["summaries"] = delete_stored_summaries(conn)
        derived["export_files"], derived["search_cache"] = _clear_redis(svc, tenant_id)
        result = {
            "subject_id": subject_id,
            "erasure_id": str(uuid.uuid4()),
            "erased_at": format_ts(erased_at),
            "already_erased": already,
            "key_destroyed": key_destroyed,
            "events_erased": erased,
            "events_not_erased": {"legacy": legacy, "entity_not_person": entity_only},
            "derived_removed": derived,
        }
        cur.execute(
            "INSERT INTO subject_erasures (id, tenant_id, subject_id, reason, requested_by, "
            "result) VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            (result["erasure_id"], tenant_id, subject_id, reason,
             f"{principal.kind}:{principal.id}", orjson.dumps(result).decode()))
    svc.keyring.subject_cache.forget(str(tenant_id), subject_id)
    try:
        # every other process empties its cached keys of the tenant before its next read
        svc.redis.incr(erasure_counter(str(tenant_id)))
    except redis.RedisError:
        log.warning("erasure of a subject of tenant %s not announced (Redis); other "
                    "processes forget the key within %.0f s", tenant_id, SUBJECT_KEY_TTL)
    return result


def _remove_derived(cur, params: dict[str, Any]) -> dict[str, int]:
    """Delete or clear the derived rows of every event naming the subject (the caller's
    transaction). Embeddings and full-text rows are deleted: the backlog rebuilds them from
    the events as they now read. Insight texts, prediction features and alert details may
    quote the details, so they are cleared (scores, categories and statuses stay)."""
    naming = f"SELECT a.id FROM audit_logs a WHERE a.tenant_id = %(t)s AND {_NAMING}"
    out = {}
    cur.execute(f"DELETE FROM audit_embeddings WHERE tenant_id = %(t)s AND event_id IN ({naming})",
                params)
    out["embeddings"] = cur.rowcount
    cur.execute(f"DELETE FROM audit_search_text WHERE tenant_id = %(t)s AND event_id IN ({naming})",
                params)
    out["search_rows"] = cur.rowcount
    cur.execute(f"UPDATE event_insights SET ai_insights = '{{}}'::jsonb WHERE tenant_id = %(t)s "
                f"AND ai_insights <> '{{}}'::jsonb AND event_id IN ({naming})", params)
    out["insight_texts"] = cur.rowcount
    cur.execute(f"UPDATE ai_predictions SET features = '{{}}'::jsonb WHERE tenant_id = %(t)s "
                f"AND features <> '{{}}'::jsonb AND event_id IN ({naming})", params)
    out["predictions"] = cur.rowcount
    # An alert keeps its score, model and affected ids (plaintext columns anyway); its
    # explanation and suggested actions are text that may quote the details.
    cur.execute(f"UPDATE audit_anomalies SET details = (details - 'explanation' "
                f"- 'suggested_actions') || '{{\"erased\": true}}'::jsonb "
                f"WHERE tenant_id = %(t)s AND NOT details ? 'erased' "
                f"AND event_id IN ({naming})", params)
    out["alert_details"] = cur.rowcount
    return out


def _clear_redis(svc, tenant_id: uuid.UUID) -> tuple[int, int]:
    """Delete the tenant's kept export files (any may hold the subject's events as they read
    before) and its cached search rankings (a query may have named the subject). Counts."""
    files = cached = 0
    for raw in svc.redis.scan_iter(match=f"trailseal:export:{tenant_id}:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        if key.endswith(":file"):
            files += svc.redis.delete(key)
            svc.redis.hset(key[:-len(":file")], mapping={
                "status": "failed", "error": "removed by a subject erasure"})
    for raw in svc.redis.scan_iter(match=f"trailseal:search:{tenant_id}:*", count=500):
        cached += svc.redis.delete(raw)
    return files, cached


def list_erasures(svc, principal: Principal, subject_id: str) -> list[dict[str, Any]]:
    """The erasure records of a subject, oldest first (the CLI and tests read them)."""
    with svc.db.cursor(principal.tenant_id) as cur:
        cur.execute("SELECT id, reason, requested_by, result, created_at FROM subject_erasures "
                    "WHERE subject_id = %s ORDER BY created_at", (subject_id,))
        return [{"id": str(r[0]), "reason": r[1], "requested_by": r[2], "result": r[3],
                 "created_at": format_ts(r[4])} for r in cur.fetchall()]
