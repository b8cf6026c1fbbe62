"""``trailseal-verify``: check a bundle or a proof with the public key only.

Exit status 0 when everything checks out, 1 at the first problem (named on stderr), 2 when
the files cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .bundle import Problem, check_document
from .note import NoteError, parse_verifier_key, verify_checkpoint


def _read_key(value: str):
    text = Path(value).read_text().strip() if Path(value).is_file() else value
    return parse_verifier_key(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trailseal-verify`` script."""
    parser = argparse.ArgumentParser(
        prog="trailseal-verify",
        description="Check a Trailseal export bundle (GET /api/v1/chain/bundle), an inclusion "
                    "proof (GET /api/v1/events/{id}/proof) or a consistency proof, using only "
                    "the instance's public key. Exit 0: everything checks out; 1: the first "
                    "problem is named; 2: unreadable input.")
    parser.add_argument("document", help="the bundle or proof (JSON file; - for stdin)")
    parser.add_argument("--public-key", required=True,
                        help="the verifier key name+id+base64 (or a file holding it), "
                             "obtained out of band")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="a checkpoint note kept by a witness (file); the bundle must "
                             "carry the same root for that tree size (repeatable)")
    args = parser.parse_args(argv)
    try:
        key = _read_key(args.public_key)
        raw = sys.stdin.buffer.read() if args.document == "-" else Path(args.document).read_bytes()
        doc = json.loads(raw)
        witnessed = [Path(p).read_text(encoding="utf-8") for p in args.checkpoint]
    except (OSError, ValueError, NoteError) as exc:
        print(f"trailseal-verify: cannot read input: {exc}", file=sys.stderr)
        return 2
    try:
        kind, report = check_document(doc, key)
        for note in witnessed:
            _check_witnessed(note, key, doc)
    except Problem as problem:
        print(f"FAIL: {problem}", file=sys.stderr)
        return 1
    if kind == "bundle":
        print(f"OK: {report.events} events (seq {report.first_seq}..{report.last_seq}) verified: "
              "chain hashes, columns and links; Merkle root matches the checkpoint signed at "
              f"tree size {report.tree_size}; {report.consistency_proofs} earlier checkpoint(s) "
              "consistent with it" + (f"; {len(witnessed)} witness checkpoint(s) agree"
                                     if witnessed else ""))
    elif kind == "inclusion proof":
        print(f"OK: event seq {report.first_seq} is included in the tree signed at size "
              f"{report.tree_size}")
    else:
        print(f"OK: the tree signed at size {report.checkpoints[0]} is a prefix of the tree "
              f"signed at size {report.checkpoints[1]}")
    return 0


def _check_witnessed(note: str, key, doc) -> None:
    """A checkpoint a witness kept must be one the document carries, with the same root."""
    try:
        cp = verify_checkpoint(note, key)
    except NoteError as exc:
        raise Problem(f"the witness checkpoint does not verify: {exc}") from None
    carried = {}
    for item in doc.get("checkpoints") or [] if isinstance(doc, dict) else []:
        if isinstance(item, dict):
            carried[item.get("tree_size")] = item.get("root")
    if cp.size not in carried:
        raise Problem(f"the bundle carries no checkpoint at the witnessed tree size {cp.size}")
    if carried[cp.size] != cp.root.hex():
        raise Problem(f"the witness signed root {cp.root.hex()[:16]}… at tree size {cp.size}, "
                      "the bundle another: the log was rewritten or forked")


if __name__ == "__main__":
    sys.exit(main())
