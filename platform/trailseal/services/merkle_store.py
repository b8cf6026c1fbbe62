"""A tenant's Merkle tree in the database: leaf hashes are the events' chain hashes
(``audit_logs.hash``, leaf ``seq - 1``); complete subtrees of ``2**STORED_LEVEL`` leaves and
more are kept in ``merkle_nodes`` as checkpoints are made, so a proof over millions of events
reads a few node rows and at most a few hundred leaves. Also: checking the stored log
against the signed checkpoints (part of chain verification)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from trailseal_verify import merkle
from trailseal_verify.note import NoteError, verify_checkpoint

from .chain import GENESIS_HASH, seq_runs
from .signing import signing_key

STORED_LEVEL = 6  # subtrees of 64 leaves and larger are stored (~31,000 rows per million)


def purged_prefix(cur, tenant_id: uuid.UUID) -> tuple[int, str]:
    """``(N, hash of event N)``: events ``1..N`` were removed by retention (N is a multiple
    of ``2**STORED_LEVEL``, so their subtrees stay in ``merkle_nodes``) and the first
    retained event must link to that hash; ``(0, GENESIS_HASH)`` before any purge."""
    cur.execute("SELECT purged_through, last_hash FROM retention_purges WHERE tenant_id = %s "
                "ORDER BY purged_through DESC LIMIT 1", (tenant_id,))
    row = cur.fetchone()
    return (int(row[0]), row[1]) if row else (0, GENESIS_HASH)


def chain_leaf(stored_hash: str) -> bytes:
    """The Merkle leaf of an event: its chain hash as 32 bytes. A stored hash that is not
    64 hex digits (a tampered row) gives a leaf no intact event can have."""
    try:
        raw = bytes.fromhex(stored_hash)
    except (ValueError, TypeError):
        raw = b""
    return raw if len(raw) == 32 else b"bad:" + str(stored_hash).encode("utf-8", "replace")



class StoredTree:
    """Complete subtree hashes of a tenant's tree, read from ``merkle_nodes`` and, below
    ``STORED_LEVEL``, computed from the leaves (``cur``: a cursor of the tenant)."""

    def __init__(self, cur, tenant_id: uuid.UUID):
        self.cur = cur
        self.tenant_id = tenant_id
        self._nodes: dict[tuple[int, int], bytes] = {}

    def load(self, wanted: set[tuple[int, int]]) -> None:
        """Read every subtree of ``wanted`` in two queries (stored nodes, then leaves)."""
        stored = [(level, index) for level, index in wanted
                  if level >= STORED_LEVEL and (level, index) not in self._nodes]
        if stored:
            # One primary-key lookup per subtree, whatever the planner thinks of the table.
            self.cur.execute(
                "SELECT w.level, w.index, n.hash FROM unnest(%s::smallint[], %s::bigint[]) "
                "AS w(level, index) CROSS JOIN LATERAL (SELECT hash FROM merkle_nodes m "
                "WHERE m.tenant_id = %s AND m.level = w.level AND m.index = w.index) n",
                ([lv for lv, _ in stored], [ix for _, ix in stored], self.tenant_id))
            for level, index, h in self.cur.fetchall():
                self._nodes[(level, index)] = bytes(h)
        low = [(level, index) for level, index in wanted if level < STORED_LEVEL]
        seqs = sorted({seq for level, index in low
                       for seq in range((index << level) + 1, ((index + 1) << level) + 1)
                       if (0, seq - 1) not in self._nodes})
        for first, last in seq_runs(seqs):  # a proof needs one or two runs of leaves
            self.cur.execute("SELECT seq, hash FROM audit_logs WHERE tenant_id = %s "
                             "AND seq BETWEEN %s AND %s", (self.tenant_id, first, last))
            for seq, h in self.cur.fetchall():
                self._nodes[(0, seq - 1)] = merkle.leaf_hash(chain_leaf(h))

    def perfect(self, level: int, index: int) -> bytes:
        """The hash of complete subtree ``index`` of ``2**level`` leaves."""
        got = self._nodes.get((level, index))
        if got is not None:
            return got
        if level == 0:
            self.load({(0, index)})
            got = self._nodes.get((0, index))
            if got is None:
                # A removed event: a placeholder no intact leaf hashes to, so any proof
                # through it fails to verify (which is what it should do).
                got = merkle.leaf_hash(b"missing:%d" % (index + 1))
                self._nodes[(0, index)] = got
            return got
        got = merkle.node_hash(self.perfect(level - 1, 2 * index),
                               self.perfect(level - 1, 2 * index + 1))
        self._nodes[(level, index)] = got
        return got

    def prove(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """The hashes of a proof's ranges (``merkle.inclusion_ranges`` …)."""
        self.load(merkle.needed_subtrees(ranges))
        return merkle.prove(ranges, self.perfect)


@dataclass
class CheckpointProblem:
    """What checking the log against its signed checkpoints found wrong."""

    seq: int
    reason: str  # rewritten | forged_checkpoint
    detail: str


# One range of chain hashes as one string, joined by the database in seq order; decoded
# here at once (32 bytes each) when it is exactly hex digits of the right length, else (a
# tampered row) the range is read row by row.
_LEAF_RANGE_SQL = """
SELECT count(*), min(seq), bool_and(length(hash) = 64), string_agg(hash, '' ORDER BY seq)
FROM audit_logs WHERE tenant_id = %s AND seq > %s AND seq <= %s
"""


def leaf_chunks(cur, tenant_id: uuid.UUID, last_seq: int, after: int = 0,
                chunk: int = 50_000) -> Iterator[list[bytes]]:
    """The Merkle leaves (``chain_leaf``) of the tenant's events ``after+1..last_seq`` in
    order, in lists of at most ``chunk``; at a missing seq the leaves before it are the last
    list given."""
    while after < last_seq:
        end = min(last_seq, after + chunk)
        cur.execute(_LEAF_RANGE_SQL, (tenant_id, after, end))
        count, first, sized, joined = cur.fetchone()
        raw = b""
        if sized and count == end - after and first == after + 1:
            try:
                raw = bytes.fromhex(joined)
            except ValueError:
                pass
        if len(raw) == 32 * (end - after):
            yield [raw[i:i + 32] for i in range(0, len(raw), 32)]
            after = end
            continue
        cur.execute("SELECT seq, hash FROM audit_logs WHERE tenant_id = %s AND seq > %s "
                    "AND seq <= %s ORDER BY seq", (tenant_id, after, end))
        leaves = []
        for seq, h in cur.fetchall():
            if seq != after + len(leaves) + 1:
                break
            leaves.append(chain_leaf(h))
        if leaves:
            yield leaves
        if len(leaves) < end - after:
            return  # a gap
        after = end


def check_checkpoints(svc, cur, tenant_id: uuid.UUID) -> tuple[int, CheckpointProblem | None]:
    """Check every stored checkpoint of the tenant: its note is signed by the instance key
    and names this tenant, its size and root; and the root of the stored log's first
    ``size`` chain hashes equals it. Returns how many checkpoints were checked and the first
    problem (None: all agree)."""
    cur.execute("SELECT tree_size, root, key_name, note FROM chain_checkpoints "
                "WHERE tenant_id = %s ORDER BY tree_size", (tenant_id,))
    checkpoints = cur.fetchall()
    if not checkpoints:
        return 0, None
    key = signing_key(svc, cur)
    origin = key.origin(tenant_id)
    signed = []
    for size, root, _key_name, note in checkpoints:
        try:
            cp = verify_checkpoint(note, key.verifier)
        except NoteError as exc:
            return 0, CheckpointProblem(size, "forged_checkpoint",
                                        f"the checkpoint at tree size {size} is not signed by "
                                        f"this instance's key ({key.name}): {exc}")
        if (cp.origin, cp.size, cp.root) != (origin, size, bytes(root)):
            return 0, CheckpointProblem(size, "forged_checkpoint",
                                        f"the checkpoint stored at tree size {size} signs "
                                        f"another tenant, size or root than its row says")
        signed.append(cp)
    # After a retention purge the tree's first N leaves are the stored subtrees; checkpoints
    # of N events or fewer were checked against the log before it went (their signatures
    # are checked above).
    purged, _ = purged_prefix(cur, tenant_id)
    builder = merkle.TreeBuilder()
    if purged:
        tree = StoredTree(cur, tenant_id)
        parts = merkle.subtree_ranges(purged)
        tree.load(set(parts))
        builder = merkle.TreeBuilder(purged, [tree.perfect(lv, ix) for lv, ix in parts])
    pending = iter([cp for cp in signed if cp.size > purged])
    cp = next(pending, None)
    if cp is None:
        return len(signed), None
    good_size = purged
    checked = len(signed) - sum(1 for c in signed if c.size > purged)
    # Leaves go into the tree in runs that end at the next checkpoint's size, so whole
    # blocks of 64 are hashed at once (TreeBuilder.extend).
    for leaves in leaf_chunks(cur, tenant_id, signed[-1].size, after=purged):
        i = 0
        while cp is not None and i < len(leaves):
            take = min(len(leaves) - i, cp.size - builder.size)
            builder.extend(leaves[i:i + take])
            i += take
            while cp is not None and builder.size == cp.size:
                if builder.root() != cp.root:
                    return checked, CheckpointProblem(
                        good_size + 1, "rewritten",
                        f"events {good_size + 1}..{cp.size} no longer match the checkpoint "
                        f"signed at tree size {cp.size}: at least one of them was rewritten "
                        "(and the chain recomputed) after the checkpoint signed it")
                checked += 1
                good_size = cp.size
                cp = next(pending, None)
        if cp is None:
            break
    if cp is not None:
        return checked, CheckpointProblem(
            builder.size + 1, "rewritten",
            f"the checkpoint at tree size {cp.size} signed {cp.size} events, but the log "
            f"holds only {builder.size} in order from seq {purged + 1}: events were removed")
    return checked, None
