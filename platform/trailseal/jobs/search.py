"""Search's jobs: refresh a tenant's word estimates (``services.search.lexeme_shares``) so
that no search waits for them; build the per-tenant vector indexes that have become worth
it (``services.vector_index.build_due_indexes``)."""

from __future__ import annotations

import logging

from ..core import current_services
from ..services import search, vector_index

log = logging.getLogger(__name__)


def refresh_lexemes(tenant_id: str) -> int:
    """Compute the tenant's word estimates afresh; the tenant's events."""
    return search.refresh_lexeme_shares(current_services(), tenant_id)


def build_search_indexes() -> list[dict]:
    """Build or rebuild each tenant's vector index that is due (the scheduled job
    ``search-indexes``); what was built. Nothing without ``SEARCH_INDEX_AUTO`` or without
    the schema owner's connection (``ADMIN_DATABASE_URL``), or while another worker
    builds."""
    from ..db import libpq_url

    svc = current_services()
    if not svc.config.get("SEARCH_INDEX_AUTO", True):
        return []
    url = svc.config.get("ADMIN_DATABASE_URL")
    if not url:
        log.warning("search indexes are not built automatically: TRAILSEAL_ADMIN_DATABASE_URL "
                    "(the owner of audit_embeddings) is not set for the worker; run "
                    "`trailseal search-index build --all` instead")
        return []
    built = vector_index.build_due_indexes(
        libpq_url(url), int(svc.config.get("SEARCH_INDEX_MIN_VECTORS",
                                           vector_index.DEFAULT_MIN_EMBEDDINGS)))
    if built is None:
        log.info("search indexes: another worker is building them")
        return []
    for b in built:
        log.info("search index %s %s for tenant %s (%s, %d dims, %d vectors) in %.1f s",
                 b.name, "rebuilt" if b.reason == "rebuild" else "built", b.tenant_id,
                 b.model, b.dims, b.vectors, b.seconds)
    return [b.to_dict() for b in built]
