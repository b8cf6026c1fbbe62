"""Liveness of the services the app depends on: the database and Redis (``/healthz``), and
the depth of the job queues (``/metrics``)."""

from __future__ import annotations

from sqlalchemy import literal, select


def check_health(svc) -> dict:
    """``{"status": "ok"|"degraded", "checks": {"database": ..., "redis": ...}}``: each check
    is ``"ok"`` or ``"error: <exception type>"`` (never the message: the probe is public)."""
    checks = {}
    try:
        with svc.db.transaction() as conn:
            conn.execute(select(literal(1)))
        checks["database"] = "ok"
    except Exception as exc:  # report, don't raise: this is the health probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        svc.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}


def queue_depths(svc) -> dict[str, int] | None:
    """Jobs waiting per RQ queue, or None when Redis does not answer."""
    try:
        return {name: queue.count for name, queue in svc.queues.items()}
    except Exception:  # Redis down: the caller reports it rather than failing
        return None
