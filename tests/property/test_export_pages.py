"""A page goes to a CSV export's helper process packed (``export_decode.pack_page``): two
byte strings and their lengths. Unpacked, it is the same records and insights, in order,
whatever their sizes (an insights text is never empty, so empty stands for none)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.services.export_decode import fitting_records, pack_page, unpack_page

records = st.lists(st.binary(min_size=1, max_size=300), max_size=60)
insights = st.one_of(st.none(), st.binary(min_size=1, max_size=80))


@settings(max_examples=150, deadline=None)
@given(records, st.data())
def test_a_packed_page_unpacks_to_the_same_records_and_insights(recs, data):
    ins = data.draw(st.lists(insights, min_size=len(recs), max_size=len(recs)))
    got_records, got_insights = unpack_page(pack_page(recs, ins))
    assert got_records == recs
    assert got_insights == ins


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=30),
       st.integers(min_value=0, max_value=30), st.data())
def test_fitting_records_stop_at_the_first_row_without_its_record(recs, cut, data):
    cut = min(cut, len(recs) - 1) + 1  # the first row always fits
    ins = data.draw(st.lists(insights, min_size=len(recs), max_size=len(recs)))
    page = [(n, n, rec if n < cut else None, i, b"k", b"a", b"e")
            for n, (rec, i) in enumerate(zip(recs, ins, strict=True))]
    got_records, got_insights = fitting_records(page)
    assert got_records == recs[:cut]
    assert got_insights == ins[:cut]
