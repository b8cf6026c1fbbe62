"""Jobs whose worker died mid-job: found by their missed heartbeats and put back on their
queue within seconds, instead of staying "started" until their timeout runs out.

RQ records a running job in its queue's started-job registry with a deadline; a simple
(non-forking) worker sets that deadline to the job's whole timeout plus a minute and never
renews it, and RQ only looks at expired entries every ten minutes. Trailseal's workers
renew the deadline every ``HEARTBEAT_INTERVAL`` seconds to ``HEARTBEAT_TTL`` seconds ahead
(see ``AppWorker``), so an entry whose deadline passed belongs to a worker that stopped
beating: it died. Any live worker then re-enqueues the job. Jobs are idempotent, so a job
run again after a worker was merely too slow to beat costs time, never correctness.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.utils import as_text, current_timestamp, parse_composite_key

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5  # seconds between a worker's heartbeats
HEARTBEAT_TTL = 20  # a running job's worker that has not beaten for this long is dead
MAX_ABANDONED = 3  # a job that took down this many workers fails instead of going back
ABANDONED_META = "trailseal_abandoned"  # job.meta: how many of its workers died
SWEEP_LOCK = "trailseal:jobs:abandoned-sweep"


def requeue_abandoned_jobs(connection: Redis, queues: Iterable[Queue]) -> list[str]:
    """Put the jobs of dead workers back at the front of their queues; return their ids.

    Safe to run from several workers at once: removing the registry entry is the claim, and
    only the worker whose removal succeeded re-enqueues.
    """
    requeued: list[str] = []
    for queue in queues:
        registry = StartedJobRegistry(queue=queue)
        deadline = current_timestamp()
        for entry in connection.zrangebyscore(registry.key, 0, deadline):
            entry = as_text(entry)
            job_id, _execution = parse_composite_key(entry)
            try:
                job = Job.fetch(job_id, connection=connection)
            except NoSuchJobError:
                continue  # RQ's own clean-up drops the entry
            if job.get_status(refresh=False) != JobStatus.STARTED:
                continue  # it ended; what is left is RQ's to tidy
            abandoned = int(job.meta.get(ABANDONED_META, 0)) + 1
            if abandoned > MAX_ABANDONED:
                continue  # failed below, so a job that kills workers does not loop
            if not connection.zrem(registry.key, entry):
                continue  # another worker claimed it
            job.meta[ABANDONED_META] = abandoned
            job.save_meta()
            job.started_at = None
            job.ended_at = None
            queue.enqueue_job(job, at_front=True)
            log.warning("job %s was running on a worker that died (%s time(s)); re-enqueued "
                        "on %s", job.id, abandoned, queue.name)
            requeued.append(job.id)
        # What is still expired: jobs past MAX_ABANDONED (moved to the failed jobs) and
        # leftovers of ended jobs.
        registry.cleanup(deadline)
    return requeued


def sweep_once(connection: Redis, queues: Iterable[Queue], holder: str) -> list[str]:
    """``requeue_abandoned_jobs`` unless another worker swept in the last interval."""
    if not connection.set(SWEEP_LOCK, holder, nx=True, ex=HEARTBEAT_INTERVAL):
        return []
    return requeue_abandoned_jobs(connection, queues)
