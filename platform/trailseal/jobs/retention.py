"""The daily retention job: archive and remove every tenant's expired, unheld chain prefix
(``services.retention``)."""

from __future__ import annotations

import logging

from ..core import current_services

log = logging.getLogger(__name__)


def retention_all() -> dict[str, int]:
    """Apply retention to every tenant; events removed, by tenant id. Idempotent: a tenant
    with nothing expired is left as it is."""
    from ..services.retention import apply_retention_all

    removed = apply_retention_all(current_services())
    if removed:
        log.info("retention removed events: %s", removed)
    return removed
