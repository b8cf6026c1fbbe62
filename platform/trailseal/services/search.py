"""Searching the trail in plain language: hybrid ranking of vector similarity and PostgreSQL
full-text search, fused by reciprocal rank, and answers grounded in the events found.

Both rankings run inside the caller's tenant (row-level security, and an explicit
``tenant_id`` condition so the planner uses the tenant's index):

- vectors: an exact scan, ``ORDER BY embedding <=> query`` over the tenant's embeddings of
  the current model. pgvector 0.6 has no iterative index scans, so an HNSW scan with a tenant
  filter returns fewer rows than asked when the tenant is a small share of the table; the
  exact scan has recall 1 by construction and costs time linear in the tenant's events
  (``bench/eval_search.py`` measures it);
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
from sqlalchemy import Text, and_, cast, func, literal, select
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Connection

from ..db import driver_cursor
from ..schemas import EventFilters, SearchIn
from ..tables import audit_embeddings, audit_search_text
from .access import AccessRecord, audited_read
from .events import EVENT_COLUMNS, EVENTS_WITH_INSIGHTS, a, build_filters, i, row_to_event
from .narration import ground_answer, narrate_text
from .search_index import FTS_CONFIG
from .subject_keys import EventDecryptor
from .tenancy import Principal

log = logging.getLogger(__name__)

RRF_K = 60  # the usual constant of reciprocal-rank fusion: damps the head of each list
DEPTH = 100  # candidates each ranking contributes to the fusion
SEARCH_CACHE_SECONDS = 600


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


def text_ranking(conn: Connection, tenant_id: uuid.UUID, text: str, filters: EventFilters,
                 depth: int = DEPTH) -> list[uuid.UUID]:
    """The tenant's events whose rendering matches any of the query's lexemes, ranked by
    ``ts_rank``, best first."""
    s = audit_search_text.alias("s")
    query = or_query(text)
    rank = func.ts_rank(s.c.tsv, query)
    stmt = _filtered(select(s.c.event_id), s, filters).where(
        s.c.tenant_id == tenant_id, s.c.tsv.op("@@")(query),
    ).order_by(rank.desc(), s.c.event_id).limit(depth)
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
            by_vector = (vector_ranking(conn, tid, vector, model, body.filters)
                         if vector is not None else [])
            by_text = text_ranking(conn, tid, body.query, body.filters)
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
