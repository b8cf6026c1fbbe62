"""Per-subject keys: the keys that make a person's events erasable without breaking the chain.

Every actor id, and every entity id whose entity type names a person (``PERSON_ENTITY_TYPES``),
is a *subject* with a random 32-byte key of its own, stored wrapped by the master key in
``subject_keys`` (created at ingest the first time the subject appears). The sensitive
fields of an event are encrypted with an *event key* derived from the tenant's data key and
the keys of the event's subjects::

    event key = HMAC-SHA256(tenant data key, "trailseal-subjects|" + actor key [+ entity key])

so destroying either subject's key (erasure) makes the fields unreadable, and destroying the
tenant's data keys (tenant deletion) does too. The event's stored ``key_id`` says which keys
went in: ``<tenant key id>:a`` (the actor's) or ``<tenant key id>:ae`` (the actor's and the
entity's); a ``key_id`` without a colon is an event written before subject keys, encrypted
with the tenant key alone (erasure cannot shred it). The hash covers the ciphertext and the
``key_id``, never a key, so erasure leaves the chain intact.

Erasure overwrites the wrapped key with NULL and keeps the row as a tombstone: an event
written later about an erased subject is encrypted with a throwaway key, so it reads as
``[erased]`` from the start.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigurationError

#: What an erased field reads as (the API, exports, search results, dashboards).
ERASED = "[erased]"
#: Seconds a process keeps using a subject key it read. Readers also check the tenant's
#: erasure counter in Redis before each page, so an erasure elsewhere reaches them at once;
#: the TTL bounds staleness when Redis does not answer.
SUBJECT_KEY_TTL = 30.0
#: The entity types whose entity id is a person (a subject with a key of its own) by default.
DEFAULT_PERSON_ENTITY_TYPES = "user,person,customer,employee,member,patient,contact"
_DERIVE = b"trailseal-subjects|"
_CACHE_MAX = 200_000


def person_entity_types(config) -> frozenset[str]:
    """The configured ``PERSON_ENTITY_TYPES`` (comma-separated) as a set."""
    raw = config.get("PERSON_ENTITY_TYPES", DEFAULT_PERSON_ENTITY_TYPES) or ""
    if not isinstance(raw, str):
        raw = ",".join(raw)
    return frozenset(t.strip() for t in raw.split(",") if t.strip())


def subjects_of(events: Iterable[Any], person_types: frozenset[str]) -> set[str]:
    """The subject ids of validated events: each actor, and each entity of a person type."""
    out = set()
    for ev in events:
        out.add(ev.actor.id)
        if ev.entity.type in person_types:
            out.add(ev.entity.id)
    return out


def subjects_of_raw(raw: Iterable[Any], person_types: frozenset[str]) -> set[str]:
    """The subject ids of raw events (dicts or JSON documents) before validation, for the
    bulk path: anything malformed is skipped (the helper that validates rejects it)."""
    import orjson

    out = set()
    for item in raw:
        if not isinstance(item, dict):
            try:
                item = orjson.loads(item)
            except (orjson.JSONDecodeError, TypeError):
                continue
            if not isinstance(item, dict):
                continue
        actor, entity = item.get("actor"), item.get("entity")
        if isinstance(actor, dict) and isinstance(actor.get("id"), str):
            out.add(actor["id"])
        if (isinstance(entity, dict) and entity.get("type") in person_types
                and isinstance(entity.get("id"), str)):
            out.add(entity["id"])
    return out


class EventKeys:
    """What ``records.prepare_batch`` encrypts with: the tenant's active data key and the
    raw keys of the batch's subjects (None: erased). Plain data, so it travels to a helper
    process; derived keys are cached per (actor, entity) pair inside each process."""

    def __init__(self, tenant_key_id: str, tenant_key: bytes, subject_keys: dict[str, bytes | None],
                 person_types: frozenset[str]):
        self.tenant_key_id = tenant_key_id
        self.tenant_key = tenant_key
        self.subject_keys = subject_keys
        self.person_types = person_types
        self._pairs: dict[tuple[str, str | None], tuple[str, AESGCM]] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_pairs"] = {}
        return state

    def for_event(self, actor_id: str, entity_type: str, entity_id: str) -> tuple[str, AESGCM]:
        """The ``key_id`` to store and the AES-GCM key of an event's fields."""
        entity = entity_id if entity_type in self.person_types else None
        pair = (actor_id, entity)
        found = self._pairs.get(pair)
        if found is None:
            keys = [self.subject_keys.get(actor_id)]
            if entity is not None:
                keys.append(self.subject_keys.get(entity))
            if any(k is None for k in keys):
                # An erased subject (or one the caller did not resolve, which never happens
                # on the ingest paths): a throwaway key, so the fields are unreadable at once.
                key = os.urandom(32)
            else:
                key = derive_event_key(self.tenant_key, *keys)
            suffix = ":a" if entity is None else ":ae"
            found = self._pairs[pair] = (self.tenant_key_id + suffix, AESGCM(key))
        return found


def derive_event_key(tenant_key: bytes, actor_key: bytes, entity_key: bytes | None = None) -> bytes:
    """The event key of an (actor, entity) pair (see the module docstring)."""
    return hmac.digest(tenant_key, _DERIVE + actor_key + (entity_key or b""), "sha256")


def _aad(tenant_id: uuid.UUID | str, subject_id: str) -> str:
    return f"subject-key|{tenant_id}|{subject_id}"


class SubjectKeyCache:
    """Per-process cache of unwrapped subject keys, ``SUBJECT_KEY_TTL`` seconds each;
    an erased subject (a tombstone) is remembered for good. Readers first compare the
    tenant's erasure counter in Redis (``sync``): an erasure in another process empties
    this process's keys of that tenant before its next read."""

    def __init__(self):
        self._keys: dict[str, dict[str, tuple[bytes | None, float]]] = {}
        self._seen: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def get_many(self, tenant_text: str, ids: Iterable[str]) -> tuple[dict[str, bytes | None], list[str]]:
        """The cached keys of ``ids`` and the ids not (or no longer) cached."""
        now = time.monotonic()
        found, missing = {}, []
        keys = self._keys.get(tenant_text, {})
        for sid in ids:
            hit = keys.get(sid)
            if hit is not None and (hit[0] is None or now - hit[1] < SUBJECT_KEY_TTL):
                found[sid] = hit[0]
            else:
                missing.append(sid)
        return found, missing

    def put_many(self, tenant_text: str, keys: dict[str, bytes | None]) -> None:
        now = time.monotonic()
        with self._lock:
            if sum(map(len, self._keys.values())) + len(keys) > _CACHE_MAX:
                self._keys.clear()
            mine = self._keys.setdefault(tenant_text, {})
            for sid, key in keys.items():
                mine[sid] = (key, now)

    def forget(self, tenant_text: str, subject_id: str) -> None:
        """Drop a subject's key from this process (erasure) so it is read again."""
        with self._lock:
            self._keys.get(tenant_text, {}).pop(subject_id, None)

    def forget_tenant(self, tenant_text: str) -> None:
        """Drop every cached key of a tenant (its keys were destroyed by a tenant purge)."""
        with self._lock:
            self._keys.pop(tenant_text, None)

    def sync(self, svc, tenant_text: str) -> None:
        """Empty the tenant's cached keys when its erasure counter in Redis moved since this
        process last looked (one GET; without Redis the TTL still bounds staleness)."""
        try:
            now = svc.redis.get(erasure_counter(tenant_text))
        except redis.RedisError:
            return
        if self._seen.get(tenant_text) != now:
            with self._lock:
                self._keys.pop(tenant_text, None)
                self._seen[tenant_text] = now

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


def erasure_counter(tenant_text: str) -> str:
    """The Redis key erasures of a tenant increment (see ``SubjectKeyCache.sync``)."""
    return f"trailseal:subject-erasures:{tenant_text}"


def _cache(svc) -> SubjectKeyCache:
    return svc.keyring.subject_cache


def _unwrap(svc, tenant_id, subject_id: str, wrapped) -> bytes | None:
    if wrapped is None:
        return None
    return svc.keyring.unwrap_secret(_aad(tenant_id, subject_id), bytes(wrapped))


def read_subject_keys(svc, cur, tenant_id: uuid.UUID, ids: Iterable[str]) -> dict[str, bytes | None]:
    """The keys of ``ids`` for decryption (``cur`` in the tenant's transaction): None for an
    erased subject and for one without a key."""
    tenant_text = str(tenant_id)
    cache = _cache(svc)
    found, missing = cache.get_many(tenant_text, set(ids))
    if missing:
        cur.execute("SELECT subject_id, wrapped_key FROM subject_keys "
                    "WHERE tenant_id = %s AND subject_id = ANY(%s)", (tenant_id, missing))
        fetched = {sid: _unwrap(svc, tenant_id, sid, w) for sid, w in cur.fetchall()}
        cache.put_many(tenant_text, fetched)
        found.update(fetched)
        for sid in missing:
            found.setdefault(sid, None)
    return found


def ensure_subject_keys(svc, tenant_id: uuid.UUID, ids: Iterable[str]) -> dict[str, bytes | None]:
    """The keys of ``ids`` for encryption, creating the missing ones in a transaction of their
    own (committed before any event uses them; a key whose events then fail to append
    protects nothing and costs one row). None for an erased subject."""
    tenant_text = str(tenant_id)
    cache = _cache(svc)
    found, missing = cache.get_many(tenant_text, set(ids))
    if not missing:
        return found
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT subject_id, wrapped_key FROM subject_keys "
                    "WHERE tenant_id = %s AND subject_id = ANY(%s)", (tenant_id, missing))
        fetched = {sid: _unwrap(svc, tenant_id, sid, w) for sid, w in cur.fetchall()}
        new = sorted(sid for sid in missing if sid not in fetched)
        if new:
            # No wait for the WAL flush here: the events that use these keys commit later,
            # synchronously, and flushing their commit record flushes everything written
            # before it, these keys included. So a key is durable whenever an event needing
            # it is (a crash in between loses only keys nothing uses).
            cur.execute("SET LOCAL synchronous_commit = off")
            raw = {sid: AESGCM.generate_key(bit_length=256) for sid in new}
            wrapped = [svc.keyring.wrap_secret(_aad(tenant_id, sid), raw[sid]) for sid in new]
            # A concurrent ingest may create the same subject's key, or an erasure its
            # tombstone: the row that is there wins, and is read back.
            cur.execute(
                "INSERT INTO subject_keys (tenant_id, subject_id, wrapped_key) "
                "SELECT %s, s, w FROM unnest(%s::text[], %s::bytea[]) AS u(s, w) "
                "ON CONFLICT (tenant_id, subject_id) DO NOTHING RETURNING subject_id",
                (tenant_id, new, wrapped))
            created = {r[0] for r in cur.fetchall()}
            for sid in created:
                fetched[sid] = raw[sid]
            lost = [sid for sid in new if sid not in created]
            if lost:
                cur.execute("SELECT subject_id, wrapped_key FROM subject_keys "
                            "WHERE tenant_id = %s AND subject_id = ANY(%s)", (tenant_id, lost))
                fetched.update({sid: _unwrap(svc, tenant_id, sid, w) for sid, w in cur.fetchall()})
    cache.put_many(tenant_text, fetched)
    found.update(fetched)
    return found


def event_keys(svc, cur, tenant_id: uuid.UUID, subject_keys: dict[str, bytes | None]) -> EventKeys:
    """The ``EventKeys`` of a batch (``cur``: the tenant's transaction, for its data key)."""
    key_id, _ = svc.keyring.active_key(cur, tenant_id)
    return EventKeys(key_id, svc.keyring.raw_key(cur, tenant_id, key_id), subject_keys,
                     person_entity_types(svc.config))


class TenantKeyOnly(EventKeys):
    """``EventKeys`` that encrypt with the tenant's data key alone, its id as the
    ``key_id``: the format of events written before per-subject keys (what a ledger
    upgraded in place holds). For tests and benchmarks of such ledgers."""

    def __init__(self, tenant_key_id: str, tenant_aes: AESGCM):
        super().__init__(tenant_key_id, b"", {}, frozenset())
        self.tenant_aes = tenant_aes

    def for_event(self, actor_id: str, entity_type: str, entity_id: str) -> tuple[str, AESGCM]:
        return self.tenant_key_id, self.tenant_aes


class EventDecryptor:
    """Finds the AES-GCM key of stored events for reading (one per transaction and page):
    the tenant key of an old event, or the event key derived from its subjects' keys;
    None when a subject was erased."""

    def __init__(self, svc, cur, tenant_id: uuid.UUID):
        self.svc, self.cur, self.tenant_id = svc, cur, tenant_id
        self._pairs: dict[tuple[str, str, str | None], AESGCM | None] = {}
        self._synced = False

    def _sync(self) -> None:
        if not self._synced:
            self._synced = True
            _cache(self.svc).sync(self.svc, str(self.tenant_id))

    def prefetch(self, records: Iterable[bytes | None]) -> None:
        """Read the subject keys a page of stored records needs in one query (instead of
        one per subject as ``key`` meets them)."""
        import orjson

        self.prefetch_parsed(orjson.loads(r) for r in records if r is not None)

    def prefetch_parsed(self, recs: Iterable[dict[str, Any]]) -> None:
        """``prefetch`` for records already parsed."""
        ids = set()
        for rec in recs:
            _, sep, mode = rec["key_id"].partition(":")
            if sep:
                ids.add(rec["actor_id"])
                if mode == "ae":
                    ids.add(rec["entity_id"])
        if ids:
            self._sync()
            read_subject_keys(self.svc, self.cur, self.tenant_id, ids)

    def key(self, rec: dict[str, Any]) -> AESGCM | None:
        """The key of a stored record's fields, None when they are erased."""
        key_id = rec["key_id"]
        if ":" not in key_id:
            return self.svc.keyring.key(self.cur, self.tenant_id, key_id)
        pair = self._pair(rec)
        if pair in self._pairs:
            return self._pairs[pair]
        raw = self.event_key(rec)
        aes = self._pairs[pair] = None if raw is None else AESGCM(raw)
        return aes

    def _pair(self, rec: dict[str, Any]) -> tuple[str, str, str | None]:
        tenant_key_id, _, mode = rec["key_id"].partition(":")
        if mode not in ("a", "ae"):
            raise ConfigurationError(f"unknown key scheme {rec['key_id']!r}")
        return (tenant_key_id, rec["actor_id"], rec["entity_id"] if mode == "ae" else None)

    def event_key(self, rec: dict[str, Any]) -> bytes | None:
        """The raw event key of a record with a per-subject key (``key_id`` with a colon),
        None when a subject of it was erased (32 bytes, where an ``AESGCM`` holds 2.5 kB:
        what a reader keeps many of)."""
        tenant_key_id, actor, entity = self._pair(rec)
        ids = [actor] if entity is None else [actor, entity]
        self._sync()
        keys = read_subject_keys(self.svc, self.cur, self.tenant_id, ids)
        if any(keys.get(sid) is None for sid in ids):
            return None
        tenant_key = self.svc.keyring.raw_key(self.cur, self.tenant_id, tenant_key_id)
        return derive_event_key(tenant_key, keys[actor],
                                keys[entity] if entity is not None else None)


__all__ = ["ERASED", "EventDecryptor", "EventKeys", "SubjectKeyCache", "TenantKeyOnly",
           "derive_event_key",
           "ensure_subject_keys", "event_keys", "person_entity_types", "read_subject_keys",
           "subjects_of", "subjects_of_raw"]
