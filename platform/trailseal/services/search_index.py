"""The derived data search reads: each event's full-text vector (``audit_search_text``) and
its embeddings (``audit_embeddings``), written by enrichment and by the embedding backlog.

They are made from ``Event.text()`` and ``Event.embedding_text()``, decrypted renderings, so
they are as sensitive as the details they come from and live under the same row-level
security as the events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ..tables import audit_embeddings, audit_logs, audit_search_text
from ..types import Event

#: The text search configuration of the index and of queries (stemming, stop words).
FTS_CONFIG = literal_column("'english'::regconfig")
#: Events the backlog embeds per transaction.
BACKLOG_BATCH = 256


def store_search_text(conn: Connection, tenant_id: uuid.UUID, events: Sequence[Event]) -> None:
    """Upsert the full-text vector of each event's rendering (in the caller's transaction)."""
    if not events:
        return
    stmt = pg_insert(audit_search_text).values(
        tenant_id=bindparam("tenant_id"), event_id=bindparam("event_id"),
        tsv=func.to_tsvector(FTS_CONFIG, bindparam("body")))
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id", "event_id"],
                                   set_={"tsv": stmt.excluded.tsv, "indexed_at": func.now()}),
        [{"tenant_id": tenant_id, "event_id": uuid.UUID(e.id), "body": e.text()}
         for e in events])


def store_embeddings(conn: Connection, tenant_id: uuid.UUID, events: Sequence[Event],
                     embedded: dict[str, Any] | None) -> int:
    """Upsert the vectors an ``embed_texts`` answer holds (one per event, in order) under
    its model name; returns how many were written (0 when there was no answer)."""
    if not embedded or not embedded.get("vectors"):
        return 0
    vectors = embedded["vectors"]
    if len(vectors) != len(events):
        raise ValueError(f"embed_texts returned {len(vectors)} vectors for {len(events)} texts")
    model = str(embedded.get("model") or "default")
    stmt = pg_insert(audit_embeddings)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "event_id", "model"],
            set_={"embedding": stmt.excluded.embedding, "dims": stmt.excluded.dims,
                  "created_at": func.now()},
        ),
        [{"event_id": uuid.UUID(e.id), "tenant_id": tenant_id, "model": model,
          "dims": len(vec), "embedding": [float(x) for x in vec]}
         for e, vec in zip(events, vectors, strict=True)],
    )
    return len(events)


def current_embedding_model(pm, tenant_id: str) -> str | None:
    """The model name the installed embedder answers with for this tenant (None when no
    embedder is installed): what new vectors are stored under and what search compares."""
    answer = pm.hook.embed_texts(texts=["trailseal"], model=None, tenant_id=tenant_id)
    if not answer or not answer.get("vectors"):
        return None
    return str(answer.get("model") or "default")


def find_unindexed(conn: Connection, model: str | None, after_seq: int = 0,
                   limit: int = BACKLOG_BATCH) -> list[int]:
    """Seqs (ascending, after ``after_seq``) of the tenant's events that lack a full-text
    vector or, when ``model`` is given, an embedding of that model."""
    a = audit_logs.alias("a")
    s = audit_search_text.alias("s")
    e = audit_embeddings.alias("e")
    missing = ~exists().where(s.c.tenant_id == a.c.tenant_id, s.c.event_id == a.c.id)
    if model is not None:
        missing = missing | ~exists().where(e.c.tenant_id == a.c.tenant_id,
                                            e.c.event_id == a.c.id, e.c.model == model)
    stmt = (select(a.c.seq).where(a.c.seq > after_seq, missing).order_by(a.c.seq)
            .limit(limit))
    return list(conn.execute(stmt).scalars())
