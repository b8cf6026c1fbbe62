"""The instance folder keeps its secrets and both servers' data to its owner: the master
key, the session key and Valkey's append-only and snapshot files (queued jobs, cached
per-tenant statistics) are never readable by other local users."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def _cli(instance: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    env["TRAILSEAL_INSTANCE_PATH"] = str(instance)
    return subprocess.run([sys.executable, "-m", "trailseal", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _loose_valkey_files(instance: Path) -> list[str]:
    loose = []
    for root, dirs, files in os.walk(instance / "valkey"):
        for name in dirs:
            if _mode(Path(root, name)) != 0o700:
                loose.append(f"{name}/ {_mode(Path(root, name)):o}")
        for name in files:
            if _mode(Path(root, name)) != 0o600:
                loose.append(f"{name} {_mode(Path(root, name)):o}")
    return loose


@pytest.mark.slow
def test_a_fresh_instance_is_private_to_its_owner():
    # Created by this test, not by Trailseal: 0755 like a folder a user made (a new user's
    # ./instance is created by Trailseal itself).
    instance = Path(tempfile.mkdtemp(prefix="ts-modes-")) / "instance"
    made = _cli(instance, "tenant", "create", "Modes", "--slug", "modes")
    assert made.returncode == 0, made.stderr
    valkey = instance / "valkey"
    names = {p.name for p in valkey.rglob("*")}
    assert {"appendonlydir", "dump.rdb", "valkey.conf", "valkey.log", "clients"} <= names, names
    assert any(n.endswith(".aof") for n in names), names
    assert _mode(valkey) == 0o700
    assert _loose_valkey_files(instance) == []
    assert _mode(instance / "master.key") == 0o600
    assert _mode(instance / "secret.key") == 0o600
    assert _mode(instance / ".valkey.lock") == 0o600
    if os.geteuid() == 0:
        # pgserver runs PostgreSQL as its own user, which must traverse the folder
        assert _mode(instance) & 0o022 == 0
    else:
        assert _mode(instance) == 0o700


@pytest.mark.slow
def test_files_left_readable_by_an_earlier_version_are_narrowed(tmp_path):
    instance = tmp_path / "instance"
    assert _cli(instance, "tenant", "create", "Old", "--slug", "old").returncode == 0
    for path in [instance / "master.key", *(instance / "valkey").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (instance / "valkey").chmod(0o755)
    listed = _cli(instance, "apikey", "list", "--tenant", "old")
    assert listed.returncode == 0, listed.stderr
    assert _loose_valkey_files(instance) == []
    assert _mode(instance / "valkey") == 0o700
    assert _mode(instance / "master.key") == 0o600
