"""Every plugin hook. Each docstring is the reference for plugin authors (docs/plugins.md).

Both markers live here (``hookspec`` for these specifications, ``hookimpl`` for
implementations, re-exported as ``trailseal.hookimpl``), so built-in plugins and third-party
ones import the same thing and nothing here imports the plugin manager.

Call hooks with keyword arguments. Implementations may accept fewer arguments than the
spec; specs only ever gain arguments. Hooks that nothing in Trailseal calls yet are marked
``RESERVED``: implementing one warns (``FutureWarning``) until the capability that calls it
lands, so nobody mistakes it for a working extension point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import click
    import flask

    from .types import (
        Alert,
        Classifier,
        DashboardPage,
        Detector,
        Exporter,
        Importer,
        JobSpec,
        NotificationChannel,
        Outbound,
        ReportMailer,
    )

hookspec = pluggy.HookspecMarker("trailseal")
hookimpl = pluggy.HookimplMarker("trailseal")


def _reserved(capability: str) -> FutureWarning:
    return FutureWarning(
        f"nothing calls this hook yet: it is reserved for {capability}; an implementation is "
        "registered but has no effect in this version"
    )


RESERVED: dict[str, str] = {}

# --- lifecycle -----------------------------------------------------------------------


@hookspec
def startup(app: flask.Flask) -> None:
    """Called once when the Flask app has been created and its services are ready."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the ``trailseal`` command group ``cli``."""


@hookspec
def register_routes(app: flask.Flask) -> list[flask.Blueprint] | None:
    """Return Flask blueprints to register on the app (guard views with
    ``trailseal.require_permission``)."""


@hookspec
def register_dashboards(app: flask.Flask) -> list[DashboardPage] | None:
    """Return dashboard pages (``trailseal.types.DashboardPage``) to mount under ``/dash/``;
    the app keeps them, in order, in ``app.extensions["trailseal_pages"]``."""


@hookspec
def register_jobs() -> list[JobSpec] | None:
    """Return ``trailseal.types.JobSpec`` entries for the cron scheduler."""


# --- enrichment ----------------------------------------------------------------------


@hookspec
def register_detectors(tenant_id: str) -> list[Detector] | None:
    """Return anomaly detectors (``trailseal.types.Detector``) for the events of
    ``tenant_id``."""


@hookspec
def register_classifiers(tenant_id: str) -> list[Classifier] | None:
    """Return classifiers (``trailseal.types.Classifier``) for the events of ``tenant_id``."""


@hookspec(firstresult=True)
def embed_texts(texts: list[str], model: str | None, tenant_id: str) -> dict[str, Any] | None:
    """Embed ``texts`` (event renderings, ``Event.embedding_text()``, or a search question);
    return ``{"model": name, "vectors": [[float, ...], ...]}`` with one vector per text, or
    None.
    ``model`` names the model wanted (the backlog job asks for the current one); answer None
    for a model that is not yours."""


@hookspec(firstresult=True)
def narrate(kind: str, context: dict[str, Any], tenant_id: str) -> str | None:
    """Write plain-language text of ``kind`` from ``context``; return None to let another
    plugin answer. ``answer``: ``context`` holds ``question`` and ``events`` (search results,
    best first); cite each claim's events as ``[<event id>]``, one claim per line. Citations
    of events not in ``events`` are removed, with any line left without one. ``summary``:
    ``context`` is a period's summary (``GET /api/v1/summary/{period}`` without
    ``narrative``, ``sources``, ``stored``); only citations of the tenant's events in its
    window are kept. ``explanation``: ``context`` is an event's explanation
    (``GET /api/v1/events/{id}/explain`` without ``narrative`` and ``sources``); only
    citations of the event, the actor's recent events and the related events are kept."""


# --- outputs -------------------------------------------------------------------------


@hookspec
def export_formats() -> list[Exporter] | None:
    """Return exporters (``trailseal.types.Exporter``): the formats of
    ``POST /api/v1/export/{name}``."""


@hookspec
def notification_channels() -> list[NotificationChannel] | None:
    """Return notification channels (``trailseal.types.NotificationChannel``): the ``type``
    values of ``POST /api/v1/integrations`` and the JSON Schema their ``config`` must meet."""


@hookspec(firstresult=True)
def notify(kind: str, config: dict[str, Any], message: dict[str, Any], tenant_id: str,
           outbound: Outbound) -> bool | None:
    """Deliver ``message`` (an alert, or a test, see docs/plugins.md) over channel ``kind``
    with the integration's ``config`` (secrets decrypted), sending through ``outbound``
    (``trailseal.types.Outbound``); return True when this plugin handled ``kind``, None to
    let another plugin answer. Raise to fail the attempt: the delivery is retried."""


@hookspec(firstresult=True)
def report_mailer() -> ReportMailer | None:
    """Return the ``trailseal.types.ReportMailer`` that mails scheduled reports (the first
    answer wins; the built-in one sends with the ``TRAILSEAL_SMTP_*`` settings)."""


@hookspec
def importers() -> list[Importer] | None:
    """Return importers (``trailseal.types.Importer``): the formats of
    ``trailseal import --format``."""


# --- events --------------------------------------------------------------------------


@hookspec
def event_ingested(tenant_id: str, event_ids: list[str], first_seq: int, last_seq: int) -> None:
    """Called after events were committed to a tenant's chain (once per append call)."""


@hookspec
def anomaly_detected(alert: Alert) -> None:
    """Called with a ``trailseal.types.Alert`` when an alert is raised (chain break, anomaly,
    or one a plugin raised)."""
