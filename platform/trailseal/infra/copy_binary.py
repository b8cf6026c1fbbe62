"""A minimal reader of PostgreSQL's binary COPY stream.

Verification streams hundreds of thousands of rows; splitting the raw stream here keeps the
per-row cost to a few slices, which is several times cheaper than general row loading.
"""

from __future__ import annotations

import logging
import selectors
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT16 = struct.Struct(">h").unpack_from
_INT32 = struct.Struct(">i").unpack_from


def _one_tuple(buf: bytes, pos: int, end: int) -> tuple[list[bytes | None] | None, int]:
    """The tuple at ``pos`` as raw fields and the position after it; (None, pos) when the
    buffer ends inside it. ``buf[pos:pos + 2]`` holds its field count (not -1)."""
    count = _INT16(buf, pos)[0]
    p = pos + 2
    fields: list[bytes | None] = []
    for _ in range(count):
        if p + 4 > end:
            return None, pos
        size = _INT32(buf, p)[0]
        p += 4
        if size == -1:
            fields.append(None)
            continue
        if p + size > end:
            return None, pos
        fields.append(buf[p:p + size])
        p += size
    return fields, p


def encode_tuple(fields: list[bytes | None]) -> bytes:
    """One tuple in the binary COPY format (the inverse of ``split_tuples``)."""
    return struct.pack(">h", len(fields)) + b"".join(
        _NULL_FIELD if f is None else struct.pack(">i", len(f)) + f for f in fields)


_NULL_FIELD = struct.pack(">i", -1)


def _read_stream(blocks: Iterable[bytes | memoryview],
                 read_tuple: Callable[[bytes, int, int], tuple[Any, int]],
                 read_message: Callable[[memoryview | bytes], Any] | None = None) -> Iterator:
    """The framing of a binary COPY stream: header, tuples cut across blocks, trailer.
    ``read_tuple(buf, pos, end)`` gives (item, position after it), or (anything, pos) when
    the buffer ends inside the tuple. ``read_message(block)``, when given, may read a block
    that holds exactly one tuple in place (None: it does not)."""
    buf = b""
    header_done = False
    finished = False
    for block in blocks:  # always drained to the end, so the COPY completes
        if finished:
            continue
        if read_message is not None and header_done and not buf:
            item = read_message(block)
            if item is not None:
                yield item
                continue
        buf = buf + bytes(block) if buf else bytes(block)
        pos = 0
        if not header_done:
            if len(buf) < 19:
                continue
            if not buf.startswith(SIGNATURE):
                raise ValueError("not a binary COPY stream")
            pos = 19 + _INT32(buf, 15)[0]
            header_done = True
        end = len(buf)
        while pos + 2 <= end:
            if _INT16(buf, pos)[0] == -1:
                finished = True
                pos = end
                break
            item, after = read_tuple(buf, pos, end)
            if after == pos:
                break  # the tuple continues in the next block
            yield item
            pos = after
        buf = buf[pos:]
    if buf and not finished:
        raise ValueError("binary COPY stream ended inside a tuple")


_CHAIN_HEAD = struct.Struct(">hiqi64si").unpack_from  # count, 8, seq, 64, hash, record size
CHAIN_RECORD_AT = 2 + 4 + 8 + 4 + 64 + 4  # where a verification tuple's record starts


def chain_layout(buf, pos: int, end: int) -> tuple[int, bytes, int, int] | None:
    """Where the verification tuple (seq int8, hash of 64 bytes, record, columns) at ``pos``
    lies: ``(seq, hash, end of record, end of tuple)``; None when the tuple does not have
    that layout or does not lie wholly within ``buf[:end]``. The record starts at
    ``pos + CHAIN_RECORD_AT``, the columns 4 bytes after it ends."""
    if end - pos < CHAIN_RECORD_AT + 4:
        return None
    count, l_seq, seq, l_hash, hash_, l_rec = _CHAIN_HEAD(buf, pos)
    record_end = pos + CHAIN_RECORD_AT + l_rec
    if count != 4 or l_seq != 8 or l_hash != 64 or l_rec < 0 or record_end + 4 > end:
        return None
    after = record_end + 4 + _INT32(buf, record_end)[0]
    if after < record_end + 4 or after > end:
        return None
    return seq, hash_, record_end, after


def _chain_row(buf, pos: int, end: int) -> tuple[tuple, int] | None:
    """The tuple at ``pos`` read with the verification layout and the position after it."""
    got = chain_layout(buf, pos, end)
    if got is None:
        return None
    seq, hash_, record_end, after = got
    return (seq, hash_.decode("utf-8", "replace"), bytes(buf[pos + CHAIN_RECORD_AT:record_end]),
            bytes(buf[record_end + 4:after])), after


def message_fields(msg: bytes) -> list[bytes | None] | None:
    """The raw fields of a data message that starts with one whole tuple (None if not)."""
    return _one_tuple(msg, 0, len(msg))[0]


def chain_rows(blocks: Iterable[bytes | memoryview],
               fallback: Callable[[list[bytes | None]], tuple]) -> Iterator[tuple]:
    """Rows of the verification COPY (seq int8, hash text, record bytea, columns bytea) as
    ``(seq, hash, record, columns)``, read with a fixed layout. A tuple that
    does not fit it (a NULL, a hash that is not 64 characters, ...) goes through
    ``fallback(fields)``."""

    def read_tuple(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
        got = _chain_row(buf, pos, end)
        if got is not None:
            return got
        fields, after = _one_tuple(buf, pos, end)
        return (None, pos) if fields is None else (fallback(fields), after)

    def read_message(block) -> tuple | None:
        # The server sends each row as one message: read it in place when it is exactly
        # one tuple of the usual layout.
        got = _chain_row(block, 0, len(block))
        return got[0] if got is not None and got[1] == len(block) else None

    return _read_stream(blocks, read_tuple, read_message)


def feed_stream(blocks: Iterable[bytes | memoryview],
                feed_message: Callable[[bytes | memoryview], bool | None],
                feed_row: Callable[[tuple], bool],
                decode: Callable[[list[bytes | None]], tuple]) -> bool:
    """Drive a row consumer over a binary COPY stream until it reports a break.

    A data message that holds exactly one tuple goes to ``feed_message(msg)`` first: it
    returns its verdict, or None when it does not read that message. Every other tuple is
    cut from the stream, decoded with ``decode(fields)`` and given to ``feed_row(row)``.
    Returns False at the first False verdict (the caller closes ``blocks``), else True."""

    def read_tuple(buf: bytes, pos: int, end: int) -> tuple[Any, int]:
        fields, after = _one_tuple(buf, pos, end)
        return (None, pos) if fields is None else (decode(fields), after)

    for item in _read_stream(blocks, read_tuple, feed_message):
        if item is True:
            continue
        if item is False or not feed_row(item):
            return False
    return True


def split_tuples(blocks: Iterable[bytes | memoryview]) -> Iterator[list[bytes | None]]:
    """Yield each tuple of a binary COPY stream as its raw field values (None for NULL)."""
    return _read_stream(blocks, _one_tuple)


def _wait(fd: int, events: int) -> None:
    """Block until ``fd`` is ready (GIL released; any descriptor number)."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, events)
        selector.select()


def copy_out(pgconn, sql: str) -> Iterator[memoryview]:
    """Run ``COPY ... TO STDOUT`` on a libpq connection (``psycopg.pq.PGconn``, idle inside a
    transaction) and yield its data messages.

    Reads libpq's buffer directly instead of through psycopg's generic copy machinery (a
    fraction of the per-row cost); waits for the socket with a selector, which releases the
    GIL. The generator must be run to the end (or closed, which cancels the COPY) before
    the connection is used again; if it cannot be brought back to idle, it is closed so that
    its pool discards it.
    """
    from psycopg import OperationalError, pq

    pgconn.send_query(sql.encode())  # raises OperationalError when it cannot be sent
    fd = pgconn.socket
    while pgconn.flush():
        _wait(fd, selectors.EVENT_WRITE)
    while True:  # the first result says whether the COPY started
        if pgconn.is_busy():
            _wait(fd, selectors.EVENT_READ)
            pgconn.consume_input()
            continue
        res = pgconn.get_result()
        break
    if res is None or res.status != pq.ExecStatus.COPY_OUT:
        message = pgconn.get_error_message() or "COPY did not start"
        while pgconn.get_result() is not None:
            pass
        raise OperationalError(message)
    get = pgconn.get_copy_data
    consume = pgconn.consume_input
    done = False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                size, data = get(1)
                if size == 0:  # nothing buffered: read what the socket holds, else wait
                    consume()
                    size, data = get(1)
                    if size == 0:
                        selector.select()
                        consume()
                        continue
                if size > 0:
                    yield data
                elif size == -1:
                    break
                else:
                    raise OperationalError(pgconn.get_error_message())
        done = True
    finally:
        error = None
        try:
            if not done:  # abandoned early: stop the server and drain what it still sends
                pgconn.get_cancel().cancel()
                while get(0)[0] >= 0:
                    pass
            while True:
                if pgconn.is_busy():
                    _wait(fd, selectors.EVENT_READ)
                    pgconn.consume_input()
                    continue
                res = pgconn.get_result()
                if res is None:
                    break
                if res.status != pq.ExecStatus.COMMAND_OK and error is None:
                    error = res.error_message.decode(errors="replace") or "COPY failed"
        except Exception:  # noqa: BLE001 - keep the original error; retire the connection
            log.warning("could not bring a connection back after a COPY; closing it",
                        exc_info=True)
            pgconn.finish()
            if done:
                raise
        if error is not None and done:
            raise OperationalError(error)
