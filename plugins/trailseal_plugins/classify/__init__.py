"""Event classification: a category and a risk level for every event, with their
confidences, business-rule tags, and review flags for the uncertain ones.

A first-party plugin (entry point ``classify``), registered through the hooks any plugin
uses: ``register_classifiers`` (classification in the enrichment pipeline),
``register_jobs`` (monthly retraining) and ``register_commands``
(``trailseal train classifiers`` and ``trailseal classify``). Disable it with
``TRAILSEAL_DISABLE_PLUGINS=classify``.
"""

from __future__ import annotations

import click

from trailseal import hookimpl
from trailseal.types import JobSpec

from ..common import open_tenant
from .classifier import EventClassifier


@hookimpl
def register_classifiers(tenant_id: str):
    return [EventClassifier(tenant_id)]


@hookimpl
def register_jobs():
    from .runs import monthly_training

    return [JobSpec(func=monthly_training, queue="low", cron="10 4 1 * *",
                    name="classifier-monthly-training", timeout=3 * 3600)]


@click.command()
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="Train on the last DAYS days.")
def train_classifiers_command(tenant_ref: str, days: int) -> None:
    """Train and activate new category and risk models for a tenant now."""
    from .training import train_tenant

    app, svc, tenant = open_tenant(tenant_ref)
    with app.app_context():
        try:
            summary = train_tenant(svc, str(tenant), created_by="trailseal train classifiers",
                                   days=days)
        except ValueError as exc:
            raise click.ClickException(f"{exc}; the previous model stays active") from None
    m = summary["metrics"]
    click.echo(f"tenant {tenant}: trained classifiers {summary['version']} (active) in "
               f"{summary['seconds']:.1f} s")
    click.echo(f"  window: {m['window_events']} events, {m['events']} labelled kept "
               f"({m['corrections_used']} analyst corrections)")
    for kind in ("category", "risk"):
        if kind in m:
            click.echo(f"  {kind}: accuracy {m[kind]['accuracy']:.3f}, macro-F1 "
                       f"{m[kind]['macro_f1']:.3f} on {m[kind]['test_events']} held-out events")


@click.command()
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--all", "everything", is_flag=True,
              help="Every event (default: those received in the last 24 h).")
def classify_command(tenant_ref: str, everything: bool) -> None:
    """Classify and tag a tenant's events again now (after a new model or new tag rules)."""
    from .runs import reclassify

    app, svc, tenant = open_tenant(tenant_ref)
    with app.app_context():
        done = reclassify(svc, str(tenant), hours=None if everything else 24.0)
    click.echo(f"tenant {tenant}: classified {done['events']} events with "
               f"{done['model_version']} ({done['model_scope']}); {done['review']} flagged "
               f"for review, {done['tagged']} tagged")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.commands["train"].add_command(train_classifiers_command, "classifiers")
    cli.add_command(classify_command, "classify")
