"""Searching the trail in plain language: hybrid ranking of vector similarity and PostgreSQL
full-text search, fused by reciprocal rank, and answers grounded in the events found.

Both rankings run inside the caller's tenant (row-level security, and an explicit
``tenant_id`` condition so the planner uses the tenant's index):

- vectors: an exact scan, ``ORDER BY embedding <=> query`` over the tenant's embeddings of
  the current model. pgvector 0.6 has no iterative index scans, so an index scan with a tenant
  filter returns fewer rows than asked when the tenant is a small share of the table; the
  exact scan has recall 1 by construction and costs time linear in the tenant's events
  (``bench/eval_search.py`` measures it). A tenant with an index of its own
  (``vector_index``: a partial IVFFlat index over its rows of one model) is ranked through
  it instead; with filters, its 1,000 nearest candidates are filtered, and when fewer than
  the depth pass the exact scan answers;
- full text: ``ts_rank`` over ``audit_search_text`` of the query's lexemes joined by OR
  (a question's words rarely all occur in one event);
- fusion: ``score = sum over both lists of 1 / (RRF_K + rank)``.

The ranking (ids and scores, never event contents) is cached in Redis for
``SEARCH_CACHE_SECONDS`` per tenant, embedding model, query, filters and limit; events are
read and decrypted afresh on every request.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import orjson
import redis
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import REAL, UUID, Text, and_, cast, column, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Connection

from ..db import driver_cursor
from ..schemas import EventFilters, SearchIn
from ..tables import audit_embeddings, audit_search_text, chain_heads
from .access import AccessRecord, audited_read
from .events import EVENT_COLUMNS, EVENTS_WITH_INSIGHTS, a, build_filters, i, row_to_event
from .narration import ground_answer, narrate_text
from .search_index import FTS_CONFIG
from .subject_keys import EventDecryptor
from .tenancy import Principal
from .vector_index import PROBES, has_valid_index

log = logging.getLogger(__name__)

RRF_K = 60  # the usual constant of reciprocal-rank fusion: damps the head of each list
DEPTH = 100  # candidates each ranking contributes to the fusion
SEARCH_CACHE_SECONDS = 600
# The full-text half ranks at most about this many matching events (ts_rank reads each one):
# in a large tenant, words estimated to match more are left out of the question.
FTS_BUDGET = 20_000
# Lists of a tenant's IVFFlat index a ranking reads: more is closer to the exact scan and
# slower (bench/bench_search_scale.py measures both).
IVF_PROBES = PROBES
VECTOR_CANDIDATES = 1_000  # nearest vectors a filtered search filters
TEXT_CANDIDATES = 1_000  # best full-text matches a filtered search filters
FTS_SAMPLE = 5_000  # newest events whose words estimate how common each word is
LEXEME_STATS_SECONDS = 3600


def _filtered(stmt, table, filters: EventFilters):
    """``stmt`` joined to the events (and their insights) when the filters need them."""
    where = build_filters(filters)
    if not where:
        return stmt.select_from(table)
    joined = table.join(a, and_(a.c.tenant_id == table.c.tenant_id,
                                a.c.id == table.c.event_id)).outerjoin(
        i, and_(i.c.tenant_id == a.c.tenant_id, i.c.event_id == a.c.id))
    return stmt.select_from(joined).where(*where)


def vector_ranking(conn: Connection, tenant_id: uuid.UUID, vector: list[float], model: str,
                   filters: EventFilters, depth: int = DEPTH,
                   need: int | None = None) -> list[uuid.UUID]:
    """The tenant's events nearest to ``vector`` (cosine distance), best first: through the
    tenant's own index when it has one (``vector_index``), by an exact scan otherwise."""
    if has_valid_index(conn, tenant_id, model, len(vector)):
        ranked = indexed_ranking(conn, tenant_id, vector, model, filters, depth, need)
        if ranked is not None:
            return ranked
    return exact_ranking(conn, tenant_id, vector, model, filters, depth)


def indexed_ranking(conn: Connection, tenant_id: uuid.UUID, vector: list[float], model: str,
                    filters: EventFilters, depth: int = DEPTH,
                    need: int | None = None) -> list[uuid.UUID] | None:
    """The nearest events by a scan of the tenant's partial IVFFlat index. The tenant, model
    and dimensions are written as literals so the planner can match the index's predicate.
    With filters, up to ``VECTOR_CANDIDATES`` nearest candidates are filtered. Those that
    pass are the filtered ranking's head, in order (every event beyond them is farther), so
    they are enough unless fewer than ``need`` (default ``depth``) pass: then ``None``, and
    the caller scans exactly."""
    dims = len(vector)
    e = audit_embeddings.alias("e")
    vec_type = VECTOR(dims)
    distance = cast(e.c.embedding, vec_type).cosine_distance(
        cast(literal(vector, VECTOR()), vec_type))
    tenant = str(uuid.UUID(str(tenant_id)))
    quoted_model = "'" + model.replace("'", "''") + "'"
    where = (e.c.tenant_id == literal_column(f"'{tenant}'::uuid"),
             e.c.model == literal_column(quoted_model), e.c.dims == literal_column(str(dims)))
    filtered = bool(build_filters(filters))
    fetch = VECTOR_CANDIDATES if filtered else depth
    conn.execute(select(func.set_config("ivfflat.probes", str(int(IVF_PROBES)), True)))
    nearest = select(e.c.event_id, distance.label("d")).where(*where).order_by(distance)
    if not filtered:
        return list(conn.execute(select(nearest.limit(depth).subquery().c.event_id)).scalars())
    cand = nearest.limit(fetch).subquery("c")
    joined = cand.join(a, and_(a.c.tenant_id == tenant_id, a.c.id == cand.c.event_id)).outerjoin(
        i, and_(i.c.tenant_id == a.c.tenant_id, i.c.event_id == a.c.id))
    ranked = list(conn.execute(select(cand.c.event_id).select_from(joined)
                               .where(*build_filters(filters))
                               .order_by(cand.c.d, cand.c.event_id).limit(depth)).scalars())
    return ranked if len(ranked) >= (depth if need is None else min(need, depth)) else None


def exact_ranking(conn: Connection, tenant_id: uuid.UUID, vector: list[float], model: str,
                  filters: EventFilters, depth: int = DEPTH) -> list[uuid.UUID]:
    """The tenant's events nearest to ``vector`` (cosine distance), exact scan, best first."""
    e = audit_embeddings.alias("e")
    distance = e.c.embedding.cosine_distance(cast(literal(vector, VECTOR()), VECTOR()))
    stmt = _filtered(select(e.c.event_id), e, filters).where(
        e.c.tenant_id == tenant_id, e.c.model == model, e.c.dims == len(vector),
    ).order_by(distance, e.c.event_id).limit(depth)
    return list(conn.execute(stmt).scalars())


def or_query(text: str):
    """The query's lexemes (English stemming, stop words dropped) joined by OR."""
    anded = cast(func.plainto_tsquery(FTS_CONFIG, text), Text)
    return cast(func.replace(anded, " & ", " | "), TSQUERY)


def tsquery_of(lexemes: list[str]):
    """A tsquery matching any of these (already normalised) lexemes."""
    quoted = ["'" + lex.replace("\\", "\\\\").replace("'", "''") + "'" for lex in lexemes]
    return cast(literal(" | ".join(quoted)), TSQUERY)


def lexeme_shares(svc, conn: Connection, tenant_id: uuid.UUID) -> tuple[int, dict[str, float]]:
    """The tenant's events and, for the words common among its newest ``FTS_SAMPLE``
    events, the share of those events that hold each: an estimate of how many events a
    word matches. Empty for a tenant whose every match can be ranked. Kept in Redis for
    ``LEXEME_STATS_SECONDS`` under the tenant's search prefix (derived data, like the
    rankings cached there)."""
    key = f"trailseal:search:{tenant_id}:lexemes"
    try:
        raw = svc.redis.get(key)
    except redis.RedisError:
        raw = None
    if raw:
        events, shares = orjson.loads(raw)
        return int(events), shares
    events = conn.execute(select(chain_heads.c.last_seq)
                          .where(chain_heads.c.tenant_id == tenant_id)).scalar() or 0
    shares: dict[str, float] = {}
    if events > FTS_BUDGET:
        sample = (f"SELECT tsv FROM audit_search_text WHERE tenant_id = "
                  f"'{uuid.UUID(str(tenant_id))}'::uuid ORDER BY event_id DESC "
                  f"LIMIT {FTS_SAMPLE}")
        rows = conn.execute(select(literal_column("word"), literal_column("ndoc")).select_from(
            func.ts_stat(sample))).all()
        floor = FTS_BUDGET / 10 / events  # rarer words never decide anything: left out
        counted = min(FTS_SAMPLE, events)
        shares = {w: n / counted for w, n in rows if n / counted >= floor}
    try:
        svc.redis.set(key, orjson.dumps([events, shares]), ex=LEXEME_STATS_SECONDS)
    except redis.RedisError:
        pass
    return events, shares


def affordable_lexemes(lexemes: list[str], events: int,
                       shares: dict[str, float]) -> list[str] | None:
    """The question's lexemes the full-text half ranks: rarest first while the events they
    are estimated to match stay within ``FTS_BUDGET``. ``None`` when all of them fit (the
    question is used as it is); an empty list when even the rarest is too common (it says
    little about an event, as a stop word does, and ranking its matches would cost more
    than the whole search may take)."""
    estimated = sorted((shares.get(lex, 0.0) * events, lex) for lex in lexemes)
    if sum(n for n, _ in estimated) <= FTS_BUDGET:
        return None
    kept, total = [], 0.0
    for n, lex in estimated:
        if total + n > FTS_BUDGET:
            break
        kept.append(lex)
        total += n
    return kept


def text_ranking(conn: Connection, tenant_id: uuid.UUID, text: str, filters: EventFilters,
                 depth: int = DEPTH, svc=None, need: int | None = None) -> list[uuid.UUID]:
    """The tenant's events whose rendering matches any of the query's lexemes, ranked by
    ``ts_rank``, best first (the newest first among equals). With ``svc``, words too
    common in a large tenant to rank all their matches are left out
    (``affordable_lexemes``). With filters, the best
    ``TEXT_CANDIDATES`` matches are filtered, then twenty times as many; those that pass
    are the filtered ranking's head, and only when fewer than ``need`` (default ``depth``)
    pass is every match ranked."""
    query = or_query(text)
    if svc is not None:
        events, shares = lexeme_shares(svc, conn, tenant_id)
        if shares:
            lexemes = conn.execute(select(func.tsvector_to_array(
                func.to_tsvector(FTS_CONFIG, text)))).scalar() or []
            kept = affordable_lexemes(list(lexemes), events, shares)
            if kept is not None:
                if not kept:
                    return []
                query = tsquery_of(kept)
    where = build_filters(filters)
    for fetch in (TEXT_CANDIDATES, 20 * TEXT_CANDIDATES) if where else (depth,):
        m = func.trailseal_text_matches(query, fetch).table_valued(
            column("event_id", UUID(as_uuid=True)), column("rank", REAL)).alias("m")
        candidates = list(conn.execute(select(m.c.event_id).order_by(
            m.c.rank.desc(), m.c.event_id.desc())).scalars())
        if not where:
            return candidates
        passing: set[uuid.UUID] = set()
        for start in range(0, len(candidates), TEXT_CANDIDATES):
            chunk = candidates[start:start + TEXT_CANDIDATES]
            passing.update(conn.execute(
                select(a.c.id).select_from(a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                                               i.c.event_id == a.c.id)))
                .where(a.c.tenant_id == tenant_id, a.c.id.in_(chunk), *where)).scalars())
        ranked = [eid for eid in candidates if eid in passing][:depth]
        if (len(ranked) >= (depth if need is None else min(need, depth))
                or len(candidates) < fetch):
            return ranked  # enough, or every match was a candidate
    # A narrow filter: rank every match that passes it (row-level security keeps this to
    # the tenant's rows; it reads each of them, so it is exact rather than fast).
    s = audit_search_text.alias("s")
    rank = func.ts_rank(s.c.tsv, query)
    stmt = _filtered(select(s.c.event_id), s, filters).where(
        s.c.tenant_id == tenant_id, s.c.tsv.op("@@")(query),
    ).order_by(rank.desc(), s.c.event_id.desc()).limit(depth)
    return list(conn.execute(stmt).scalars())


def fuse(*rankings: list[uuid.UUID], k: int = RRF_K) -> list[tuple[uuid.UUID, float]]:
    """Reciprocal-rank fusion: each id scores ``sum(1 / (k + rank))`` over the rankings it
    appears in (rank from 1); best first, ties by id so the order is stable."""
    scores: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, event_id in enumerate(ranking, start=1):
            scores[event_id] = scores.get(event_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))


def load_events_by_id(svc, conn: Connection, tenant_id: uuid.UUID,
                      ids: list[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """The tenant's events with these ids, as the API shows them, by id."""
    if not ids:
        return {}
    stmt = select(*EVENT_COLUMNS).select_from(EVENTS_WITH_INSIGHTS).where(a.c.id.in_(ids))
    rows = conn.execute(stmt).mappings().all()
    with driver_cursor(conn) as cur:
        keys = EventDecryptor(svc, cur, tenant_id)
        keys.prefetch(r["record"] for r in rows)
        events = [row_to_event(svc, cur, tenant_id, r, keys) for r in rows]
    return {e["id"]: e for e in events}


def _cache_key(tenant_id: uuid.UUID, model: str | None, body: SearchIn) -> str:
    material = orjson.dumps({"model": model, "query": body.query, "limit": body.limit,
                             "filters": body.filters.model_dump(mode="json")},
                            option=orjson.OPT_SORT_KEYS)
    return f"trailseal:search:{tenant_id}:{hashlib.sha256(material).hexdigest()}"


def _cache_get(svc, key: str) -> list | None:
    try:
        raw = svc.redis.get(key)
    except redis.RedisError:
        return None  # the cache is an optimisation: rank instead
    return orjson.loads(raw) if raw else None


def _cache_set(svc, key: str, ranking: list) -> None:
    try:
        svc.redis.set(key, orjson.dumps(ranking), ex=SEARCH_CACHE_SECONDS)
    except redis.RedisError:
        pass


def _embed_query(svc, tenant_id: uuid.UUID, query: str) -> tuple[str | None, list[float] | None]:
    """The query's vector and its model, or (None, None) without an embedder (or when it
    fails: search then ranks by full text alone rather than failing)."""
    try:
        answer = svc.pm.hook.embed_texts(texts=[query], model=None, tenant_id=str(tenant_id))
    except Exception:  # a plugin's failure must not turn a search into a 500
        log.exception("embed_texts failed for a search query; ranking by full text alone")
        return None, None
    if not answer or not answer.get("vectors"):
        return None, None
    return str(answer.get("model") or "default"), [float(x) for x in answer["vectors"][0]]


def search_events(svc, principal: Principal, body: SearchIn, access: AccessRecord) -> dict:
    """Search the caller's tenant (the read recorded in the access log): the best
    ``body.limit`` events, each as the API shows it plus ``score``, and with
    ``body.answer`` a narrated answer whose every citation is one of the results."""
    tid = principal.tenant_id
    model, vector = _embed_query(svc, tid, body.query)
    key = _cache_key(tid, model, body)
    ranking = _cache_get(svc, key)
    cached = ranking is not None
    with audited_read(svc, principal, access) as conn:
        if ranking is None:
            by_vector = (vector_ranking(conn, tid, vector, model, body.filters,
                                        need=body.limit) if vector is not None else [])
            by_text = text_ranking(conn, tid, body.query, body.filters, svc=svc,
                                   need=body.limit)
            ranking = [[str(eid), score] for eid, score in fuse(by_vector, by_text)[:body.limit]]
        events = load_events_by_id(svc, conn, tid, [uuid.UUID(eid) for eid, _ in ranking])
    if not cached:
        _cache_set(svc, key, ranking)
    results = [{**events[eid], "score": round(score, 6)} for eid, score in ranking
               if eid in events]
    out: dict[str, Any] = {"results": results}
    if body.answer:
        retrieved = {r["id"]: r for r in results}
        context = {"question": body.query, "events": results}
        text = narrate_text(svc, "answer", context, str(tid))
        answer, sources = ground_answer(text, retrieved)
        if not answer:
            answer = ("No answer could be composed from the events found." if results
                      else "No events match the question.")
        out["answer"] = answer
        out["sources"] = sources
    out["cached"] = cached
    return out
