"""Checking an export bundle (``GET /api/v1/chain/bundle``) or an inclusion proof
(``GET /api/v1/events/{id}/proof``) with only the public key: signatures, every event's
chain hash, its columns and its link to the event before it, the Merkle root against the
signed checkpoint, and the consistency and inclusion proofs. Stops at the first problem and
names it."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from . import merkle
from .note import Checkpoint, NoteError, VerifierKey, verify_checkpoint
from .records import COLUMNS, GENESIS_HASH, record_columns_hash, record_hash


class Problem(Exception):
    """The first thing wrong: where (event seq and id, or checkpoint) and what."""

    def __init__(self, what: str, *, seq: int | None = None, event_id: str | None = None):
        where = ""
        if seq is not None:
            where = f"event seq {seq}" + (f" (id {event_id})" if event_id else "") + ": "
        super().__init__(where + what)
        self.seq, self.event_id, self.what = seq, event_id, what


@dataclass
class Report:
    """What a successful check covered."""

    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: list[int] = field(default_factory=list)
    tree_size: int | None = None
    consistency_proofs: int = 0
    notes: list[str] = field(default_factory=list)


def _hex32(value: Any, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise Problem(f"{what} is not a 32-byte hex hash")
    return raw


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise Problem(f"{what} is not a list of hashes")
    return [_hex32(v, f"{what}[{i}]") for i, v in enumerate(values)]


def _checkpoint(note: Any, key: VerifierKey, origin: str | None, what: str) -> Checkpoint:
    if not isinstance(note, str):
        raise Problem(f"{what} has no signed note")
    try:
        cp = verify_checkpoint(note, key)
    except NoteError as exc:
        raise Problem(f"{what} is not a valid checkpoint signed by {key.name}: {exc}") from None
    if origin is not None and cp.origin != origin:
        raise Problem(f"{what} is signed for origin {cp.origin!r}, not {origin!r}")
    return cp


def _record_bytes(event: dict[str, Any], seq: Any) -> bytes:
    if isinstance(event.get("record"), str):
        return event["record"].encode("utf-8", "surrogatepass")
    if isinstance(event.get("record_b64"), str):
        try:
            return base64.b64decode(event["record_b64"], validate=True)
        except binascii.Error:
            pass
    raise Problem("the event has no readable record", seq=seq)


def check_event(event: Any, expected_seq: int, prev_hash: str | None, tenant_id: str | None,
                later: set | frozenset = frozenset()) -> tuple[str, str]:
    """Check one event of a bundle; return its chain hash and id. ``prev_hash`` None: the
    first event of a bundle that does not start at seq 1 (its link is covered by the
    Merkle proof instead)."""
    if not isinstance(event, dict):
        raise Problem(f"the bundle's event at position of seq {expected_seq} is not an object")
    seq = event.get("seq")
    columns = event.get("columns") if isinstance(event.get("columns"), dict) else {}
    event_id = columns.get("id") if isinstance(columns.get("id"), str) else None
    record = _record_bytes(event, seq)
    try:
        rec = json.loads(record)
    except (ValueError, UnicodeDecodeError):
        rec = None
    if isinstance(rec, dict) and isinstance(rec.get("id"), str):
        event_id = rec["id"]
    if seq != expected_seq:
        is_int = isinstance(seq, int) and not isinstance(seq, bool)
        if is_int and seq < expected_seq:
            raise Problem(f"a second event claims seq {seq}, where seq {expected_seq} belongs "
                          "(an inserted or repeated event)", seq=seq, event_id=event_id)
        if expected_seq in later:
            raise Problem(f"found where seq {expected_seq} belongs, which comes later in the "
                          "bundle (reordered events)", seq=seq, event_id=event_id)
        if is_int and seq > expected_seq:
            raise Problem(f"events {expected_seq}..{seq - 1} are missing before this event",
                          seq=seq, event_id=event_id)
        raise Problem(f"found where seq {expected_seq} belongs (a reordered or inserted event)",
                      seq=seq, event_id=event_id)
    actual = record_hash(record)
    if event.get("hash") != actual:
        raise Problem("its record does not hash to its stored chain hash (the record or the "
                      "hash was modified)", seq=seq, event_id=event_id)
    if not isinstance(rec, dict):
        raise Problem("its record is not a JSON object", seq=seq, event_id=event_id)
    if rec.get("seq") != seq:
        raise Problem(f"its record was hashed at seq {rec.get('seq')!r} (moved, or events "
                      "before it were removed or inserted)", seq=seq, event_id=event_id)
    if tenant_id is not None and rec.get("tenant_id") != tenant_id:
        raise Problem(f"its record belongs to tenant {rec.get('tenant_id')!r}", seq=seq,
                      event_id=event_id)
    if columns != {name: rec.get(name) for name in COLUMNS}:  # then say which differs
        for name in COLUMNS:
            if name not in columns or columns[name] != rec.get(name):
                raise Problem(f"the stored column {name} differs from its hashed record",
                              seq=seq, event_id=event_id)
        raise Problem("its stored columns are not the expected set", seq=seq, event_id=event_id)
    if rec.get("v", 1) >= 2:
        try:
            expected = record_columns_hash(rec)
        except (KeyError, TypeError, ValueError, AttributeError):
            expected = None
        if rec.get("columns_hash") != expected:
            raise Problem("its record's columns_hash does not match its own fields", seq=seq,
                          event_id=event_id)
    if prev_hash is not None and rec.get("previous_hash") != prev_hash:
        raise Problem(f"it links to {str(rec.get('previous_hash'))[:16]}…, not to the chain "
                      f"hash of event seq {seq - 1} ({prev_hash[:16]}…)", seq=seq,
                      event_id=event_id)
    return actual, event_id or ""


def check_bundle(bundle: Any, key: VerifierKey) -> Report:
    """Check a bundle against the verifier key; ``Problem`` names the first thing wrong."""
    if not isinstance(bundle, dict) or bundle.get("format") != "trailseal-bundle/1":
        raise Problem("not a Trailseal bundle (format trailseal-bundle/1)")
    report = Report()
    origin = bundle.get("origin")
    tenant_id = bundle.get("tenant_id")
    if not isinstance(origin, str) or not isinstance(tenant_id, str) \
            or origin != f"{key.name}/{tenant_id}":
        raise Problem(f"the bundle's origin {origin!r} is not {key.name}/<its tenant id>")
    # 1. checkpoints: each signed by the key, for this tenant
    checkpoints = bundle.get("checkpoints")
    if not isinstance(checkpoints, list) or not checkpoints:
        raise Problem("the bundle carries no checkpoint")
    signed: dict[int, Checkpoint] = {}
    for i, item in enumerate(checkpoints):
        what = f"checkpoint {i + 1} (tree size {item.get('tree_size') if isinstance(item, dict) else '?'})"
        cp = _checkpoint(item.get("note") if isinstance(item, dict) else None, key, origin, what)
        if item.get("tree_size") != cp.size or item.get("root") != cp.root.hex():
            raise Problem(f"{what}: its tree_size/root fields differ from its signed note")
        signed[cp.size] = cp
    proofs = bundle.get("proofs") if isinstance(bundle.get("proofs"), dict) else {}
    rng = proofs.get("range") if isinstance(proofs.get("range"), dict) else None
    if rng is None or rng.get("tree_size") not in signed:
        raise Problem("the bundle's range proof names no checkpoint of the bundle")
    head = signed[rng["tree_size"]]
    report.tree_size = head.size
    # 2. events: hashes, columns, links
    events = bundle.get("events")
    first, last = bundle.get("from_seq"), bundle.get("to_seq")
    if not (isinstance(first, int) and isinstance(last, int) and 1 <= first <= last
            <= head.size):
        raise Problem(f"the bundle's range {first!r}..{last!r} is not within the checkpoint's "
                      f"{head.size} events")
    if not isinstance(events, list) or not events:
        raise Problem("the bundle holds no events")
    prev: str | None = GENESIS_HASH if first == 1 else None
    leaves: list[bytes] = []
    last_at: dict[Any, int] = {}  # seq -> its last position, to tell a reorder from a gap
    for position, event in enumerate(events):
        seq = event.get("seq") if isinstance(event, dict) else None
        if isinstance(seq, int):
            last_at[seq] = position
    for position, event in enumerate(events):
        expected = first + position
        later = {expected} if last_at.get(expected, -1) > position else frozenset()
        h, _ = check_event(event, expected, prev, tenant_id, later)
        leaves.append(bytes.fromhex(h))
        prev = h
    if first + len(leaves) - 1 != last:
        end = first + len(leaves) - 1
        raise Problem(f"the bundle says it holds events {first}..{last}, but they end at seq "
                      f"{end}: events {end + 1}..{last} are missing (a truncated tail)")
    report.events, report.first_seq, report.last_seq = len(leaves), first, last
    # 3. the events are the ones the checkpoint signed
    if rng.get("first_index") != first - 1:
        raise Problem("the range proof is not for the bundle's first event")
    context = _hashes(rng.get("context"), "the range proof")
    root = merkle.range_root(head.size, first - 1, leaves, context)
    if root is None:
        raise Problem(f"the range proof has the wrong number of hashes for events "
                      f"{first}..{last} in a tree of {head.size}")
    if root != head.root:
        raise Problem(
            f"the chain hashes of events {first}..{last} (with the range proof) do not give the "
            f"root signed by the checkpoint at tree size {head.size}: events were modified, "
            "removed, reordered or inserted, or the chain recomputed, after it was signed")
    report.checkpoints.append(head.size)
    # 4. earlier checkpoints are prefixes of the latest one
    by_from = {}
    for item in proofs.get("consistency") or []:
        if isinstance(item, dict) and isinstance(item.get("from"), int):
            by_from[item["from"]] = item
    for size, cp in sorted(signed.items()):
        if size == head.size:
            continue
        item = by_from.get(size)
        if item is None or item.get("to") != head.size:
            raise Problem(f"no consistency proof from the checkpoint at tree size {size} to "
                          f"{head.size}")
        proof = _hashes(item.get("proof"), f"the consistency proof {size}→{head.size}")
        if not merkle.verify_consistency(size, head.size, cp.root, head.root, proof):
            raise Problem(f"the consistency proof from tree size {size} to {head.size} does not "
                          "verify: the log signed earlier is not a prefix of the later one")
        report.consistency_proofs += 1
        report.checkpoints.append(size)
    return report


def check_inclusion(doc: dict[str, Any], key: VerifierKey) -> Report:
    """Check an event's inclusion proof (``GET /api/v1/events/{id}/proof``)."""
    cp = _checkpoint(doc.get("checkpoint"), key, None, "the proof's checkpoint")
    size, index = doc.get("tree_size"), doc.get("leaf_index")
    if size != cp.size or doc.get("root") != cp.root.hex():
        raise Problem("the proof's tree_size/root differ from its signed checkpoint")
    if not isinstance(index, int) or doc.get("seq") != index + 1:
        raise Problem("the proof's leaf_index is not its event's seq - 1")
    leaf = _hex32(doc.get("hash"), "the event's chain hash")
    proof = _hashes(doc.get("proof"), "the inclusion proof")
    if not merkle.verify_inclusion(index, size, leaf, proof, cp.root):
        raise Problem(f"the inclusion proof of the event's hash at leaf {index} does not lead to "
                      f"the root signed at tree size {size}", seq=index + 1,
                      event_id=doc.get("event_id"))
    report = Report(events=1, first_seq=index + 1, last_seq=index + 1, checkpoints=[size],
                    tree_size=size)
    return report


def check_consistency(doc: dict[str, Any], key: VerifierKey) -> Report:
    """Check a consistency proof (``GET /api/v1/checkpoints/consistency``)."""
    old = _checkpoint(doc.get("from_checkpoint"), key, None, "the older checkpoint")
    new = _checkpoint(doc.get("to_checkpoint"), key, old.origin, "the newer checkpoint")
    if (doc.get("from"), doc.get("to")) != (old.size, new.size):
        raise Problem("the proof's from/to differ from its signed checkpoints")
    proof = _hashes(doc.get("proof"), "the consistency proof")
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise Problem(f"the consistency proof from tree size {old.size} to {new.size} does not "
                      "verify")
    return Report(checkpoints=[old.size, new.size], tree_size=new.size, consistency_proofs=1)


def check_document(doc: Any, key: VerifierKey) -> tuple[str, Report]:
    """Check whichever document ``doc`` is: a bundle, an inclusion or a consistency proof."""
    if isinstance(doc, dict) and doc.get("format") == "trailseal-bundle/1":
        return "bundle", check_bundle(doc, key)
    if isinstance(doc, dict) and "leaf_index" in doc:
        return "inclusion proof", check_inclusion(doc, key)
    if isinstance(doc, dict) and "from_checkpoint" in doc:
        return "consistency proof", check_consistency(doc, key)
    if isinstance(doc, dict) and "format" in doc:
        raise Problem("not a Trailseal bundle (format trailseal-bundle/1)")
    raise Problem("not a Trailseal bundle, inclusion proof or consistency proof")
