"""Worker and scheduler processes: RQ on queues high/default/low, RQ cron for recurring jobs."""

from __future__ import annotations

import logging

from rq import SimpleWorker
from rq.cron import CronScheduler

from ..core import QUEUE_NAMES

log = logging.getLogger(__name__)


def collect_jobs(pm) -> list:
    """The job table: every ``JobSpec`` returned by ``register_jobs`` implementations."""
    return [spec for group in pm.hook.register_jobs() or [] if group for spec in group]


class AppWorker(SimpleWorker):
    """Runs each job inside the Flask app context (jobs find services via ``current_app``).

    A simple (non-forking) worker: the database pool is never shared across a fork.
    """

    def __init__(self, *args, app=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flask_app = app

    def perform_job(self, *args, **kwargs):
        with self.flask_app.app_context():
            return super().perform_job(*args, **kwargs)


def run_worker(app, *, burst: bool = False, queues: tuple[str, ...] = QUEUE_NAMES) -> bool:
    """Work the queues (in priority order) until stopped, or until empty with ``burst``."""
    svc = app.extensions["trailseal"]
    worker = AppWorker([svc.queues[name] for name in queues], connection=svc.redis, app=app)
    return worker.work(burst=burst, logging_level="INFO")


def build_scheduler(app) -> CronScheduler:
    svc = app.extensions["trailseal"]
    scheduler = CronScheduler(connection=svc.redis, name=f"trailseal-{svc.config['INSTANCE_PATH']}"[:200])
    for spec in collect_jobs(svc.pm):
        scheduler.register(
            spec.func, queue_name=spec.queue, args=tuple(spec.args), kwargs=dict(spec.kwargs),
            interval=spec.interval, cron=spec.cron, name=spec.name, job_timeout=spec.timeout,
        )
    return scheduler


def run_scheduler(app) -> None:
    build_scheduler(app).start()
