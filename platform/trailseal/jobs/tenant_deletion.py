"""Tenant deletion jobs (``services.tenant_deletion``): one deletion's next steps, queued
at its confirmation, and the daily pass over every open deletion (archives what is
confirmed, purges what is due)."""

from __future__ import annotations

import logging

from ..core import current_services

log = logging.getLogger(__name__)


def process_tenant_deletion(tenant_id: str, deletion_id: str) -> dict:
    """Archive and mark a confirmed deletion (and purge it if already due)."""
    from ..services.tenant_deletion import process_deletion

    result = process_deletion(current_services(), tenant_id, deletion_id)
    log.info("tenant deletion %s of tenant %s: %s", deletion_id, tenant_id,
             ", ".join(result["done"]) or "nothing due")
    return {"done": result["done"], "state": result["deletion"]["state"]}


def tenant_deletions_all() -> dict[str, list[str]]:
    """Every open deletion's due steps; what was done, by tenant id."""
    from ..services.tenant_deletion import process_all

    done = process_all(current_services())
    if done:
        log.info("tenant deletions: %s", done)
    return done
