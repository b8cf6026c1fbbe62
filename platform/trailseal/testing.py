"""pytest fixtures for Trailseal and its plugin authors (loaded through ``pytest11``).

Loading is harmless in any pytest run: this module imports nothing heavy, its fixtures all
carry the ``trailseal_`` prefix (no clash with a project's own ``tenant`` or ``app``), and
they start nothing until a test asks for one. The services are real: an embedded
PostgreSQL + Valkey in a temporary instance folder (or ``TRAILSEAL_DATABASE_URL`` /
``TRAILSEAL_REDIS_URL`` when set), shared by the whole test session.

- ``trailseal_app``: the Flask app (session-scoped); ``trailseal_services`` its facade.
- ``trailseal_client``: a Flask test client.
- ``trailseal_tenant``: a fresh tenant with an all-permissions API key (``.headers``).
- ``trailseal_register_plugin``: register a plugin object for one test only.
- ``trailseal_run_jobs``: run queued jobs with a real worker in burst mode.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest


@dataclass
class TestTenant:
    """A tenant created for one test, with an API key holding every permission."""

    id: uuid.UUID
    slug: str
    token: str
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def trailseal_instance_path(tmp_path_factory) -> str:
    """Instance folder of the test session's embedded services (a fresh temporary folder, or
    ``TRAILSEAL_TEST_INSTANCE_PATH`` to reuse one across runs)."""
    path = os.environ.get("TRAILSEAL_TEST_INSTANCE_PATH")
    if path:
        return path
    # Short path: unix sockets live here.
    return tempfile.mkdtemp(prefix="ts-test-")


@pytest.fixture(scope="session")
def trailseal_app(trailseal_instance_path):
    """The Trailseal Flask app on real services, shared by the session (API rate limiting
    and the per-address sign-in budgets are off unless their ``TRAILSEAL_*`` variables are
    set; every installed plugin is loaded, minus ``TRAILSEAL_DISABLE_PLUGINS``; notification
    URLs may point at 127.0.0.1 unless ``TRAILSEAL_WEBHOOK_ALLOW_HOSTS`` says otherwise)."""
    from . import create_app

    app = create_app({
        "INSTANCE_PATH": trailseal_instance_path,
        "RATE_LIMIT": os.environ.get("TRAILSEAL_RATE_LIMIT", "0"),
        # Every test signs in from 127.0.0.1: only the per-email throttle stays on; tests of
        # the address and global budgets set them.
        "LOGIN_RATE_PER_ADDRESS": os.environ.get("TRAILSEAL_LOGIN_RATE_PER_ADDRESS", "0"),
        "LOGIN_RATE_GLOBAL": os.environ.get("TRAILSEAL_LOGIN_RATE_GLOBAL", "0"),
        "DISABLE_PLUGINS": os.environ.get("TRAILSEAL_DISABLE_PLUGINS", ""),
        # Notification tests send to receivers on this machine.
        "WEBHOOK_ALLOW_HOSTS": os.environ.get("TRAILSEAL_WEBHOOK_ALLOW_HOSTS", "127.0.0.1"),
    })
    app.config["TESTING"] = True
    yield app
    svc = app.extensions["trailseal"]
    svc.close()
    if svc.config.get("EMBEDDED_REDIS") and not os.environ.get("TRAILSEAL_TEST_INSTANCE_PATH"):
        from .infra.embedded import stop_valkey

        stop_valkey(trailseal_instance_path)


@pytest.fixture(scope="session")
def trailseal_services(trailseal_app):
    """The service facade of ``trailseal_app`` (``config``, ``db``, ``redis``, ``pm``)."""
    return trailseal_app.extensions["trailseal"]


@pytest.fixture
def trailseal_client(trailseal_app):
    """A Flask test client of ``trailseal_app`` (new per test; cookies are its own)."""
    return trailseal_app.test_client()


def make_tenant(services, permissions=("audit:read", "audit:write", "audit:export", "audit:admin")):
    """Create a tenant named uniquely and an API key with ``permissions``."""
    from .services.tenancy import create_api_key, create_tenant

    slug = "t-" + uuid.uuid4().hex[:12]
    info = create_tenant(services, slug, slug)
    key = create_api_key(services, uuid.UUID(info["id"]), list(permissions))
    return TestTenant(uuid.UUID(info["id"]), slug, key["token"],
                      {"Authorization": f"Bearer {key['token']}"})


@pytest.fixture
def trailseal_tenant(trailseal_services) -> TestTenant:
    """A fresh tenant (unique slug) with an API key holding every permission; send
    ``trailseal_tenant.headers`` with requests."""
    return make_tenant(trailseal_services)


@pytest.fixture
def trailseal_register_plugin(trailseal_services):
    """``trailseal_register_plugin(obj, name=None)`` registers a plugin object (a module,
    class instance...) for the current test only; it is unregistered afterwards, whatever
    the outcome."""
    with plugins_registered(trailseal_services) as register:
        yield register


@contextmanager
def plugins_registered(services):
    """Inside the block, ``register(obj, name=None)`` registers a plugin on ``services``;
    every plugin registered so is unregistered when the block ends, however it ends."""
    registered = []

    def register(plugin, name: str | None = None):
        name = name or f"test-plugin-{uuid.uuid4().hex[:8]}"
        services.pm.register(plugin, name=name)
        registered.append(plugin)
        return plugin

    try:
        yield register
    finally:
        for plugin in registered:
            if services.pm.is_registered(plugin):
                services.pm.unregister(plugin)


@pytest.fixture
def trailseal_run_jobs(trailseal_app):
    """``trailseal_run_jobs()`` runs every queued job (enrichment, plugin jobs) with a real
    RQ worker in burst mode, in this process, and returns when the queues are empty."""
    from .jobs.runtime import run_worker

    def _run():
        return run_worker(trailseal_app, burst=True)

    return _run
