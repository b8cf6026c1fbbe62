"""The instance's checkpoint signing key (Ed25519): created on first use, stored wrapped by
the master key in ``checkpoint_keys``, unwrapped only in memory. Only its public half leaves
the server (``GET /api/v1/checkpoints/public-key``)."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trailseal_verify.note import VerifierKey, key_id, verifier_key

from ..errors import ConfigurationError

_cache: dict[tuple[str, str], SigningKey] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class SigningKey:
    """The checkpoint key: its name (the origin prefix of every tenant's checkpoints), the
    private key (never stored unwrapped, never returned) and the public key."""

    name: str
    private_key: Ed25519PrivateKey
    public_key: bytes

    @property
    def vkey(self) -> str:
        """The signed-note verifier key ``name+id+base64``."""
        return verifier_key(self.name, self.public_key)

    @property
    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, key_id(self.name, self.public_key), self.public_key)

    def origin(self, tenant_id) -> str:
        """The checkpoint origin of a tenant: ``<key name>/<tenant id>``."""
        return f"{self.name}/{tenant_id}"


def default_key_name(configured: str | None) -> str:
    """``CHECKPOINT_KEY_NAME``, else ``trailseal.<host name>``: a signed-note key name (no
    spaces, no ``+``)."""
    name = configured or f"trailseal.{socket.gethostname() or 'local'}"
    name = re.sub(r"[^!-*,-~]", "-", name)[:200]
    return name or "trailseal.local"


def forget_cached_keys() -> None:
    """Forget the keys this process unwrapped (the next use reads the table again)."""
    with _lock:
        _cache.clear()


def _purpose(name: str) -> str:
    return f"checkpoint-key|{name}"


def signing_key(svc, cur) -> SigningKey:
    """The instance's checkpoint key (the oldest in ``checkpoint_keys``), created when there
    is none; ``cur``: a psycopg cursor of the caller's transaction."""
    cache_key = (svc.db.url, svc.keyring.master_key_id)
    cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    with _lock:
        cur.execute("SELECT name, public_key, wrapped_private_key FROM checkpoint_keys "
                    "ORDER BY created_at, name LIMIT 1")
        row = cur.fetchone()
        if row is None:
            # In a transaction of its own, committed before use: the caller's may still roll
            # back (nothing to checkpoint), and a key that signed nothing must not vanish
            # while this process keeps it.
            name = default_key_name(svc.config.get("CHECKPOINT_KEY_NAME"))
            private = Ed25519PrivateKey.generate()
            raw = private.private_bytes_raw()
            with svc.db.cursor() as own:
                own.execute(
                    "INSERT INTO checkpoint_keys (name, public_key, wrapped_private_key) "
                    "VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
                    (name, private.public_key().public_bytes_raw(),
                     svc.keyring.wrap_secret(_purpose(name), raw)))
            with svc.db.cursor() as own:
                own.execute("SELECT name, public_key, wrapped_private_key FROM checkpoint_keys "
                            "ORDER BY created_at, name LIMIT 1")
                row = own.fetchone()
        name, public, wrapped = row
        private = Ed25519PrivateKey.from_private_bytes(
            svc.keyring.unwrap_secret(_purpose(name), wrapped))
        if private.public_key().public_bytes_raw() != bytes(public):
            # Someone with database access swapped the public key: never publish theirs.
            raise ConfigurationError(f"the stored public key of checkpoint key {name} is not "
                                     "the public half of its private key")
        key = SigningKey(name, private, bytes(public))
        _cache[cache_key] = key
        return key
