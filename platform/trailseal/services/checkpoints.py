"""Signed Merkle checkpoints of a tenant's chain: making them (incrementally, after
checking the new events' chain), publishing them to a witness, listing them, inclusion and
consistency proofs, and export bundles that ``trailseal-verify`` checks without the server.

A checkpoint is a C2SP tlog-checkpoint signed note by the instance key (``signing``):
origin ``<key name>/<tenant id>``, the tree size (the chain head's seq), the root hash and
an extension line ``time <RFC 3339>``.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from trailseal_verify import merkle
from trailseal_verify.note import NoteError, checkpoint_text, sign_note, verify_checkpoint
from trailseal_verify.records import COLUMNS, format_ts

from ..db import driver_cursor
from ..errors import Conflict, NotFound, ValidationFailed
from ..infra.copy_binary import copy_out, feed_stream
from .access import AccessRecord, audited_read
from .chain import GENESIS_HASH, ChainWalker, NoLookup, row_from_fields
from .integrity import verify_copy_sql
from .merkle_store import STORED_LEVEL, StoredTree, chain_leaf, purged_prefix
from .paging import decode_cursor, encode_cursor, seq_part
from .signing import SigningKey, signing_key
from .tenancy import Principal

log = logging.getLogger(__name__)
BUNDLE_FORMAT = "trailseal-bundle/1"
BUNDLE_CHECKPOINTS = 50  # earlier checkpoints a bundle carries (with consistency proofs)
BUNDLE_PAGE = 2000
WITNESS_TIMEOUT = 10.0


class ChainNotCheckpointed(Conflict):
    """The chain cannot be checkpointed (broken, or no longer the tree signed before)."""

    code = "chain_broken"



def _lock(cur, tenant_id: uuid.UUID) -> None:
    """One checkpoint of a tenant at a time (appends go on meanwhile)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"trailseal-checkpoint:{tenant_id}",))


def _row(size, root, note, created_at, key_name) -> dict[str, Any]:
    return {"tree_size": size, "root": bytes(root).hex(), "note": note,
            "key_name": key_name, "created_at": format_ts(created_at)}


def make_checkpoint(svc, tenant_id: uuid.UUID, *, publish: bool = True) -> dict[str, Any]:
    """Sign a checkpoint of the tenant's chain head (if it moved since the last one) and
    publish it to the witness. ``{"created": bool, "checkpoint": {...}, "witness": {...}}``.

    Only the events since the stored subtrees end are read: their chain is checked first
    (a broken chain is never signed), and the new tree must be consistent with the last
    signed checkpoint (so stored subtrees altered behind its back are never signed either).
    """
    with svc.db.transaction(tenant_id) as conn, driver_cursor(conn) as cur:
        _lock(cur, tenant_id)
        key = signing_key(svc, cur)
        cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s",
                    (tenant_id,))
        head = cur.fetchone()
        if head is None:
            raise NotFound("tenant not found")
        head_seq, head_hash = head
        cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                    "WHERE tenant_id = %s ORDER BY tree_size DESC LIMIT 1", (tenant_id,))
        latest = cur.fetchone()
        if latest is not None and latest[0] == head_seq:
            return {"created": False, "checkpoint": _row(*latest), "witness": {}}
        if head_seq == 0:
            raise Conflict("the tenant has no events yet: there is nothing to checkpoint")
        if latest is not None and latest[0] > head_seq:
            # The chain head went back behind a signed checkpoint: events were removed.
            raise ChainNotCheckpointed(
                f"the chain head (seq {head_seq}) is behind the checkpoint signed at tree "
                f"size {latest[0]}: not signing it (GET /api/v1/chain/verify names the break)")
        cur.execute("SELECT coalesce(max(index) + 1, 0) FROM merkle_nodes "
                    "WHERE tenant_id = %s AND level = %s", (tenant_id, STORED_LEVEL))
        base = min(cur.fetchone()[0] << STORED_LEVEL, head_seq)
        base -= base % (1 << STORED_LEVEL)
        # Events 1..purged were removed by retention: the tree grows from their subtrees.
        purged, purged_hash = purged_prefix(cur, tenant_id)
        base = max(base, purged)
        tree = StoredTree(cur, tenant_id)
        parts = merkle.subtree_ranges(base)
        tree.load(set(parts))
        builder = merkle.TreeBuilder(base, [tree.perfect(level, index) for level, index in parts])
        new_nodes: list[tuple[int, int, bytes]] = []

        def keep(level: int, index: int, h: bytes) -> None:
            if level >= STORED_LEVEL:
                new_nodes.append((level, index, h))

        walk_and_extend(cur, tenant_id, base, head_seq, head_hash, builder, keep,
                        base_hash=purged_hash if base == purged and purged else None)
        if new_nodes:
            cur.execute(
                "INSERT INTO merkle_nodes (tenant_id, level, index, hash) "
                "SELECT %s, * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[]) "
                "ON CONFLICT DO NOTHING",
                (tenant_id, [n[0] for n in new_nodes], [n[1] for n in new_nodes],
                 [n[2] for n in new_nodes]))
        root = builder.root()
        if latest is not None:
            _check_consistent(key, tenant_id, latest, head_seq, root, StoredTree(cur, tenant_id))
        created_at = datetime.now(UTC)
        text = checkpoint_text(key.origin(tenant_id), head_seq, root,
                               (f"time {format_ts(created_at)}",))
        note = sign_note(text, key.name, key.private_key)
        cur.execute("INSERT INTO chain_checkpoints (tenant_id, tree_size, root, key_name, note, "
                    "created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                    (tenant_id, head_seq, root, key.name, note, created_at))
    checkpoint = _row(head_seq, root, note, created_at, key.name)
    witness = publish_to_witness(svc, tenant_id, checkpoint) if publish else {}
    return {"created": True, "checkpoint": checkpoint, "witness": witness}


def walk_and_extend(cur, tenant_id, base: int, head_seq: int, head_hash: str,
                     builder: merkle.TreeBuilder, keep, base_hash: str | None = None) -> None:
    """Check the chain of events ``base+1..head_seq`` (one binary COPY on ``cur``'s
    connection, the chain walker of verification) and append their hashes to ``builder``;
    ``keep(level, index, hash)`` hears of every complete subtree. ``ChainNotCheckpointed``
    at the first break. What a checkpoint spends its time on (bench/bench_merkle.py)."""
    prev = GENESIS_HASH if base_hash is None else base_hash
    if base and base_hash is None:
        cur.execute("SELECT hash FROM audit_logs WHERE tenant_id = %s AND seq = %s",
                    (tenant_id, base))
        row = cur.fetchone()
        if row is None:
            raise ChainNotCheckpointed(f"event seq {base} is missing: not signing a broken "
                                       "chain (GET /api/v1/chain/verify names the break)")
        prev = row[0]
    walker = ChainWalker(str(tenant_id), head_seq, head_hash, NoLookup())
    walker.expected_seq = base + 1
    walker.prev_hash = prev
    append = builder.append

    def on_message(msg):
        verdict = walker.feed_message(msg)
        if verdict:
            append(bytes.fromhex(walker.prev_hash), keep)
        return verdict

    def on_row(row):
        verdict = walker.feed(row)
        if verdict:
            append(bytes.fromhex(walker.prev_hash), keep)
        return verdict

    # Read (tenant_id, seq) in index order: sorting a million rows would spill to disk.
    cur.execute("SET LOCAL enable_sort = off")
    blocks = copy_out(cur.connection.pgconn, verify_copy_sql(base + 1, head_seq))
    try:
        feed_stream(blocks, on_message, on_row, row_from_fields)
    finally:
        blocks.close()
    report = walker.finish()
    if not report.intact:
        raise ChainNotCheckpointed(
            f"the chain is broken at seq {report.broken_seq} ({report.reason}): not signing "
            "it", {"broken_seq": report.broken_seq, "reason": report.reason,
                   "detail": report.detail})


def _check_consistent(key: SigningKey, tenant_id, latest, size: int, root: bytes,
                      tree: StoredTree) -> None:
    """The new tree must extend the one the last checkpoint signed."""
    old_size, _, old_note = latest[0], latest[1], latest[2]
    try:
        old = verify_checkpoint(old_note, key.verifier)
    except NoteError as exc:
        raise ChainNotCheckpointed(f"the last checkpoint (tree size {old_size}) does not "
                                   f"verify: {exc}") from None
    proof = tree.prove(merkle.consistency_ranges(old.size, size))
    if old.size != old_size or not merkle.verify_consistency(old.size, size, old.root, root,
                                                             proof):
        raise ChainNotCheckpointed(
            f"the stored log is no longer the tree the checkpoint at size {old_size} signed: "
            "not signing it (GET /api/v1/chain/verify names what changed)")


# --- witness ----------------------------------------------------------------------------


def publish_to_witness(svc, tenant_id: uuid.UUID, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Copy a checkpoint outside the database: a file ``<CHECKPOINT_WITNESS_DIR>/<tenant
    id>/<tree size>.note`` and/or a POST of the note (``text/plain``) to
    ``CHECKPOINT_WITNESS_URL``. A failure is logged and reported, never raised: the
    checkpoint stays in the database and the next one is published again."""
    out: dict[str, Any] = {}
    directory = svc.config.get("CHECKPOINT_WITNESS_DIR")
    if directory:
        folder = Path(directory) / str(tenant_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{checkpoint['tree_size']}.note"
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".note-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(checkpoint["note"])
            os.replace(tmp, target)
            out["file"] = str(target)
        except OSError as exc:
            log.warning("could not write checkpoint of tenant %s to %s: %s", tenant_id,
                        directory, exc)
            out["file_error"] = str(exc)
    url = svc.config.get("CHECKPOINT_WITNESS_URL")
    if url:
        request = urllib.request.Request(
            url, data=checkpoint["note"].encode(), method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8",
                     "X-Trailseal-Tenant": str(tenant_id),
                     "X-Trailseal-Tree-Size": str(checkpoint["tree_size"])})
        try:
            with urllib.request.urlopen(request, timeout=WITNESS_TIMEOUT) as resp:  # noqa: S310
                out["webhook_status"] = resp.status
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("could not post checkpoint of tenant %s to the witness %s: %s",
                        tenant_id, url, exc)
            out["webhook_error"] = str(exc)
    return out


def checkpoint_all_tenants(svc) -> dict[str, int]:
    """Checkpoint every tenant whose chain moved (the hourly job); tree sizes signed."""
    from .tenancy import tenant_ids

    made: dict[str, int] = {}
    for tid in tenant_ids(svc):
        try:
            result = make_checkpoint(svc, tid)
        except Conflict as exc:  # no events yet, or a broken chain (verification alerts)
            if exc.code == ChainNotCheckpointed.code:
                log.warning("tenant %s not checkpointed: %s", tid, exc.message)
            continue
        if result["created"]:
            made[str(tid)] = result["checkpoint"]["tree_size"]
    return made


# --- reads ------------------------------------------------------------------------------


def read_public_key(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The instance's checkpoint verifier key, and this tenant's origin."""
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        key = signing_key(svc, cur)
    return {"algorithm": "ed25519", "name": key.name, "vkey": key.vkey,
            "public_key": base64.b64encode(key.public_key).decode(),
            "origin": key.origin(principal.tenant_id)}


def list_checkpoints(svc, principal: Principal, access: AccessRecord, *, limit: int = 50,
                     cursor: str | None = None) -> dict[str, Any]:
    """The tenant's checkpoints, newest first, one page at a time."""
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        below = None
        if cursor:
            (below,) = decode_cursor(cursor, "checkpoints", {}, (seq_part,))
        cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                    "WHERE tenant_id = %s AND (%s::bigint IS NULL OR tree_size < %s) "
                    "ORDER BY tree_size DESC LIMIT %s",
                    (principal.tenant_id, below, below, limit + 1))
        rows = cur.fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("checkpoints", {}, [rows[-1][0]])
    return {"checkpoints": [_row(*r) for r in rows], "next_cursor": next_cursor}


def _checkpoint_at(cur, tenant_id, size: int):
    cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                "WHERE tenant_id = %s AND tree_size = %s", (tenant_id, size))
    return cur.fetchone()


def event_proof(svc, principal: Principal, event_id: str, access: AccessRecord) -> dict[str, Any]:
    """The inclusion proof of an event in the latest checkpoint (409 when none covers it
    yet). ``verified`` says whether the proof checks out against the signed root here."""
    try:
        eid = uuid.UUID(event_id)
    except ValueError:
        eid = None
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        row = None
        if eid is not None:
            cur.execute("SELECT seq, hash FROM audit_logs WHERE tenant_id = %s AND id = %s",
                        (principal.tenant_id, eid))
            row = cur.fetchone()
        if row is None:
            raise NotFound("no such event in this tenant")
        seq, h = row
        cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                    "WHERE tenant_id = %s ORDER BY tree_size DESC LIMIT 1",
                    (principal.tenant_id,))
        latest = cur.fetchone()
        if latest is None or latest[0] < seq:
            covered = latest[0] if latest else 0
            raise Conflict(
                f"no checkpoint covers event seq {seq} yet (the latest covers {covered} "
                "events); checkpoints are made hourly, or now with POST /api/v1/checkpoints",
                {"seq": seq, "latest_tree_size": covered})
        size, root = latest[0], bytes(latest[1])
        proof = StoredTree(cur, principal.tenant_id).prove(merkle.inclusion_ranges(seq - 1, size))
    return {"event_id": str(eid), "seq": seq, "hash": h, "leaf_index": seq - 1,
            "tree_size": size, "root": root.hex(), "checkpoint": latest[2],
            "proof": [p.hex() for p in proof],
            "verified": merkle.verify_inclusion(seq - 1, size, chain_leaf(h), proof, root)}


def consistency(svc, principal: Principal, first: int, second: int,
                access: AccessRecord) -> dict[str, Any]:
    """The consistency proof between two checkpointed tree sizes."""
    if first > second:
        raise ValidationFailed("from must not be larger than to",
                               {"from": first, "to": second})
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        old = _checkpoint_at(cur, principal.tenant_id, first)
        new = _checkpoint_at(cur, principal.tenant_id, second)
        for size, found in ((first, old), (second, new)):
            if found is None:
                raise NotFound(f"no checkpoint at tree size {size} in this tenant")
        purged, _ = purged_prefix(cur, principal.tenant_id)
        if first <= purged:
            raise Conflict(f"events 1..{purged} were removed by retention: consistency "
                           f"proofs start from a checkpoint of more than {purged} events",
                           {"purged_through": purged})
        proof = StoredTree(cur, principal.tenant_id).prove(merkle.consistency_ranges(first,
                                                                                     second))
    return {"from": first, "to": second, "from_root": bytes(old[1]).hex(),
            "to_root": bytes(new[1]).hex(), "from_checkpoint": old[2],
            "to_checkpoint": new[2], "proof": [p.hex() for p in proof],
            "verified": merkle.verify_consistency(first, second, bytes(old[1]), bytes(new[1]),
                                                  proof)}


# --- bundles ----------------------------------------------------------------------------

_BUNDLE_COLUMNS = ", ".join(COLUMNS) + ", hash, record"


def _event_entry(row) -> dict[str, Any]:
    values = dict(zip((*COLUMNS, "hash", "record"), row, strict=True))
    record = bytes(values.pop("record"))
    stored_hash = values.pop("hash")
    columns = {k: (format_ts(v) if isinstance(v, datetime) else
                   str(v) if isinstance(v, uuid.UUID) else v) for k, v in values.items()}
    entry: dict[str, Any] = {"seq": columns["seq"], "hash": stored_hash, "columns": columns}
    try:
        entry["record"] = record.decode("utf-8")
    except UnicodeDecodeError:
        entry["record_b64"] = base64.b64encode(record).decode()
    return entry


def begin_bundle(svc, principal: Principal, from_seq: int | None, to_seq: int | None,
                 access: AccessRecord, *, max_events: int | None = None
                 ) -> tuple[dict[str, Any], int, int]:
    """Everything of a bundle but its events (read after, page by page): the checkpoints,
    the proofs and the public key. Returns the head and the seq range. ``from_seq``
    defaults to the first event retention kept; ``max_events`` overrides
    ``BUNDLE_MAX_EVENTS`` (retention archives)."""
    tid = principal.tenant_id
    with audited_read(svc, principal, access) as conn, driver_cursor(conn) as cur:
        key = signing_key(svc, cur)
        cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                    "WHERE tenant_id = %s ORDER BY tree_size DESC LIMIT 1", (tid,))
        latest = cur.fetchone()
        if latest is None:
            raise Conflict("the tenant has no checkpoint yet; make one with POST "
                           "/api/v1/checkpoints (or wait for the hourly job)")
        size = latest[0]
        purged, _ = purged_prefix(cur, tid)
        first = purged + 1 if from_seq is None else from_seq
        last = size if to_seq is None else to_seq
        if first > last:
            raise ValidationFailed("from_seq must not be larger than to_seq",
                                   {"from_seq": first, "to_seq": last})
        if first <= purged:
            raise Conflict(f"events 1..{purged} were removed by retention (their archive "
                           "holds them); ask for from_seq "
                           f"{purged + 1} or later", {"purged_through": purged})
        if last > size:
            raise Conflict(f"the latest checkpoint covers events 1..{size}; to_seq {last} is "
                           "past it (make a checkpoint first)", {"latest_tree_size": size})
        limit = int(svc.config["BUNDLE_MAX_EVENTS"]) if max_events is None else max_events
        if last - first + 1 > limit:
            raise ValidationFailed(f"a bundle holds at most {limit} events; ask for a "
                                   "narrower from_seq..to_seq", {"max": limit})
        cur.execute("SELECT tree_size, root, note, created_at, key_name FROM chain_checkpoints "
                    "WHERE tenant_id = %s AND tree_size >= %s AND tree_size < %s "
                    "ORDER BY tree_size DESC LIMIT %s", (tid, first, size, BUNDLE_CHECKPOINTS))
        earlier = cur.fetchall()[::-1]
        tree = StoredTree(cur, tid)
        context_ranges = merkle.context_ranges(size, first - 1, last)
        consistency_ranges = {r[0]: merkle.consistency_ranges(r[0], size) for r in earlier}
        wanted = [*context_ranges, *(x for rs in consistency_ranges.values() for x in rs)]
        tree.load(merkle.needed_subtrees(wanted))
        context = merkle.prove(context_ranges, tree.perfect)
        proofs = [{"from": s, "to": size, "proof": [p.hex() for p in merkle.prove(rs, tree.perfect)]}
                  for s, rs in consistency_ranges.items()]
    head = {
        "format": BUNDLE_FORMAT, "tenant_id": str(tid), "origin": key.origin(tid),
        "generated_at": format_ts(datetime.now(UTC)),
        "public_key": {"algorithm": "ed25519", "name": key.name, "vkey": key.vkey,
                       "public_key": base64.b64encode(key.public_key).decode()},
        "from_seq": first, "to_seq": last,
        "checkpoints": [_row(*r) for r in [*earlier, latest]],
        "proofs": {"range": {"tree_size": size, "first_index": first - 1,
                             "context": [h.hex() for h in context]},
                   "consistency": proofs},
    }
    return head, first, last


def iter_bundle(svc, principal: Principal, head: dict[str, Any], first: int, last: int
                ) -> Iterator[bytes]:
    """The bundle as JSON, in chunks: the head's fields, then ``events`` read page by page
    (events up to a checkpoint never change, so pages need no common snapshot)."""
    yield orjson.dumps(head)[:-1] + b',"events":['
    after = first - 1
    sep = b""
    while after < last:
        with svc.db.transaction(principal.tenant_id) as conn, driver_cursor(conn) as cur:
            cur.execute(f"SELECT {_BUNDLE_COLUMNS} FROM audit_logs WHERE tenant_id = %s "
                        "AND seq > %s AND seq <= %s ORDER BY seq, id LIMIT %s",
                        (principal.tenant_id, after, last, BUNDLE_PAGE))
            rows = cur.fetchall()
        if not rows:
            break
        chunk = bytearray()
        for row in rows:
            chunk += sep + orjson.dumps(_event_entry(row))
            sep = b","
        yield bytes(chunk)
        if rows[-1][2] <= after:
            break  # a tampered log repeats a seq: stop rather than loop
        after = rows[-1][2]
    yield b"]}"


def bundle_bytes(svc, principal: Principal, from_seq: int | None = None,
                 to_seq: int | None = None, access: AccessRecord | None = None) -> bytes:
    """A whole bundle in memory (the CLI and tests; the API streams it)."""
    access = access or AccessRecord(endpoint="bundle", method="CLI")
    head, first, last = begin_bundle(svc, principal, from_seq, to_seq, access)
    return b"".join(iter_bundle(svc, principal, head, first, last))
