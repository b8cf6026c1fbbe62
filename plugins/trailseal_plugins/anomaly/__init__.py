"""Anomaly detection: a per-tenant Isolation Forest over behavioural features, with SHAP
explanations, alerts, analyst feedback and fairness figures.

A first-party plugin (entry point ``anomaly``), registered through the hooks any plugin
uses: ``register_detectors`` (scoring in the enrichment pipeline), ``register_jobs`` (hourly
detection of what is unscored, weekly retraining) and ``register_commands``
(``trailseal detect`` and ``trailseal train anomaly``). Disable it with
``TRAILSEAL_DISABLE_PLUGINS=anomaly``.
"""

from __future__ import annotations

import time

import click

from trailseal import hookimpl
from trailseal.types import JobSpec

from ..common import open_tenant
from .detector import IsolationForestDetector


@hookimpl
def register_detectors(tenant_id: str):
    return [IsolationForestDetector(tenant_id)]


@hookimpl
def register_jobs():
    from .runs import hourly_detection, weekly_training

    return [
        JobSpec(func=hourly_detection, queue="low", cron="17 * * * *",
                name="anomaly-hourly-detection", timeout=3600),
        JobSpec(func=weekly_training, queue="low", cron="40 3 * * 0",
                name="anomaly-weekly-training", timeout=3 * 3600),
    ]


@click.command()
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--hours", default=24.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Score the unscored events received in the last HOURS.")
@click.option("--all", "everything", is_flag=True, help="Every unscored event, whenever.")
@click.option("--rescore", is_flag=True,
              help="Score every event of the window again (after a threshold change or a "
                   "new model); alerts are never raised twice for one event.")
@click.option("--preview", is_flag=True,
              help="Write nothing: score the whole trail with the current model and show how "
                   "many events each threshold would flag (to choose one).")
def detect_command(tenant_ref: str, hours: float, everything: bool, rescore: bool,
                   preview: bool) -> None:
    """Run anomaly detection for a tenant now and say what it did."""
    from .runs import detect

    app, svc, tenant = open_tenant(tenant_ref)
    if preview:
        _preview(svc, str(tenant))
        return
    started = time.perf_counter()
    with app.app_context():
        done = detect(svc, str(tenant), hours=None if everything else hours, rescore=rescore)
    window = "all time" if everything else f"the last {hours:g} h"
    click.echo(f"tenant {tenant}: scored {done['scored']} events received in {window} "
               f"in {time.perf_counter() - started:.1f} s")
    click.echo(f"  model: {done['model_version'] or 'none yet'}")
    click.echo(f"  anomalies in the window: {done['flagged_in_window']}; new alerts: "
               f"{done['alerts_raised']}")
    click.echo(f"  fairness: {done['bias_groups']} groups measured, {done['bias_alerts']} "
               "bias alerts")


def _preview(svc, tenant: str) -> None:
    import numpy as np

    from ..common import event_count
    from .detector import THRESHOLD_KEY, choose_forest, score_stored

    threshold = float(svc.get_setting(tenant, THRESHOLD_KEY))
    forest, version, scope = choose_forest(svc, tenant, event_count(svc, tenant))
    started = time.perf_counter()
    scores, first, last = [], None, None
    for events, _X, batch_scores, _confidence in score_stored(svc, tenant, forest, threshold):
        scores.append(batch_scores)
        first = first or events[0].occurred_at
        last = events[-1].occurred_at
    elapsed = time.perf_counter() - started
    if not scores:
        click.echo(f"tenant {tenant}: no events")
        return
    s = np.concatenate(scores)
    weeks = max(1.0, (_seconds(last) - _seconds(first)) / (7 * 86400))
    click.echo(f"tenant {tenant}: {len(s)} events scored with {version} ({scope}) in "
               f"{elapsed:.1f} s, nothing written")
    click.echo("  score percentiles 50/90/99/99.9: " + " / ".join(
        f"{np.percentile(s, q):.3f}" for q in (50, 90, 99, 99.9)))
    for t in sorted({round(threshold, 3), 0.55, 0.58, 0.6, 0.62, 0.65, 0.68, 0.7, 0.75}):
        flagged = int((s >= t).sum())
        mark = "  (current)" if abs(t - threshold) < 1e-9 else ""
        click.echo(f"  threshold {t:.3f}: {flagged} events flagged, {flagged / weeks:.1f} a "
                   f"week{mark}")


def _seconds(timestamp: str) -> float:
    from .features import parse_time

    return parse_time(timestamp)


@click.command()
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650),
              help="Train on the last DAYS days.")
def train_command(tenant_ref: str, days: int) -> None:
    """Train and activate a new anomaly model for a tenant now and say what it did."""
    from .training import train_tenant

    app, svc, tenant = open_tenant(tenant_ref)
    with app.app_context():
        try:
            summary = train_tenant(svc, str(tenant), created_by="trailseal train", days=days)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    m = summary["metrics"]
    click.echo(f"tenant {tenant}: trained model {summary['version']} (active) in "
               f"{summary['seconds']:.1f} s")
    click.echo(f"  window: {summary['trained_from']} to {summary['trained_to']}, "
               f"{m['window_events']} events, {m['training_rows']} training rows")
    click.echo(f"  feedback: {m['false_positive_patterns']} false-positive patterns learned, "
               f"{m['confirmed_left_out']} confirmed anomalies left out")
    click.echo(f"  scores on the training set: median {m['score_p50']}, 99th percentile "
               f"{m['score_p99']}; {m['training_flag_rate']:.2%} at the threshold "
               f"{m['threshold']}")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(detect_command, "detect")
    cli.commands["train"].add_command(train_command, "anomaly")
