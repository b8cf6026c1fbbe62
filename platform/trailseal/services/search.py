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
  the depth pass the exact scan answers. Filters that match few events (at most
  ``SEARCH_NARROW_FILTER_EVENTS``, ``narrow_filter``) skip the index: the exact distance of
  each matching event's vector is computed instead (``narrow_vector_ranking``);
- full text: ``ts_rank`` over ``audit_search_text`` of the query's lexemes joined by OR
  (a question's words rarely all occur in one event), with the terms the search vocabulary
  maps its words to (``search_vocabulary``: "turned off" also looks for "stop"); over just
  the matching events when the filters are narrow;
- fusion: ``score = sum over both lists of 1 / (RRF_K + rank)``.

The ranking (ids and scores, never event contents) is cached in Redis for
``SEARCH_CACHE_SECONDS`` per tenant, embedding model, query, filters and limit; events are
read and decrypted afresh on every request.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

import orjson
import redis
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    REAL,
    UUID,
    Text,
    and_,
    any_,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSQUERY
from sqlalchemy.engine import Connection

from ..db import driver_cursor
from ..schemas import EventFilters, SearchIn
from ..tables import audit_embeddings, audit_search_text, chain_heads
from .access import AccessRecord, audited_read
from .events import EVENT_COLUMNS, EVENTS_WITH_INSIGHTS, a, build_filters, i, row_to_event
from .narration import ground_answer, narrate_text
from .search_index import FTS_CONFIG
from .search_vocabulary import expansion_terms
from .subject_keys import EventDecryptor
from .tenancy import Principal
from .vector_index import PROBES, has_valid_index

log = logging.getLogger(__name__)

# The constant of reciprocal-rank fusion: damps the head of each list. The usual 60 let the
# many middling matches of one list outweigh the other's first: with the vocabulary, 10 was
# best on bench/search_questions.json and held up on the held-out set (bench/BENCHMARKS.md).
RRF_K = 10
DEPTH = 100  # candidates each ranking contributes to the fusion
SEARCH_CACHE_SECONDS = 600
# The full-text half ranks at most about this many matching events (ts_rank reads each one):
# in a large tenant, words estimated to match more are left out of the question.
FTS_BUDGET = 20_000
# ... of which the terms the search vocabulary adds may take at most this many (they widen
# a question; in a large tenant they are not worth a slower search: bench_search_text.py).
VOCABULARY_BUDGET = 5_000
# Lists of a tenant's IVFFlat index a ranking reads: more is closer to the exact scan and
# slower (bench/bench_search_scale.py measures both).
IVF_PROBES = PROBES
VECTOR_CANDIDATES = 1_000  # nearest vectors a filtered search filters
TEXT_CANDIDATES = 1_000  # best full-text matches a filtered search filters
FTS_SAMPLE = 5_000  # newest events whose words estimate how common each word is
LEXEME_STATS_SECONDS = 3600
# Word estimates older than LEXEME_STATS_SECONDS are still served (a worker job refreshes
# them) until they are this old; only a tenant without any computes them while it waits.
LEXEME_STALE_SECONDS = 7 * 86400
LEXEME_REFRESH_JOB = "trailseal.jobs.search.refresh_lexemes"
# A filter matching at most this many events is "narrow": both rankings are computed over
# the events it matches (exactly) instead of filtering index candidates, most of which it
# would reject (setting SEARCH_NARROW_FILTER_EVENTS).
NARROW_FILTER_EVENTS = 20_000
# ... and is not counted when the planner expects more than this many times that.
NARROW_PLANNED_FACTOR = 5


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
                   need: int | None = None, narrow: bool = False) -> list[uuid.UUID]:
    """The tenant's events nearest to ``vector`` (cosine distance), best first: through the
    tenant's own index when it has one (``vector_index``), by an exact scan otherwise. With
    ``narrow`` (the filters match few events: ``narrow_filter``), by exact distance over the
    vectors of just the events the filters match."""
    if narrow and build_filters(filters):
        return narrow_vector_ranking(conn, tenant_id, vector, model, filters, depth)
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


def _matching(tenant_id: uuid.UUID, filters: EventFilters):
    """The ids of the tenant's events the filters match, as a materialised CTE ``f``."""
    return (select(a.c.id).select_from(a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                                            i.c.event_id == a.c.id)))
            .where(a.c.tenant_id == tenant_id, *build_filters(filters))
            .cte("f").prefix_with("MATERIALIZED"))


def _planned_rows(conn: Connection, stmt) -> float | None:
    """The planner's estimate of the rows ``stmt`` returns (planning only, nothing read);
    ``None`` when it cannot be had."""
    compiled = stmt.compile(dialect=conn.dialect)
    try:
        with conn.begin_nested():
            plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled),
                                        compiled.params).scalar()
    except Exception:  # an estimate only spares a count: count instead
        log.exception("could not plan a search filter's count")
        return None
    plan = orjson.loads(plan) if isinstance(plan, (str, bytes)) else plan
    return float(plan[0]["Plan"]["Plan Rows"])


def narrow_filter(conn: Connection, tenant_id: uuid.UUID, filters: EventFilters,
                  threshold: int = NARROW_FILTER_EVENTS) -> bool:
    """Whether the filters match at most ``threshold`` of the tenant's events (counted no
    further than ``threshold + 1``, through the events' indexes). ``False`` without
    filters, and without counting when the planner expects more than
    ``NARROW_PLANNED_FACTOR`` times the threshold (a wide filter such as a recent month:
    counting its first 20,001 events costs 10-50 ms)."""
    where = build_filters(filters)
    if not where or threshold < 1:
        return False
    matching = (select(literal(1))
                .select_from(a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                                 i.c.event_id == a.c.id)))
                .where(a.c.tenant_id == tenant_id, *where))
    planned = _planned_rows(conn, matching)
    if planned is not None and planned > NARROW_PLANNED_FACTOR * threshold:
        return False
    some = matching.limit(threshold + 1).subquery()
    return conn.execute(select(func.count()).select_from(some)).scalar() <= threshold


def narrow_vector_ranking(conn: Connection, tenant_id: uuid.UUID, vector: list[float],
                          model: str, filters: EventFilters,
                          depth: int = DEPTH) -> list[uuid.UUID]:
    """``exact_ranking`` for a narrow filter: the events it matches first, then the exact
    distance of each one's vector (read by key). The same ranking, ties included."""
    f = _matching(tenant_id, filters)
    e = audit_embeddings.alias("e")
    distance = e.c.embedding.cosine_distance(cast(literal(vector, VECTOR()), VECTOR()))
    stmt = (select(e.c.event_id)
            .select_from(f.join(e, and_(e.c.tenant_id == tenant_id, e.c.event_id == f.c.id,
                                        e.c.model == model)))
            .where(e.c.dims == len(vector))
            .order_by(distance, e.c.event_id).limit(depth))
    return list(conn.execute(stmt).scalars())


def or_query(text: str):
    """The query's lexemes (English stemming, stop words dropped) joined by OR."""
    anded = cast(func.plainto_tsquery(FTS_CONFIG, text), Text)
    return cast(func.replace(anded, " & ", " | "), TSQUERY)


def tsquery_of(lexemes: list[str]):
    """A tsquery matching any of these (already normalised) lexemes."""
    quoted = ["'" + lex.replace("\\", "\\\\").replace("'", "''") + "'" for lex in lexemes]
    return cast(literal(" | ".join(quoted)), TSQUERY)


def _lexemes_key(tenant_id: uuid.UUID | str) -> str:
    return f"trailseal:search:{tenant_id}:lexemes"


def compute_lexeme_shares(conn: Connection,
                          tenant_id: uuid.UUID | str) -> tuple[int, dict[str, float]]:
    """The tenant's events and, for the words common among its newest ``FTS_SAMPLE``
    events, the share of those events that hold each (``conn``: a transaction of the
    tenant). Empty shares for a tenant whose every match can be ranked."""
    tenant_id = uuid.UUID(str(tenant_id))
    events = conn.execute(select(chain_heads.c.last_seq)
                          .where(chain_heads.c.tenant_id == tenant_id)).scalar() or 0
    shares: dict[str, float] = {}
    if events > FTS_BUDGET:
        sample = (f"SELECT tsv FROM audit_search_text WHERE tenant_id = "
                  f"'{tenant_id}'::uuid ORDER BY event_id DESC "
                  f"LIMIT {FTS_SAMPLE}")
        rows = conn.execute(select(literal_column("word"), literal_column("ndoc")).select_from(
            func.ts_stat(sample))).all()
        floor = FTS_BUDGET / 10 / events  # rarer words never decide anything: left out
        counted = min(FTS_SAMPLE, events)
        shares = {w: n / counted for w, n in rows if n / counted >= floor}
    return events, shares


def store_lexeme_shares(svc, tenant_id: uuid.UUID | str, events: int,
                        shares: dict[str, float]) -> None:
    """Keep the estimates in Redis with the time they were computed."""
    try:
        svc.redis.set(_lexemes_key(tenant_id), orjson.dumps([events, shares, time.time()]),
                      ex=LEXEME_STALE_SECONDS)
    except redis.RedisError:
        pass


def refresh_lexeme_shares(svc, tenant_id: uuid.UUID | str) -> int:
    """Compute and keep the tenant's word estimates afresh (the worker's job); the
    tenant's events."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        events, shares = compute_lexeme_shares(conn, tenant_id)
    store_lexeme_shares(svc, tenant_id, events, shares)
    try:
        svc.redis.delete(_lexemes_key(tenant_id) + ":refresh")
    except redis.RedisError:
        pass
    return events


def _refresh_later(svc, tenant_id: uuid.UUID | str) -> None:
    """Queue one refresh of the tenant's word estimates (not another while one is due)."""
    try:
        if svc.redis.set(_lexemes_key(tenant_id) + ":refresh", b"1", nx=True, ex=600):
            svc.queues["default"].enqueue(LEXEME_REFRESH_JOB, str(tenant_id),
                                          job_timeout=300, result_ttl=60)
    except redis.RedisError:
        log.warning("could not queue the refresh of the word estimates of %s", tenant_id)


def lexeme_shares(svc, conn: Connection, tenant_id: uuid.UUID) -> tuple[int, dict[str, float]]:
    """The tenant's events and, for the words common among its newest ``FTS_SAMPLE``
    events, the share of those events that hold each: an estimate of how many events a
    word matches (``compute_lexeme_shares``). Kept in Redis under the tenant's search prefix
    (derived data, like the rankings cached there). Estimates older than
    ``LEXEME_STATS_SECONDS`` are served while a worker job computes new ones, so no search
    waits for them except a tenant's first (or the first after ``LEXEME_STALE_SECONDS``)."""
    try:
        raw = svc.redis.get(_lexemes_key(tenant_id))
    except redis.RedisError:
        raw = None
    if raw:
        kept = orjson.loads(raw)
        computed_at = float(kept[2]) if len(kept) > 2 else 0.0
        if time.time() - computed_at > LEXEME_STATS_SECONDS:
            _refresh_later(svc, tenant_id)
        return int(kept[0]), kept[1]
    events, shares = compute_lexeme_shares(conn, tenant_id)
    store_lexeme_shares(svc, tenant_id, events, shares)
    return events, shares


def affordable_lexemes(lexemes: list[str], events: int, shares: dict[str, float],
                       extra: list[str] | None = None) -> list[str] | None:
    """The question's lexemes the full-text half ranks: rarest first while the events they
    are estimated to match stay within ``FTS_BUDGET``; then, rarest first, those of
    ``extra`` (the vocabulary's terms) that fit in what the question's own words left, and
    together in ``VOCABULARY_BUDGET``.
    ``None`` when all of them fit (the question is used as it is); an empty list when
    nothing fits (even the rarest word says little about an event, as a stop word does, and
    ranking its matches would cost more than the whole search may take). The vocabulary's
    terms never take the place of the question's own words, and never raise the estimate
    above ``FTS_BUDGET``, the bound the question alone has."""
    kept, total, complete = [], 0.0, True
    for words, budget in ((lexemes, FTS_BUDGET), (extra or [], VOCABULARY_BUDGET)):
        spent = 0.0
        for n, lex in sorted((shares.get(lex, 0.0) * events, lex) for lex in words):
            if total + n > FTS_BUDGET or spent + n > budget:
                complete = False
                break  # the rest of this group is commoner still
            kept.append(lex)
            total += n
            spent += n
    return None if complete else kept


def text_ranking(conn: Connection, tenant_id: uuid.UUID, text: str, filters: EventFilters,
                 depth: int = DEPTH, svc=None, need: int | None = None,
                 narrow: bool = False, vocabulary: bool = True) -> list[uuid.UUID]:
    """The tenant's events whose rendering matches any of the query's lexemes, ranked by
    ``ts_rank``, best first (the newest first among equals). With ``vocabulary``, the
    terms the search vocabulary maps the query's words to are looked for too
    (``search_vocabulary``: "turned off" also looks for "stop" and "disable"). With
    ``svc``, words too common in a large tenant to rank all their matches are left out
    (``affordable_lexemes``). With filters, the best
    ``TEXT_CANDIDATES`` matches are filtered, then twenty times as many; those that pass
    are the filtered ranking's head, and only when fewer than ``need`` (default ``depth``)
    pass is every match ranked. With ``narrow`` (the filters match few events:
    ``narrow_filter``), the events the filters match are ranked directly: the same ranking
    as ranking every match that passes."""
    extra = expansion_terms(text) if vocabulary else ""
    query = or_query(f"{text} {extra}".strip())
    if svc is not None:
        events, shares = lexeme_shares(svc, conn, tenant_id)
        if shares:
            own, added = conn.execute(select(
                func.tsvector_to_array(func.to_tsvector(FTS_CONFIG, text)),
                func.tsvector_to_array(func.to_tsvector(FTS_CONFIG, extra)))).one()
            own = list(own or [])
            kept = affordable_lexemes(own, events, shares,
                                      [lex for lex in added or [] if lex not in own])
            if kept is not None:
                if not kept:
                    return []
                query = tsquery_of(kept)
    where = build_filters(filters)
    s = audit_search_text.alias("s")
    rank = func.ts_rank(s.c.tsv, query)
    if narrow and where:
        f = _matching(tenant_id, filters)
        stmt = (select(s.c.event_id)
                .select_from(f.join(s, and_(s.c.tenant_id == tenant_id,
                                            s.c.event_id == f.c.id)))
                .where(s.c.tsv.op("@@")(query))
                .order_by(rank.desc(), s.c.event_id.desc()).limit(depth))
        return list(conn.execute(stmt).scalars())
    for fetch in (TEXT_CANDIDATES, 20 * TEXT_CANDIDATES) if where else (depth,):
        m = func.trailseal_text_matches(query, fetch).table_valued(
            column("event_id", UUID(as_uuid=True)), column("rank", REAL)).alias("m")
        candidates = list(conn.execute(select(m.c.event_id).order_by(
            m.c.rank.desc(), m.c.event_id.desc())).scalars())
        if not where:
            return candidates
        # one query for every candidate, the ids as one array parameter
        ids = literal(candidates, ARRAY(UUID(as_uuid=True)))
        passing = set(conn.execute(
            select(a.c.id).select_from(a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                                           i.c.event_id == a.c.id)))
            .where(a.c.tenant_id == tenant_id, a.c.id == any_(ids), *where)).scalars())
        ranked = [eid for eid in candidates if eid in passing][:depth]
        if (len(ranked) >= (depth if need is None else min(need, depth))
                or len(candidates) < fetch):
            return ranked  # enough, or every match was a candidate
    # A narrow filter: rank every match that passes it (row-level security keeps this to
    # the tenant's rows; it reads each of them, so it is exact rather than fast).
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
            narrow = narrow_filter(conn, tid, body.filters, int(svc.config.get(
                "SEARCH_NARROW_FILTER_EVENTS", NARROW_FILTER_EVENTS)))
            by_vector = (vector_ranking(conn, tid, vector, model, body.filters,
                                        need=body.limit, narrow=narrow)
                         if vector is not None else [])
            by_text = text_ranking(conn, tid, body.query, body.filters, svc=svc,
                                   need=body.limit, narrow=narrow)
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
