"""The chain walker on in-memory rows: each kind of tampering is named at the right seq."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.records import build_record, rehash_with_seq
from trailseal.infra.copy_binary import encode_tuple
from trailseal.services.chain import (
    GENESIS_HASH,
    ChainWalker,
    format_ts,
    projection_of,
    record_hash,
    ts_micros,
)

TENANT = uuid.UUID("00000000-0000-0000-0000-00000000000a")
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def fields(i: int, prev: str, **over) -> dict:
    f = {"id": str(uuid.uuid4()), "tenant_id": str(TENANT), "seq": i,
         "occurred_at": format_ts(BASE + timedelta(minutes=i)),
         "received_at": format_ts(BASE + timedelta(minutes=i)), "event_type": "user.login",
         "actor_id": f"u{i % 3}", "actor_type": "user", "actor_role": None,
         "actor_department": None, "entity_type": "session", "entity_id": f"s{i}",
         "severity": "info", "source": "web", "tags": ["a"], "key_id": "k1",
         "idempotency_key": None, "ip_address": "AQI=", "user_agent": None,
         "action_details": "AwMD", "previous_hash": prev}
    f.update(over)
    return f


def server_row(seq: int, stored_hash: str, record: bytes, projection: str, occurred_us: int,
               received_us: int) -> tuple:
    """A row as verification reads ``VERIFY_COLUMNS``."""
    return (seq, stored_hash, record,
            projection.encode() + struct.pack(">qqq", seq, occurred_us, received_us))


def row_from(f: dict, seq: int | None = None) -> tuple:
    """A stored row as ``VERIFY_COLUMNS`` lays it out."""
    record = build_record(f)
    return server_row(f["seq"] if seq is None else seq, record_hash(record), record,
                      projection_of(orjson.loads(record)), ts_micros(f["occurred_at"]),
                      ts_micros(f["received_at"]))


def rid(row) -> str:
    return orjson.loads(row[2])["id"]


def rprev(row) -> str:
    return orjson.loads(row[2])["previous_hash"]


def build_chain(n: int) -> list[tuple]:
    rows, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        row = row_from(fields(i, prev))
        rows.append(row)
        prev = row[1]
    return rows


class Lookup:
    def __init__(self, rows):
        self.rows = rows

    def by_hash(self, h):
        return next(((r[0], rid(r)) for r in self.rows if r[1] == h), None)

    def by_previous_hash(self, h):
        return next(((r[0], rid(r)) for r in self.rows if rprev(r) == h), None)

    def id_at(self, seq):
        return next((rid(r) for r in self.rows if r[0] == seq), None)


def as_message(row) -> bytes:
    """A row as the server sends it: one binary COPY tuple (what ``feed_message`` reads)."""
    seq, stored_hash, record, columns = row
    return encode_tuple([struct.pack(">q", seq), stored_hash.encode(), record, columns])


def feed(walker: ChainWalker, row, messages: bool) -> bool:
    return walker.feed_message(as_message(row)) if messages else walker.feed(row)


@pytest.fixture(params=["rows", "messages"])
def walk(request):
    """Walk rows in (seq, id) order, as tuples or as COPY messages (both fast paths)."""
    messages = request.param == "messages"

    def run(rows, head_seq, head_hash):
        ordered = sorted(rows, key=lambda r: (r[0], rid(r)))
        walker = ChainWalker(str(TENANT), head_seq, head_hash, Lookup(ordered))
        for row in ordered:
            if not feed(walker, row, messages):
                break
        return walker.finish()

    return run


def with_projection(row, **column_overrides) -> tuple:
    """The row with some stored columns edited behind the record's back."""
    rec = orjson.loads(row[2])
    rec.update(column_overrides)
    return server_row(row[0], row[1], row[2], projection_of(rec), ts_micros(rec["occurred_at"]),
                      ts_micros(rec["received_at"]))


def test_canonical_form_is_sorted_compact_utf8():
    raw = build_record(fields(1, GENESIS_HASH, actor_id="Zoë"))
    assert b": " not in raw and b", " not in raw
    assert raw.index(b'"action_details"') < raw.index(b'"actor_id"') < raw.index(b'"tenant_id"')
    assert "Zoë".encode() in raw
    assert format_ts(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2026-01-02T03:04:05.000006Z"


def test_intact_chain(walk):
    rows = build_chain(10)
    report = walk(rows, 10, rows[-1][1])
    assert report.intact and report.events_checked == 10


def test_edited_record_is_modified(walk):
    rows = build_chain(10)
    rec = orjson.loads(rows[4][2])
    rec["severity"] = "critical"
    rows[4] = rows[4][:2] + (orjson.dumps(rec, option=orjson.OPT_SORT_KEYS),) + rows[4][3:]
    report = walk(rows, 10, rows[-1][1])
    assert (report.intact, report.broken_seq, report.reason) == (False, 5, "modified")
    assert report.broken_event_id == rid(rows[4])


@pytest.mark.parametrize("column,value", [("severity", "critical"), ("actor_id", "mallory"),
                                          ("tags", []), ("source", None), ("occurred_at", "2020-01-01T00:00:00.000000Z")])
def test_edited_column_is_modified(column, value, walk):
    rows = build_chain(10)
    rows[6] = with_projection(rows[6], **{column: value})
    report = walk(rows, 10, rows[-1][1])
    assert (report.broken_seq, report.reason) == (7, "modified")
    assert "columns" in report.detail


def test_rewritten_and_rehashed_names_the_rewritten_event(walk):
    rows = build_chain(10)
    f = orjson.loads(rows[3][2])
    f["event_type"] = "user.logout"
    f.pop("v")
    rows[3] = row_from(f)
    report = walk(rows, 10, rows[-1][1])
    assert (report.broken_seq, report.reason) == (4, "modified")


def test_deleted_event_is_missing(walk):
    rows = build_chain(10)
    gone = rows.pop(6)
    report = walk(rows, 10, rows[-1][1])
    assert (report.broken_seq, report.reason) == (gone[0], "missing")
    assert report.broken_event_id == rid(rows[6])


def test_deleted_tail_is_missing(walk):
    rows = build_chain(10)
    head_hash = rows[-1][1]
    rows.pop()
    report = walk(rows, 10, head_hash)
    assert (report.broken_seq, report.reason, report.broken_event_id) == (10, "missing", None)


@pytest.mark.parametrize("a,b", [(2, 7), (4, 5)])
def test_swapped_events_are_reordered(a, b, walk):
    rows = build_chain(10)
    ra, rb = rows[a - 1], rows[b - 1]
    rows[a - 1], rows[b - 1] = (b,) + ra[1:], (a,) + rb[1:]
    report = walk(rows, 10, rows[-1][1])
    assert (report.broken_seq, report.reason) == (a, "reordered")
    assert report.broken_event_id == rid(rb)


def test_inserted_event_with_renumbering(walk):
    rows = build_chain(6)
    forged = row_from(fields(3, rows[1][1], event_type="invoice.paid"))
    shifted = [(r[0] + 1,) + r[1:] for r in rows[2:]]
    report = walk(rows[:2] + [forged] + shifted, 6, rows[-1][1])
    assert (report.broken_seq, report.reason) == (3, "inserted")
    assert report.broken_event_id == rid(forged)


def test_removed_and_renumbered_is_missing(walk):
    rows = build_chain(8)
    shifted = [(r[0] - 2,) + r[1:] for r in rows[5:]]
    report = walk(rows[:3] + shifted, 8, rows[-1][1])
    assert (report.broken_seq, report.reason) == (4, "missing")


def test_appended_past_head_is_inserted(walk):
    rows = build_chain(5)
    head_hash = rows[-1][1]
    rows.append(row_from(fields(6, head_hash)))
    report = walk(rows, 5, head_hash)
    assert (report.broken_seq, report.reason) == (6, "inserted")


def test_ts_micros_matches_postgres_binary_epoch():
    assert ts_micros("2000-01-01T00:00:00.000000Z") == 0
    assert ts_micros("2000-01-01T00:00:01.000002Z") == 1_000_002
    assert ts_micros("1999-12-31T23:59:59.999999Z") == -1


def test_binary_copy_reader_splits_tuples_across_blocks():
    import struct

    from trailseal.infra.copy_binary import SIGNATURE, split_tuples

    def tup(*fields):
        out = struct.pack(">h", len(fields))
        for f in fields:
            out += struct.pack(">i", -1) if f is None else struct.pack(">i", len(f)) + f
        return out

    stream = SIGNATURE + struct.pack(">ii", 0, 0) + tup(b"a", None, b"xyz") + tup(b"", b"q" * 50) \
        + struct.pack(">h", -1)
    for size in (1, 3, 7, len(stream)):
        blocks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert list(split_tuples(blocks)) == [[b"a", None, b"xyz"], [b"", b"q" * 50]]
    with pytest.raises(ValueError):
        list(split_tuples([b"not a copy stream at all"]))


def test_rehash_with_seq_changes_only_seq():
    rows = build_chain(2)
    raw, h = rehash_with_seq(rows[1][2], 9)
    assert orjson.loads(raw)["seq"] == 9 and h == record_hash(raw) and h != rows[1][1]


def test_format_1_records_still_verify(walk):
    """Chains written before ``columns_hash`` existed are checked field by field."""
    rows, prev = [], GENESIS_HASH
    for i in range(1, 6):
        f = fields(i, prev)
        record = orjson.dumps({"v": 1, **f}, option=orjson.OPT_SORT_KEYS)
        row = server_row(i, record_hash(record), record, projection_of(f),
                         ts_micros(f["occurred_at"]), ts_micros(f["received_at"]))
        rows.append(row)
        prev = row[1]
    for messages in (False, True):
        walker = ChainWalker(str(TENANT), 5, prev, Lookup(rows))
        full = []
        check = walker.check
        walker.check = lambda row, *a, full=full, check=check: full.append(row) or check(row, *a)
        assert all(feed(walker, r, messages) for r in rows) and walker.finish().intact
        assert len(full) == 5  # no columns_hash: every row took the full check
    rows[2] = with_projection(rows[2], severity="critical")
    report = walk(rows, 5, prev)
    assert (report.intact, report.broken_seq, report.reason) == (False, 3, "modified")


def test_current_records_take_the_fast_path():
    rows = build_chain(5)
    for messages in (False, True):
        walker = ChainWalker(str(TENANT), 5, rows[-1][1], Lookup(rows))
        walker.check = lambda row, *a: pytest.fail("an intact format-2 row needed the full check")
        assert all(feed(walker, r, messages) for r in rows) and walker.finish().intact
    assert orjson.loads(rows[0][2])["v"] == 2


@pytest.mark.parametrize("messages", [False, True])
def test_a_range_takes_its_first_link_on_trust_and_reports_it(messages):
    """Checking rows 4..10 alone (one range of a ranged verification): the first row's
    link is kept for the seam check; the rest are checked as usual."""
    rows = build_chain(10)
    walker = ChainWalker(str(TENANT), 10, rows[-1][1], Lookup(rows))
    walker.expected_seq, walker.prev_hash = 4, None
    assert all(feed(walker, r, messages) for r in rows[3:])
    assert walker.first_link == rows[2][1] and walker.checked == 7
    assert walker.finish().intact
    tampered = ChainWalker(str(TENANT), 10, rows[-1][1], Lookup(rows))
    tampered.expected_seq, tampered.prev_hash = 4, None
    rows[6] = with_projection(rows[6], actor_id="someone-else")
    assert not all(feed(tampered, r, messages) for r in rows[3:])
    assert tampered.broken[0] == 7 and tampered.broken[2] == "modified"
