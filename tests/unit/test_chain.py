"""The chain walker on in-memory rows: each kind of tampering is named at the right seq."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from trailseal.services.chain import (
    GENESIS_HASH,
    ChainWalker,
    canonical_bytes,
    event_hash,
)

TENANT = uuid.UUID("00000000-0000-0000-0000-00000000000a")
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def build_chain(n: int) -> list[tuple]:
    rows, prev = [], GENESIS_HASH
    for i in range(1, n + 1):
        row = (uuid.uuid4(), TENANT, i, BASE + timedelta(minutes=i), BASE + timedelta(minutes=i),
               "user.login", f"u{i % 3}", "user", None, None, "session", f"s{i}", "info", "web",
               ["a"], b"\x01\x02", None, b"\x03" * 20, "k1", None, prev)
        h = event_hash(row)
        rows.append(row + (h,))
        prev = h
    return rows


class Lookup:
    def __init__(self, rows):
        self.rows = rows

    def by_hash(self, h):
        return next(((r[2], r[0]) for r in self.rows if r[21] == h), None)

    def by_previous_hash(self, h):
        return next(((r[2], r[0]) for r in self.rows if r[20] == h), None)

    def id_at(self, seq):
        return next((r[0] for r in self.rows if r[2] == seq), None)


def walk(rows, head_seq, head_hash):
    ordered = sorted(rows, key=lambda r: (r[2], str(r[0])))
    walker = ChainWalker(str(TENANT), head_seq, head_hash, Lookup(ordered))
    for row in ordered:
        if not walker.feed(row):
            break
    return walker.finish()


def test_canonical_form_is_sorted_compact_utf8():
    row = build_chain(1)[0]
    raw = canonical_bytes(row)
    assert b" " not in raw.replace(b"user.login", b"")
    assert raw.index(b'"action_details"') < raw.index(b'"actor_id"') < raw.index(b'"tenant_id"')
    assert raw.decode("utf-8")


def test_intact_chain():
    rows = build_chain(10)
    report = walk(rows, 10, rows[-1][21])
    assert report.intact and report.events_checked == 10


def test_modified_field_named():
    rows = build_chain(10)
    r = list(rows[4])
    r[12] = "critical"
    rows[4] = tuple(r)
    report = walk(rows, 10, rows[-1][21])
    assert (report.intact, report.broken_seq, report.reason) == (False, 5, "modified")
    assert report.broken_event_id == str(rows[4][0])


def test_modified_and_rehashed_names_the_rewritten_event():
    rows = build_chain(10)
    r = list(rows[3])
    r[5] = "user.logout"
    r[21] = event_hash(tuple(r))
    rows[3] = tuple(r)
    report = walk(rows, 10, rows[-1][21])
    assert (report.broken_seq, report.reason) == (4, "modified")


def test_deleted_event_is_missing():
    rows = build_chain(10)
    gone = rows.pop(6)
    report = walk(rows, 10, rows[-1][21])
    assert (report.broken_seq, report.reason) == (gone[2], "missing")


def test_deleted_tail_is_missing():
    rows = build_chain(10)
    head_hash = rows[-1][21]
    rows.pop()
    report = walk(rows, 10, head_hash)
    assert (report.broken_seq, report.reason) == (10, "missing")


@pytest.mark.parametrize("a,b", [(2, 7), (4, 5)])
def test_swapped_events_are_reordered(a, b):
    rows = build_chain(10)
    ra, rb = list(rows[a - 1]), list(rows[b - 1])
    ra[2], rb[2] = b, a
    rows[a - 1], rows[b - 1] = tuple(ra), tuple(rb)
    report = walk(rows, 10, rows[-1][21])
    assert (report.broken_seq, report.reason) == (a, "reordered")


def test_inserted_event_with_renumbering():
    rows = build_chain(6)
    forged = list(rows[2])
    forged[0] = uuid.uuid4()
    forged[5] = "invoice.paid"
    forged[20] = rows[2][20]
    forged[21] = event_hash(tuple(forged[:21]))
    shifted = [tuple(list(r[:2]) + [r[2] + 1] + list(r[3:])) for r in rows[2:]]
    tampered = rows[:2] + [tuple(forged)] + shifted
    report = walk(tampered, 6, rows[-1][21])
    assert (report.broken_seq, report.reason) == (3, "inserted")
    assert report.broken_event_id == str(forged[0])


def test_appended_past_head_is_inserted():
    rows = build_chain(5)
    head_hash = rows[-1][21]
    extra = list(rows[-1])
    extra[0], extra[2], extra[20] = uuid.uuid4(), 6, head_hash
    extra[21] = event_hash(tuple(extra[:21]))
    rows.append(tuple(extra))
    report = walk(rows, 5, head_hash)
    assert (report.broken_seq, report.reason) == (6, "inserted")
