"""The summaries job: store each tenant's last complete daily, weekly and monthly summaries,
so ``GET /api/v1/summary/{period}`` serves them instantly."""

from __future__ import annotations

import logging

from ..core import current_services

log = logging.getLogger(__name__)


def store_summaries_all_tenants() -> dict[str, list[str]]:
    """``store_due_summaries`` for every tenant (the scheduled job, every 15 minutes: a
    tenant's day ends at its own local midnight, which is a quarter hour in some zones).
    Idempotent: a summary already stored and still valid is left alone. The periods
    computed, by tenant."""
    from ..services.summaries import store_due_summaries
    from ..services.tenancy import tenant_ids

    svc = current_services()
    done: dict[str, list[str]] = {}
    for tid in tenant_ids(svc):
        try:
            periods = store_due_summaries(svc, tid)
        except Exception:  # noqa: BLE001 - one tenant's failure must not stop the others
            log.exception("summaries of tenant %s failed", tid)
            continue
        if periods:
            done[str(tid)] = periods
    if done:
        log.info("summaries stored: %s", done)
    return done
