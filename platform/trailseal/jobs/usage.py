"""The ``usage`` job: usage counters into the database, and every tenant's storage measured."""

from __future__ import annotations

from ..core import current_services
from ..services.usage import flush_usage, snapshot_storage


def usage_job() -> dict[str, int]:
    """Flush the counters, then snapshot every tenant's storage (``services.usage``)."""
    svc = current_services()
    added = flush_usage(svc)
    tenants = svc.tenant_ids()
    for tenant_id in tenants:
        snapshot_storage(svc, tenant_id)
    return {"batches": added, "tenants": len(tenants)}
