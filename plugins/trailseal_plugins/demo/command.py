"""``trailseal demo``: the web server here, a worker and a scheduler as children, all on the
embedded services, after loading the demo data set. The children die with this process
however it ends (``trailseal.cli.runtime.exit_with_parent``, run by every ``trailseal``
process started with ``EXIT_WITH_PARENT`` set) and are stopped and reaped on every exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from trailseal.cli import EXIT_WITH_PARENT, make_app, serve_app, stop_children, stop_on_sigterm

__all__ = ["demo"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--days", default=28, show_default=True, type=int, help="Days of demo activity.")
@click.option("--load-only", is_flag=True, help="Load the demo data and exit.")
def demo(host: str, port: int, days: int, load_only: bool) -> None:
    """Start everything on the embedded services with a realistic demo data set."""
    from .loader import (
        analyse_loaded,
        event_to_explain,
        load_demo,
        offboard_demo_tenant,
        subject_to_erase,
    )

    app = make_app()
    svc = app.extensions["trailseal"]
    summary = load_demo(svc, days=days, echo=click.echo)
    if summary["loaded"]:
        with app.app_context():
            analyse_loaded(svc, summary["loaded"], echo=click.echo)
    offboarded = offboard_demo_tenant(app, echo=click.echo)
    if load_only:
        click.echo(f"API key ({summary['api_key_tenant']}): {summary['api_key']}")
        return

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=svc.config["INSTANCE_PATH"],
               PYTHONUNBUFFERED="1", **{EXIT_WITH_PARENT: str(os.getpid())})
    # The worker and scheduler log to files so this console keeps the URL and logins.
    logs = Path(svc.config["INSTANCE_PATH"]) / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    children: list[subprocess.Popen] = []
    # Everything from the first child on is inside the try: an interrupt or an error at any
    # point stops whatever was started (the children also die with this process when it is
    # killed outright, see trailseal.cli.runtime.exit_with_parent).
    try:
        for name in ("worker", "scheduler"):
            fd = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as log_file:
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "trailseal", name], env=env, stdout=log_file,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        url = f"http://{host}:{port}"
        click.echo("")
        click.echo(f"Worker and scheduler logs: {logs}")
        click.echo(f"Trailseal is running at {url}/login (dashboards at {url}/dash/)")
        for line in summary["logins"]:
            click.echo(f"  sign in: {line}")
        click.echo(f"  API key ({summary['api_key_tenant']}): {summary['api_key']}")
        click.echo(f"  try: curl -H 'Authorization: Bearer {summary['api_key']}' {url}/api/v1/chain/verify")
        click.echo(f"  bundle for trailseal-verify: curl -H 'Authorization: Bearer "
                   f"{summary['api_key']}' -o bundle.json {url}/api/v1/chain/bundle")
        click.echo(f"  export: curl -X POST -H 'Authorization: Bearer {summary['api_key']}' "
                   "-H 'Content-Type: application/json' -d '{\"severity\": [\"high\", "
                   f"\"critical\"]}}' -o demo-high.csv {url}/api/v1/export/csv")
        click.echo(f"  ask: curl -X POST -H 'Authorization: Bearer {summary['api_key']}' "
                   "-H 'Content-Type: application/json' -d '{\"query\": \"who granted "
                   f"admin roles?\", \"answer\": true}}' {url}/api/v1/search")
        click.echo(f"  notify: POST {url}/api/v1/integrations sends alerts to Slack, Teams, "
                   "Zapier, a signed webhook or email (docs/admin-guide.md, Notification "
                   "channels); the demo sets none up, so nothing leaves this machine")
        click.echo("  reports by mail: set TRAILSEAL_SMTP_HOST, then POST "
                   f"{url}/api/v1/reports/schedules with an admin key (trailseal apikey "
                   "create); see docs/admin-guide.md#scheduled-reports")
        auth = f"-H 'Authorization: Bearer {summary['api_key']}'"
        click.echo(f"  summarise last week: curl {auth} {url}/api/v1/summary/weekly")
        explain_id = event_to_explain(svc, summary["api_key_tenant_id"])
        if explain_id:
            click.echo(f"  explain an event: curl {auth} {url}/api/v1/events/{explain_id}/explain")
        customer = subject_to_erase(svc, summary["api_key_tenant_id"])
        if customer:
            click.echo(f"  GDPR erasure (the customer's events then read [erased], the chain "
                       f"still verifies): trailseal erase --tenant "
                       f"{summary['api_key_tenant_id']} --subject {customer} --reason 'demo'")
        click.echo(f"  tenant deletion (two admins, archive, purge after retention): trailseal "
                   f"tenant-deletion status --tenant {offboarded}")
        click.echo("Press Ctrl-C to stop.")
        serve_app(app, host, port, 8)
    except KeyboardInterrupt:
        pass
    finally:
        stop_children(children)
