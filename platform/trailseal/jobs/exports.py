"""The export job: writes a document export (PDF) too large to write while the client
waits (see ``services.export_jobs``)."""

from __future__ import annotations

from ..core import current_services
from ..services import export_jobs


def write_export(tenant_id: str, job_id: str) -> str:
    """Write export job ``job_id`` of ``tenant_id`` and keep the file for download."""
    return export_jobs.write_export(current_services(), tenant_id, job_id)
