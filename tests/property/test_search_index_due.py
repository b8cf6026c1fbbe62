"""When the worker builds or rebuilds a tenant's vector index (``vector_index.index_due``):
never below the threshold without an index, always at or above it without a valid one, and
never again right after a build (the job is idempotent)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.services.vector_index import TenantIndex, index_due, lists_for

vectors = st.integers(min_value=0, max_value=50_000_000)
thresholds = st.integers(min_value=1, max_value=5_000_000)


def _index(lists: int | None, valid: bool = True) -> TenantIndex:
    return TenantIndex("audit_embeddings_ivf_0123456789abcdef", "t", "m", 384, valid, 0, lists)


@settings(max_examples=100, deadline=None)
@given(vectors, thresholds)
def test_without_a_valid_index_build_exactly_from_the_threshold(n, floor):
    expected = "build" if n >= floor else None
    assert index_due(n, None, floor) == expected
    assert index_due(n, _index(lists_for(n), valid=False), floor) == expected


@settings(max_examples=100, deadline=None)
@given(vectors, thresholds, st.integers(min_value=0, max_value=10_000_000))
def test_nothing_is_due_right_after_a_build_and_a_rebuild_once_vectors_grow(n, floor, more):
    built = _index(lists_for(n))
    assert index_due(n, built, floor) is None  # the job is idempotent
    due = index_due(n + more, built, floor)
    assert due in (None, "rebuild")
    assert (due == "rebuild") == (lists_for(n + more) >= 2 * lists_for(n))
    if due == "rebuild":
        assert n + more >= 2 * n  # lists grow no faster than the vectors: they doubled
        assert index_due(n + more, _index(lists_for(n + more)), floor) is None
