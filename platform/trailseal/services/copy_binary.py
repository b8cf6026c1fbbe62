"""A minimal reader of PostgreSQL's binary COPY stream.

Verification streams hundreds of thousands of rows; splitting the raw stream here keeps the
per-row cost to a few slices, which is several times cheaper than general row loading.
"""

from __future__ import annotations

import logging
import selectors
import struct
from collections.abc import Callable, Iterable, Iterator

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


_CHAIN_HEAD = struct.Struct(">hiqi64si").unpack_from  # count, 8, seq, 64, hash, record size
_CHAIN_TAIL = struct.Struct(">iqiqi64s").unpack_from  # 8, occurred_at, 8, received_at, 64, digest
_TAIL_SIZE = 4 + 8 + 4 + 8 + 4 + 64
_CHAIN_FIXED = 2 + 4 + 8 + 4 + 64 + 4


def chain_rows(blocks: Iterable[bytes | memoryview],
               fallback: Callable[[list[bytes | None]], tuple]) -> Iterator[tuple]:
    """Rows of the verification COPY (seq int8, hash text, record bytea, projection text,
    occurred_at and received_at timestamptz, columns digest text) as ``(seq, hash, record,
    projection, occurred_us, received_us, digest)``, read with a fixed layout. A tuple that does not fit it (a
    NULL, a hash that is not 64 characters, ...) goes through ``fallback(fields)``."""
    buf = b""
    header_done = False
    finished = False
    for block in blocks:  # always drained to the end, so the COPY completes
        if finished:
            continue
        if header_done and not buf and len(block) >= _CHAIN_FIXED:
            # The server sends each row as one message: read it in place when it is exactly
            # one tuple of the usual layout.
            count, l_seq, seq, l_hash, hash_, l_rec = _CHAIN_HEAD(block, 0)
            if count == 7 and l_seq == 8 and l_hash == 64 and l_rec >= 0:
                p = _CHAIN_FIXED + l_rec
                if p + 4 <= len(block):
                    l_proj = _INT32(block, p)[0]
                    q = p + 4 + l_proj
                    if l_proj >= 0 and q + _TAIL_SIZE == len(block):
                        l_occ, occurred, l_recv, received, l_dig, digest = _CHAIN_TAIL(block, q)
                        if l_occ == 8 and l_recv == 8 and l_dig == 64:
                            yield (seq, hash_.decode("utf-8", "replace"),
                                   bytes(block[_CHAIN_FIXED:p]),
                                   str(block[p + 4:q], "utf-8", "replace"), occurred, received,
                                   digest.decode("utf-8", "replace"))
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
            if end - pos >= _CHAIN_FIXED:
                count, l_seq, seq, l_hash, hash_, l_rec = _CHAIN_HEAD(buf, pos)
                if count == 7 and l_seq == 8 and l_hash == 64 and l_rec >= 0:
                    p = pos + _CHAIN_FIXED
                    if p + l_rec + 4 > end:
                        break
                    record = buf[p:p + l_rec]
                    p += l_rec
                    l_proj = _INT32(buf, p)[0]
                    p += 4
                    if l_proj >= 0 and p + l_proj + _TAIL_SIZE <= end:
                        projection = buf[p:p + l_proj]
                        p += l_proj
                        l_occ, occurred, l_recv, received, l_dig, digest = _CHAIN_TAIL(buf, p)
                        if l_occ == 8 and l_recv == 8 and l_dig == 64:
                            yield (seq, hash_.decode("utf-8", "replace"), record,
                                   projection.decode("utf-8", "replace"), occurred, received,
                                   digest.decode("utf-8", "replace"))
                            pos = p + _TAIL_SIZE
                            continue
            if _INT16(buf, pos)[0] == -1:
                finished = True
                pos = end
                break
            fields, after = _one_tuple(buf, pos, end)
            if fields is None:
                break  # the tuple continues in the next block
            yield fallback(fields)
            pos = after
        buf = buf[pos:]
    if buf and not finished:
        raise ValueError("binary COPY stream ended inside a tuple")


def split_tuples(blocks: Iterable[bytes | memoryview]) -> Iterator[list[bytes | None]]:
    """Yield each tuple of a binary COPY stream as its raw field values (None for NULL)."""
    buf = b""
    header_done = False
    finished = False
    for block in blocks:  # always drained to the end, so the COPY completes
        if finished:
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
            count = _INT16(buf, pos)[0]
            if count == -1:
                finished = True
                pos = end
                break
            p = pos + 2
            fields: list[bytes | None] = []
            for _ in range(count):
                if p + 4 > end:
                    break
                size = _INT32(buf, p)[0]
                p += 4
                if size == -1:
                    fields.append(None)
                    continue
                if p + size > end:
                    break
                fields.append(buf[p:p + size])
                p += size
            if len(fields) < count:
                break  # the tuple continues in the next block
            yield fields
            pos = p
        buf = buf[pos:]
    if buf and not finished:
        raise ValueError("binary COPY stream ended inside a tuple")


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
    done = False
    try:
        while True:
            size, data = get(1)
            if size > 0:
                yield data
            elif size == 0:  # nothing buffered yet
                _wait(fd, selectors.EVENT_READ)
                pgconn.consume_input()
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
