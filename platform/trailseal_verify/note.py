"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and the checkpoints
they carry (https://c2sp.org/tlog-checkpoint).

A checkpoint is the text ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` (plus
extension lines), then a blank line, then one line per signature:
``— <key name> <base64(4-byte key id || 64-byte signature)>``. The key id is the first four
bytes of ``SHA-256(key name || "\\n" || 0x01 || public key)``; a verifier key is written
``<name>+<key id, 8 hex digits>+<base64(0x01 || public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
MAX_NOTE = 1_000_000


class NoteError(ValueError):
    """A note, key or checkpoint that does not parse or does not verify; the message says
    why."""


def _valid_name(name: str) -> bool:
    return bool(name) and name.isprintable() and not any(c in name for c in " +\n") \
        and name.isascii()


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id of an Ed25519 key: ``SHA-256(name || "\\n" || 0x01 || key)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The key as signed-note verifiers read it: ``name+<id hex>+<base64(0x01 || key)>``."""
    if not _valid_name(name):
        raise NoteError(f"key name {name!r} has a space, '+' or a non-printable character")
    encoded = base64.b64encode(bytes([ED25519]) + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key."""

    name: str
    key_id: bytes
    public_key: bytes

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_verifier_key(text: str) -> VerifierKey:
    """Read a verifier key (``name+hash+base64``)."""
    parts = text.strip().split("+", 2)  # base64 may hold "+" too
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<key id>+<base64 key>")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        wanted = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise NoteError("the verifier key's id or key is not hex/base64") from None
    if len(raw) != 33 or raw[0] != ED25519:
        raise NoteError("the verifier key is not an Ed25519 key (0x01 and 32 bytes)")
    if not _valid_name(name):
        raise NoteError(f"the verifier key's name {name!r} is not a valid key name")
    if key_id(name, raw[1:]) != wanted:
        raise NoteError("the verifier key's id does not match its name and key")
    return VerifierKey(name, wanted, raw[1:])


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note of ``text`` (its lines each ending in a newline)."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends with a newline and has no blank line")
    public = private_key.public_key().public_bytes_raw()
    signature = private_key.sign(text.encode())
    encoded = base64.b64encode(key_id(name, public) + signature).decode()
    return f"{text}\n{SIGNATURE_PREFIX}{name} {encoded}\n"


def open_note(note: str, key: VerifierKey) -> str:
    """The text of a signed note once a signature of ``key`` on it verifies; ``NoteError``
    saying what is wrong otherwise."""
    if len(note) > MAX_NOTE:
        raise NoteError("the note is too large")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise NoteError("the note has no blank line before its signatures")
    text += "\n"
    found_name = False
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"signature line {line[:40]!r} does not start with an em dash")
        name, _, encoded = line[len(SIGNATURE_PREFIX):].rpartition(" ")
        if name != key.name:
            continue
        found_name = True
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError(f"the signature of {name} is not base64") from None
        if len(raw) != 4 + 64 or raw[:4] != key.key_id:
            continue
        if key.verify(text.encode(), raw[4:]):
            return text
        raise NoteError(f"the signature of {name} does not verify: the note was altered or "
                        "signed by another key")
    if found_name:
        raise NoteError(f"the note is signed by another key named {key.name}")
    raise NoteError(f"the note carries no signature of {key.name}")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's fields."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def checkpoint_text(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()
                    ) -> str:
    """The text of a checkpoint (to be signed)."""
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    if not origin or any(not line or "\n" in line for line in lines):
        raise NoteError("checkpoint lines are non-empty and hold no newline")
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """The fields of a checkpoint's text (as ``open_note`` returns it)."""
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a size and a root hash")
    origin, size_text, root_text, *extensions = lines
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0"
                                                              and size_text[0] == "0"):
        raise NoteError(f"the checkpoint's size {size_text[:30]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint of a signed note whose signature by ``key`` verifies."""
    return parse_checkpoint(open_note(note, key))
