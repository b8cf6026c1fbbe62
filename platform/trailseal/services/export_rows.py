"""The streamed export's read path: every event of an export scope as a flat row
(``trailseal.types.EVENT_ROW_FIELDS``), page by page, for exporters with ``stream_rows``.

A row holds what the API's event object (``events.row_to_event``) holds, flattened, with
JSON values as their compact JSON text, so that a tabular format neither builds nor
re-serialises the event object. It is measured by ``bench/bench_export.py`` (a million
events), and a test compares it field by field with ``row_to_event``.

Why it is faster than ``exports.iter_events`` (hot path, raw SQL, commented):

- a page is one keyset query of ``EXPORT_STREAM_PAGE_SIZE`` rows (compiled once per
  export, its position bound per page) with binary results read through libpq (each
  value the server's bytes, no per-value conversion; measured cheaper per row than a
  binary ``COPY`` cut with ``infra.copy_binary``), the insights as one JSON array text,
  each page in a short transaction of its own, so a slow download still holds no database
  connection between pages; a thread reads up to ``_READ_AHEAD`` pages ahead while this
  one is decoded, sending each page's query before it takes the rows of the page before,
  so the database and Python work at the same time;
- the record's JSON is parsed once, the three encrypted fields are decrypted with the data
  key's ``AESGCM`` object and their associated data built from one per-row prefix;
  ``action_details`` is its decrypted plaintext, which ``records.prepare_batch`` wrote as
  orjson's canonical text (what the API would print after parsing it);
- per-subject event keys are derived once per (key, actor, entity) for the whole export,
  not once per page (kept as raw keys, the most recent as ciphers), and forgotten as soon
  as the tenant's erasure counter moves (the pages decoded after an erasure read
  ``[erased]``, see ``_Decoder._pairs_of_page``).

Any record this path does not recognise (another record format version, other fields, a
field that does not decrypt, a data key that is gone) goes through ``row_to_event``
instead, so its row is exactly the API's view, or the API's error.
"""

from __future__ import annotations

import logging
import queue
import selectors
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from datetime import timedelta
from functools import partial
from operator import itemgetter
from typing import Any

import orjson
import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import ClientCursor, OperationalError, pq
from sqlalchemy import Text, bindparam, case, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from ..db import driver_cursor
from ..errors import ConfigurationError
from ..infra import helpers
from .chain import PG_EPOCH
from .crypto import DecryptionFailed
from .events import EVENTS_WITH_INSIGHTS, a, i, row_to_event
from .export_decode import (
    MAX_CIPHERS,
    NO_INSIGHTS,
    decode_page,
    fitting_records,
    pack_page,
    page_in_helper,
    pair_of,
    parsed_records,
)
from .exports import ExportScope
from .subject_keys import EventDecryptor, erasure_counter

log = logging.getLogger(__name__)
_DONE = object()

# A page's columns come in binary (see ``_PageQuery``): int8 is 8 bytes big-endian, a
# timestamptz its µs since 2000-01-01.
_INT8 = struct.Struct(">q").unpack_from
_KEY_COLUMNS = itemgetter(4, 5, 6)  # of a page row: key id, actor, entity
_UNKNOWN = object()
_MAX_EVENT_KEYS = 65_536  # raw per-subject event keys kept between pages (about 200 B each)
HELPER_AFTER_PAGES = 4  # pages an export writes alone before it shares pages with helpers
_HELPER_DEPTH = 3  # pages sent to helpers and not collected yet, at most
_READ_AHEAD = 2  # pages read and not taken yet, at most
_ONE_US = timedelta(microseconds=1)
_DIALECT = pg_dialect.dialect()


def page_size(svc) -> int:
    """Events per page of a streamed export (``TRAILSEAL_EXPORT_STREAM_PAGE_SIZE``)."""
    return int(svc.config["EXPORT_STREAM_PAGE_SIZE"])


class _PageQuery:
    """The page query of one export, compiled once: up to ``size`` events of ``scope``
    after a position (occurred_at in µs since 2000-01-01, seq), in (occurred_at, seq) order,
    each with its record only while the records before it stay under ``scope.max_bytes``.

    Columns: seq, occurred_at, the record, the insights as one JSON array text (one
    value to take instead of seven, NULL when there are none), and the key id, actor and
    entity columns (``_Decoder.keys_of_page``). (The record's SHA-256 is
    computed here: 0.9 µs a row against about 5 µs in the database.)"""

    def __init__(self, scope: ExportScope, size: int):
        self.first = self._compile(scope, size, after=False)
        self.next = self._compile(scope, size, after=True)

    @staticmethod
    def _compile(scope: ExportScope, size: int, *, after: bool) -> tuple[str, dict]:
        where = [*scope.where, a.c.seq <= scope.head_seq]
        if after:
            where.append(tuple_(a.c.occurred_at, a.c.seq)
                         > tuple_(bindparam("after_at"), bindparam("after_seq")))
        order = (a.c.occurred_at.asc(), a.c.seq.asc())
        size_of = func.octet_length(a.c.record)
        bytes_before = func.sum(size_of).over(order_by=order, rows=(None, 0)) - size_of
        insights = case((i.c.event_id.is_not(None), cast(func.json_build_array(
            i.c.category, i.c.risk_level, i.c.tags, i.c.anomaly_score, i.c.is_anomaly,
            i.c.review_required, i.c.ai_insights), Text)))
        inner = (select(a.c.seq, a.c.occurred_at, a.c.record,
                        bytes_before.label("bytes_before"), insights.label("insights"),
                        a.c.key_id, a.c.actor_id, a.c.entity_id)
                 .select_from(EVENTS_WITH_INSIGHTS).where(*where).order_by(*order)
                 .limit(size).subquery("p"))
        p = inner.c
        fits = p.bytes_before < max(scope.max_bytes, 1)  # the first row always fits
        stmt = (select(p.seq, p.occurred_at, case((fits, p.record)).label("record"),
                       p.insights, p.key_id, p.actor_id, p.entity_id)
                .order_by(p.occurred_at.asc(), p.seq.asc()))
        compiled = stmt.compile(dialect=_DIALECT)
        return str(compiled), dict(compiled.params)

    def sql(self, cur, after: tuple[int, int] | None) -> str:
        """The query text of the page after ``after`` (None: the first page), its
        parameters bound client-side (psycopg quotes them for ``cur``'s server): one text
        to send."""
        mogrify = ClientCursor(cur.connection).mogrify
        if after is None:
            return mogrify(*self.first)
        text, params = self.next
        # The page's last position as the server sent it (µs since 2000-01-01 UTC): an
        # exact timestamp, whatever the session's time zone.
        return mogrify(text, {**params, "after_at": PG_EPOCH + after[0] * _ONE_US,
                              "after_seq": after[1]})


def _send(pgconn, query: str) -> None:
    """Sends ``query`` for binary results, without waiting for them."""
    pgconn.send_query_params(query.encode(), None, result_format=1)
    fd = pgconn.socket
    with selectors.DefaultSelector() as selector:
        while pgconn.flush():
            selector.register(fd, selectors.EVENT_WRITE)
            selector.select()
            selector.unregister(fd)


def _wait(pgconn):
    """The result of the query sent last, waiting for the server with a selector (which
    releases the GIL, so the exporting thread works meanwhile)."""
    fd = pgconn.socket
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                break
            selector.select()
    res = pgconn.get_result()
    while pgconn.get_result() is not None:  # a single statement: nothing else follows
        pass
    if res is None or res.status != pq.ExecStatus.TUPLES_OK:
        message = (res.error_message if res is not None else pgconn.error_message) or b""
        raise OperationalError(message.decode(errors="replace") or "the page query failed")
    return res


def _query_page(svc, scope: ExportScope, query: _PageQuery, after,
                meanwhile: Callable[[], Any] | None = None) -> tuple[Any, Any]:
    """The page after ``after`` as the server's binary result, read in a transaction of
    its own, and what ``meanwhile()`` returned: it runs here while the server works on the
    page (the previous page's rows are taken then, so the database and this thread work
    at the same time)."""
    with svc.db.transaction(scope.tenant_id) as conn, driver_cursor(conn) as cur:
        # A page is a short index-ordered read: parallel workers only add their start-up.
        cur.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        pgconn = cur.connection.pgconn
        _send(pgconn, query.sql(cur, after))
        try:
            done = meanwhile() if meanwhile is not None else None
        finally:
            res = _wait(pgconn)  # the connection is free again, whatever happened
        return res, done


def _page_rows(res) -> list[tuple]:
    """A page's rows as ``(seq, occurred_at µs, record or None, insights JSON array or
    None, key_id, actor_id, entity_id)`` (``_PageQuery``; the last three as UTF-8, the
    columns that name the keys a helper process is given); frees the result."""
    try:
        # Raw libpq, binary results: each value is taken as the server's bytes, with none
        # of the per-value conversion of a cursor (measured cheaper than a binary COPY).
        value = res.get_value
        return [(_INT8(value(r, 0))[0], _INT8(value(r, 1))[0], value(r, 2), value(r, 3),
                 value(r, 4), value(r, 5), value(r, 6)) for r in range(res.ntuples)]
    finally:
        res.clear()


def _next_position(res, size: int) -> tuple[int, int] | None:
    """Where the page after the one in ``res`` starts, (occurred_at µs, seq) of its last
    row that has its record; None when it is the scope's last page."""
    fitting = res.ntuples
    while fitting and res.get_value(fitting - 1, 2) is None:
        fitting -= 1
    if res.ntuples < size and fitting == res.ntuples:
        return None
    return _INT8(res.get_value(fitting - 1, 1))[0], _INT8(res.get_value(fitting - 1, 0))[0]


def _read_page(svc, scope: ExportScope, after, size: int,
               query: _PageQuery | None = None) -> list[tuple]:
    """One page's rows (``_page_rows``), read in a transaction of its own."""
    res, _ = _query_page(svc, scope, query or _PageQuery(scope, size), after)
    return _page_rows(res)


class _Decoder:
    """Turns page rows into event rows; holds the tenant's data keys while an export runs."""

    def __init__(self, svc, tenant_id: uuid.UUID):
        self.svc = svc
        self.tenant_id = tenant_id
        self.tenant_prefix = f"{tenant_id}|".encode()  # of each field's associated data
        self.export = uuid.uuid4().hex  # names this export to helper processes
        self.keys: dict[str, Any] = {}
        self.pairs: dict[tuple, Any] = {}
        self.event_keys: dict[tuple, Any] = {}
        self.pairs_generation: Any = _UNKNOWN

    def key(self, key_id: str):
        aes = self.keys.get(key_id)
        if aes is None:
            with self.svc.db.cursor(self.tenant_id) as cur:
                aes = self.svc.keyring.key(cur, self.tenant_id, key_id)
            self.keys[key_id] = aes
        return aes

    def _pairs_of_page(self) -> tuple[dict[tuple, Any], dict[tuple, Any]]:
        """The per-subject event keys of (key id, actor, entity or None) met so far in
        this export, as ciphers (at most ``MAX_CIPHERS``, 2.5 kB each) and as raw keys (at
        most ``_MAX_EVENT_KEYS``); none once a subject of the tenant was erased since they
        were derived (its Redis counter moved, see ``SubjectKeyCache.sync``) or when Redis
        cannot tell."""
        try:
            generation = self.svc.redis.get(erasure_counter(str(self.tenant_id)))
        except redis.RedisError:
            generation = _UNKNOWN  # unknown: derive them again for this page
        if (generation is _UNKNOWN or generation != self.pairs_generation
                or len(self.event_keys) > _MAX_EVENT_KEYS):
            self.pairs, self.event_keys = {}, {}
            self.pairs_generation = generation
        return self.pairs, self.event_keys

    def keys_of_page(self, rows: list[tuple]) -> tuple[dict[str, bytes], dict[tuple, Any]]:
        """The raw keys a helper process needs to decode ``rows`` (a page's rows with their
        record, ``fitting_records``): the tenant data keys and the per-subject event keys
        (None: erased) their key columns name. A record whose own key is not among them
        (its columns do not match it) is left to this process."""
        tenant_keys: dict[str, bytes] = {}
        wanted: list[dict[str, str]] = []
        _, event_keys = self._pairs_of_page()
        page_keys: dict[tuple, Any] = {}
        # the key columns met, as the server sent them, each once
        for key_id, actor, entity in set(map(_KEY_COLUMNS, rows)):
            key_id = key_id.decode()
            if ":" not in key_id:
                tenant_keys[key_id] = b""
                continue
            actor, entity = actor.decode(), entity.decode()
            pair = pair_of(key_id, actor, entity)
            if pair in page_keys:
                continue
            raw = event_keys.get(pair, _UNKNOWN)
            if raw is _UNKNOWN:
                wanted.append({"key_id": key_id, "actor_id": actor, "entity_id": entity})
            page_keys[pair] = raw
        if wanted or tenant_keys:
            with self.svc.db.cursor(self.tenant_id) as cur:
                for key_id in list(tenant_keys):
                    try:
                        tenant_keys[key_id] = self.svc.keyring.raw_key(cur, self.tenant_id,
                                                                       key_id)
                    except ConfigurationError:
                        del tenant_keys[key_id]  # this process's reference path says why
                if wanted:
                    subjects = EventDecryptor(self.svc, cur, self.tenant_id)
                    subjects.prefetch_parsed(wanted)
                    for rec in wanted:
                        try:
                            raw = subjects.event_key(rec)
                        except ConfigurationError:
                            continue
                        pair = pair_of(rec["key_id"], rec["actor_id"], rec["entity_id"])
                        event_keys[pair] = page_keys[pair] = raw
        return tenant_keys, {k: v for k, v in page_keys.items() if v is not _UNKNOWN}

    def rows(self, page: list[tuple]) -> list[tuple]:
        """The event rows of a page's fitting rows (those with their record)."""
        with ExitStack() as stack:
            return self._rows(page, stack)

    def _rows(self, page: list[tuple], stack: ExitStack) -> list[tuple]:
        records, insights = fitting_records(page)
        parsed = parsed_records(records)
        keys = self.keys
        subjects = None  # the page's subject keys, read once a record needs them
        pairs: dict[tuple, Any] = {}
        event_keys: dict[tuple, Any] = {}
        prefetched = False

        def aes_of(rec: dict[str, Any], key_id: str):
            nonlocal subjects, pairs, event_keys, prefetched
            aes = keys.get(key_id)
            if aes is not None:
                return aes
            if ":" not in key_id:
                return self.key(key_id)
            # a per-subject event key
            if subjects is None:
                pairs, event_keys = self._pairs_of_page()
                cur = stack.enter_context(self.svc.db.cursor(self.tenant_id))
                subjects = EventDecryptor(self.svc, cur, self.tenant_id)
            pair = pair_of(key_id, rec["actor_id"], rec["entity_id"])
            aes = pairs.get(pair, _UNKNOWN)
            if aes is _UNKNOWN:
                raw = event_keys.get(pair, _UNKNOWN)
                if raw is _UNKNOWN:
                    if not prefetched:  # the subjects of the page's new pairs
                        prefetched = True
                        subjects.prefetch_parsed(_new_pairs(parsed, event_keys))
                    raw = event_keys[pair] = subjects.event_key(rec)
                if len(pairs) >= MAX_CIPHERS:
                    pairs.clear()
                aes = pairs[pair] = None if raw is None else AESGCM(raw)
            if aes is None:
                raise LookupError("erased: the reference path writes [erased]")
            return aes

        return decode_page(records, insights, parsed, self.tenant_prefix, aes_of,
                           lambda n, record, insights: self._reference_row(
                               page[n][0], record, insights),
                           (DecryptionFailed, ConfigurationError))

    def _reference_row(self, seq: int, record: bytes, insights: bytes | None) -> tuple:
        fields = orjson.loads(insights) if insights is not None else NO_INSIGHTS
        row = {"seq": seq, "record": record, "has_insights": insights is not None,
               **dict(zip(("category", "risk_level", "insight_tags", "anomaly_score",
                           "is_anomaly", "review_required", "ai_insights"), fields,
                          strict=True))}
        if row["anomaly_score"] is not None:
            row["anomaly_score"] = float(row["anomaly_score"])
        with self.svc.db.cursor(self.tenant_id) as cur:
            return event_as_row(row_to_event(self.svc, cur, self.tenant_id, row))


def _new_pairs(parsed: list[Any], pairs: dict[tuple, Any]) -> Iterator[dict[str, Any]]:
    """The parsed records of a page with a per-subject key not in ``pairs`` yet."""
    for rec in parsed:
        if isinstance(rec, dict):
            key_id = str(rec.get("key_id", ""))
            if ":" in key_id and pair_of(key_id, rec.get("actor_id"),
                                         rec.get("entity_id")) not in pairs:
                yield rec


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _details_text(details: Any) -> str | None:
    # An erased event's details read "[erased]", as in the event object (not as JSON text).
    return details if isinstance(details, str) else _json_text(details)


def event_as_row(event: dict[str, Any]) -> tuple:
    """An API event object as an event row (``trailseal.types.EVENT_ROW_FIELDS``)."""
    actor, entity, insights = event["actor"], event["entity"], event["insights"]
    if insights is None:
        insight = (None, None, None, None, None, None, None)
    else:
        insight = (insights["category"], insights["risk_level"],
                   _json_text(insights["tags"]), insights["anomaly_score"],
                   insights["is_anomaly"], insights["review_required"],
                   _json_text(insights["ai_insights"]))
    return (event["id"], event["seq"], event["occurred_at"], event["received_at"],
            event["event_type"], actor["id"], actor["type"], actor["role"],
            actor["department"], entity["type"], entity["id"], event["severity"],
            event["source"], _json_text(event["tags"]), event["ip_address"],
            event["user_agent"], _details_text(event["action_details"]),
            event["idempotency_key"], event["previous_hash"], event["hash"], *insight)


def _prefetched(svc, scope: ExportScope, size: int) -> Iterator[list[tuple]]:
    """The scope's pages in order, read by a thread while the caller works on the ones
    before: at most ``_READ_AHEAD`` pages wait for the caller, and one more is in the
    reader's hands (``_pages``). Stops the thread when the caller stops."""
    pages: queue.SimpleQueue = queue.SimpleQueue()
    turn = threading.Semaphore(_READ_AHEAD)  # a page may be read (released as one is taken)
    stop = threading.Event()

    def read_all() -> None:
        try:
            source = _pages(svc, scope, size)
            while True:
                turn.acquire()
                if stop.is_set():
                    return
                page = next(source, _DONE)
                pages.put(page)
                if page is _DONE:
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
            pages.put(exc)

    reader = threading.Thread(target=read_all, name="trailseal-export-pages", daemon=True)
    reader.start()
    try:
        while True:
            page = pages.get()
            turn.release()
            if page is _DONE:
                return
            if isinstance(page, BaseException):
                raise page
            yield page
            del page
    finally:
        stop.set()
        turn.release()
        reader.join()


def _pages(svc, scope: ExportScope, size: int) -> Iterator[list[tuple]]:
    """The scope's pages in order: while the server reads a page, the rows of the one
    before it are taken from its result (each page still in a transaction of its own,
    closed before the page is handed on)."""
    query = _PageQuery(scope, size)
    res, _ = _query_page(svc, scope, query, None)
    while res is not None:
        after = _next_position(res, size)
        if after is None:
            yield _page_rows(res)
            return
        res, page = _query_page(svc, scope, query, after, partial(_page_rows, res))
        yield page
        del page


def iter_event_text(svc, scope: ExportScope, write: Callable[[list], str],
                    helper_after: int | None = None) -> Iterator[str]:
    """Every event of ``scope`` as text: ``write(rows)`` of its event rows, a page at a
    time, in order. ``write`` is a function importable by name (an exporter's row writer).

    On a machine with more than one usable CPU (and ``EXPORT_HELPERS`` on), after
    ``helper_after`` pages (``HELPER_AFTER_PAGES``) a page is decoded and written by a
    helper process (``infra.helpers``) whenever fewer than ``_HELPER_DEPTH`` pages are with
    the helpers, and by this process otherwise, so the share each takes follows their
    speed: a row costs about 25 µs of one core, so one process is the limit of a large
    export. The helper gets the page's stored records and insights (``pack_page``) and the
    raw keys they name (this process reads the keys, as it would to decrypt them itself);
    a row it cannot read comes back to this process's reference path. When the helper
    pool breaks (a helper died), this process writes the pages it had and the rest of the
    export."""
    decoder = _Decoder(svc, scope.tenant_id)
    # cleared when the helper pool breaks: the rest of the export is written here
    use_helpers = [bool(svc.config.get("EXPORT_HELPERS", True)) and helpers.multi_core()]
    if helper_after is None:
        helper_after = HELPER_AFTER_PAGES
    # Pages in order: text written here, or (helper call, page) not collected yet.
    queue_: deque[Any] = deque()
    try:
        for n, page in enumerate(_prefetched(svc, scope, page_size(svc))):
            outstanding = sum(1 for item in queue_ if type(item) is tuple)
            call = None
            if use_helpers[0] and n >= helper_after and outstanding < _HELPER_DEPTH:
                call = _send_to_helper(svc, decoder, page, write, use_helpers)
            if call is not None:
                queue_.append((call, page))
            elif page and page[0][2] is not None:
                queue_.append(write(decoder.rows(page)))
            # what is ready goes out; never more than a few pages wait
            while queue_ and (type(queue_[0]) is str or queue_[0][0][0].done()
                              or len(queue_) > _HELPER_DEPTH + 1):
                item = queue_.popleft()
                yield item if type(item) is str else _helper_text(decoder, item, write,
                                                                  use_helpers)
        while queue_:
            item = queue_.popleft()
            yield item if type(item) is str else _helper_text(decoder, item, write, use_helpers)
    finally:
        for item in queue_:
            if type(item) is tuple:
                helpers.abandon(item[0][0])


def _send_to_helper(svc, decoder: _Decoder, page: list[tuple], write, use_helpers: list):
    """The helper call that decodes ``page`` (None when no helper can take it)."""
    if not page or page[0][2] is None:
        return None
    records, insights = fitting_records(page)
    tenant_keys, event_keys = decoder.keys_of_page(page[:len(records)])
    pool = helpers.shared_pool()
    try:
        call = helpers.submit(pool, page_in_helper, decoder.export, decoder.tenant_prefix,
                              pack_page(records, insights), tenant_keys, event_keys, write)
    except BrokenProcessPool:
        helpers.discard_pool(pool)
        use_helpers[0] = False
        return None
    return call, pool


def _helper_text(decoder: _Decoder, pending, write, use_helpers: list) -> str:
    """The text a helper wrote for a page, with the rows it left to this process; the
    whole page written here when the helper pool broke, or when the call failed in a
    way a helper alone can fail (a writer that cannot be sent to it, say)."""
    (call, pool), page = pending
    try:
        parts = helpers.result(call)
    except BrokenProcessPool:
        helpers.discard_pool(pool)
        use_helpers[0] = False
        return write(decoder.rows(page))
    except Exception:  # noqa: BLE001 - written here instead; a writer's own error recurs
        log.warning("a CSV export's helper process failed a page; writing it here",
                    exc_info=True)
        use_helpers[0] = False
        return write(decoder.rows(page))
    return "".join(part if type(part) is str else write(decoder.rows([page[part]]))
                   for part in parts)


def iter_event_rows(svc, scope: ExportScope) -> Iterator[list[tuple]]:
    """Every event of ``scope`` as event rows (``trailseal.types.EVENT_ROW_FIELDS``),
    oldest first, in lists of up to a page (``EXPORT_STREAM_PAGE_SIZE`` events; fewer when
    their stored records pass ``PAGE_MAX_BYTES``)."""
    decoder = _Decoder(svc, scope.tenant_id)
    for page in _prefetched(svc, scope, page_size(svc)):
        rows = decoder.rows(page)
        del page
        if rows:
            yield rows
