"""Forwarded client addresses are believed only as configured (TRAILSEAL_PROXY_COUNT): under
``trailseal serve`` and under any other WSGI server alike. The address the access log
records is the one the app believed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from trailseal import create_app
from trailseal.infra.proxies import FORWARDED_HEADERS, trust_proxies

SPOOFED = "203.0.113.66"  # what a client claims for itself
APPENDED = "198.51.100.7"  # what the proxy in front appended
TWO_HOPS = f"{SPOOFED}, {APPENDED}"

# (PROXY_COUNT, X-Forwarded-For) -> the address recorded; None: the connecting peer's.
EXPECTED = {
    (0, TWO_HOPS): None,
    (0, SPOOFED): None,
    (1, TWO_HOPS): APPENDED,
    (1, SPOOFED): SPOOFED,
    (2, TWO_HOPS): SPOOFED,
    (2, SPOOFED): None,  # fewer entries than proxies: the chain is not the configured one
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return json.load(r)


def _recorded_after(read, forwarded: str) -> str:
    """Read the trail with ``X-Forwarded-For: forwarded``; return the address recorded."""
    read("/api/v1/events?limit=1", {"X-Forwarded-For": forwarded})
    entries = read("/api/v1/access-log?limit=5", {})["entries"]
    return next(e for e in entries if e["endpoint"] == "/api/v1/events")["remote_addr"]


@pytest.mark.slow
@pytest.mark.parametrize("proxy_count", [0, 1, 2])
def test_serve_believes_only_the_configured_proxies(trailseal_services, tenant, proxy_count):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAILSEAL_")}
    env.update(TRAILSEAL_INSTANCE_PATH=trailseal_services.config["INSTANCE_PATH"],
               TRAILSEAL_PROXY_COUNT=str(proxy_count), TRAILSEAL_RATE_LIMIT="0")
    server = subprocess.Popen([sys.executable, "-m", "trailseal", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/healthz", {})
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.2)

        def read(path, headers):
            return _get(base + path, {**tenant.headers, **headers})

        for (count, forwarded), expected in EXPECTED.items():
            if count == proxy_count:
                assert _recorded_after(read, forwarded) == (expected or "127.0.0.1"), forwarded
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("proxy_count", [0, 1, 2])
def test_any_wsgi_server_believes_only_the_configured_proxies(trailseal_services, tenant,
                                                              proxy_count):
    app = create_app({"INSTANCE_PATH": trailseal_services.config["INSTANCE_PATH"],
                      "PROXY_COUNT": proxy_count, "RATE_LIMIT": "0"})
    client = app.test_client()
    peer = "192.0.2.10"

    def read(path, headers):
        resp = client.get(path, headers={**tenant.headers, **headers},
                          environ_base={"REMOTE_ADDR": peer})
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    try:
        for (count, forwarded), expected in EXPECTED.items():
            if count == proxy_count:
                assert _recorded_after(read, forwarded) == (expected or peer), forwarded
    finally:
        app.extensions["trailseal"].close()


def test_without_proxies_no_forwarding_header_reaches_the_app():
    """Nothing downstream (a plugin, ``request.access_route``) sees a client's claims."""
    seen: dict = {}

    def probe(environ, start_response):
        seen.update(environ)
        start_response("204 No Content", [])
        return [b""]

    list(trust_proxies(probe, 0)({
        "REMOTE_ADDR": "192.0.2.10", "HTTP_X_FORWARDED_FOR": SPOOFED,
        "HTTP_FORWARDED": f"for={SPOOFED}", "HTTP_X_FORWARDED_HOST": "evil.example",
        "HTTP_X_FORWARDED_PROTO": "https",
    }, lambda *args: None))
    assert seen["REMOTE_ADDR"] == "192.0.2.10"
    assert not set(FORWARDED_HEADERS) & set(seen)
