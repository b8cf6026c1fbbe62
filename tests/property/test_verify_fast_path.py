"""Property 18 (continued): the fast row check of verification (format-2 records: compare
the ``columns_hash`` in the record with the digest of the columns PostgreSQL returns)
reaches exactly the verdict of the full check (decode every record, compare field by
field), for stored rows with any text in them and any tampering of a row's columns,
timestamps, record, hash or seq; and intact rows never need the full check."""

from __future__ import annotations

import struct

import psycopg
from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY, events, safe_text
from trailseal.infra.copy_binary import chain_rows, copy_out, encode_tuple
from trailseal.services.chain import (
    FIELD_SEP,
    NULL_MARK,
    ChainWalker,
    row_from_fields,
    split_columns,
)
from trailseal.services.ingest import append_events, validate_events
from trailseal.services.integrity import verify_copy_sql
from trailseal.testing import make_tenant

# Projection fields (chain.PROJECTION_SQL order) an attacker could edit, and whether NULL fits.
FIELDS = [(0, False), (1, False), (2, False), (3, False), (4, False), (5, True), (6, True),
          (7, False), (8, False), (9, False), (10, True), (11, False), (12, False), (13, False),
          (14, True), (15, False), (16, False)]
tag_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                   max_size=12)


@st.composite
def wild_events(draw):
    """Valid events whose indexed text holds quotes, backslashes, newlines, any Unicode."""
    body = draw(events())
    body["actor"] = {"id": draw(safe_text), "type": draw(safe_text)}
    if draw(st.booleans()):
        body["actor"]["role"] = draw(safe_text)
    if draw(st.booleans()):
        body["actor"]["department"] = draw(safe_text)
    body["entity"] = {"type": draw(safe_text), "id": draw(safe_text)}
    body["source"] = draw(st.none() | safe_text)
    body["tags"] = draw(st.lists(tag_text, max_size=3, unique=True))
    return body


class _Lookup:
    def __init__(self, rows):
        self.rows = rows

    def by_hash(self, h):
        return next(((r[0], None) for r in self.rows if r[1] == h), None)

    def by_previous_hash(self, h):
        return next(((r[0], None) for r in self.rows if _fields(r)[-1] == h), None)

    def id_at(self, seq):
        return next((_fields(r)[0] for r in self.rows if r[0] == seq), None)


def _fields(row) -> list[str]:
    return split_columns(row[3])[0].decode().split(FIELD_SEP)


def _message(row) -> bytes:
    """A row as the server sends it: one binary COPY tuple."""
    seq, hash_, record, columns = row
    return encode_tuple([struct.pack(">q", seq), hash_.encode(), record, columns])


def _walk(rows, head_seq, head_hash, fast: bool, messages: bool = False):
    walker = ChainWalker("t", head_seq, head_hash, _Lookup(rows), fast=fast)
    full_checks = []
    check = walker.check
    walker.check = lambda row, *a: full_checks.append(row) or check(row, *a)
    for row in rows:
        if not (walker.feed_message(_message(row)) if messages else walker.feed(row)):
            break
    return walker.finish().to_dict(), len(full_checks)


def _stored_rows(services, tenant_id):
    url = services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        sql = verify_copy_sql(1, None).replace(" WHERE ", f" WHERE tenant_id = '{tenant_id}' AND ", 1)
        return list(chain_rows(copy_out(conn.pgconn, sql), row_from_fields))


@PROPERTY
@given(batch=st.lists(wild_events(), min_size=1, max_size=6), data=st.data())
def test_fast_check_agrees_with_the_full_check(trailseal_services, batch, data):
    tenant = make_tenant(trailseal_services)
    result = append_events(trailseal_services, tenant.id, validate_events(batch))
    rows = _stored_rows(trailseal_services, tenant.id)
    head_seq, head_hash = result.last_seq, result.hashes[-1]
    for messages in (False, True):
        intact, full_checks = _walk(rows, head_seq, head_hash, fast=True, messages=messages)
        assert full_checks == 0  # the columns' digest matched every record's columns_hash
        assert intact == _walk(rows, head_seq, head_hash, fast=False)[0]
        assert intact["intact"] and intact["events_checked"] == len(batch)

    index = data.draw(st.integers(min_value=0, max_value=len(rows) - 1))
    seq, hash_, record, columns = rows[index]
    projection, occurred, received = split_columns(columns)
    kind = data.draw(st.sampled_from(["field", "occurred", "received", "record", "hash", "seq"]))
    if kind == "field":
        position, nullable = data.draw(st.sampled_from(FIELDS))
        fields = projection.decode().split(FIELD_SEP)
        fields[position] = data.draw((st.just(NULL_MARK) if nullable else st.nothing())
                                     | safe_text | st.just(fields[position] + " "))
        projection = FIELD_SEP.join(fields).encode()
    elif kind == "occurred":
        occurred += data.draw(st.integers(min_value=-10**12, max_value=10**12))
    elif kind == "received":
        received += data.draw(st.integers(min_value=-10**12, max_value=10**12))
    elif kind == "record":
        at = data.draw(st.integers(min_value=0, max_value=len(record) - 1))
        record = record[:at] + bytes([record[at] ^ data.draw(st.integers(1, 255))]) + record[at + 1:]
    elif kind == "hash":
        hash_ = data.draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    else:
        seq = data.draw(st.integers(min_value=0, max_value=len(rows) + 2))
    tampered = list(rows)  # the server joins the stored columns, seq included
    tampered[index] = (seq, hash_, record,
                       projection + struct.pack(">qqq", seq, occurred, received))
    full = _walk(tampered, head_seq, head_hash, fast=False)[0]
    assert _walk(tampered, head_seq, head_hash, fast=True)[0] == full
    assert _walk(tampered, head_seq, head_hash, fast=True, messages=True)[0] == full
    if tampered[index] != rows[index]:
        assert not full["intact"]


def test_idempotency_keys_and_empty_fields_take_the_fast_path(trailseal_services):
    tenant = make_tenant(trailseal_services)
    body = {"event_type": "invoice.paid", "occurred_at": "1970-01-01T00:00:00Z",
            "actor": {"id": "a", "type": "user"}, "entity": {"type": "invoice", "id": "1"},
            "severity": "low", "user_agent": ""}
    append_events(trailseal_services, tenant.id, validate_events([body]),
                  idempotency_key="retry-1", request_hash="h")
    result = append_events(trailseal_services, tenant.id, validate_events([body, body]))
    rows = _stored_rows(trailseal_services, tenant.id)
    for messages in (False, True):
        report, full_checks = _walk(rows, result.last_seq, result.hashes[-1], fast=True,
                                    messages=messages)
        assert report["intact"] and report["events_checked"] == 3 and full_checks == 0
