"""Every plugin hook. Each docstring is the reference for plugin authors (docs/plugins.md).

Call hooks with keyword arguments. Implementations may accept fewer arguments than the
spec; specs only ever gain arguments.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("trailseal")

# --- lifecycle -----------------------------------------------------------------------


@hookspec
def startup(app: Any) -> None:
    """Called once when the Flask app has been created and its services are ready."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the ``trailseal`` command group ``cli``."""


@hookspec
def register_routes(app: Any) -> list[Any] | None:
    """Return Flask blueprints to register on the app."""


@hookspec
def register_dashboards(app: Any) -> list[Any] | None:
    """Return dashboard page descriptions to mount under ``/dash/``."""


@hookspec
def register_jobs() -> list[Any] | None:
    """Return ``trailseal.types.JobSpec`` entries for the cron scheduler."""


# --- enrichment ----------------------------------------------------------------------


@hookspec
def register_detectors() -> list[Any] | None:
    """Return anomaly detectors: objects with ``name`` and ``score(events) -> list[Finding]``."""


@hookspec
def register_classifiers() -> list[Any] | None:
    """Return classifiers: objects with ``name`` and ``classify(events) -> list[Classification]``."""


@hookspec(firstresult=True)
def embed_texts(texts: list[str], model: str | None) -> dict[str, Any] | None:
    """Embed ``texts``; return ``{"model": name, "vectors": [[float, ...], ...]}`` or None."""


@hookspec(firstresult=True)
def narrate(kind: str, context: dict[str, Any]) -> str | None:
    """Write plain-language text of ``kind`` (summary, explanation, answer) from ``context``."""


# --- outputs -------------------------------------------------------------------------


@hookspec
def export_formats() -> list[Any] | None:
    """Return exporters: objects with ``name``, ``media_type`` and ``export(events, context)``."""


@hookspec
def notification_channels() -> list[Any] | None:
    """Return notification channel descriptions (``kind`` plus a config schema)."""


@hookspec(firstresult=True)
def notify(kind: str, config: dict[str, Any], message: dict[str, Any]) -> bool | None:
    """Deliver ``message`` over channel ``kind``; return True when this plugin handled it."""


@hookspec
def importers() -> list[Any] | None:
    """Return importers: objects with ``name`` and ``parse(stream) -> iterable of event dicts``."""


# --- events --------------------------------------------------------------------------


@hookspec
def event_ingested(tenant_id: str, event_ids: list[str], first_seq: int, last_seq: int) -> None:
    """Called after events were committed to a tenant's chain (once per append call)."""


@hookspec
def anomaly_detected(alert: Any) -> None:
    """Called with a ``trailseal.types.Alert`` when an alert is raised (chain break, anomaly)."""
