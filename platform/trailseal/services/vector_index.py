"""Per-tenant HNSW indexes for vector search.

pgvector 0.6 has no iterative index scans: an HNSW scan of the whole ``audit_embeddings``
table followed by a ``tenant_id`` filter returns far fewer rows than asked when the tenant
is a small share of the table. Search therefore ranks a tenant's vectors by an exact scan,
which is exact but costs time linear in the tenant's events (about 0.5 µs per vector).

A tenant large enough for that to matter gets an index of its own: a *partial* HNSW index
over its rows of one embedding model,

    CREATE INDEX CONCURRENTLY audit_embeddings_hnsw_<digest> ON audit_embeddings
      USING hnsw ((embedding::vector(<dims>)) vector_cosine_ops)
      WHERE tenant_id = '<tenant>' AND model = '<model>' AND dims = <dims>

An index scan of it meets only the tenant's rows, so the filter loses nothing, and search
uses it when it is valid (``vector_ranking`` writes the tenant, model and dimensions as
literals so the planner can prove the index's predicate). New embeddings of the tenant join
the index as they are inserted.

Building an index is the schema owner's work (the app role owns no table), so it is a
command, ``trailseal search-index build``, run with the owner's connection as
``trailseal migrate`` is. ``CONCURRENTLY`` keeps the table writable during the build; a
build that stops half-way leaves an invalid index, which search ignores and the next build
replaces.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass

import psycopg
from psycopg import sql

INDEX_PREFIX = "audit_embeddings_hnsw_"
# HNSW returns at most ``hnsw.ef_search`` rows per scan (pgvector's maximum is 1000).
EF_SEARCH_MAX = 1000
# Tenants at or above this many embeddings of one model are worth an index of their own
# (the exact scan of 200,000 vectors takes about 110 ms on two cores).
DEFAULT_MIN_EMBEDDINGS = 100_000
_CACHE_SECONDS = 30.0
_known: dict[str, tuple[bool, float]] = {}
_PREDICATE = re.compile(
    r"tenant_id = '(?P<tenant>[0-9a-f-]{36})'::uuid\) AND \(model = '(?P<model>(?:[^']|'')*)'"
    r"::text\) AND \(dims = (?P<dims>\d+)\)")


def index_name(tenant_id: uuid.UUID | str, model: str, dims: int) -> str:
    """The name of the tenant's index for ``model`` vectors of ``dims`` dimensions."""
    digest = hashlib.sha256(f"{tenant_id}|{model}|{dims}".encode()).hexdigest()[:16]
    return INDEX_PREFIX + digest


@dataclass(frozen=True)
class TenantIndex:
    name: str
    tenant_id: str
    model: str
    dims: int
    valid: bool
    size_bytes: int

    def to_dict(self) -> dict:
        return {"name": self.name, "tenant_id": self.tenant_id, "model": self.model,
                "dims": self.dims, "valid": self.valid, "size_bytes": self.size_bytes}


def has_valid_index(conn, tenant_id: uuid.UUID | str, model: str, dims: int) -> bool:
    """Whether the tenant has a usable (valid, ready) index for these vectors; the answer is
    kept ``_CACHE_SECONDS`` per process. ``conn`` is a SQLAlchemy connection."""
    name = index_name(tenant_id, model, dims)
    cached = _known.get(name)
    now = time.monotonic()
    if cached and now - cached[1] < _CACHE_SECONDS:
        return cached[0]
    from sqlalchemy import text

    row = conn.execute(text(
        "SELECT i.indisvalid AND i.indisready FROM pg_class c "
        "JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :name"),
        {"name": name}).first()
    usable = bool(row and row[0])
    _known[name] = (usable, now)
    return usable


def forget_cached() -> None:
    """Forget what ``has_valid_index`` learnt (after building or dropping an index)."""
    _known.clear()


def list_indexes(admin_url: str) -> list[TenantIndex]:
    """Every per-tenant index, with its tenant, model and dimensions read back from its
    predicate."""
    out: list[TenantIndex] = []
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid), i.indisvalid, "
            "pg_relation_size(c.oid) FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname LIKE %s ORDER BY c.relname", (INDEX_PREFIX + "%",)).fetchall()
    for name, predicate, valid, size in rows:
        m = _PREDICATE.search(predicate or "")
        if m is None:
            continue
        out.append(TenantIndex(name, m["tenant"], m["model"].replace("''", "'"),
                               int(m["dims"]), bool(valid), int(size)))
    return out


def embedding_counts(admin_url: str) -> list[tuple[str, str, int, int]]:
    """(tenant id, model, dims, vectors) for every tenant and model, largest first."""
    with psycopg.connect(admin_url) as conn:
        return [(str(t), m, d, n) for t, m, d, n in conn.execute(
            "SELECT tenant_id, model, dims, count(*) FROM audit_embeddings "
            "GROUP BY 1, 2, 3 ORDER BY 4 DESC").fetchall()]


def memory_for(vectors: int, dims: int) -> str:
    """``maintenance_work_mem`` that holds the whole graph while it is built (each vector
    and its neighbour lists, with a quarter spare: about 2.7 KB at 384 dimensions); a
    graph that outgrows it is finished on disk, many times slower."""
    need = int(vectors * (dims * 4 + 640) * 1.25) // (1 << 20) + 64
    return f"{need}MB"


def build_index(admin_url: str, tenant_id: uuid.UUID | str, model: str, dims: int, *,
                m: int = 16, ef_construction: int = 64,
                maintenance_work_mem: str | None = None,
                vectors: int = 0) -> tuple[str, float, bool]:
    """Build the tenant's index (as the owner, without blocking writes). Returns its name,
    the seconds the build took and whether it was built now (``False``: a valid one
    existed). An invalid leftover of an interrupted build is dropped first. The build's
    memory is ``maintenance_work_mem``, or enough for ``vectors`` (``memory_for``)."""
    tenant = str(uuid.UUID(str(tenant_id)))
    if not (1 <= int(dims) <= 2000):
        raise ValueError(f"HNSW indexes hold 1 to 2,000 dimensions, not {dims}")
    name = index_name(tenant, model, dims)
    started = time.monotonic()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT i.indisvalid FROM pg_class c JOIN pg_index i "
                           "ON i.indexrelid = c.oid WHERE c.relname = %s", (name,)).fetchone()
        if row is not None and row[0]:
            return name, 0.0, False
        if row is not None:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(name)))
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
            sql.Literal(maintenance_work_mem or memory_for(vectors, dims))))
        conn.execute(sql.SQL(
            "CREATE INDEX CONCURRENTLY {name} ON audit_embeddings USING hnsw "
            "((embedding::vector({dims})) vector_cosine_ops) WITH (m = {m}, "
            "ef_construction = {efc}) WHERE tenant_id = {tenant}::uuid AND model = {model} "
            "AND dims = {dims}").format(
                name=sql.Identifier(name), dims=sql.Literal(int(dims)), m=sql.Literal(int(m)),
                efc=sql.Literal(int(ef_construction)), tenant=sql.Literal(tenant),
                model=sql.Literal(model)))
        conn.execute(sql.SQL("ANALYZE audit_embeddings"))
    forget_cached()
    return name, time.monotonic() - started, True


def drop_index(admin_url: str, name: str) -> bool:
    """Drop one per-tenant index by name; whether it existed."""
    if not name.startswith(INDEX_PREFIX) or not re.fullmatch(r"[0-9a-f]{16}",
                                                             name[len(INDEX_PREFIX):]):
        raise ValueError(f"{name!r} is not the name of a per-tenant search index")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        existed = conn.execute("SELECT 1 FROM pg_class WHERE relname = %s",
                               (name,)).fetchone() is not None
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.Identifier(name)))
    forget_cached()
    return existed
