"""Worker and scheduler processes: RQ on queues high/default/low, RQ cron for recurring jobs."""

from __future__ import annotations

import logging
import threading

from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.executions import Execution
from rq.job import Job

from ..core import QUEUE_NAMES
from ..services.usage import JobTimer
from .recovery import HEARTBEAT_INTERVAL, HEARTBEAT_TTL, requeue_abandoned_jobs, sweep_once

log = logging.getLogger(__name__)


def collect_jobs(pm) -> list:
    """The job table: every ``JobSpec`` returned by ``register_jobs`` implementations."""
    return [spec for group in pm.hook.register_jobs() or [] if group for spec in group]


class AppWorker(SimpleWorker):
    """Runs each job inside the Flask app context (jobs find services via ``current_app``).

    A simple (non-forking) worker: the database pool is never shared across a fork. A
    thread beats for the running job and re-enqueues the jobs of workers that died (see
    ``jobs.recovery``).
    """

    def __init__(self, *args, app=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.flask_app = app
        self._running: tuple[Job, Execution] | None = None
        self._stop_beating = threading.Event()
        self._beater: threading.Thread | None = None

    def bootstrap(self, *args, **kwargs):
        super().bootstrap(*args, **kwargs)
        self._stop_beating.clear()
        self._beater = threading.Thread(target=self._beat_until_stopped,
                                        name="trailseal-job-heartbeat", daemon=True)
        self._beater.start()

    def teardown(self):
        self._stop_beating.set()
        if self._beater is not None:
            self._beater.join(HEARTBEAT_INTERVAL + 5)
        super().teardown()

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        self._running = (job, execution)
        try:
            # RQ just gave the job a deadline of its whole timeout: shorten it now, so a
            # death in the next seconds is noticed as soon as any other.
            self._beat_for(job, execution)
            with self.flask_app.app_context(), JobTimer(
                    self.flask_app.extensions["trailseal"], job.args, job.kwargs):
                return super().perform_job(job, queue, execution)
        finally:
            self._running = None

    def clean_registries(self):
        # Before RQ's own clean-up, which would fail the jobs of dead workers instead.
        requeue_abandoned_jobs(self.connection, self.queues)
        super().clean_registries()

    def _beat_for(self, job: Job, execution: Execution) -> None:
        with self.connection.pipeline() as pipe:
            execution.heartbeat(job.started_job_registry, HEARTBEAT_TTL, pipeline=pipe)
            pipe.execute()

    def _beat_until_stopped(self) -> None:
        while True:
            try:
                running = self._running
                if running is not None:
                    self._beat_for(*running)
                sweep_once(self.connection, self.queues, self.name)
            except Exception:  # noqa: BLE001 - Redis hiccup: beat again next time
                log.warning("job heartbeat failed", exc_info=True)
            if self._stop_beating.wait(HEARTBEAT_INTERVAL):
                return


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
