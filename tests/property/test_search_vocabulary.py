"""The search vocabulary (``services.search_vocabulary``): what it adds to a question is
made only of its own terms, each once, depends on the question's words and not their
endings or case, and only grows when the question does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trailseal.services.search_vocabulary import (
    VOCABULARY,
    expansion_terms,
    matched_entries,
    word_stem,
)

TERMS = {w for _, terms in VOCABULARY for w in terms.split()}
TRIGGERS = [t for triggers, _ in VOCABULARY for t in triggers]
words = st.one_of(st.sampled_from(TRIGGERS), st.sampled_from(
    ["who", "the", "bucket", "alice", "yesterday", "invoice", "?", "é", "数据", "a-b"]),
    st.text(max_size=12))
questions = st.lists(words, max_size=8).map(" ".join)


@settings(max_examples=100, deadline=None)
@given(questions)
def test_terms_come_from_the_vocabulary_once_each(question):
    added = expansion_terms(question).split()
    assert set(added) <= TERMS and len(added) == len(set(added))
    assert expansion_terms(question) == expansion_terms(question.upper())


@settings(max_examples=100, deadline=None)
@given(questions, questions)
def test_a_longer_question_never_loses_terms(first, more):
    assert set(matched_entries(first)) <= set(matched_entries(f"{first} {more}"))
    assert set(matched_entries(more)) <= set(matched_entries(f"{first} {more}"))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TRIGGERS), st.sampled_from(["", "s", "ed", "ing"]))
def test_every_trigger_matches_its_entry_and_endings_do_not_matter(trigger, ending):
    entries = {n for n, (triggers, _) in enumerate(VOCABULARY) if trigger in triggers}
    assert entries <= set(matched_entries(f"did anyone {trigger} it?"))
    last = trigger.split()[-1]
    if ending and word_stem(last + ending) == word_stem(last):
        inflected = trigger[: len(trigger) - len(last)] + last + ending
        assert entries <= set(matched_entries(f"was it {inflected}?"))


def test_examples():
    assert set(expansion_terms("Who turned off audit logging?").split()) >= {
        "stop", "disable", "cloudtrail", "trail", "logging"}
    assert "delete" in expansion_terms("Were the files deleted?").split()
    assert "login" in expansion_terms("Who signed in last night?").split()
    assert expansion_terms("mallory acme-finance-reports") == ""
    assert [word_stem(w) for w in ("stopped", "deletes", "running", "shared")] == [
        "stop", "delet", "run", "shar"]
