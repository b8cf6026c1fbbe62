"""Helper processes for CPU-heavy work that Python threads cannot spread over cores.

One pool per Trailseal process, started on first use and kept for later calls (bulk
appends, long chain verifications), so only the first call pays for starting a Python
interpreter. Helpers are spawned (never forked) and receive everything they need with each
task; they hold no database connection of their own unless a task opens one.

Helpers never outlive the process that started them: each watches a pipe whose writing end
only that process holds, and exits when the pipe closes, which the kernel does however the
process ends (kill -9 included). Result folders of processes that died are removed by the
next Trailseal process to start.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
import pickle
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any

from .processes import pid_alive

log = logging.getLogger(__name__)

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, which a container may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def helper_count() -> int:
    """Helpers in the shared pool: one fewer than the CPUs this process may use (at least 1)."""
    return max(1, usable_cpus() - 1)


def multi_core() -> bool:
    """Whether helpers can run beside this process (more than one usable CPU)."""
    return usable_cpus() > 1


def new_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned helpers that exit when this process dies."""
    return ProcessPoolExecutor(max_workers=workers,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_watch_parent, initargs=(_lifeline(),))


# The reading end goes to every helper; the writing end stays in this process, unused, until
# the process ends and the kernel closes it. (PR_SET_PDEATHSIG is not used: it fires when the
# *thread* that started a helper exits, and the pool starts helpers from whichever thread
# submits work, such as a web request's.) The end is handed over only while a helper is
# spawned, so no other process holds the writing end and keeps the pipe open.
_lifeline_ends: tuple[Connection, Connection] | None = None
_lifeline_lock = threading.Lock()  # not _lock: shared_pool holds that one while calling new_pool


def _lifeline() -> Connection:
    global _lifeline_ends
    with _lifeline_lock:
        if _lifeline_ends is None:
            _lifeline_ends = multiprocessing.Pipe(duplex=False)
        return _lifeline_ends[0]


def _watch_parent(lifeline: Connection) -> None:
    """In each helper, at start: exit as soon as the process that started it is gone."""
    def watch() -> None:
        try:
            lifeline.recv_bytes()  # nothing is ever sent: this returns only at end of file
        except (EOFError, OSError):
            pass
        os._exit(1)  # the parent is gone: nobody wants the result; skip the pool's shutdown

    threading.Thread(target=watch, name="trailseal-parent-watch", daemon=True).start()


def shared_pool() -> ProcessPoolExecutor:
    """The process-wide helper pool (created on first use; after a helper died, callers
    ``discard_pool`` it and the next call starts a fresh one)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = new_pool(helper_count())
        return _pool


def helper_pids(pool: ProcessPoolExecutor) -> list[int]:
    """The pids of the pool's running helpers (for tests and benchmarks that watch them).
    concurrent.futures has no public accessor; this is the one place that reads it."""
    return list((pool._processes or {}).keys())


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


# A results folder is named trailseal-results-<pid namespace>-<owner pid>-<random>, so that
# a later process can tell a dead owner's folder (removed at start-up) from a live one's.
# Folders of other pid namespaces (another container sharing /dev/shm) are never judged.
_RESULTS_PREFIX = "trailseal-results-"
_RESULTS_NAME = re.compile(r"^trailseal-results-(\d+)-(\d+)-")


def _results_base() -> str:
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: one namespace
        return 0


def _result_path() -> str:
    global _results_dir
    with _lock:
        if _results_dir is None or not os.path.isdir(_results_dir):
            remove_stale_result_folders()
            _results_dir = tempfile.mkdtemp(
                prefix=f"{_RESULTS_PREFIX}{_pid_namespace()}-{os.getpid()}-", dir=_results_base())
            atexit.register(shutil.rmtree, _results_dir, True)
        return os.path.join(_results_dir, f"{os.getpid()}-{next(_counter)}")


def remove_stale_result_folders(base: str | None = None) -> list[str]:
    """Remove the result folders whose owner process is dead (it was killed before its exit
    handlers ran); return their paths. A live process's folder is never touched: a folder
    is removed only when its owner pid, in this pid namespace, does not exist."""
    base = base or _results_base()
    namespace, removed = _pid_namespace(), []
    try:
        names = os.listdir(base)
    except OSError:
        return removed
    for name in names:
        match = _RESULTS_NAME.match(name)
        if not match or int(match.group(1)) != namespace:
            continue
        owner = int(match.group(2))
        path = os.path.join(base, name)
        try:
            if owner == os.getpid() or pid_alive(owner) or os.lstat(path).st_uid != os.geteuid():
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.info("removed result folders of helper pools whose process died: %s", removed)
    return removed



def _run(fn: Callable[..., Any], args: tuple, path: str) -> bytes | None:
    """In the helper: ``fn(*args)`` pickled, or None when it went to the file at ``path``."""
    data = pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) <= INLINE_MAX:
        return data
    with open(path + ".part", "wb") as out:
        out.write(data)
    os.replace(path + ".part", path)  # whole, or not there at all
    return None


class HelperCall:
    """A call ``submit`` sent to a helper: collect it with ``result`` or give it up with
    ``abandon``. Large results wait in the file at ``result_path``."""

    __slots__ = ("future", "result_path")

    def __init__(self, future: Future, result_path: str):
        self.future = future
        self.result_path = result_path

    def cancel(self) -> bool:
        """Cancel the call if no helper has started it; whether that worked."""
        return self.future.cancel()

    def done(self) -> bool:
        return self.future.done()

    def remove_result(self, _future: Future | None = None) -> None:
        """Delete the call's result file, if any (also a done-callback of its future)."""
        for name in (self.result_path, self.result_path + ".part"):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def submit(pool: ProcessPoolExecutor, fn: Callable[..., Any], *args: Any) -> HelperCall:
    """Run ``fn(*args)`` in a helper of ``pool``; collect it with ``result`` (or give it up
    with ``abandon``). ``fn`` must be importable by name. Raises ``BrokenProcessPool`` when
    a helper of the pool died (discard it with ``discard_pool``)."""
    path = _result_path()
    return HelperCall(pool.submit(_run, fn, args, path), path)


def result(call: HelperCall, timeout: float | None = None) -> Any:
    """The value of a ``submit``ted call (raises what the call raised, or BrokenProcessPool)."""
    try:
        data = call.future.result(timeout)
        if data is None:
            with open(call.result_path, "rb") as src:
                data = src.read()
    except TimeoutError:
        raise
    except BaseException:
        call.remove_result()
        raise
    call.remove_result()
    return pickle.loads(data)


def abandon(call: HelperCall) -> None:
    """Give up a ``submit``ted call: cancel it, or remove its result once it arrives."""
    call.cancel()
    call.future.add_done_callback(call.remove_result)  # at once when it is already done


def results_folder() -> str:
    """This process's folder of large helper results (created on first use)."""
    return os.path.dirname(_result_path())


__all__ = ["BrokenProcessPool", "HelperCall", "abandon", "discard_pool", "helper_count",
           "helper_pids", "multi_core", "new_pool", "remove_stale_result_folders", "result",
           "results_folder", "shared_pool", "submit"]
