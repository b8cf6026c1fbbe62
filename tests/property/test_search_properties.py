"""Properties of semantic search, on real PostgreSQL + pgvector and Valkey with the local
embedder: every enriched event gets an embedding and a full-text vector; embeddings never
cross tenants; a search respects its limit, sorts its scores and returns (and cites) only
events of the caller's tenant."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ingest
from tests.property.strategies import PROPERTY, SEVERITIES, event_type, events, name
from trailseal.jobs.enrichment import enrich_events
from trailseal.testing import make_tenant
from trailseal_plugins.embed_local import MODEL

CITED = re.compile(r"\[([0-9a-f-]{36})\]")
words = st.sampled_from(["who", "deleted", "invoice", "login", "failed", "role", "granted",
                         "export", "alice", "bob", "report", "critical", "yesterday", "the",
                         "?", "user", "downloaded", "svc-billing", "élève", "数据"])
questions = st.lists(words, min_size=1, max_size=6).map(" ".join)


def _enrich(app, tenant_id, first, last) -> None:
    with app.app_context():
        enrich_events(str(tenant_id), first, last)


def _rows(svc, tenant_id, table: str) -> list[str]:
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(f"SELECT event_id::text, tenant_id FROM {table}")
        rows = cur.fetchall()
    assert all(t == tenant_id for _, t in rows)
    return sorted(r[0] for r in rows)


@pytest.fixture(scope="module")
def two_tenants(trailseal_app, trailseal_services):
    return trailseal_app.test_client(), [make_tenant(trailseal_services) for _ in range(2)]


@PROPERTY
@given(a_events=st.lists(events(), min_size=1, max_size=4),
       b_events=st.lists(events(), min_size=1, max_size=4))
def test_every_enriched_event_gets_an_embedding_and_none_crosses_tenants(
        trailseal_app, trailseal_services, two_tenants, a_events, b_events):
    client, (a, b) = two_tenants
    for tenant, batch in ((a, a_events), (b, b_events)):
        created = ingest(client, tenant, batch)
        _enrich(trailseal_app, tenant.id, created["first_seq"], created["last_seq"])
    for tenant in (a, b):
        with trailseal_services.db.cursor(tenant.id) as cur:
            cur.execute("SELECT id::text FROM audit_logs")
            ids = sorted(r[0] for r in cur.fetchall())
            cur.execute("SELECT count(*) FROM audit_embeddings WHERE model = %s AND dims = 384",
                        (MODEL,))
            assert cur.fetchone()[0] == len(ids)
        # RLS shows each tenant exactly its own rows, never the other's
        assert _rows(trailseal_services, tenant.id, "audit_embeddings") == ids
        assert _rows(trailseal_services, tenant.id, "audit_search_text") == ids


@pytest.fixture(scope="module")
def searched(trailseal_app, trailseal_services):
    client = trailseal_app.test_client()
    tenants = [make_tenant(trailseal_services) for _ in range(2)]
    ids = []
    for n, tenant in enumerate(tenants):
        batch = [{"event_type": t, "occurred_at": f"2026-05-{10 + i % 15:02d}T10:00:00Z",
                  "actor": {"id": who, "type": "user"},
                  "entity": {"type": "invoice", "id": str(i)},
                  "severity": SEVERITIES[i % 5], "action_details": {"note": f"n{n}-{i}"}}
                 for i, (t, who) in enumerate(
                     (t, w) for t in ("invoice.deleted", "user.login", "role.granted",
                                      "export.downloaded")
                     for w in ("alice", "bob", "carol", "dave", "svc-billing", "erin"))]
        created = ingest(client, tenant, batch)
        _enrich(trailseal_app, tenant.id, created["first_seq"], created["last_seq"])
        ids.append(set(created["ids"]))
    return client, tenants, ids


@PROPERTY
@given(query=questions, limit=st.integers(min_value=1, max_value=100), answer=st.booleans(),
       severity=st.lists(st.sampled_from(SEVERITIES), max_size=3, unique=True),
       actor=st.none() | name, types=st.lists(event_type, max_size=2, unique=True),
       which=st.integers(min_value=0, max_value=1))
def test_limit_sorted_scores_and_only_own_events(searched, query, limit, answer, severity,
                                                 actor, types, which):
    client, tenants, ids = searched
    filters = {"severity": severity, "event_type": types}
    if actor:
        filters["actor"] = actor
    resp = client.post("/api/v1/search", headers=tenants[which].headers,
                       json={"query": query, "limit": limit, "answer": answer,
                             "filters": filters})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    results = body["results"]
    assert len(results) <= limit
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    got = [r["id"] for r in results]
    assert len(got) == len(set(got)) and set(got) <= ids[which]
    assert not set(got) & ids[1 - which]
    for r in results:
        assert not severity or r["severity"] in severity
        assert not types or r["event_type"] in types
        assert not actor or r["actor"]["id"] == actor
    if answer:
        cited = set(CITED.findall(body["answer"]))
        assert cited == {s["id"] for s in body["sources"]} and cited <= set(got)
    else:
        assert "answer" not in body


@PROPERTY
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(0, 1), max_size=12),
       st.integers(1, 2_000_000), st.integers(1, 50_000),
       st.lists(st.text(min_size=1, max_size=8), max_size=8, unique=True))
def test_the_full_text_half_keeps_the_rarest_words_within_its_budget(shares, events, budget,
                                                                      lexemes):
    from trailseal.services import search

    estimate = {lex: shares.get(lex, 0.0) * events for lex in lexemes}
    saved, search.FTS_BUDGET = search.FTS_BUDGET, budget
    try:
        kept = search.affordable_lexemes(lexemes, events, shares)
    finally:
        search.FTS_BUDGET = saved
    if sum(estimate.values()) <= budget:
        assert kept is None  # everything fits: the question is used as it is
        return
    slack = budget * 1e-9  # sums in another order may round differently
    assert kept is not None and sum(estimate[lex] for lex in kept) <= budget + slack
    left = [lex for lex in lexemes if lex not in kept]
    # no word left out is rarer than a word kept, and the next rarest would not have fit
    assert all(estimate[out] >= estimate[k] for out in left for k in kept)
    assert left and min(estimate[out] for out in left) + sum(estimate[k] for k in kept) > budget - slack


@PROPERTY
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.floats(0, 1), max_size=16),
       st.integers(1, 2_000_000), st.integers(1, 50_000),
       st.lists(st.text(min_size=1, max_size=8), max_size=8, unique=True),
       st.lists(st.text(min_size=1, max_size=8), max_size=8, unique=True))
def test_the_vocabulary_only_fills_what_the_question_leaves_of_the_budget(
        shares, events, budget, lexemes, extra):
    from trailseal.services import search

    extra = [lex for lex in extra if lex not in lexemes]
    estimate = {lex: shares.get(lex, 0.0) * events for lex in lexemes + extra}
    saved = search.FTS_BUDGET, search.VOCABULARY_BUDGET
    search.FTS_BUDGET, search.VOCABULARY_BUDGET = budget, budget // 4
    try:
        alone = search.affordable_lexemes(lexemes, events, shares)
        kept = search.affordable_lexemes(lexemes, events, shares, extra)
    finally:
        search.FTS_BUDGET, search.VOCABULARY_BUDGET = saved
    if (sum(estimate.values()) <= budget
            and sum(estimate[lex] for lex in extra) <= budget // 4):
        assert kept is None
        return
    slack = budget * 1e-9
    assert kept is not None and sum(estimate[lex] for lex in kept) <= budget + slack
    # the question's own words are kept exactly as without the vocabulary
    assert sorted(lex for lex in kept if lex in lexemes) == sorted(
        lexemes if alone is None else alone)
    added = [lex for lex in kept if lex not in lexemes]
    assert sum(estimate[lex] for lex in added) <= budget // 4 + slack
    assert all(estimate[out] >= estimate[k] for out in extra if out not in added for k in added)
