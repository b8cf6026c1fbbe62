"""The fast CSV writer against the reference one: ``csv_line`` writes what ``csv.writer``
writes, and ``row_cells`` of an event row the cells ``event_row`` makes of the event object
it flattens, whatever the text (quotes, commas, line breaks, formula starts, unicode)."""

from __future__ import annotations

import csv
import io

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY
from trailseal_plugins.exports.csv_format import (
    COLUMNS,
    csv_line,
    event_row,
    row_cells,
    rows_text,
)

text = st.text(alphabet=st.one_of(st.sampled_from(list("=+-@\t\r\n ,\"'")),
                                  st.characters(blacklist_categories=("Cs",))), max_size=12)
maybe = st.one_of(st.none(), text)
json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9),
                                    st.floats(allow_nan=False, allow_infinity=False), text),
                          lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                 st.dictionaries(text, kids, max_size=3)),
                          max_leaves=6)


@PROPERTY
@given(cells=st.lists(text, min_size=2, max_size=30))
def test_csv_line_is_what_csv_writer_writes(cells):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    assert csv_line(cells) == buffer.getvalue()


@PROPERTY
@given(actor=text, entity=maybe, role=maybe, source=maybe, ua=maybe, ip=maybe,
       tags=st.lists(text, max_size=3), details=st.one_of(st.none(), st.dictionaries(
           text, json_value, max_size=4)),
       insights=st.one_of(st.none(), st.fixed_dictionaries({
           "category": maybe, "risk_level": maybe, "tags": st.lists(text, max_size=3),
           "anomaly_score": st.one_of(st.none(), st.floats(-1e6, 1e6)),
           "is_anomaly": st.one_of(st.none(), st.booleans()),
           "review_required": st.booleans(),
           "ai_insights": st.dictionaries(text, json_value, max_size=3)})))
def test_row_cells_are_the_cells_of_the_event_object(actor, entity, role, source, ua, ip,
                                                    tags, details, insights):
    event = {"id": "0190-e", "seq": 7, "occurred_at": "2026-01-01T00:00:00.000000Z",
             "received_at": "2026-01-01T00:00:01.000000Z", "event_type": "x.y",
             "actor": {"id": actor, "type": "user", "role": role, "department": None},
             "entity": {"type": "doc", "id": entity or ""}, "severity": "low",
             "source": source, "tags": tags, "ip_address": ip, "user_agent": ua,
             "action_details": details, "idempotency_key": None, "previous_hash": "0" * 64,
             "hash": "a" * 64, "insights": insights}

    def js(value):
        return None if value is None else orjson.dumps(value).decode()

    ins = insights or {}
    row = (event["id"], 7, event["occurred_at"], event["received_at"], "x.y", actor, "user",
           role, None, "doc", entity or "", "low", source, js(tags), ip, ua, js(details),
           None, "0" * 64, "a" * 64, ins.get("category"), ins.get("risk_level"),
           js(ins.get("tags")), ins.get("anomaly_score"), ins.get("is_anomaly"),
           ins.get("review_required"), js(ins.get("ai_insights")))
    assert len(row) == len(COLUMNS)
    assert row_cells(row) == event_row(event)


cell_value = st.one_of(text, st.none(), st.booleans(), st.integers(-10**6, 10**6),
                       st.floats(allow_nan=False), st.sampled_from(["\x1f=1", "a\x1f,b", ""]))
plain_row = st.tuples(*[st.one_of(st.sampled_from(["abc", "0190-e", "2026-01-01T00:00:00Z"]),
                                  st.none()) for _ in COLUMNS])


@PROPERTY
@given(rows=st.lists(st.one_of(plain_row, st.lists(cell_value, min_size=len(COLUMNS),
                                                   max_size=len(COLUMNS)).map(tuple),
                               st.lists(cell_value, min_size=len(COLUMNS),
                                        max_size=len(COLUMNS) + 2).map(tuple)),
                     max_size=5))
def test_rows_text_is_what_row_cells_and_csv_line_write(rows):
    """The fast writer of a batch of event rows writes the bytes of the reference one,
    whatever the values: every type a row can hold, formula starts, quotes, separators,
    plain rows (its fast branch) and rows longer than ``COLUMNS``."""
    assert rows_text(rows) == "".join(csv_line(row_cells(r)) for r in rows)
