"""A minimal reader of PostgreSQL's binary COPY stream.

Verification streams hundreds of thousands of rows; splitting the raw stream here keeps the
per-row cost to a few slices, which is several times cheaper than general row loading.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT16 = struct.Struct(">h").unpack_from
_INT32 = struct.Struct(">i").unpack_from


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
