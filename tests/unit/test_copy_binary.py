"""The fixed-layout reader of the verification COPY gives exactly what the generic reader
gives, however the stream is cut into messages, for well-formed and odd (tampered) rows."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY
from trailseal.infra.copy_binary import SIGNATURE, chain_rows, encode_tuple, split_tuples
from trailseal.services.chain import row_from_fields as _decode

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@st.composite
def rows(draw):
    """One verification row as raw fields: usually the normal layout, sometimes not."""
    seq = struct.pack(">q", draw(INT64))
    hash_ = draw(st.sampled_from([b"a" * 64, b"0123456789abcdef" * 4]) | st.binary(max_size=70))
    record = draw(st.binary(max_size=300))
    columns = draw(st.text(max_size=80).map(str.encode) | st.binary(max_size=120))
    fields = [seq, hash_, record, columns]
    if draw(st.integers(0, 5)) == 0:  # NULLs, a missing or extra column, odd widths
        mutation = draw(st.sampled_from(["null", "drop", "extra", "short"]))
        index = draw(st.integers(0, 3))
        if mutation == "null":
            fields[index] = None
        elif mutation == "drop":
            del fields[index]
        elif mutation == "extra":
            fields.append(b"x")
        else:
            fields[index] = (fields[index] or b"")[:3]
    return fields


@PROPERTY
@given(table=st.lists(rows(), max_size=8), cuts=st.lists(st.integers(1, 60), max_size=30),
       per_row=st.booleans())
def test_fixed_layout_reader_matches_the_generic_one(table, cuts, per_row):
    header = SIGNATURE + struct.pack(">ii", 0, 0)
    tuples = [encode_tuple(fields) for fields in table]
    trailer = struct.pack(">h", -1)
    if per_row:  # as the server sends it: header with the first row, then one row a message
        messages = ([header + tuples[0]] + tuples[1:] if tuples else [header]) + [trailer]
    else:  # any cut
        stream = header + b"".join(tuples) + trailer
        messages, at = [], 0
        for size in cuts + [len(stream)]:
            messages.append(stream[at:at + size])
            at += size
        messages = [m for m in messages if m]
    assert list(split_tuples(messages)) == table  # encode_tuple and the reader agree
    expected = [_decode(list(f)) for f in split_tuples(messages)]
    got = list(chain_rows([memoryview(m) for m in messages], _decode))
    assert got == expected
    assert len(got) == len(table)
