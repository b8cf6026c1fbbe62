"""The embedded PostgreSQL stops with the last live process that uses it, even when another
process using it was killed without cleaning up (as a child killed while starting)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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
