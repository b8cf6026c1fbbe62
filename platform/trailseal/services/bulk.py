"""Bulk append: helper processes validate, encrypt and serialise the next batches while
this process links each batch to the chain head, writes and commits it
(``trailseal import``; measured by bench/bench_ingest.py)."""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import NotFound, ValidationFailed
from ..infra import helpers
from .ingest import AppendResult, lock_head, validate_events, write_batch
from .records import PreparedBatch, link_batch, prepare_batch
from .subject_keys import (
    EventKeys,
    ensure_subject_keys,
    person_entity_types,
    subjects_of,
    subjects_of_raw,
)

log = logging.getLogger(__name__)


def parse_documents(raw: list[Any]) -> list[Any]:
    """Decode the items of a raw batch that are JSON documents (bytes or str, e.g. the lines
    of a JSON Lines file); dicts pass through. A bad document raises 422 naming its index."""
    out = []
    for index, item in enumerate(raw):
        if isinstance(item, bytes | bytearray | memoryview | str):
            try:
                item = orjson.loads(item)
            except orjson.JSONDecodeError as exc:
                msg = f"not valid JSON ({exc.msg} at column {exc.colno})"
                raise ValidationFailed(f"event {index} is {msg}", {
                    "index": index,
                    "errors": [{"loc": [], "msg": msg, "type": "json_invalid"}],
                }) from None
        out.append(item)
    return out


def _prepare_raw(tenant_text: str, keys: EventKeys, raw: list[Any]) -> tuple[str, Any]:
    """Parse, validate and prepare one raw batch in a helper process: ``("ok", PreparedBatch)`` or
    ``("invalid", (message, details))``."""
    try:
        events = validate_events(parse_documents(raw))
    except ValidationFailed as exc:
        return "invalid", (exc.message, exc.details)
    return "ok", prepare_batch(tenant_text, keys, events)


@dataclass
class StreamResult:
    """What ``append_stream`` committed."""

    batches: int = 0
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None

    def add(self, result: AppendResult) -> None:
        self.batches += 1
        self.events += len(result.ids)
        if self.first_seq is None:
            self.first_seq = result.first_seq
        self.last_seq = result.last_seq


def append_stream(
    svc,
    tenant_id: uuid.UUID,
    batches: Iterable[list[Any]],
    *,
    workers: int | None = None,
    on_batch: Callable[[AppendResult], None] | None = None,
) -> StreamResult:
    """Validate and append many batches of raw events (bulk import); each batch is atomic.

    A batch is a list of event dicts or of JSON documents (bytes or str, one event each,
    such as the lines of a JSON Lines file), which the helpers decode.

    Helper processes validate, encrypt and serialise the next batches while this process
    links each batch to the chain head under the head lock, writes and commits it.
    ``workers``: None uses the shared helper pool (on a multi-core machine), 0 does
    everything in this process, N >= 1 starts a pool of N helpers for this call. Stops at
    the first invalid batch (422 naming the batch and the event; nothing of that batch is
    written) or failed write; every batch before it stays committed, and the error says
    how far it got.
    """
    tenant_id = uuid.UUID(str(tenant_id))
    tenant_text = str(tenant_id)
    if workers is None and not helpers.multi_core():
        workers = 0
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT 1 FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        if cur.fetchone() is None:
            raise NotFound("tenant not found", {"tenant_id": tenant_text})
        key_id, _ = svc.keyring.active_key(cur, tenant_id)
        tenant_key = svc.keyring.raw_key(cur, tenant_id, key_id)
    person_types = person_entity_types(svc.config)

    def keys_for(raw: list[Any]) -> EventKeys:
        # The batch's subjects are read here, before a helper validates it, so their keys
        # (created when new) travel with the batch: helpers never touch the database.
        subject_keys = ensure_subject_keys(svc, tenant_id, subjects_of_raw(raw, person_types))
        return EventKeys(key_id, tenant_key, subject_keys, person_types)

    done = StreamResult()
    numbered = ((number, raw) for number, raw in enumerate(batches) if raw)

    def commit(batch: PreparedBatch) -> None:
        with svc.db.cursor(tenant_id) as cur:
            link_batch(batch, *lock_head(cur, tenant_id))
            result = write_batch(cur, tenant_id, batch)
        # Count it at once, so an error or interrupt from here on reports it as written.
        done.add(result)
        if on_batch is not None:
            on_batch(result)
        svc.after_ingest(tenant_id, result)

    def invalid(number: int, message: str, details: Any) -> ValidationFailed:
        return ValidationFailed(
            f"batch {number}: {message}",
            {"batch": number, **(details or {}), "committed_events": done.events,
             "last_seq": done.last_seq},
        )

    def inline(items) -> None:
        for number, raw in items:
            try:
                events = validate_events(parse_documents(raw))
            except ValidationFailed as exc:
                raise invalid(number, exc.message, exc.details) from None
            subject_keys = ensure_subject_keys(svc, tenant_id, subjects_of(events, person_types))
            commit(prepare_batch(tenant_text, EventKeys(key_id, tenant_key, subject_keys,
                                                        person_types), events))

    if workers == 0:
        inline(numbered)
        return done

    if workers is None:
        pool, own_pool, depth = helpers.shared_pool(), False, helpers.helper_count() + 2
    else:
        pool, own_pool, depth = helpers.new_pool(workers), True, workers + 2
    pending: deque = deque()  # (number, raw batch, future), oldest first
    source_error: list[BaseException] = []  # raised by the caller's iterator while reading ahead

    broken = False  # a helper died: the rest is done in this process

    def submit_next() -> None:
        nonlocal broken
        if source_error:
            return
        try:
            item = next(numbered, None)
        except Exception as exc:  # noqa: BLE001 - re-raised once the batches before it are in
            source_error.append(exc)
            return
        if item is None:
            return
        number, raw = item
        future = None
        if not broken:
            try:
                future = helpers.submit(pool, _prepare_raw, tenant_text, keys_for(raw), raw)
            except (helpers.BrokenProcessPool, RuntimeError):
                broken = True
        pending.append((number, raw, future))

    try:
        for _ in range(depth):  # keep every helper busy and one batch in hand
            submit_next()
        while pending and not broken:
            number, raw, future = pending[0]
            try:
                status, value = helpers.result(future)
            except helpers.BrokenProcessPool:
                broken = True
                break
            pending.popleft()
            if status == "invalid":
                raise invalid(number, *value)
            submit_next()
            commit(value)
    finally:
        for _, _, future in pending:
            if future is not None:
                helpers.abandon(future)
        if own_pool:
            pool.shutdown(wait=True, cancel_futures=True)
    if broken:  # a helper died: finish in this process, nothing is lost or written twice
        log.warning("a helper process died during a bulk append; continuing in-process")
        helpers.discard_pool(pool)
        inline([(number, raw) for number, raw, _ in pending])
        inline(numbered)
    if source_error:
        raise source_error[0]
    return done
