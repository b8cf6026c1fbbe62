"""Dashboard statistics: window counts, rankings and breakdowns (cached briefly in Redis)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from .chain import format_ts

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
TOP_N = 10


def compute_stats(cur, tenant_id: uuid.UUID, as_of: datetime) -> dict:
    """Counts per window ending at ``as_of`` (``occurred_at`` in ``(as_of - w, as_of]``) and,
    over the 30-day window, top actors, top event types and category/severity breakdowns
    (each breakdown sums to the 30-day count; ties rank by name)."""
    since = as_of - WINDOWS["30d"]
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE occurred_at > %(a)s - interval '24 hours'),
               count(*) FILTER (WHERE occurred_at > %(a)s - interval '7 days'),
               count(*)
          FROM audit_logs WHERE occurred_at > %(s)s AND occurred_at <= %(a)s
        """,
        {"a": as_of, "s": since},
    )
    c24, c7, c30 = cur.fetchone()
    cur.execute("SELECT count(*) FROM audit_logs WHERE occurred_at <= %s", (as_of,))
    total = cur.fetchone()[0]

    def ranked(column: str) -> list[dict]:
        # Only the category breakdown needs the insights join.
        join = ("LEFT JOIN event_insights i ON i.tenant_id = a.tenant_id AND i.event_id = a.id "
                if column.startswith("i.") else "")
        cur.execute(
            f"SELECT {column}, count(*) AS n FROM audit_logs a {join}"
            "WHERE a.occurred_at > %s AND a.occurred_at <= %s "
            f"GROUP BY 1 ORDER BY n DESC, 1 ASC",
            (since, as_of),
        )
        return [{"name": r[0], "count": r[1]} for r in cur.fetchall()]

    severity = {s: 0 for s in ("info", "low", "medium", "high", "critical")}
    for item in ranked("a.severity"):
        severity[item["name"]] = item["count"]
    categories: dict[str, int] = {}
    for item in ranked("i.category"):
        name = item["name"] or "uncategorized"
        categories[name] = categories.get(name, 0) + item["count"]
    return {
        "as_of": format_ts(as_of),
        "counts": {"24h": c24, "7d": c7, "30d": c30, "total": total},
        "top_actors": ranked("a.actor_id")[:TOP_N],
        "top_event_types": ranked("a.event_type")[:TOP_N],
        "severity_breakdown": severity,
        "category_breakdown": categories,
        "window": "30d",
    }
