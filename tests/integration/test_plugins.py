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

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trailseal-example-plugin"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """examples/trailseal-example-plugin installed with pip, as a real distribution, into
    its own site dir (so it is loaded only where a test puts that dir on the path)."""
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
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
    assert "trailseal-example-plugin 0.2.0" in line
    for hook in ("register_routes", "register_detectors", "register_commands",
                 "register_jobs", "event_ingested"):
        assert hook in line, line
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
        "print(c.get('/example/ping', headers=t.headers).get_json()['ingested_batches'])\n"
    )
    out = _run(["-c", script], example_site, instance)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"


@pytest.mark.slow
def test_the_example_plugin_s_own_tests_pass(example_site):
    """The starter a plugin author copies: installed with pip, tested with its own suite
    and Trailseal's fixtures (in a pytest run of its own, on its own services)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
                         cwd=EXAMPLE, env=dict(env, PYTHONPATH=str(example_site)),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "6 passed" in out.stdout


BROKEN = {
    "import": ("raise ImportError('cannot import name Thing from somewhere')\n",
               "failed to load: cannot import name Thing"),
    "typo": ("from trailseal import hookimpl\n\n@hookimpl\n"
             "def event_ingestd(tenant_id):\n    pass\n",
             "implements a hook wrongly"),
    "args": ("from trailseal import hookimpl\n\n@hookimpl\n"
             "def event_ingested(tenant_id, colour):\n    pass\n",
             "implements a hook wrongly"),
}


@pytest.fixture(scope="module")
def broken_sites(tmp_path_factory) -> dict[str, Path]:
    """For each way to break a plugin, a real distribution that does it, pip-installed."""
    sites = {}
    for name, (code, _) in BROKEN.items():
        src = tmp_path_factory.mktemp(f"broken-{name}-src")
        (src / f"broken_{name}.py").write_text(code)
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "trailseal-broken-{name}"\nversion = "0.1.0"\n'
            f'[project.entry-points.trailseal]\nbroken = "broken_{name}"\n'
            f'[tool.setuptools]\npy-modules = ["broken_{name}"]\n')
        target = tmp_path_factory.mktemp(f"broken-{name}-site")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--target", str(target), str(src)],
                       check=True, capture_output=True, timeout=300)
        sites[name] = target
    return sites


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_plugin_is_one_error_line_naming_it(broken_sites, trailseal_services, name):
    instance = trailseal_services.config["INSTANCE_PATH"]
    for args in (["plugins"], ["verify", "--all"], ["no-such-command"]):
        out = _run(["-m", "trailseal", *args], broken_sites[name], instance)
        assert out.returncode != 0, (args, out.stdout)
        assert "Traceback" not in out.stderr, out.stderr
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: plugin 'broken' "), out.stderr
        assert f"trailseal-broken-{name} 0.1.0" in lines[0]
        assert f"trailseal:broken = broken_{name}" in lines[0]
        assert BROKEN[name][1] in lines[0]
        assert "TRAILSEAL_DISABLE_PLUGINS=broken" in lines[0]
    fine = _run(["-m", "trailseal", "plugins"], broken_sites[name], instance,
                TRAILSEAL_DISABLE_PLUGINS="broken")
    assert fine.returncode == 0 and "trailseal.builtin" in fine.stdout, fine.stderr


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

    class Channels:
        @hookimpl
        def notification_channels(self):
            return ["x"]

    # notification_channels is called now (no longer reserved): no warning, and its answer
    # reaches the core.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with plugins_registered(trailseal_services) as register:
            register(Channels())
            assert ["x"] in trailseal_services.pm.hook.notification_channels()
    assert not any(issubclass(w.category, FutureWarning) for w in caught)
    assert ["x"] not in trailseal_services.pm.hook.notification_channels()
