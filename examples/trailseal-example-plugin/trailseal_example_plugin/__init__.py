"""An example third-party Trailseal plugin.

- a **detector** that flags deletions outside office hours (07:00–19:00 UTC);
- a **route**, ``GET /example/ping``, guarded like the core's API, and
  ``POST /example/alerts``, which raises an alert through the public alert API;
- a **command**, ``trailseal example-hello``;
- a **job**, ``example-heartbeat``, run hourly by the scheduler;
- an ``event_ingested`` counter.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import Blueprint, current_app, jsonify, request

from trailseal import hookimpl, require_permission
from trailseal.types import Event, Finding, JobSpec

OFFICE_HOURS = range(7, 19)
INGESTED: list[int] = []
bp = Blueprint("example_plugin", __name__)


class AfterHoursDeletions:
    """Scores deletions: 0.9 outside office hours (an anomaly), 0.1 inside. Other events get
    no finding: this detector has no opinion about them."""

    name = "after-hours-deletions"

    def score(self, events: list[Event]) -> list[Finding]:
        findings = []
        for event in events:
            if not event.event_type.endswith(".deleted"):
                continue
            hour = datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00")).hour
            odd = hour not in OFFICE_HOURS
            findings.append(Finding(event.id, 0.9 if odd else 0.1, is_anomaly=odd,
                                    explanation={"hour_utc": hour}, model_version="1"))
        return findings


@hookimpl
def register_detectors(tenant_id):
    return [AfterHoursDeletions()]


@bp.get("/example/ping")
@require_permission("audit:read", params=())
def ping(tenant_id):
    return jsonify({"plugin": "example", "tenant_id": tenant_id,
                    "ingested_batches": len(INGESTED)})


@bp.post("/example/alerts")
@require_permission("audit:write")
def raise_example_alert(tenant_id):
    body = request.get_json(silent=True) or {}
    alert = current_app.extensions["trailseal"].raise_alert(
        tenant_id, kind="example.manual", severity=body.get("severity", "low"),
        title=body.get("title", "Raised by the example plugin"),
        event_id=body.get("event_id"), details={"source": "example plugin"})
    if alert is None:
        return jsonify({"raised": False}), 200
    return jsonify({"raised": True, "id": alert.id}), 201


@hookimpl
def register_routes(app):
    return [bp]


@hookimpl
def register_commands(cli):
    @cli.command("example-hello")
    def example_hello():
        """Say hello from the example plugin."""
        click.echo("hello from the example plugin")


def heartbeat() -> str:
    """Record when the plugin's job last ran (in Redis) and return the time."""
    from trailseal.jobs import current_services

    now = datetime.now(UTC).isoformat()
    current_services().redis.set("example-plugin:heartbeat", now)
    return now


@hookimpl
def register_jobs():
    return [JobSpec(heartbeat, queue="low", cron="5 * * * *", name="example-heartbeat")]


@hookimpl
def event_ingested(tenant_id, event_ids, first_seq, last_seq):
    INGESTED.append(len(event_ids))
