"""Encrypted archives of chain ranges: the export bundle (``trailseal-bundle/1``, with its
checkpoints and proofs) of the events retention removes, compressed and encrypted before
anything is removed.

File layout: one line of JSON (the header: format, tenant, seq range, cipher, nonce and the
archive's own data key wrapped by the master key), then the zlib-compressed bundle encrypted
with AES-256-GCM (the header line is its associated data), then the 16-byte GCM tag.
Opening an archive needs the master key that wrapped its data key (``open_archive``, the
``trailseal retention open`` command); the bundle inside is then checked with
``trailseal-verify`` like any other bundle.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import ValidationFailed
from .chain import format_ts

ARCHIVE_FORMAT = "trailseal-archive/1"
TAG_BYTES = 16
NONCE_BYTES = 12
HEADER_MAX = 64 * 1024
READ_CHUNK = 1024 * 1024


class ArchiveUnreadable(ValidationFailed):
    """The file is not an archive, was altered, or its key cannot be unwrapped here."""

    code = "archive_unreadable"


def archive_dir(config: dict[str, Any]) -> Path:
    """Where archives are written: ``ARCHIVE_DIR``, else ``<instance>/archives``."""
    return Path(config.get("ARCHIVE_DIR") or Path(config["INSTANCE_PATH"]) / "archives")


def _purpose(tenant_id: str, first: int, last: int) -> str:
    return f"archive|{tenant_id}|{first}-{last}"


def write_archive(keyring, path: Path, tenant_id: str, first: int, last: int,
                  chunks: Iterable[bytes]) -> dict[str, Any]:
    """Compress and encrypt the bundle ``chunks`` into ``path`` (written to a temporary name
    and renamed, so a file under ``path`` is always complete). Returns its name, size and
    SHA-256."""
    key = os.urandom(32)
    nonce = os.urandom(NONCE_BYTES)
    header = orjson.dumps({
        "format": ARCHIVE_FORMAT, "tenant_id": tenant_id, "from_seq": first, "to_seq": last,
        "created_at": format_ts(datetime.now(UTC)), "cipher": "AES-256-GCM",
        "compression": "zlib", "nonce": base64.b64encode(nonce).decode(),
        "master_key_id": keyring.master_key_id,
        "wrapped_key": base64.b64encode(
            keyring.wrap_secret(_purpose(tenant_id, first, last), key)).decode(),
    }) + b"\n"
    encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(header)
    squeeze = zlib.compressobj(6)
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    size = 0
    with open(tmp, "wb") as fh:
        def put(data: bytes) -> None:
            nonlocal size
            if data:
                fh.write(data)
                digest.update(data)
                size += len(data)

        put(header)
        for chunk in chunks:
            put(encryptor.update(squeeze.compress(chunk)))
        put(encryptor.update(squeeze.flush()))
        put(encryptor.finalize())
        put(encryptor.tag)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return {"name": path.name, "path": str(path), "bytes": size, "sha256": digest.hexdigest()}


def read_header(fh: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    """The archive's header (parsed) and its bytes; ``ArchiveUnreadable`` if none."""
    line = fh.readline(HEADER_MAX)
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != ARCHIVE_FORMAT:
        raise ArchiveUnreadable(f"not a Trailseal archive ({ARCHIVE_FORMAT})")
    return header, line


def open_archive(keyring, path: str | Path, out: IO[bytes]) -> dict[str, Any]:
    """Decrypt and decompress the archive at ``path`` into ``out`` (the bundle's JSON);
    returns its header. The GCM tag is checked at the end: on ``ArchiveUnreadable`` what was
    written to ``out`` must be thrown away."""
    path = Path(path)
    total = path.stat().st_size
    with open(path, "rb") as fh:
        header, line = read_header(fh)
        try:
            first, last = int(header["from_seq"]), int(header["to_seq"])
            nonce = base64.b64decode(header["nonce"], validate=True)
            wrapped = base64.b64decode(header["wrapped_key"], validate=True)
            tenant_id = str(header["tenant_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveUnreadable(f"the archive header is incomplete: {exc}") from None
        try:
            key = keyring.unwrap_secret(_purpose(tenant_id, first, last), wrapped)
        except Exception as exc:  # noqa: BLE001 - a wrong master key or an altered header
            raise ArchiveUnreadable(f"the archive's key does not unwrap with this master key: "
                                    f"{getattr(exc, 'message', exc)}") from None
        body = total - len(line) - TAG_BYTES
        if body < 0 or len(nonce) != NONCE_BYTES:
            raise ArchiveUnreadable("the archive is truncated")
        fh.seek(total - TAG_BYTES)
        tag = fh.read(TAG_BYTES)
        fh.seek(len(line))
        decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(line)
        inflate = zlib.decompressobj()
        left = body
        try:
            while left > 0:
                data = fh.read(min(READ_CHUNK, left))
                if not data:
                    raise ArchiveUnreadable("the archive is truncated")
                left -= len(data)
                out.write(inflate.decompress(decryptor.update(data)))
            decryptor.finalize()
            out.write(inflate.flush())
        except (InvalidTag, zlib.error):
            raise ArchiveUnreadable("the archive was altered (its authentication tag does not "
                                    "match)") from None
    return header


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, as ``retention_purges.archive_sha256`` records it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while data := fh.read(READ_CHUNK):
            digest.update(data)
    return digest.hexdigest()
