"""Per-tenant vector indexes for search (IVFFlat).

pgvector 0.6 has no iterative index scans: an approximate scan of the whole
``audit_embeddings`` table followed by a ``tenant_id`` filter returns far fewer rows than
asked when the tenant is a small share of the table. Search therefore ranks a tenant's
vectors by an exact scan, which is exact but costs time linear in the tenant's events
(about 0.4 s per million vectors on two cores).

A tenant large enough for that to matter gets an index of its own: a *partial* IVFFlat
index over its rows of one embedding model,

    CREATE INDEX CONCURRENTLY audit_embeddings_ivf_<digest> ON audit_embeddings
      USING ivfflat ((embedding::vector(<dims>)) vector_cosine_ops) WITH (lists = <n>)
      WHERE tenant_id = '<tenant>' AND model = '<model>' AND dims = <dims>

A scan of it meets only the tenant's rows, so the filter loses nothing, and search uses it
when it is valid (``search.indexed_ranking`` writes the tenant, model and dimensions as
literals so the planner can prove the index's predicate). New embeddings of the tenant join
the list of their nearest centre as they are inserted.

IVFFlat rather than HNSW: audit events are templated (thousands differ only in an id), so
their vectors cluster tightly. On the benchmark's million vectors, clustered that way
(``bench/bench_search_scale.py``), an HNSW graph (m 16) stranded whole clusters: recall@10
0.52 at ``ef_search`` 200 and 0.66 at 1000, with some questions at 0. IVFFlat reads whole
lists around the question and had recall@10 0.99 with 10 probes. Its build was also about
twelve times faster.

Building an index is the schema owner's work (the app role owns no table), so it is a
command, ``trailseal search-index build``, run with the owner's connection as
``trailseal migrate`` is. ``CONCURRENTLY`` keeps the table writable during the build; a
build that stops half-way leaves an invalid index, which search ignores and the next build
replaces. The lists are centred on the vectors there at build time: rebuild
(``--rebuild``) once the tenant's vectors have doubled.

The worker does both on its own (``build_due_indexes``, the scheduled job
``search-indexes``): it builds the index of every tenant and model that has reached
``SEARCH_INDEX_MIN_VECTORS`` vectors and has none, and rebuilds one whose vectors have
grown to twice the lists it was built with (``index_due``), using the owner's connection
(``TRAILSEAL_ADMIN_DATABASE_URL``; without it the job does nothing and says so).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

INDEX_PREFIX = "audit_embeddings_ivf_"
# Lists a search reads (``ivfflat.probes``): recall@10 0.99 against the exact scan at a
# million vectors, about 20 ms (``bench/bench_search_scale.py``).
PROBES = 10
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
    lists: int | None = field(default=None, compare=False)

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
            "pg_relation_size(c.oid), c.reloptions FROM pg_class c "
            "JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname LIKE %s ORDER BY c.relname", (INDEX_PREFIX + "%",)).fetchall()
    for name, predicate, valid, size, options in rows:
        m = _PREDICATE.search(predicate or "")
        if m is None:
            continue
        lists = next((int(o.split("=", 1)[1]) for o in options or []
                      if o.startswith("lists=")), None)
        out.append(TenantIndex(name, m["tenant"], m["model"].replace("''", "'"),
                               int(m["dims"]), bool(valid), int(size), lists))
    return out


def embedding_counts(admin_url: str) -> list[tuple[str, str, int, int]]:
    """(tenant id, model, dims, vectors) for every tenant and model, largest first."""
    with psycopg.connect(admin_url) as conn:
        return [(str(t), m, d, n) for t, m, d, n in conn.execute(
            "SELECT tenant_id, model, dims, count(*) FROM audit_embeddings "
            "GROUP BY 1, 2, 3 ORDER BY 4 DESC").fetchall()]


def lists_for(vectors: int) -> int:
    """IVFFlat lists for a tenant of this many vectors (pgvector's advice: rows / 1000 up to
    a million, the square root beyond), at least 10."""
    return max(10, vectors // 1000 if vectors <= 1_000_000 else int(math.sqrt(vectors)))


def memory_for(vectors: int, dims: int) -> str:
    """``maintenance_work_mem`` for the build's k-means (a sample of 50 vectors per list,
    with its working copies: PostgreSQL asked 272 MB for 1,000 lists of 384 dimensions)."""
    need = int(lists_for(vectors) * 50 * (dims * 4 + 64) * 4) // (1 << 20) + 64
    return f"{need}MB"


def build_index(admin_url: str, tenant_id: uuid.UUID | str, model: str, dims: int, *,
                vectors: int = 0, lists: int | None = None,
                maintenance_work_mem: str | None = None,
                rebuild: bool = False) -> tuple[str, float, bool]:
    """Build the tenant's index (as the owner, without blocking writes). Returns its name,
    the seconds the build took and whether it was built now (``False``: a valid one
    existed and ``rebuild`` was not asked). An invalid leftover of an interrupted build is
    dropped first. ``lists`` defaults to ``lists_for(vectors)``."""
    tenant = str(uuid.UUID(str(tenant_id)))
    if not (1 <= int(dims) <= 2000):
        raise ValueError(f"IVFFlat indexes hold 1 to 2,000 dimensions, not {dims}")
    name = index_name(tenant, model, dims)
    started = time.monotonic()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT i.indisvalid FROM pg_class c JOIN pg_index i "
                           "ON i.indexrelid = c.oid WHERE c.relname = %s", (name,)).fetchone()
        if row is not None and row[0] and not rebuild:
            return name, 0.0, False
        if row is not None:
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                sql.Identifier(name)))
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(
            sql.Literal(maintenance_work_mem or memory_for(vectors, dims))))
        conn.execute(sql.SQL(
            "CREATE INDEX CONCURRENTLY {name} ON audit_embeddings USING ivfflat "
            "((embedding::vector({dims})) vector_cosine_ops) WITH (lists = {lists}) "
            "WHERE tenant_id = {tenant}::uuid AND model = {model} AND dims = {dims}").format(
                name=sql.Identifier(name), dims=sql.Literal(int(dims)),
                lists=sql.Literal(int(lists or lists_for(vectors))),
                tenant=sql.Literal(tenant), model=sql.Literal(model)))
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


def index_due(vectors: int, index: TenantIndex | None,
              min_vectors: int = DEFAULT_MIN_EMBEDDINGS) -> str | None:
    """What the worker should do for a tenant's ``vectors`` of one model that have
    ``index`` (None: no index): ``"build"`` (none, or an invalid leftover, and at least
    ``min_vectors``), ``"rebuild"`` (valid, but the vectors now call for at least twice
    its lists: they have about doubled since it was built) or None (nothing)."""
    if index is None or not index.valid:
        return "build" if vectors >= min_vectors else None
    if index.lists and lists_for(vectors) >= 2 * index.lists:
        return "rebuild"
    return None


@dataclass(frozen=True)
class IndexBuild:
    """One index the worker built: whose, why and how long it took."""

    tenant_id: str
    model: str
    dims: int
    vectors: int
    name: str
    reason: str
    seconds: float

    def to_dict(self) -> dict:
        return {"tenant_id": self.tenant_id, "model": self.model, "dims": self.dims,
                "vectors": self.vectors, "name": self.name, "reason": self.reason,
                "seconds": round(self.seconds, 3)}


#: Advisory lock key of ``build_due_indexes`` (one builder at a time across workers).
_BUILD_LOCK = int.from_bytes(hashlib.sha256(b"trailseal:search-indexes").digest()[:8],
                             "big", signed=True)


def build_due_indexes(admin_url: str,
                      min_vectors: int = DEFAULT_MIN_EMBEDDINGS) -> list[IndexBuild] | None:
    """Build (or rebuild) every per-tenant index ``index_due`` asks for, one after the
    other, as the owner; the builds done. Idempotent: a second run finds nothing due.
    None when another process holds the builder's lock (it is doing the same work)."""
    with psycopg.connect(admin_url, autocommit=True) as lock:
        if not lock.execute("SELECT pg_try_advisory_lock(%s)", (_BUILD_LOCK,)).fetchone()[0]:
            return None
        try:
            existing = {(ix.tenant_id, ix.model, ix.dims): ix for ix in list_indexes(admin_url)}
            done: list[IndexBuild] = []
            for tenant, model, dims, count in embedding_counts(admin_url):
                reason = index_due(count, existing.get((tenant, model, dims)), min_vectors)
                if reason is None or not (1 <= dims <= 2000):
                    continue
                name, seconds, _ = build_index(admin_url, tenant, model, dims, vectors=count,
                                               rebuild=reason == "rebuild")
                done.append(IndexBuild(tenant, model, dims, count, name, reason, seconds))
            return done
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (_BUILD_LOCK,))
