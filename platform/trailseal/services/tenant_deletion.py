"""Tenant deletion: request → confirmation by a second admin → archive → marked deleted →
purge after the retention period, with the tenant's data keys destroyed at the purge.

- **Request** (an admin): recorded in ``tenant_deletions`` and as an event in the tenant's
  own trail (``tenant.deletion_requested``). A request not confirmed within
  ``TENANT_DELETION_CONFIRM_HOURS`` expires.
- **Confirmation** (another admin credential; the database refuses the requester's own):
  the event ``tenant.deletion_confirmed`` is appended and the chain is closed in the same
  transaction, so the archive holds the whole trail including its deletion.
- **Archive** (the job, at once): a signed checkpoint of the closed chain, then encrypted
  bundles of every retained event (``trailseal-archive/1``, as retention writes them), each
  opened and checked like ``trailseal-verify`` before it counts.
- **Marked**: nobody signs in or calls the API for the tenant any more, and no job visits
  it. The database sets the time and the earliest purge: the mark plus the tenant's
  retention period.
- **Purge** (the job, once due, as the maintenance role): every row of the tenant goes, its
  data keys and per-subject keys with them, so what the archives hold of its sensitive
  fields can never be decrypted again; the archives still verify. A legal hold stops it.
- **Restore** (an operator, before the purge): reopens the chain and access.

Every step is a row of ``tenant_deletion_steps`` (kept after the purge) and, while the
tenant can still be read, a record of its access log.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from psycopg.types.json import Jsonb

from ..db import driver_cursor, maintenance_connection
from ..errors import ConfigurationError, Conflict, Forbidden, NotFound, ValidationFailed
from ..schemas import EventIn
from .access import AccessRecord, audited_read, record_access
from .alerts import announce_alert, insert_alert
from .archives import archive_dir, write_archive
from .chain import format_ts
from .checkpoints import ChainNotCheckpointed, begin_bundle, iter_bundle, make_checkpoint
from .ingest import append_in
from .merkle_store import purged_prefix
from .tenancy import Principal

log = logging.getLogger(__name__)
SYSTEM = "system:tenant-deletion"
JOB = "trailseal.jobs.tenant_deletion.process_tenant_deletion"

_COLUMNS = ("id, reason, requested_by, requested_at, confirmed_by, confirmed_at, cancelled_by, "
            "cancelled_at, cancel_reason, archived_at, archives, head_seq, head_hash, "
            "checkpoint_note, public_key, marked_at, retention_days, purge_after, purged_by, "
            "purged_at, purge_result, restored_by, restored_at, restore_reason")


class DeletionNotDue(Conflict):
    code = "deletion_not_due"


def _who(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _state(row: dict[str, Any]) -> str:
    for column, state in (("purged_at", "purged"), ("restored_at", "restored"),
                          ("cancelled_at", "cancelled"), ("marked_at", "marked"),
                          ("archived_at", "archived"), ("confirmed_at", "confirmed")):
        if row[column] is not None:
            return state
    return "requested"


def _deletion(cur_row, names: list[str], confirm_hours: float) -> dict[str, Any]:
    row = dict(zip(names, cur_row, strict=True))
    out = {k: (_ts(v) if isinstance(v, datetime) else v) for k, v in row.items()}
    out["id"] = str(row["id"])
    out["state"] = _state(row)
    out["confirm_by"] = (_ts(row["requested_at"] + timedelta(hours=confirm_hours))
                         if out["state"] == "requested" else None)
    return out


def _confirm_hours(svc) -> float:
    return float(svc.config["TENANT_DELETION_CONFIRM_HOURS"])


def _fetch(cur, svc, tenant_id: uuid.UUID, deletion_id: uuid.UUID | None = None, *,
           lock: bool = False) -> dict[str, Any] | None:
    """One deletion of the tenant (the newest when no id is given)."""
    where = "tenant_id = %s" + (" AND id = %s" if deletion_id else "")
    params = (tenant_id, deletion_id) if deletion_id else (tenant_id,)
    cur.execute(f"SELECT {_COLUMNS} FROM tenant_deletions WHERE {where} "
                f"ORDER BY requested_at DESC LIMIT 1{' FOR UPDATE' if lock else ''}", params)
    row = cur.fetchone()
    if row is None:
        return None
    return _deletion(row, [d.name for d in cur.description], _confirm_hours(svc))


def _step(cur, tenant_id: uuid.UUID, deletion_id: str, step: str, actor: str,
          details: dict[str, Any] | None = None) -> None:
    cur.execute("INSERT INTO tenant_deletion_steps (id, tenant_id, deletion_id, step, actor, "
                "details) VALUES (%s, %s, %s, %s, %s, %s)",
                (uuid.uuid4(), tenant_id, deletion_id, step, actor, Jsonb(details or {})))


def _steps(cur, tenant_id: uuid.UUID, deletion_id: str) -> list[dict[str, Any]]:
    cur.execute("SELECT step, actor, at, details FROM tenant_deletion_steps WHERE tenant_id = %s "
                "AND deletion_id = %s ORDER BY at, step", (tenant_id, deletion_id))
    return [{"step": r[0], "actor": r[1], "at": _ts(r[2]), "details": r[3]}
            for r in cur.fetchall()]


def _parse_id(deletion_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(deletion_id))
    except ValueError:
        raise NotFound("no such tenant deletion request") from None


def _alert(conn, principal: Principal, did: uuid.UUID, step: str, severity: str,
           event_id: str, title: str):
    """An alert of kind ``tenant_deletion`` in the caller's transaction, so the tenant's
    notification channels hear of the request and the confirmation (announced after the
    commit)."""
    return insert_alert(conn, principal.tenant_id, kind="tenant_deletion", severity=severity,
                        title=title[:300], event_id=event_id,
                        details={"deletion_id": str(did), "step": step,
                                 "by": _who(principal)},
                        dedupe_key=f"tenant-deletion:{did}:{step}")


def _reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 1000:
        raise ValidationFailed("reason must be 1–1000 characters")
    return reason


def _awaiting(cur, svc, tenant_id: uuid.UUID, did: uuid.UUID) -> dict[str, Any]:
    """The request ``did``, locked, if it awaits confirmation: 404 unknown, 409 otherwise."""
    found = _fetch(cur, svc, tenant_id, did, lock=True)
    if found is None:
        raise NotFound("no such tenant deletion request")
    if found["state"] != "requested":
        raise Conflict(f"the deletion request is {found['state']}, not awaiting confirmation",
                       {"state": found["state"]})
    return found


def _trail_event(svc, cur, principal: Principal, event_type: str, severity: str,
                 details: dict[str, Any]):
    """Append one event about the deletion to the tenant's own trail (the caller's
    transaction), so the trail and its archive show who asked, who confirmed and why."""
    actor = {"id": (principal.name or principal.id)[:256], "type": principal.kind}
    if principal.kind == "user":
        actor["role"] = "admin"
    event = EventIn.model_validate({
        "event_type": event_type, "occurred_at": format_ts(datetime.now(UTC)),
        "actor": actor, "entity": {"type": "tenant", "id": str(principal.tenant_id)},
        "severity": severity, "source": "trailseal", "action_details": details,
    })
    return append_in(svc, cur, principal.tenant_id, [event])


def _expire(svc, tenant_id: uuid.UUID) -> None:
    """Cancel the tenant's open request if its confirmation window has passed (own
    transaction, so it stays recorded whatever the caller does next)."""
    hours = _confirm_hours(svc)
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT id FROM tenant_deletions WHERE tenant_id = %s AND confirmed_at IS NULL "
                    "AND cancelled_at IS NULL AND requested_at < now() - make_interval("
                    "secs => %s) FOR UPDATE", (tenant_id, hours * 3600))
        for (did,) in cur.fetchall():
            cur.execute("UPDATE tenant_deletions SET cancelled_by = %s, cancelled_at = now(), "
                        "cancel_reason = %s WHERE tenant_id = %s AND id = %s",
                        ("system:expired", f"not confirmed within {hours:g} hours", tenant_id,
                         did))
            _step(cur, tenant_id, str(did), "expired", "system:expired",
                  {"confirm_hours": hours})


# --- the API's side -----------------------------------------------------------------------


def read_deletion(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The tenant's newest deletion request with its steps (``{"deletion": null}`` if none)."""
    _expire(svc, principal.tenant_id)
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        found = _fetch(cur, svc, principal.tenant_id)
        if found is not None:
            found["steps"] = _steps(cur, principal.tenant_id, found["id"])
        return {"deletion": found}


def request_deletion(svc, principal: Principal, reason: str,
                     access: AccessRecord) -> dict[str, Any]:
    """Ask for the tenant to be deleted; another admin must confirm. 409 when a request is
    already open (or the tenant is being deleted)."""
    reason = _reason(reason)
    _expire(svc, principal.tenant_id)
    did = uuid.uuid4()
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        cur.execute("SELECT id FROM tenant_deletions WHERE tenant_id = %s AND cancelled_at IS NULL "
                    "AND restored_at IS NULL AND purged_at IS NULL", (principal.tenant_id,))
        open_row = cur.fetchone()
        if open_row is not None:
            raise Conflict("a deletion of this tenant is already requested; confirm or cancel "
                           "it first", {"deletion_id": str(open_row[0])})
        try:
            cur.execute("INSERT INTO tenant_deletions (id, tenant_id, reason, requested_by) "
                        "VALUES (%s, %s, %s, %s)", (did, principal.tenant_id, reason,
                                                     _who(principal)))
        except psycopg.errors.UniqueViolation:  # another request won the race
            raise Conflict("a deletion of this tenant is already requested") from None
        appended = _trail_event(svc, cur, principal, "tenant.deletion_requested", "high",
                                {"deletion_id": str(did), "reason": reason})
        _step(cur, principal.tenant_id, str(did), "requested", _who(principal),
              {"reason": reason, "event_id": appended.ids[0]})
        alert = _alert(conn, principal, did, "requested", "high", appended.ids[0],
                       f"Deletion of the whole tenant requested by {_who(principal)}: {reason}")
        found = _fetch(cur, svc, principal.tenant_id, did)
    svc.after_ingest(principal.tenant_id, appended)
    if alert is not None:
        announce_alert(svc, alert)
    return found


def confirm_deletion(svc, principal: Principal, deletion_id: str,
                     access: AccessRecord) -> dict[str, Any]:
    """A second admin confirms: the confirmation is appended to the trail, the chain is
    closed, and the job archives it and marks the tenant deleted."""
    did = _parse_id(deletion_id)
    _expire(svc, principal.tenant_id)
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        found = _awaiting(cur, svc, principal.tenant_id, did)
        if found["requested_by"] == _who(principal):
            raise Forbidden("a second admin must confirm: the credential that requested the "
                            "deletion cannot confirm it", {"requested_by": found["requested_by"]})
        appended = _trail_event(svc, cur, principal, "tenant.deletion_confirmed", "critical",
                                {"deletion_id": str(did), "requested_by": found["requested_by"],
                                 "reason": found["reason"]})
        cur.execute("UPDATE tenant_deletions SET confirmed_by = %s, confirmed_at = now() "
                    "WHERE tenant_id = %s AND id = %s", (_who(principal), principal.tenant_id,
                                                          did))
        cur.execute("UPDATE chain_heads SET closed_at = now() WHERE tenant_id = %s",
                    (principal.tenant_id,))
        _step(cur, principal.tenant_id, str(did), "confirmed", _who(principal),
              {"event_id": appended.ids[0], "closed_at_seq": appended.seqs[-1]})
        alert = _alert(conn, principal, did, "confirmed", "critical", appended.ids[0],
                       f"Deletion of the whole tenant confirmed by {_who(principal)}: the trail "
                       "is closed, will be archived and, after the retention period, purged")
        found = _fetch(cur, svc, principal.tenant_id, did)
    svc.after_ingest(principal.tenant_id, appended)
    if alert is not None:
        announce_alert(svc, alert)
    try:
        svc.queues["low"].enqueue(JOB, str(principal.tenant_id), str(did), job_timeout=6 * 3600)
        found["archive_job"] = "queued"
    except redis.RedisError:
        log.warning("tenant deletion %s: archive job not queued; the daily job will run it", did)
        found["archive_job"] = "not queued (the daily tenant-deletions job will run it)"
    return found


def cancel_deletion(svc, principal: Principal, deletion_id: str, reason: str,
                    access: AccessRecord) -> dict[str, Any]:
    """Cancel a request that is not confirmed yet (any admin)."""
    reason = _reason(reason)
    did = _parse_id(deletion_id)
    _expire(svc, principal.tenant_id)
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        _awaiting(cur, svc, principal.tenant_id, did)
        appended = _trail_event(svc, cur, principal, "tenant.deletion_cancelled", "medium",
                                {"deletion_id": str(did), "reason": reason})
        cur.execute("UPDATE tenant_deletions SET cancelled_by = %s, cancelled_at = now(), "
                    "cancel_reason = %s WHERE tenant_id = %s AND id = %s",
                    (_who(principal), reason, principal.tenant_id, did))
        _step(cur, principal.tenant_id, str(did), "cancelled", _who(principal),
              {"reason": reason, "event_id": appended.ids[0]})
        found = _fetch(cur, svc, principal.tenant_id, did)
    svc.after_ingest(principal.tenant_id, appended)
    return found


# --- the job's side -----------------------------------------------------------------------


def _system(tenant_id: uuid.UUID, actor: str) -> Principal:
    kind, _, name = actor.partition(":")
    return Principal(kind or "system", name or actor, tenant_id, frozenset())


def _archive(svc, tenant_id: uuid.UUID, did: str, actor: str) -> dict[str, Any]:
    """Checkpoint the closed chain and write every retained event to encrypted archives,
    each checked before it counts; then record them."""
    from .retention import _verify_archive

    principal = _system(tenant_id, actor)
    try:
        made = make_checkpoint(svc, tenant_id)
    except Conflict as exc:
        if exc.code == ChainNotCheckpointed.code:
            raise  # a broken chain is never archived as if it were whole
        made = None
    with svc.db.cursor(tenant_id) as cur:
        purged, _ = purged_prefix(cur, tenant_id)
        cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s",
                    (tenant_id,))
        head_seq, head_hash = cur.fetchone()
        cur.execute("SELECT note FROM chain_checkpoints WHERE tenant_id = %s "
                    "ORDER BY tree_size DESC LIMIT 1", (tenant_id,))
        note = cur.fetchone()
    archives: list[dict[str, Any]] = []
    vkey = None
    limit = int(svc.config["BUNDLE_MAX_EVENTS"])
    folder = archive_dir(svc.config) / str(tenant_id)
    first = purged + 1
    while first <= head_seq:
        last = min(head_seq, first + limit - 1)
        access = AccessRecord("tenant-deletion:archive", "JOB",
                              {"from_seq": first, "to_seq": last})
        bundle_head, first, last = begin_bundle(svc, principal, first, last, access,
                                                max_events=limit)
        vkey = bundle_head["public_key"]["vkey"]
        path = folder / f"deletion-{did}-{first}-{last}.tsarc"
        written = write_archive(svc.keyring, path, str(tenant_id), first, last,
                                iter_bundle(svc, principal, bundle_head, first, last))
        _verify_archive(svc, path, first, last, vkey)
        archives.append({"from_seq": first, "to_seq": last, "path": written["path"],
                         "name": written["name"], "sha256": written["sha256"],
                         "bytes": written["bytes"]})
        first = last + 1
    return {"archives": archives, "head_seq": head_seq, "head_hash": head_hash,
            "checkpoint_note": note[0] if note else None, "public_key": vkey,
            "checkpoint_created": bool(made and made.get("created"))}


def _clear_redis(svc, tenant_id: uuid.UUID) -> int:
    """Every cached value of the tenant (search rankings, kept export files, statistics,
    classifier cache): keys naming its id."""
    removed = 0
    try:
        for raw in svc.redis.scan_iter(match=f"trailseal:*{tenant_id}*", count=1000):
            removed += svc.redis.delete(raw)
    except redis.RedisError:
        log.warning("tenant %s purged, but its cached values were not all removed (Redis)",
                    tenant_id)
    return removed


def process_deletion(svc, tenant_id: uuid.UUID | str, deletion_id: str, *,
                     actor: str = SYSTEM) -> dict[str, Any]:
    """Do the deletion's next due steps: archive and mark a confirmed one, purge a marked
    one whose time has come (needs ``MAINTENANCE_DATABASE_URL``). Returns what was done and
    the deletion as it now stands. Idempotent."""
    tenant_id = uuid.UUID(str(tenant_id))
    did = _parse_id(deletion_id)
    done: list[str] = []
    with svc.db.cursor(tenant_id) as cur:
        found = _fetch(cur, svc, tenant_id, did)
    if found is None:
        raise NotFound("no such tenant deletion")
    if found["state"] == "confirmed":
        try:
            archived = _archive(svc, tenant_id, str(did), actor)
        except Conflict as exc:
            with svc.db.cursor(tenant_id) as cur:
                _step(cur, tenant_id, str(did), "failed", actor,
                      {"step": "archive", "error": exc.message})
            raise
        with svc.db.transaction(tenant_id) as conn, driver_cursor(conn) as cur:
            record_access(conn, _system(tenant_id, actor), AccessRecord(
                "tenant-deletion:archived", "JOB", {"archives": len(archived["archives"]),
                                                    "head_seq": archived["head_seq"]}))
            cur.execute("UPDATE tenant_deletions SET archived_at = now(), archives = %s, "
                        "head_seq = %s, head_hash = %s, checkpoint_note = %s, public_key = %s "
                        "WHERE tenant_id = %s AND id = %s",
                        (Jsonb(archived["archives"]), archived["head_seq"],
                         archived["head_hash"], archived["checkpoint_note"],
                         archived["public_key"], tenant_id, did))
            _step(cur, tenant_id, str(did), "archived", actor,
                  {"archives": archived["archives"], "head_seq": archived["head_seq"]})
        done.append("archived")
        found["state"] = "archived"
    if found["state"] == "archived":
        with svc.db.transaction(tenant_id) as conn, driver_cursor(conn) as cur:
            record_access(conn, _system(tenant_id, actor),
                          AccessRecord("tenant-deletion:marked", "JOB", {}))
            # The database sets the mark's time and the earliest purge (the guard).
            cur.execute("UPDATE tenant_deletions SET marked_at = now() WHERE tenant_id = %s "
                        "AND id = %s RETURNING marked_at, purge_after, retention_days",
                        (tenant_id, did))
            _, purge_after, days = cur.fetchone()
            _step(cur, tenant_id, str(did), "marked", actor,
                  {"purge_after": _ts(purge_after), "retention_days": days})
        done.append("marked")
    with svc.db.cursor(tenant_id) as cur:
        found = _fetch(cur, svc, tenant_id, did)
    # (the database checks the time again: this only spares a refused call)
    if found["state"] == "marked" and datetime.fromisoformat(
            found["purge_after"].replace("Z", "+00:00")) <= datetime.now(UTC):
        result = purge_tenant(svc, tenant_id, str(did), actor=actor)
        done.append("purged")
        found = result["deletion"]
    return {"tenant_id": str(tenant_id), "done": done, "deletion": found}


def purge_tenant(svc, tenant_id: uuid.UUID, deletion_id: str, *,
                 actor: str = SYSTEM) -> dict[str, Any]:
    """Remove every row of a marked tenant whose purge is due, as the maintenance role;
    its data keys go with them. ``Conflict`` when not due, held, or not marked."""
    url = svc.config.get("MAINTENANCE_DATABASE_URL")
    if not url:
        raise ConfigurationError("TRAILSEAL_MAINTENANCE_DATABASE_URL is not set: a tenant is "
                                 "purged only through the maintenance role")
    did = _parse_id(deletion_id)
    try:
        with maintenance_connection(url) as conn:
            result = conn.execute("SELECT trailseal_tenant_purge(%s, %s, %s)",
                                  (tenant_id, did, actor)).fetchone()[0]
    except psycopg.errors.CheckViolation as exc:
        raise DeletionNotDue(f"tenant purge refused by the database: "
                             f"{exc.diag.message_primary}") from None
    result["cached_values_removed"] = _clear_redis(svc, tenant_id)
    svc.keyring.forget_tenant(str(tenant_id))
    with svc.db.cursor(tenant_id) as cur:
        found = _fetch(cur, svc, tenant_id, did)
    return {"result": result, "deletion": found}


def restore_tenant(svc, tenant_id: uuid.UUID, reason: str, *, actor: str) -> dict[str, Any]:
    """Undo a confirmed deletion before its purge (an operator, as the maintenance role):
    the chain reopens and the tenant's users and keys work again."""
    url = svc.config.get("MAINTENANCE_DATABASE_URL")
    if not url:
        raise ConfigurationError("TRAILSEAL_MAINTENANCE_DATABASE_URL is not set: a tenant is "
                                 "restored only through the maintenance role")
    reason = _reason(reason)
    with svc.db.cursor(tenant_id) as cur:
        found = _fetch(cur, svc, tenant_id)
    if found is None or found["state"] not in ("confirmed", "archived", "marked"):
        raise Conflict("the tenant has no confirmed, unpurged deletion to undo",
                       {"state": found["state"] if found else None})
    try:
        with maintenance_connection(url) as conn:
            conn.execute("SELECT trailseal_tenant_restore(%s, %s, %s, %s)",
                         (tenant_id, uuid.UUID(found["id"]), actor, reason))
    except psycopg.errors.CheckViolation as exc:
        raise Conflict(f"restore refused by the database: {exc.diag.message_primary}") from None
    with svc.db.cursor(tenant_id) as cur:
        return _fetch(cur, svc, tenant_id, uuid.UUID(found["id"]))


def open_deletions(svc) -> list[tuple[uuid.UUID, str]]:
    """Confirmed deletions not yet purged or restored, across tenants (the job's work)."""
    with svc.db.cursor() as cur:
        cur.execute("SELECT tenant_id, deletion_id FROM trailseal_open_deletions()")
        return [(r[0], str(r[1])) for r in cur.fetchall()]


def process_all(svc) -> dict[str, list[str]]:
    """The daily job: every open deletion's due steps. A deletion that cannot go on (a broken
    chain, a legal hold) is logged and recorded, and the others still run."""
    out: dict[str, list[str]] = {}
    for tid, did in open_deletions(svc):
        try:
            result = process_deletion(svc, tid, did)
        except (Conflict, ConfigurationError) as exc:
            log.warning("tenant deletion %s of tenant %s stopped: %s", did, tid, exc.message)
            continue
        if result["done"]:
            out[str(tid)] = result["done"]
    return out


def deletion_status(svc, tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The tenant's newest deletion with its steps, for operators (no access record: the
    tenant may be marked)."""
    with svc.db.cursor(tenant_id) as cur:
        found = _fetch(cur, svc, tenant_id)
        if found is not None:
            found["steps"] = _steps(cur, tenant_id, found["id"])
            cur.execute("SELECT EXISTS (SELECT 1 FROM legal_holds WHERE tenant_id = %s "
                        "AND released_at IS NULL)", (tenant_id,))
            found["legal_hold"] = cur.fetchone()[0]
        return found
