"""Per-tenant IVFFlat indexes for vector search (``services/vector_index.py``, ``trailseal
search-index``): built as the owner, used by search only for their own tenant and model,
ranking as the exact scan does, falling back to it when filters leave too few candidates,
ignored while invalid; against real PostgreSQL + pgvector."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from sqlalchemy import event

from tests.conftest import ingest, make_event
from trailseal.schemas import EventFilters
from trailseal.services import search, vector_index
from trailseal.testing import make_tenant

MODEL, DIMS, N = "probe-model", 48, 300


def _owner_url(services) -> str:
    return services.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")


def _fill(client, services, tenant, n: int = N, seed: int = 1) -> dict[str, np.ndarray]:
    """``n`` events (every fifth one high severity) and a random unit vector for each."""
    events = [make_event(severity="high" if k % 5 == 0 else "info",
                         entity={"type": "invoice", "id": f"INV-{k}"}) for k in range(n)]
    ids = ingest(client, tenant, events)["ids"]
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with psycopg.connect(_owner_url(services)) as conn:
        register_vector(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO audit_embeddings (event_id, tenant_id, model, dims, embedding) "
                "VALUES (%s, %s, %s, %s, %s)",
                [(uuid.UUID(i), tenant.id, MODEL, DIMS, v) for i, v in zip(ids, vecs,
                                                                            strict=True)])
    return dict(zip(ids, vecs, strict=True))


def _brute_force(vectors: dict[str, np.ndarray], query: np.ndarray, k: int) -> list[str]:
    ids = list(vectors)
    sims = np.stack([vectors[i] for i in ids]) @ query
    return [ids[j] for j in np.argsort(-sims)[:k]]


def _rank(services, tenant, query, filters=None, depth=search.DEPTH):
    """``search.vector_ranking`` with sequential scans and sorts priced out: in tables this small the
    planner would rather sort every row, and the test is about what the index returns."""
    with services.db.transaction(tenant.id) as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        return [str(x) for x in search.vector_ranking(
            conn, tenant.id, [float(v) for v in query], MODEL, filters or EventFilters(),
            depth)]


@pytest.fixture
def statements(trailseal_services):
    """The SQL the app sends, with its parameters, while the test runs."""
    seen: list[tuple[str, dict]] = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(trailseal_services.db.engine, "before_cursor_execute", remember)
    yield seen
    event.remove(trailseal_services.db.engine, "before_cursor_execute", remember)


def _plan(services, tenant, statement, params) -> str:
    with services.db.transaction(tenant.id) as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, params).scalars().all()
    return "\n".join(rows)


def test_the_index_is_used_for_its_tenant_and_ranks_as_the_exact_scan(
        trailseal_client, trailseal_services, tenant, statements):
    vectors = _fill(trailseal_client, trailseal_services, tenant)
    other = make_tenant(trailseal_services)
    other_vectors = _fill(trailseal_client, trailseal_services, other, seed=2)
    rng = np.random.default_rng(7)
    queries = [q / np.linalg.norm(q) for q in rng.normal(size=(5, DIMS)).astype(np.float32)]
    before = [_rank(trailseal_services, tenant, q) for q in queries]
    for q, got in zip(queries, before, strict=True):
        assert got == _brute_force(vectors, q, search.DEPTH)  # exact scan, no index yet

    name, seconds, built = vector_index.build_index(_owner_url(trailseal_services), tenant.id,
                                                    MODEL, DIMS)
    assert built and seconds >= 0 and name == vector_index.index_name(tenant.id, MODEL, DIMS)
    again = vector_index.build_index(_owner_url(trailseal_services), tenant.id, MODEL, DIMS)
    assert again == (name, 0.0, False)  # a valid index is left as it is
    rebuilt = vector_index.build_index(_owner_url(trailseal_services), tenant.id, MODEL, DIMS,
                                       lists=10, rebuild=True)
    assert rebuilt[0] == name and rebuilt[2] is True
    with psycopg.connect(_owner_url(trailseal_services)) as conn:
        definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                  (name,)).fetchone()[0]
    assert "USING ivfflat" in definition and "lists='10'" in definition
    statements.clear()
    after = [_rank(trailseal_services, tenant, q) for q in queries]
    # 300 vectors make 10 lists, and 10 probes read them all: the same neighbours
    for q, got in zip(queries, after, strict=True):
        assert got[:10] == _brute_force(vectors, q, 10)
        assert len(got) == search.DEPTH and set(got) <= set(vectors)
    ranked = [(s, p) for s, p in statements if "audit_embeddings" in s and "ORDER BY" in s]
    assert ranked, "no ranking statement was sent"
    assert name in _plan(trailseal_services, tenant, *ranked[-1])

    # the other tenant has no index: exact scan, its own vectors only
    statements.clear()
    for q in queries:
        got = _rank(trailseal_services, other, q)
        assert got == _brute_force(other_vectors, q, search.DEPTH)
    ranked = [(s, p) for s, p in statements if "audit_embeddings" in s and "ORDER BY" in s]
    assert name not in _plan(trailseal_services, other, *ranked[-1])
    assert not (set(got) & set(vectors))


def test_filters_over_the_index_and_the_fallback_to_the_exact_scan(
        trailseal_client, trailseal_services, tenant):
    vectors = _fill(trailseal_client, trailseal_services, tenant)
    vector_index.build_index(_owner_url(trailseal_services), tenant.id, MODEL, DIMS)
    with trailseal_services.db.transaction(tenant.id) as conn:
        high = {str(x) for x in conn.exec_driver_sql(
            "SELECT id FROM audit_logs WHERE severity = 'high'").scalars()}
    assert len(high) == N // 5
    q = np.random.default_rng(3).normal(size=DIMS).astype(np.float32)
    q /= np.linalg.norm(q)
    wanted = _brute_force({i: v for i, v in vectors.items() if i in high}, q, 10)
    # 10 of the 60 high events: the index's 1,000 candidates hold them all
    assert _rank(trailseal_services, tenant, q, EventFilters(severity=["high"]), depth=10) == wanted
    # 100 asked, 60 exist: the candidates run short, the exact scan answers (all 60, in order)
    got = _rank(trailseal_services, tenant, q, EventFilters(severity=["high"]))
    assert got == _brute_force({i: v for i, v in vectors.items() if i in high}, q, 100)


def test_an_invalid_index_is_ignored_and_replaced(trailseal_client, trailseal_services,
                                                 tenant):
    vectors = _fill(trailseal_client, trailseal_services, tenant)
    url = _owner_url(trailseal_services)
    name, _, _ = vector_index.build_index(url, tenant.id, MODEL, DIMS)
    with psycopg.connect(url, autocommit=True) as conn:  # as a failed concurrent build leaves it
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
                     (name,))
    vector_index.forget_cached()
    with trailseal_services.db.transaction(tenant.id) as conn:
        assert not vector_index.has_valid_index(conn, tenant.id, MODEL, DIMS)
    q = next(iter(vectors.values()))
    assert _rank(trailseal_services, tenant, q) == _brute_force(vectors, q, search.DEPTH)
    listed = {ix.name: ix for ix in vector_index.list_indexes(url)}
    assert listed[name].valid is False and listed[name].tenant_id == str(tenant.id)
    _, _, built = vector_index.build_index(url, tenant.id, MODEL, DIMS)
    assert built is True
    listed = {ix.name: ix for ix in vector_index.list_indexes(url)}
    assert listed[name].valid is True and (listed[name].model, listed[name].dims) == (MODEL, DIMS)
    assert vector_index.drop_index(url, name) is True
    assert vector_index.drop_index(url, name) is False
    with pytest.raises(ValueError):
        vector_index.drop_index(url, "audit_logs_pkey")


def test_a_model_name_with_quotes_is_a_literal_not_sql(trailseal_client, trailseal_services,
                                                      tenant):
    global MODEL
    saved, MODEL = MODEL, "it's a model'; DROP TABLE audit_logs; --"
    try:
        vectors = _fill(trailseal_client, trailseal_services, tenant)
        url = _owner_url(trailseal_services)
        vector_index.build_index(url, tenant.id, MODEL, DIMS)
        assert any(ix.model == MODEL for ix in vector_index.list_indexes(url))
        q = next(iter(vectors.values()))
        assert _rank(trailseal_services, tenant, q)[:10] == _brute_force(vectors, q, 10)
    finally:
        MODEL = saved


@pytest.mark.slow
def test_search_index_commands(trailseal_client, trailseal_services, tenant):
    _fill(trailseal_client, trailseal_services, tenant, n=50)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"])

    def run(*args):
        return subprocess.run([sys.executable, "-m", "trailseal", "search-index", *args],
                              env=env, capture_output=True, text=True, timeout=120)

    out = run("build", "--tenant", tenant.slug)
    assert out.returncode == 0, out.stderr
    name = vector_index.index_name(tenant.id, MODEL, DIMS)
    assert f"tenant {tenant.id}: {MODEL} ({DIMS} dims, 50 vectors): {name} built in" in out.stdout
    listed = run("list").stdout.splitlines()
    assert listed[0] == "tenant,model,dims,vectors,index,valid,index_bytes"
    assert any(line.startswith(f"{tenant.id},{MODEL},{DIMS},50,{name},True,")
               for line in listed)
    assert run("build").returncode == 2  # neither --tenant nor --all
    bad = run("drop", "audit_logs_pkey")
    assert bad.returncode == 1 and "not the name of a per-tenant search index" in bad.stderr


def test_the_worker_builds_indexes_once_a_tenant_is_large_enough(
        trailseal_app, trailseal_client, trailseal_services, tenant, trailseal_run_jobs,
        monkeypatch):
    url = _owner_url(trailseal_services)
    small = make_tenant(trailseal_services)
    _fill(trailseal_client, trailseal_services, tenant, n=300)
    _fill(trailseal_client, trailseal_services, small, n=100, seed=5)
    monkeypatch.setitem(trailseal_services.config, "SEARCH_INDEX_MIN_VECTORS", 200)
    name = vector_index.index_name(tenant.id, MODEL, DIMS)
    small_name = vector_index.index_name(small.id, MODEL, DIMS)

    trailseal_services.queues["low"].enqueue("trailseal.jobs.search.build_search_indexes")
    trailseal_run_jobs()
    listed = {ix.name: ix for ix in vector_index.list_indexes(url)}
    assert listed[name].valid and listed[name].lists == vector_index.lists_for(300)
    assert small_name not in listed  # 100 vectors: below the threshold
    with trailseal_services.db.transaction(tenant.id) as conn:
        assert vector_index.has_valid_index(conn, tenant.id, MODEL, DIMS)

    # idempotent: nothing is due any more, for any tenant
    from trailseal.jobs.search import build_search_indexes

    with trailseal_app.app_context():
        assert build_search_indexes() == []
    oid = _index_oid(url, name)

    # an index built with too few lists for its vectors (they have doubled since) is rebuilt
    vector_index.build_index(url, tenant.id, MODEL, DIMS, lists=5, rebuild=True)
    with trailseal_app.app_context():
        built = build_search_indexes()
    assert [(b["name"], b["reason"], b["vectors"]) for b in built] == [(name, "rebuild", 300)]
    listed = {ix.name: ix for ix in vector_index.list_indexes(url)}
    assert listed[name].lists == vector_index.lists_for(300) and _index_oid(url, name) != oid

    # switched off, or without the owner's connection: nothing is built
    _fill(trailseal_client, trailseal_services, small, n=150, seed=6)
    with trailseal_app.app_context():
        monkeypatch.setitem(trailseal_services.config, "SEARCH_INDEX_AUTO", False)
        assert build_search_indexes() == []
        monkeypatch.setitem(trailseal_services.config, "SEARCH_INDEX_AUTO", True)
        monkeypatch.setitem(trailseal_services.config, "ADMIN_DATABASE_URL", None)
        assert build_search_indexes() == []
    assert small_name not in {ix.name for ix in vector_index.list_indexes(url)}


def test_a_second_builder_waits_for_none(trailseal_services):
    url = _owner_url(trailseal_services)
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (vector_index._BUILD_LOCK,))
        assert vector_index.build_due_indexes(url, 1) is None  # another builder holds it
        other.execute("SELECT pg_advisory_unlock(%s)", (vector_index._BUILD_LOCK,))
    assert vector_index.build_due_indexes(url, 10**9) == []


def _index_oid(url: str, name: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT %s::regclass::oid", (name,)).fetchone()[0]
