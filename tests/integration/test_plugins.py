"""Plugin runtime: a third-party distribution is installed for real and loaded through its
entry point; it can be disabled by name; hooks fail loudly when misspelled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pluggy
import pytest

from trailseal import hookimpl
from trailseal.plugins import make_plugin_manager

HERE = Path(__file__).resolve().parent.parent / "plugin_example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """tests/plugin_example installed as a real distribution into its own site dir."""
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(HERE)],
        check=True, capture_output=True, timeout=300,
    )
    assert list(target.glob("trailseal_example_plugin-*.dist-info"))
    return target


def _run(args, example_site, instance, **env):
    full_env = dict(os.environ, PYTHONPATH=str(example_site), TRAILSEAL_INSTANCE_PATH=instance, **env)
    return subprocess.run([sys.executable, *args], env=full_env, capture_output=True, text=True,
                          timeout=180)


def test_entry_point_plugin_is_listed_and_can_be_disabled(example_site, trailseal_services):
    instance = trailseal_services.config["INSTANCE_PATH"]
    listed = _run(["-m", "trailseal", "plugins"], example_site, instance)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith("example"))
    assert "trailseal-example-plugin 0.1.0" in line
    assert "register_routes" in line and "event_ingested" in line
    hidden = _run(["-m", "trailseal", "plugins"], example_site, instance,
                  TRAILSEAL_DISABLE_PLUGINS="example")
    assert hidden.returncode == 0 and "example" not in hidden.stdout


def test_entry_point_plugin_adds_command_and_route(example_site, trailseal_services):
    instance = trailseal_services.config["INSTANCE_PATH"]
    hello = _run(["-m", "trailseal", "example-hello"], example_site, instance)
    assert hello.stdout.strip() == "hello from the example plugin", hello.stderr
    script = (
        "from trailseal import create_app\n"
        "from trailseal.testing import make_tenant\n"
        "app = create_app()\n"
        "t = make_tenant(app.extensions['trailseal'])\n"
        "c = app.test_client()\n"
        "ev = {'event_type': 'a.b', 'occurred_at': '2026-01-01T00:00:00Z', 'severity': 'info',"
        " 'actor': {'id': 'x', 'type': 'user'}, 'entity': {'type': 'e', 'id': '1'}}\n"
        "assert c.post('/api/v1/events', json=ev, headers=t.headers).status_code == 201\n"
        "print(c.get('/example/ping').get_json()['ingested_batches'])\n"
    )
    out = _run(["-c", script], example_site, instance)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def event_ingestd(self, tenant_id):
            pass

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Typo())
    with pytest.raises(pluggy.PluginValidationError):
        pm.check_pending()


def test_registered_plugins_are_gone_after_their_test(trailseal_services):
    """What ``trailseal_register_plugin`` does around each test, in one test (no reliance on
    test order): a plugin registered inside is gone after, even when the test fails."""
    import warnings

    from trailseal.testing import plugins_registered

    class Marker:
        @hookimpl
        def register_jobs(self):
            return []

    with pytest.raises(RuntimeError), plugins_registered(trailseal_services) as register:
        marker = register(Marker())
        assert trailseal_services.pm.is_registered(marker)
        raise RuntimeError("the test failed")
    assert not trailseal_services.pm.is_registered(marker)

    class Reserved:
        @hookimpl
        def narrate(self, kind, context):
            return "x"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with plugins_registered(trailseal_services) as register:
            register(Reserved())
    assert any(issubclass(w.category, FutureWarning) and "reserved" in str(w.message)
               for w in caught)
    assert trailseal_services.pm.hook.narrate(kind="x", context={}, tenant_id="t") is None
