"""Helper processes die with the process that started them, even when it is killed with
SIGKILL, and the result folder it leaves behind is removed by the next Trailseal process;
a live process's folder is never removed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import make_event
from trailseal.infra import helpers


def _env(services) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    env["TRAILSEAL_INSTANCE_PATH"] = services.config["INSTANCE_PATH"]
    return env


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _folders_of(pid: int) -> list[Path]:
    base = Path("/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir())
    return [p for p in base.glob("trailseal-results-*")
            if re.match(rf"^trailseal-results-\d+-{pid}-", p.name)]


@pytest.mark.slow
@pytest.mark.skipif(not helpers.multi_core(), reason="imports use helpers on multi-core machines")
def test_helpers_exit_when_a_killed_import_leaves_them(trailseal_services, tenant):
    importer = subprocess.Popen(
        [sys.executable, "-m", "trailseal", "import", "--tenant", tenant.slug,
         "--batch-size", "10", "-"],
        env=_env(trailseal_services), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    children: list[psutil.Process] = []
    try:
        # One batch, and the file stays open: the import waits for more with its helper
        # running and its result folder made.
        for _ in range(10):
            importer.stdin.write(json.dumps(make_event()).encode() + b"\n")
        importer.stdin.flush()
        deadline = time.monotonic() + 120
        while not any("spawn_main" in " ".join(c.cmdline()) for c in children):
            assert importer.poll() is None, importer.stderr.read().decode()
            assert time.monotonic() < deadline, "the import started no helper"
            time.sleep(0.2)
            children = _children(importer.pid)
        time.sleep(1)  # let the helper get past its start-up
        children = _children(importer.pid)

        os.kill(importer.pid, signal.SIGKILL)  # no exit handler runs
        importer.wait(10)
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert alive == [], [p.cmdline() for p in alive]
        [folder] = _folders_of(importer.pid)
        assert folder.exists()  # nobody removed it: its owner could not

        mine = Path(helpers.results_folder())  # this live process's folder
        nxt = subprocess.run([sys.executable, "-m", "trailseal", "apikey", "list",
                              "--tenant", tenant.slug], env=_env(trailseal_services),
                             capture_output=True, text=True, timeout=180)
        assert nxt.returncode == 0, nxt.stderr
        assert not folder.exists()  # the next process removed the dead one's folder
        assert mine.exists()
    finally:
        if importer.poll() is None:
            importer.kill()
            importer.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
