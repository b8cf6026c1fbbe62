"""The core's own hook implementations (always registered): its recurring jobs."""

from __future__ import annotations

from .config import load_config
from .hookspecs import hookimpl
from .types import JobSpec


@hookimpl(trylast=True)
def register_jobs():
    from .jobs.checkpoints import checkpoint_all
    from .jobs.enrichment import index_backlog_all_tenants, reconcile_enrichment, verify_all_chains
    from .jobs.notifications import deliver_due_notifications
    from .jobs.reports import send_due_reports
    from .jobs.retention import retention_all
    from .jobs.search import build_search_indexes
    from .jobs.summaries import store_summaries_all_tenants
    from .jobs.tenant_deletion import tenant_deletions_all
    from .jobs.usage import usage_job

    return [
        JobSpec(reconcile_enrichment, queue="low", interval=300, name="reconcile-enrichment"),
        JobSpec(index_backlog_all_tenants, queue="low", interval=600, name="search-backlog",
                timeout=3600),
        JobSpec(verify_all_chains, queue="low", cron="17 3 * * *", name="verify-chains",
                timeout=6 * 3600),
        JobSpec(usage_job, queue="low", cron="7 * * * *", name="usage", timeout=3600),
        # Retries of notifications: the interval bounds how late a due retry is sent.
        JobSpec(deliver_due_notifications, queue="default",
                interval=int(load_config()["NOTIFY_SWEEP_SECONDS"]), name="notify-retries",
                timeout=3600),
        JobSpec(send_due_reports, queue="default", cron="* * * * *",
                name="scheduled-reports", timeout=3600),
        JobSpec(store_summaries_all_tenants, queue="low", interval=900, name="summaries",
                timeout=3600),
        JobSpec(checkpoint_all, queue="low", cron="7 * * * *", name="checkpoints",
                timeout=3600),
        JobSpec(retention_all, queue="low", cron="37 2 * * *", name="retention",
                timeout=6 * 3600),
        JobSpec(tenant_deletions_all, queue="low", cron="47 2 * * *", name="tenant-deletions",
                timeout=6 * 3600),
        # Per-tenant vector indexes once a tenant is large enough for them to pay off (an
        # index of a million vectors takes a few minutes to build).
        JobSpec(build_search_indexes, queue="low", cron="27 * * * *", name="search-indexes",
                timeout=6 * 3600),
    ]
