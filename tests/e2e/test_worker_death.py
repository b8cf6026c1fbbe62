"""A worker killed in the middle of an enrichment job: another worker re-runs the job within
seconds, instead of the range staying "started" (and skipped by the reconciler) until the
job's ten-minute timeout runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job, JobStatus

from tests.conftest import ingest, make_event
from trailseal.jobs.enrichment import enrich_events, find_unenriched
from trailseal.jobs.recovery import ABANDONED_META

ROOT = Path(__file__).resolve().parents[2]


def enrich_after_pause(tenant_id: str, first_seq: int, last_seq: int, pause: str) -> int:
    """Runs in the worker: the first run (while ``pause`` exists) says so and hangs, the
    next one enriches the range."""
    if os.path.exists(pause):
        os.unlink(pause)
        Path(pause + ".hanging").write_text(str(os.getpid()))
        time.sleep(3600)
    return enrich_events(tenant_id, first_seq, last_seq)


def _worker(services) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    env["TRAILSEAL_INSTANCE_PATH"] = services.config["INSTANCE_PATH"]
    return subprocess.Popen([sys.executable, "-m", "trailseal", "worker"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _far_future():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


@pytest.mark.slow
def test_the_job_of_a_killed_worker_is_run_again_within_seconds(trailseal_client,
                                                                trailseal_services, tenant,
                                                                tmp_path):
    svc = trailseal_services
    ingest(trailseal_client, tenant, [make_event() for _ in range(5)])
    svc.queues["default"].empty()  # replaced by the hanging job below, under the same id
    pause = tmp_path / "pause"
    pause.touch()
    job_id = f"enrich-{tenant.id}-1-5"
    svc.queues["default"].enqueue(enrich_after_pause, str(tenant.id), 1, 5, str(pause),
                                  job_id=job_id, job_timeout=600)
    first = _worker(svc)
    second = None
    try:
        _wait(lambda: (tmp_path / "pause.hanging").exists(), 180, "the job did not start")
        job = Job.fetch(job_id, connection=svc.redis)
        assert job.get_status() == JobStatus.STARTED
        assert not svc.enqueue_enrichment(tenant.id, 1, 5)  # the reconciler skips it

        second = _worker(svc)
        _wait(lambda: any(w.pid == second.pid for w in Worker.all(connection=svc.redis)),
              180, "the second worker did not start")
        os.kill(first.pid, signal.SIGKILL)  # mid-job: nothing of it is cleaned up
        first.wait(10)
        killed_at = time.monotonic()
        _wait(lambda: find_unenriched(svc, tenant.id, _far_future()) == [], 120,
              "the range was not enriched")
        recovered_in = time.monotonic() - killed_at
        print(f"range enriched {recovered_in:.1f} s after the worker was killed")
        assert recovered_in < 45
        job = Job.fetch(job_id, connection=svc.redis)
        _wait(lambda: job.get_status() == JobStatus.FINISHED, 30, "the job did not finish")
        assert job.get_meta()[ABANDONED_META] == 1
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
