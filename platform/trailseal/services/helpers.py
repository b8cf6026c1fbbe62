"""Helper processes for CPU-heavy work that Python threads cannot spread over cores.

One pool per Trailseal process, started on first use and kept for later calls (bulk
appends, long chain verifications), so only the first call pays for starting a Python
interpreter. Helpers are spawned (never forked) and receive everything they need with each
task; they hold no database connection of their own unless a task opens one.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

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


# A helper's result travels back through the pool's pipe only when it is small enough to be
# written in one atomic write (a pipe guarantees that up to 4096 bytes, framing included).
# A larger result is written to a file the caller named, in a private folder on a memory
# file system where there is one, and only that fact travels: a helper killed while writing
# a large result into the pipe would leave the pool reading the rest of it forever. The
# caller removes the file when it has read it, or when the call failed or was abandoned.
INLINE_MAX = 3072
_results_dir: str | None = None
_counter = itertools.count()


def _result_path() -> str:
    global _results_dir
    with _lock:
        if _results_dir is None or not os.path.isdir(_results_dir):
            base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            _results_dir = tempfile.mkdtemp(prefix="trailseal-results-", dir=base)
            atexit.register(shutil.rmtree, _results_dir, True)
        return os.path.join(_results_dir, f"{os.getpid()}-{next(_counter)}")


def _run(fn: Callable[..., Any], args: tuple, path: str) -> bytes | None:
    """In the helper: ``fn(*args)`` pickled, or None when it went to the file at ``path``."""
    data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) <= INLINE_MAX:
        return data
    with open(path + ".part", "wb") as out:
        out.write(data)
    os.replace(path + ".part", path)  # whole, or not there at all
    return None


def submit(pool: ProcessPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future:
    """Run ``fn(*args)`` in a helper of ``pool``; collect it with ``result`` (or give it up
    with ``abandon``). ``fn`` must be importable by name."""
    path = _result_path()
    future = pool.submit(_run, fn, args, path)
    future.trailseal_result_path = path
    return future


def _remove(future: Future) -> None:
    path = future.trailseal_result_path
    for name in (path, path + ".part"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def result(future: Future, timeout: float | None = None) -> Any:
    """The value of a ``submit``ted call (raises what the call raised, or BrokenProcessPool)."""
    try:
        data = future.result(timeout)
        if data is None:
            with open(future.trailseal_result_path, "rb") as src:
                data = src.read()
    except TimeoutError:
        raise
    except BaseException:
        _remove(future)
        raise
    _remove(future)
    return pickle.loads(data)


def abandon(future: Future) -> None:
    """Give up a ``submit``ted call: cancel it, or remove its result once it arrives."""
    future.cancel()
    future.add_done_callback(_remove)  # runs at once when it is already done


__all__ = ["BrokenProcessPool", "abandon", "discard_pool", "helper_count", "multi_core",
           "new_pool", "result", "shared_pool", "submit"]
