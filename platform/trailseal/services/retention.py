"""Retention and legal hold: a tenant's retention period, its legal holds, and the daily
removal of the expired prefix of its chain (archive first, then purge through the
maintenance role).

What may go is decided by the database (``trailseal_retention_boundary``): events
``purged+1..N`` with N a multiple of 64, all older than the retention period (by
``occurred_at``), none of an entity under an active legal hold, no tenant-wide hold, and
covered by a signed checkpoint. The purge itself (``trailseal_retention_purge``) runs only as
``trailseal_maintenance`` and checks all of it again; the app role cannot delete anything.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from trailseal_verify.bundle import Problem, check_bundle
from trailseal_verify.note import parse_verifier_key

from ..db import driver_cursor, maintenance_connection
from ..errors import ConfigurationError, Conflict, NotFound, ValidationFailed
from .access import AccessRecord, audited_read, record_access
from .archives import archive_dir, open_archive, write_archive
from .chain import format_ts
from .checkpoints import ChainNotCheckpointed, begin_bundle, iter_bundle, make_checkpoint
from .merkle_store import STORED_LEVEL, purged_prefix
from .tenancy import Principal

log = logging.getLogger(__name__)
RETENTION_DAYS = "retention.days"
DEFAULT_RETENTION_DAYS = 2557  # 7 years (with two leap days); the SQL functions agree
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 36_500
BLOCK = 1 << STORED_LEVEL
PURGES_SHOWN = 20
SYSTEM = "system:retention"


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _who(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


# --- policy -------------------------------------------------------------------------------


def _policy(cur, tenant_id: uuid.UUID) -> dict[str, Any]:
    cur.execute("SELECT value, updated_by, updated_at FROM tenant_settings "
                "WHERE tenant_id = %s AND key = %s", (tenant_id, RETENTION_DAYS))
    row = cur.fetchone()
    return {"days": DEFAULT_RETENTION_DAYS if row is None else int(row[0]),
            "default_days": DEFAULT_RETENTION_DAYS,
            "updated_by": row[1] if row else None, "updated_at": _ts(row[2]) if row else None}


def _status(cur, tenant_id: uuid.UUID) -> dict[str, Any]:
    """The policy, what was removed so far, the active holds and what may go next."""
    policy = _policy(cur, tenant_id)
    purged, _ = purged_prefix(cur, tenant_id)
    cur.execute("SELECT trailseal_retention_boundary(%s)", (tenant_id,))
    boundary = int(cur.fetchone()[0])
    cur.execute("SELECT purged_through, from_seq, events_removed, archive_name, archive_sha256, "
                "retention_days, purged_by, purged_at FROM retention_purges "
                "WHERE tenant_id = %s ORDER BY purged_through DESC LIMIT %s",
                (tenant_id, PURGES_SHOWN))
    purges = [{"from_seq": r[1], "to_seq": r[0], "events_removed": r[2], "archive": r[3],
               "archive_sha256": r[4], "retention_days": r[5], "purged_by": r[6],
               "purged_at": _ts(r[7])} for r in cur.fetchall()]
    cur.execute("SELECT count(*) FILTER (WHERE scope = 'tenant'), count(*) FROM legal_holds "
                "WHERE tenant_id = %s AND released_at IS NULL", (tenant_id,))
    tenant_holds, holds = cur.fetchone()
    return {"policy": policy, "purged_through": purged,
            "expiring": {"from_seq": purged + 1, "to_seq": boundary,
                         "events": boundary - purged},
            "active_holds": holds, "tenant_on_hold": tenant_holds > 0, "purges": purges}


def read_retention(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The tenant's retention policy and status (``GET /retention``)."""
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        return _status(cur, principal.tenant_id)


def write_retention_days(svc, principal: Principal, days: int,
                         access: AccessRecord) -> dict[str, Any]:
    """Set the tenant's retention period in days (``PUT /retention``); recorded in the
    access log with the new value in the same transaction."""
    if isinstance(days, bool) or not isinstance(days, int) \
            or not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ValidationFailed(f"days must be an integer from {MIN_RETENTION_DAYS} to "
                               f"{MAX_RETENTION_DAYS}", {"days": days})
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        cur.execute("INSERT INTO tenant_settings (tenant_id, key, value, updated_by) "
                    "VALUES (%s, %s, to_jsonb(%s::integer), %s) ON CONFLICT (tenant_id, key) "
                    "DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, "
                    "updated_at = now()", (principal.tenant_id, RETENTION_DAYS, days,
                                           _who(principal)))
        return _status(cur, principal.tenant_id)


# --- legal holds --------------------------------------------------------------------------

_HOLD_COLUMNS = ("id, scope, entity_type, entity_id, reason, created_by, created_at, "
                 "released_by, released_at, release_reason")


def _hold(row) -> dict[str, Any]:
    return {"id": str(row[0]), "scope": row[1], "entity_type": row[2], "entity_id": row[3],
            "reason": row[4], "created_by": row[5], "created_at": _ts(row[6]),
            "released_by": row[7], "released_at": _ts(row[8]), "release_reason": row[9],
            "active": row[8] is None}


def create_hold(svc, principal: Principal, scope: str, entity_type: str | None,
                entity_id: str | None, reason: str, access: AccessRecord) -> dict[str, Any]:
    """Place a legal hold on the whole tenant or on one entity: from now on retention
    removes none of its events (nor anything after them in the chain)."""
    if scope == "tenant" and (entity_type is not None or entity_id is not None):
        raise ValidationFailed("a tenant-wide hold names no entity_type or entity_id")
    if scope == "entity" and (not entity_type or not entity_id):
        raise ValidationFailed("an entity hold needs entity_type and entity_id")
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        cur.execute(f"INSERT INTO legal_holds (id, tenant_id, scope, entity_type, entity_id, "
                    f"reason, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    f"RETURNING {_HOLD_COLUMNS}",
                    (uuid.uuid4(), principal.tenant_id, scope, entity_type, entity_id, reason,
                     _who(principal)))
        return _hold(cur.fetchone())


def list_holds(svc, principal: Principal, access: AccessRecord, *, active: bool | None = None,
               limit: int = 100) -> dict[str, Any]:
    """The tenant's legal holds, newest first (``active``: only active or released ones)."""
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        cur.execute(f"SELECT {_HOLD_COLUMNS} FROM legal_holds WHERE tenant_id = %s "
                    "AND (%s::boolean IS NULL OR (released_at IS NULL) = %s) "
                    "ORDER BY created_at DESC, id LIMIT %s",
                    (principal.tenant_id, active, active, limit))
        return {"holds": [_hold(r) for r in cur.fetchall()]}


def release_hold(svc, principal: Principal, hold_id: str, reason: str,
                 access: AccessRecord) -> dict[str, Any]:
    """Release an active hold (404 unknown here, 409 already released)."""
    try:
        hid = uuid.UUID(hold_id)
    except ValueError:
        hid = None
    with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
        record_access(conn, principal, access)
        row = None
        if hid is not None:
            cur.execute(f"SELECT {_HOLD_COLUMNS} FROM legal_holds WHERE tenant_id = %s "
                        "AND id = %s FOR UPDATE", (principal.tenant_id, hid))
            row = cur.fetchone()
        if row is None:
            raise NotFound("no such legal hold in this tenant")
        if row[8] is not None:
            raise Conflict(f"the legal hold was already released at {_ts(row[8])}",
                           {"released_by": row[7]})
        cur.execute(f"UPDATE legal_holds SET released_by = %s, released_at = clock_timestamp(), "
                    f"release_reason = %s WHERE tenant_id = %s AND id = %s "
                    f"RETURNING {_HOLD_COLUMNS}", (_who(principal), reason, principal.tenant_id,
                                                   hid))
        return _hold(cur.fetchone())


# --- the purge ----------------------------------------------------------------------------


def _system(tenant_id: uuid.UUID, actor: str) -> Principal:
    kind, _, name = actor.partition(":")
    return Principal(kind or "system", name or actor, tenant_id, frozenset())


def _verify_archive(svc, path: Path, first: int, last: int, vkey: str) -> None:
    """Open the archive just written and check its bundle as ``trailseal-verify`` does;
    nothing is removed unless it holds exactly events ``first..last``, intact."""
    with tempfile.TemporaryFile() as out:
        open_archive(svc.keyring, path, out)
        out.seek(0)
        bundle = json.load(out)
    try:
        report = check_bundle(bundle, parse_verifier_key(vkey))
    except Problem as exc:
        raise Conflict(f"the archive {path.name} does not verify: {exc}") from None
    if (report.first_seq, report.last_seq) != (first, last):
        raise Conflict(f"the archive {path.name} holds events {report.first_seq}.."
                       f"{report.last_seq}, not {first}..{last}")


def apply_retention(svc, tenant_id: uuid.UUID, *, dry_run: bool = False, actor: str = SYSTEM,
                    max_events: int | None = None) -> dict[str, Any]:
    """Remove the tenant's expired, unheld prefix: checkpoint the chain, then for each
    slice of at most ``max_events`` (default ``BUNDLE_MAX_EVENTS``) write the encrypted
    archive, check it, and purge the slice as the maintenance role. ``dry_run``: only say
    what would go. Every purge is recorded in ``retention_purges`` and the access log."""
    tenant_id = uuid.UUID(str(tenant_id))
    url = svc.config.get("MAINTENANCE_DATABASE_URL")
    if not dry_run and not url:
        raise ConfigurationError("TRAILSEAL_MAINTENANCE_DATABASE_URL is not set: retention "
                                 "removes nothing without the maintenance role")
    if not dry_run:
        try:
            make_checkpoint(svc, tenant_id)  # the purged prefix must be signed first
        except Conflict as exc:
            if exc.code == ChainNotCheckpointed.code:
                raise  # a broken chain is never archived nor purged
            # else: the tenant has no events yet
    principal = _system(tenant_id, actor)
    with svc.db.cursor(tenant_id) as cur:
        status = _status(cur, tenant_id)
    out: dict[str, Any] = {"tenant_id": str(tenant_id), "dry_run": dry_run,
                           "retention_days": status["policy"]["days"],
                           "purged_through_before": status["purged_through"],
                           "expiring": status["expiring"], "tenant_on_hold":
                           status["tenant_on_hold"], "purges": [], "events_removed": 0}
    if dry_run:
        with svc.db.transaction(tenant_id) as conn:
            record_access(conn, principal, AccessRecord("retention:dry-run", "JOB",
                                                        {"expiring": status["expiring"]}))
        return out
    limit = int(max_events or svc.config["BUNDLE_MAX_EVENTS"])
    limit = max(BLOCK, limit - limit % BLOCK)
    purged, boundary = status["purged_through"], status["expiring"]["to_seq"]
    folder = archive_dir(svc.config) / str(tenant_id)
    while purged < boundary:
        first, last = purged + 1, min(boundary, purged + limit)
        access = AccessRecord("retention:archive", "JOB", {"from_seq": first, "to_seq": last})
        head, first, last = begin_bundle(svc, principal, first, last, access,
                                         max_events=limit)
        path = folder / f"retention-{first}-{last}.tsarc"
        written = write_archive(svc.keyring, path, str(tenant_id), first, last,
                                iter_bundle(svc, principal, head, first, last))
        _verify_archive(svc, path, first, last, head["public_key"]["vkey"])
        try:
            with maintenance_connection(url) as conn:
                removed = conn.execute(
                    "SELECT trailseal_retention_purge(%s, %s, %s, %s, %s)",
                    (tenant_id, last, written["name"], written["sha256"], actor)).fetchone()[0]
        except psycopg.errors.CheckViolation as exc:
            # Something changed since the boundary was read (a hold, a new policy): the
            # archive stays, nothing was removed.
            raise Conflict(f"retention refused by the database: {exc.diag.message_primary}",
                           {"from_seq": first, "to_seq": last}) from None
        with svc.db.transaction(tenant_id) as conn:
            record_access(conn, principal, AccessRecord(
                "retention:purge", "JOB", {"from_seq": first, "to_seq": last,
                                           "archive": written["name"],
                                           "archive_sha256": written["sha256"]}))
        out["purges"].append({"from_seq": first, "to_seq": last, "events_removed": removed,
                              "archive": written["path"], "archive_sha256": written["sha256"],
                              "archive_bytes": written["bytes"]})
        out["events_removed"] += removed
        purged = last
    out["purged_through"] = purged
    return out


def apply_retention_all(svc) -> dict[str, int]:
    """The daily job: apply retention to every tenant; events removed, by tenant id. A
    tenant that cannot be purged (a broken chain, a refused purge) is logged and skipped."""
    from .tenancy import tenant_ids

    if not svc.config.get("MAINTENANCE_DATABASE_URL"):
        log.warning("retention skipped: TRAILSEAL_MAINTENANCE_DATABASE_URL is not set")
        return {}
    removed: dict[str, int] = {}
    for tid in tenant_ids(svc):
        try:
            result = apply_retention(svc, tid)
        except Conflict as exc:
            log.warning("retention of tenant %s stopped: %s", tid, exc.message)
            continue
        if result["events_removed"]:
            removed[str(tid)] = result["events_removed"]
    return removed
