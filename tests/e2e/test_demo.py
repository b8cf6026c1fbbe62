"""`trailseal demo` as a new user runs it: fresh instance folder, embedded services, demo data,
a working URL, login and API key; everything stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_starts_everything_and_stops_cleanly():
    instance = Path(tempfile.mkdtemp(prefix="ts-demo-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    env["TRAILSEAL_INSTANCE_PATH"] = str(instance)
    proc = subprocess.Popen(
        [sys.executable, "-m", "trailseal", "demo", "--port", str(port), "--days", "7"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(lines)
        assert "Press Ctrl-C" in out, out
        assert out.count("chain intact") == 3
        assert "master key" in out.lower()  # the demo says it generated one
        assert len(re.findall(r"incidents planted", out)) == 3
        url = re.search(r"running at (http://\S+)/login", out).group(1)
        token = re.search(r"API key \([^)]*\): (tsk_\S+)", out).group(1)
        assert re.search(r"sign in: \S+@\S+ / \S+", out)
        assert "rq.worker" not in out  # worker chatter goes to instance/logs, not the console
        for _ in range(100):
            try:
                health = json.load(urllib.request.urlopen(f"{url}/healthz", timeout=2))
                break
            except OSError:
                time.sleep(0.1)
        assert health["status"] == "ok"
        req = urllib.request.Request(f"{url}/api/v1/dashboard/stats",
                                     headers={"Authorization": f"Bearer {token}"})
        stats = json.load(urllib.request.urlopen(req, timeout=10))
        assert stats["counts"]["7d"] > 500
        login = urllib.request.urlopen(f"{url}/login", timeout=5).read().decode()
        assert "Sign in" in login
        worker_log = instance / "logs" / "worker.log"
        for _ in range(600):  # the worker runs, logging to the instance folder
            if worker_log.exists() and "enrich_events" in worker_log.read_text():
                break
            time.sleep(0.1)
        assert "enrich_events" in worker_log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # the embedded Valkey and PostgreSQL are gone with the demo
    time.sleep(1)
    assert not (instance / "valkey.sock").exists()
    assert not (instance / "pgdata" / "postmaster.pid").exists()
