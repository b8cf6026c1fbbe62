"""Helper processes for CPU-heavy work that Python threads cannot spread over cores.

One pool per Trailseal process, started on first use and kept for later calls (bulk
appends, long chain verifications), so only the first call pays for starting a Python
interpreter. Helpers are spawned (never forked) and receive everything they need with each
task; they hold no database connection of their own unless a task opens one.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def helper_count() -> int:
    """Helpers in the shared pool: one fewer than the CPUs this process may use (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def multi_core() -> bool:
    return (os.cpu_count() or 1) > 1


def new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"))


def shared_pool() -> ProcessPoolExecutor:
    """The process-wide helper pool (created on first use, recreated if a helper died)."""
    global _pool
    with _lock:
        if _pool is not None and getattr(_pool, "_broken", False):
            log.warning("a helper process died; starting a new pool")
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        if _pool is None:
            _pool = new_pool(helper_count())
        return _pool


def discard_pool(pool: ProcessPoolExecutor) -> None:
    """Forget ``pool`` after it broke, so the next call starts a fresh one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["BrokenProcessPool", "discard_pool", "helper_count", "multi_core", "new_pool",
           "shared_pool"]
