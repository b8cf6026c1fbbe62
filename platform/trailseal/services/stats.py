"""Dashboard statistics: window counts, rankings and breakdowns (cached briefly in Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import redis
from sqlalchemy import DateTime, and_, func, literal, select
from sqlalchemy.engine import Connection

from ..tables import audit_logs, chain_heads, event_insights
from .access import AccessRecord, audited_read
from .chain import format_ts
from .tenancy import Principal

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
TOP_N = 10
SEVERITIES = ("info", "low", "medium", "high", "critical")

a = audit_logs.alias("a")
i = event_insights.alias("i")


def compute_stats(conn: Connection, tenant_id: uuid.UUID, as_of: datetime) -> dict:
    """Counts per window ending at ``as_of`` (``occurred_at`` in ``(as_of - w, as_of]``) and,
    over the 30-day window, top actors, top event types and category/severity breakdowns
    (each breakdown sums to the 30-day count; ties rank by name)."""
    since = as_of - WINDOWS["30d"]
    at = literal(as_of, DateTime(timezone=True))
    in_30d = and_(a.c.occurred_at > since, a.c.occurred_at <= as_of)
    counts = conn.execute(
        select(
            func.count().filter(a.c.occurred_at > at - WINDOWS["24h"]).label("c24"),
            func.count().filter(a.c.occurred_at > at - WINDOWS["7d"]).label("c7"),
            func.count().label("c30"),
        ).where(in_30d)
    ).mappings().one()
    # Every event of the chain (seq runs 1..last_seq without gaps; nothing is ever removed)
    # less those dated after ``as_of``: an index lookup and a short range scan, where
    # counting a large tenant's rows would take seconds.
    head = conn.execute(select(chain_heads.c.last_seq)
                        .where(chain_heads.c.tenant_id == tenant_id)).scalar()
    later = conn.execute(
        select(func.count()).select_from(a).where(a.c.occurred_at > as_of)
    ).scalar_one()
    total = max(0, int(head or 0) - later)

    def ranked(column) -> list[dict]:
        # Only the category breakdown needs the insights join.
        source = a
        if column.table is i:
            source = a.outerjoin(i, and_(i.c.tenant_id == a.c.tenant_id,
                                         i.c.event_id == a.c.id))
        n = func.count().label("n")
        stmt = (select(column.label("name"), n).select_from(source).where(in_30d)
                .group_by(column).order_by(n.desc(), column.asc()))
        return [{"name": r["name"], "count": r["n"]}
                for r in conn.execute(stmt).mappings()]

    severity = dict.fromkeys(SEVERITIES, 0)
    for item in ranked(a.c.severity):
        severity[item["name"]] = item["count"]
    categories: dict[str, int] = {}
    for item in ranked(i.c.category):
        name = item["name"] or "uncategorized"
        categories[name] = categories.get(name, 0) + item["count"]
    return {
        "as_of": format_ts(as_of),
        "counts": {"24h": counts["c24"], "7d": counts["c7"], "30d": counts["c30"],
                   "total": total},
        "top_actors": ranked(a.c.actor_id)[:TOP_N],
        "top_event_types": ranked(a.c.event_type)[:TOP_N],
        "severity_breakdown": severity,
        "category_breakdown": categories,
        "window": "30d",
    }


def cache_key(tenant_id: uuid.UUID) -> str:
    """The Redis key of a tenant's cached statistics (as of the time they were computed)."""
    return f"trailseal:stats:{tenant_id}"


def read_dashboard_stats(svc, principal: Principal, as_of: datetime | None,
                         access: AccessRecord) -> dict:
    """The caller's statistics, the read recorded in the access log.

    Without ``as_of`` they are as of now and served from Redis for up to
    ``STATS_CACHE_SECONDS`` (``"cached": true`` then); an explicit ``as_of`` is always
    computed. The cache is an optimisation only: with Redis down the figures are computed.
    """
    key = cache_key(principal.tenant_id)
    with audited_read(svc, principal, access) as conn:
        if as_of is None:
            cached = _cache_get(svc, key)
            if cached is not None:
                data = orjson.loads(cached)
                data["cached"] = True
                return data
        data = compute_stats(conn, principal.tenant_id, as_of or datetime.now(UTC))
    if as_of is None:
        _cache_set(svc, key, orjson.dumps(data), int(svc.config["STATS_CACHE_SECONDS"]))
    data["cached"] = False
    return data


def _cache_get(svc, key: str) -> bytes | None:
    try:
        return svc.redis.get(key)
    except redis.RedisError:
        return None  # the cache is an optimisation: compute instead


def _cache_set(svc, key: str, value: bytes, ttl: int) -> None:
    try:
        svc.redis.set(key, value, ex=ttl)
    except redis.RedisError:
        pass
