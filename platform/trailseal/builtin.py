"""The core's own hook implementations (always registered): its recurring jobs."""

from __future__ import annotations

from .hookspecs import hookimpl
from .types import JobSpec


@hookimpl(trylast=True)
def register_jobs():
    from .jobs.checkpoints import checkpoint_all
    from .jobs.enrichment import index_backlog_all_tenants, reconcile_enrichment, verify_all_chains

    return [
        JobSpec(reconcile_enrichment, queue="low", interval=300, name="reconcile-enrichment"),
        JobSpec(index_backlog_all_tenants, queue="low", interval=600, name="search-backlog",
                timeout=3600),
        JobSpec(verify_all_chains, queue="low", cron="17 3 * * *", name="verify-chains",
                timeout=6 * 3600),
        JobSpec(checkpoint_all, queue="low", cron="7 * * * *", name="checkpoints",
                timeout=3600),
    ]
