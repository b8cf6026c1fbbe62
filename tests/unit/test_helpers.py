"""The helper pool: results come back whole or the pool reports the helper's death; a
helper killed while handing back a large result never leaves the caller waiting."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from trailseal.infra import helpers


def big_result(size: int, marker: int) -> bytes:
    """Runs in a helper: a large result (spawned helpers import this module by name)."""
    return bytes([marker]) * size


def kill_self_after(seconds: float) -> bytes:
    time.sleep(seconds)
    os.kill(os.getpid(), signal.SIGKILL)
    return b""  # never reached


def _result_files() -> list[str]:
    folder = helpers.results_folder()
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture
def pool():
    pool = helpers.new_pool(1)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def test_small_and_large_results_come_back_whole(pool):
    small = helpers.submit(pool, big_result, 100, 7)
    large = helpers.submit(pool, big_result, 5_000_000, 9)  # far beyond one pipe write
    assert helpers.result(small, timeout=60) == bytes([7]) * 100
    assert helpers.result(large, timeout=60) == bytes([9]) * 5_000_000
    assert _result_files() == []  # the large result's file was read and removed


def test_an_abandoned_result_is_freed(pool):
    future = helpers.submit(pool, big_result, 2_000_000, 1)
    helpers.abandon(future)  # usually already running: removed when it arrives
    pool.shutdown(wait=True)
    assert _result_files() == []


def big_result_then_die(size: int, after: float) -> bytes:
    """Runs in a helper: a large result, and a SIGKILL ``after`` seconds from now, which
    lands while the result is being built, pickled or handed back."""
    threading.Timer(after, os.kill, (os.getpid(), signal.SIGKILL)).start()
    return b"r" * size


def test_a_helper_killed_while_handing_back_a_large_result_breaks_the_pool():
    """The caller gets the result or BrokenProcessPool, never waits forever. (While results
    went through the pool's pipe, a helper killed in the middle of writing one left the
    pool's reader waiting for the rest, and the interpreter could not even exit.)"""
    outcomes = []
    for step in range(12):
        pool = helpers.new_pool(1)
        try:
            future = helpers.submit(pool, big_result_then_die, 40_000_000, 0.01 * step)
            try:
                outcomes.append(len(helpers.result(future, timeout=30)))
            except helpers.BrokenProcessPool:
                outcomes.append("broken")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    assert set(outcomes) <= {40_000_000, "broken"} and "broken" in outcomes
    assert _result_files() == []  # nothing left behind by the helpers that died


def test_a_helper_that_dies_mid_task_breaks_the_pool(pool):
    with pytest.raises(helpers.BrokenProcessPool):
        helpers.result(helpers.submit(pool, kill_self_after, 0.05), timeout=60)
