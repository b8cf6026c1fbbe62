"""What the pages read, through the same services as the API: scoped to the signed-in
user's tenant, and recorded in the tenant's access log like every read of the trail."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from trailseal.api.requests import access_record
from trailseal.core import current_services


def _principal():
    return current_user.principal


def stats() -> dict[str, Any]:
    from trailseal.services.stats import read_dashboard_stats

    return read_dashboard_stats(current_services(), _principal(), None, access_record())


def anomalies(limit: int = 50, status: str | None = None) -> dict[str, Any]:
    from trailseal.services.anomalies import read_anomalies_page

    return read_anomalies_page(current_services(), _principal(), access_record(),
                               limit=limit, status=status)
