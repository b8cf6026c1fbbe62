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


def anomalies(limit: int = 50, status: str | None = None,
              cursor: str | None = None) -> dict[str, Any]:
    from trailseal.services.anomalies import read_anomalies_page

    return read_anomalies_page(current_services(), _principal(), access_record(),
                               limit=limit, status=status, cursor=cursor)


def verify_chain() -> dict[str, Any]:
    from trailseal.services.integrity import verify_chain_recorded

    return verify_chain_recorded(current_services(), _principal(), access_record()).to_dict()


def last_verification() -> dict[str, Any] | None:
    """The tenant's latest chain verification (by anyone, or the nightly job), or None."""
    from trailseal.services.integrity import last_verification as read

    return read(current_services(), _principal().tenant_id)


def latest_checkpoint() -> dict[str, Any] | None:
    """The tenant's newest signed checkpoint, or None before the first."""
    from trailseal.services.checkpoints import list_checkpoints

    found = list_checkpoints(current_services(), _principal(), access_record(), limit=1)
    return (found["checkpoints"] or [None])[0]


def models(limit: int = 20) -> list[dict[str, Any]]:
    from trailseal.services.anomalies import read_models

    return read_models(current_services(), _principal(), access_record(), limit=limit)["models"]


def bias_metrics(limit: int = 60) -> list[dict[str, Any]]:
    from trailseal.services.anomalies import read_bias_metrics

    return read_bias_metrics(current_services(), _principal(), access_record(),
                             limit=limit)["metrics"]


def mark_false_positive(alert_id: str, notes: str) -> dict[str, Any]:
    """The analyst's verdict, recorded with who and when (``audit:review``)."""
    from trailseal.errors import Forbidden
    from trailseal.services.anomalies import give_feedback

    p = _principal()
    if not p.can("audit:review"):
        raise Forbidden("marking anomalies needs the audit:review permission")
    return give_feedback(current_services(), p.tenant_id, alert_id, is_false_positive=True,
                         notes=notes, given_by=f"user:{p.id}")


def events_page(filters: dict[str, Any], limit: int = 300, cursor: str | None = None
                ) -> dict[str, Any]:
    """Newest first, with the events API's filters (validated the same way: a bad value
    raises ``ValidationError``, which the page shows)."""
    from trailseal.schemas import EventQuery
    from trailseal.services.events import read_events_page

    q = EventQuery(**{k: v for k, v in filters.items() if v not in (None, "", [])},
                   limit=limit, cursor=cursor)
    return read_events_page(current_services(), _principal(), q, access_record(),
                            max_bytes=int(current_services().config["PAGE_MAX_BYTES"]))


def event(event_id: str) -> dict[str, Any]:
    from trailseal.services.events import read_event

    return read_event(current_services(), _principal(), event_id, access_record())


def search(question: str, limit: int = 10) -> dict[str, Any]:
    from trailseal.schemas import SearchIn
    from trailseal.services.search import search_events

    return search_events(current_services(), _principal(),
                         SearchIn(query=question, limit=limit, answer=True), access_record())


def newest_critical_id() -> str | None:
    """The id of the tenant's newest critical anomaly alert: metadata only, so polling it is
    not recorded (showing the alert is)."""
    from sqlalchemy import text

    with current_services().db.transaction(_principal().tenant_id) as conn:
        found = conn.execute(text(
            "SELECT id FROM audit_anomalies WHERE kind = 'anomaly' AND severity = 'critical' "
            "ORDER BY created_at DESC, id DESC LIMIT 1")).scalar()
    return str(found) if found else None


def critical_since(seen: str | None) -> list[dict[str, Any]]:
    """Open critical anomalies newer than the one with id ``seen`` (newest first, at most 5;
    the read recorded in the access log)."""
    page = anomalies(limit=5, status="open")["anomalies"]
    out = []
    for a in page:
        if a["id"] == seen:
            break
        if a["severity"] == "critical":
            out.append(a)
    return out


# --- Reports & integrations (admins) --------------------------------------------------------


def _admin():
    """The signed-in admin; changing channels and schedules needs ``audit:admin``."""
    from trailseal.errors import Forbidden

    p = _principal()
    if not p.can("audit:admin"):
        raise Forbidden("channels and report schedules need the audit:admin permission")
    return p


def channel_kinds() -> dict[str, Any]:
    """The notification channel kinds installed, by kind (``NotificationChannel``)."""
    from trailseal.services.integrations import channels

    return channels(current_services().pm)


def integrations() -> list[dict[str, Any]]:
    from trailseal.services.integrations import list_integrations

    return list_integrations(current_services(), _admin(), access_record())["integrations"]


def dead_letters(integration_id: str) -> list[dict[str, Any]]:
    from trailseal.services.deliveries import list_deliveries

    return list_deliveries(current_services(), _admin(), integration_id, access_record(),
                           status="dead", limit=20)["deliveries"]


def add_integration(body: dict[str, Any]) -> dict[str, Any]:
    from trailseal.services.integrations import create_integration

    return create_integration(current_services(), _admin(), body)


def remove_integration(integration_id: str) -> None:
    from trailseal.services.integrations import delete_integration

    delete_integration(current_services(), _admin(), integration_id)


def test_integration(integration_id: str) -> dict[str, Any]:
    from trailseal.services.deliveries import send_test

    return send_test(current_services(), _admin(), integration_id)


def report_schedules() -> list[dict[str, Any]]:
    from trailseal.services.reports import read_schedules

    return read_schedules(current_services(), _admin(), access_record())["schedules"]


def report_mail_problem() -> str | None:
    from trailseal.services.reports import mail_problem

    return mail_problem(current_services())


def export_formats() -> list[str]:
    from trailseal.services.exports import registered_exporters

    return sorted(registered_exporters(current_services().pm))


def add_schedule(body: dict[str, Any]) -> dict[str, Any]:
    """Validated like the API's body (a bad value raises ``ValidationError``)."""
    from trailseal.schemas import ReportScheduleIn
    from trailseal.services.reports import create_schedule

    return create_schedule(current_services(), _admin(), ReportScheduleIn.model_validate(body))


def remove_schedule(schedule_id: str) -> None:
    from trailseal.services.reports import delete_schedule

    delete_schedule(current_services(), _admin(), schedule_id)


def run_schedule(schedule_id: str) -> dict[str, Any]:
    from trailseal.services.reports import start_report_run

    return start_report_run(current_services(), _admin(), schedule_id)
