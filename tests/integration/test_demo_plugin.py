"""The demo is a first-party plugin: found through its entry point (in an editable install
too), it adds the `demo` command, and disabling it by name removes the command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import entry_points


def _trailseal(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "trailseal", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def test_demo_is_declared_as_an_entry_point():
    (ep,) = [ep for ep in entry_points(group="trailseal") if ep.name == "demo"]
    assert ep.value == "trailseal_plugins.demo"
    assert ep.dist is not None and ep.dist.name == "trailseal"
    assert hasattr(ep.load(), "register_commands")


def test_the_core_ships_no_demo():
    assert importlib.util.find_spec("trailseal.demo") is None
    assert importlib.util.find_spec("trailseal.demo_data") is None


def test_demo_command_comes_from_the_plugin_and_goes_with_it():
    shown = _trailseal("--help")
    assert shown.returncode == 0 and " demo " in shown.stdout, shown.stderr
    helped = _trailseal("demo", "--help")
    assert helped.returncode == 0 and "--load-only" in helped.stdout, helped.stderr
    listed = _trailseal("plugins")
    assert any(line.startswith("demo [trailseal ") and "register_commands" in line
               for line in listed.stdout.splitlines()), listed.stdout + listed.stderr

    hidden = _trailseal("--help", TRAILSEAL_DISABLE_PLUGINS="demo")
    assert hidden.returncode == 0 and " demo " not in hidden.stdout
    gone = _trailseal("demo", "--help", TRAILSEAL_DISABLE_PLUGINS="demo")
    assert gone.returncode == 2 and "No such command 'demo'" in gone.stderr
