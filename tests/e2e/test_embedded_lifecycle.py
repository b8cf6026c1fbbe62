"""The embedded PostgreSQL stops with the last live process that uses it, even when another
process using it was killed without cleaning up (as a child killed while starting)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOLD = """
import sys, time
from trailseal.infra.embedded import ensure_postgres
ensure_postgres(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""
USE_AND_EXIT = """
import sys
from trailseal.infra.embedded import ensure_postgres
ensure_postgres(sys.argv[1])
"""


def test_a_killed_user_does_not_keep_the_embedded_server_running():
    instance = Path(tempfile.mkdtemp(prefix="ts-life-"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(instance)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert (instance / "pgdata" / "postmaster.pid").exists()
        os.kill(holder.pid, signal.SIGKILL)  # no exit handlers run
        holder.wait(10)
        subprocess.run([sys.executable, "-c", USE_AND_EXIT, str(instance)], check=True,
                       timeout=120)
        for _ in range(100):
            if not (instance / "pgdata" / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        assert not (instance / "pgdata" / "postmaster.pid").exists()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_server_still_stopping_is_waited_out_not_an_error():
    """The next command finds the server the previous one is stopping at exit (running, not
    ready): it waits for it to stop and starts it again, instead of failing. The stopping
    server is played by a process named in a postmaster.pid saying "stopping"."""
    instance = Path(tempfile.mkdtemp(prefix="ts-life-"))
    subprocess.run([sys.executable, "-c", USE_AND_EXIT, str(instance)], check=True, timeout=120)
    pgdata = instance / "pgdata"
    assert not (pgdata / "postmaster.pid").exists()  # stopped with its last user
    stopping = subprocess.Popen(["sleep", "3"])
    reaper = threading.Thread(target=stopping.wait)  # no zombie: it must really be gone
    reaper.start()
    try:
        (pgdata / "postmaster.pid").write_text(
            f"{stopping.pid}\n{pgdata}\n{int(time.time())}\n5432\n{pgdata}\n\n"
            "  5432001         0\nstopping\n")
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-c", USE_AND_EXIT, str(instance)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert time.monotonic() - started >= 2  # it waited for the stopping server
    finally:
        stopping.kill()
        reaper.join()
