"""Field encryption: AES-256-GCM with per-tenant data keys wrapped by the master key.

Each ciphertext is ``nonce (12 bytes) || ciphertext+tag`` and is bound (as associated data) to
its tenant, event id and field name, so a ciphertext moved to another row or field fails to
decrypt. Rows record the ``key_id`` they were encrypted with; rotation adds a new data key
and keeps the old ones, so old rows stay readable.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigurationError, TrailsealError
from .subject_keys import SubjectKeyCache

log = logging.getLogger(__name__)

NONCE_BYTES = 12
ACTIVE_KEY_TTL = 30.0  # seconds a process keeps using a cached active key after a rotation


class DecryptionFailed(TrailsealError):
    status = 500
    code = "decryption_failed"


def parse_master_key(text: str) -> bytes:
    """Decode a base64 (or 64-hex-digit) master key of exactly 32 bytes."""
    text = text.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ConfigurationError("TRAILSEAL_MASTER_KEY is not valid base64 or hex") from exc
    if len(raw) != 32:
        raise ConfigurationError(
            f"TRAILSEAL_MASTER_KEY must decode to 32 bytes (AES-256), got {len(raw)}"
        )
    return raw


def load_or_create_master_key(instance_path: str | Path) -> tuple[bytes, Path, bool]:
    """Read ``<instance>/master.key``, creating it (mode 0600) when absent.

    Returns the key, its path and whether it was created now.
    """
    path = Path(instance_path) / "master.key"
    if path.exists():
        if path.stat().st_mode & 0o077:
            # Copied or restored with a wider mode: whoever reads it can unwrap every data key.
            log.warning("%s was readable by others; narrowing it to mode 0600", path)
            path.chmod(0o600)
        return parse_master_key(path.read_text()), path, False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key, path, True


def master_key_id(master_key: bytes) -> str:
    return hashlib.sha256(b"trailseal-master:" + master_key).hexdigest()[:12]


def field_aad(tenant_id: uuid.UUID | str, event_id: uuid.UUID | str, field: str) -> bytes:
    """The associated data that binds a field's ciphertext to its tenant, event and field
    name (UUIDs and their canonical text give the same bytes)."""
    return f"{tenant_id}|{event_id}|{field}".encode()


def encrypt_field(
    dek: AESGCM, tenant_id: uuid.UUID | str, event_id: uuid.UUID | str, field: str,
    plaintext: bytes, nonce: bytes | None = None,
) -> bytes:
    """A field's stored ciphertext: the nonce (fresh unless given: callers that encrypt many
    fields draw them all from one ``os.urandom`` call), then AES-GCM bound by ``field_aad``."""
    if nonce is None:
        nonce = os.urandom(NONCE_BYTES)
    return nonce + dek.encrypt(nonce, plaintext, field_aad(tenant_id, event_id, field))


def decrypt_field(
    dek: AESGCM, tenant_id: uuid.UUID | str, event_id: uuid.UUID | str, field: str,
    blob: bytes,
) -> bytes:
    try:
        return dek.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], field_aad(tenant_id, event_id, field))
    except InvalidTag as exc:
        raise DecryptionFailed(
            f"{field} of event {event_id} does not decrypt (wrong key or altered ciphertext)"
        ) from exc


class KeyRing:
    """Per-process cache of unwrapped tenant data keys; the database holds them wrapped."""

    def __init__(self, master_key: bytes):
        self._master = AESGCM(master_key)
        self.master_key_id = master_key_id(master_key)
        self._keys: dict[tuple[str, str], AESGCM] = {}
        self._raw: dict[tuple[str, str], bytes] = {}
        #: unwrapped per-subject keys (``subject_keys``)
        self.subject_cache = SubjectKeyCache()
        self._active: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def forget_active_keys(self) -> None:
        """Forget which data key is active for each tenant, so the next append reads it
        again at once (a rotation is otherwise picked up within the cache's lifetime)."""
        with self._lock:
            self._active.clear()

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop every unwrapped key of a tenant from this process (its keys were destroyed
        by a tenant purge)."""
        with self._lock:
            for cache in (self._keys, self._raw):
                for key in [k for k in cache if k[0] == tenant_id]:
                    del cache[key]
            self._active.pop(tenant_id, None)
        self.subject_cache.forget_tenant(tenant_id)

    # wrapping ------------------------------------------------------------------
    def _wrap(self, tenant_id: uuid.UUID, key_id: str, dek: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aad = f"dek|{tenant_id}|{key_id}".encode()
        return self.master_key_id.encode() + b":" + nonce + self._master.encrypt(nonce, dek, aad)

    def _unwrap(self, tenant_id: uuid.UUID, key_id: str, wrapped: bytes) -> bytes:
        mk_id, _, body = bytes(wrapped).partition(b":")
        if mk_id.decode() != self.master_key_id:
            raise ConfigurationError(
                f"data key {key_id} of tenant {tenant_id} is wrapped by master key "
                f"{mk_id.decode()}, but TRAILSEAL_MASTER_KEY is {self.master_key_id}"
            )
        aad = f"dek|{tenant_id}|{key_id}".encode()
        try:
            return self._master.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise ConfigurationError(f"data key {key_id} of tenant {tenant_id} fails to unwrap") from exc

    # other secrets ------------------------------------------------------------------
    def wrap_secret(self, purpose: str, secret: bytes) -> bytes:
        """``secret`` encrypted by the master key for storage, bound to ``purpose`` (the
        checkpoint signing key: ``checkpoint-key|<name>``)."""
        nonce = os.urandom(NONCE_BYTES)
        aad = f"secret|{purpose}".encode()
        return self.master_key_id.encode() + b":" + nonce + self._master.encrypt(nonce, secret, aad)

    def unwrap_secret(self, purpose: str, wrapped: bytes) -> bytes:
        """A secret stored by ``wrap_secret`` for the same ``purpose``."""
        mk_id, _, body = bytes(wrapped).partition(b":")
        if mk_id.decode(errors="replace") != self.master_key_id:
            raise ConfigurationError(
                f"{purpose} is wrapped by master key {mk_id.decode(errors='replace')}, but "
                f"TRAILSEAL_MASTER_KEY is {self.master_key_id}")
        try:
            return self._master.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:],
                                        f"secret|{purpose}".encode())
        except InvalidTag as exc:
            raise ConfigurationError(f"{purpose} fails to unwrap") from exc

    # keys in the database ---------------------------------------------------------
    def create_data_key(self, cur, tenant_id: uuid.UUID) -> str:
        """Insert a new data key for the tenant (in the caller's transaction); return its id."""
        key_id = "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S%f") + os.urandom(2).hex()
        dek = AESGCM.generate_key(bit_length=256)
        cur.execute(
            "INSERT INTO tenant_keys (tenant_id, key_id, wrapped_key) VALUES (%s, %s, %s)",
            (tenant_id, key_id, self._wrap(tenant_id, key_id, dek)),
        )
        with self._lock:
            # Not marked active here: if the caller's transaction rolls back, the key was
            # never stored, and later appends must not encrypt with it. The next
            # ``active_key`` reads the committed newest key.
            self._keys[(str(tenant_id), key_id)] = AESGCM(dek)
            self._raw[(str(tenant_id), key_id)] = dek
            self._active.pop(str(tenant_id), None)
        return key_id

    def active_key(self, cur, tenant_id: uuid.UUID) -> tuple[str, AESGCM]:
        """The tenant's newest data key (cached for ``ACTIVE_KEY_TTL`` seconds)."""
        cached = self._active.get(str(tenant_id))
        if cached and time.monotonic() - cached[1] < ACTIVE_KEY_TTL:
            return cached[0], self._keys[(str(tenant_id), cached[0])]
        cur.execute(
            "SELECT key_id, wrapped_key FROM tenant_keys WHERE tenant_id = %s "
            "ORDER BY created_at DESC, key_id DESC LIMIT 1",
            (tenant_id,),
        )
        row = cur.fetchone()
        if row is None:
            key_id = self.create_data_key(cur, tenant_id)
            return key_id, self._keys[(str(tenant_id), key_id)]
        key_id, wrapped = row
        aes = self._remember(tenant_id, key_id, wrapped)
        with self._lock:
            self._active[str(tenant_id)] = (key_id, time.monotonic())
        return key_id, aes

    def key(self, cur, tenant_id: uuid.UUID, key_id: str) -> AESGCM:
        """The data key ``key_id`` of the tenant, for decryption."""
        aes = self._keys.get((str(tenant_id), key_id))
        if aes is not None:
            return aes
        return self._remember(tenant_id, key_id, self._wrapped(cur, tenant_id, key_id))

    def raw_key(self, cur, tenant_id: uuid.UUID, key_id: str) -> bytes:
        """The raw bytes of a data key (cached): what per-subject event keys derive from."""
        raw = self._raw.get((str(tenant_id), key_id))
        if raw is None:
            self._remember(tenant_id, key_id, self._wrapped(cur, tenant_id, key_id))
            raw = self._raw[(str(tenant_id), key_id)]
        return raw

    def key_material(self, cur, tenant_id: uuid.UUID, key_id: str) -> bytes:
        """The raw bytes of a data key, for a helper process of this one (bulk import).
        Never cached, never logged, never leaves the machine."""
        return self._unwrap(tenant_id, key_id, self._wrapped(cur, tenant_id, key_id))

    @staticmethod
    def _wrapped(cur, tenant_id: uuid.UUID, key_id: str) -> bytes:
        cur.execute(
            "SELECT wrapped_key FROM tenant_keys WHERE tenant_id = %s AND key_id = %s",
            (tenant_id, key_id),
        )
        row = cur.fetchone()
        if row is None:
            raise DecryptionFailed(f"data key {key_id} of tenant {tenant_id} is missing")
        return row[0]

    def _remember(self, tenant_id: uuid.UUID, key_id: str, wrapped: bytes) -> AESGCM:
        raw = self._unwrap(tenant_id, key_id, wrapped)
        aes = AESGCM(raw)
        with self._lock:
            self._keys[(str(tenant_id), key_id)] = aes
            self._raw[(str(tenant_id), key_id)] = raw
        return aes
