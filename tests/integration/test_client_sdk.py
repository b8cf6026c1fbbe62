"""The Python client (clients/python) against a real server: waitress serving the test app on
127.0.0.1. Network faults come from a small real HTTP proxy in front of it that drops
connections or answers 503/429 when told to, and forwards everything else."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import make_event
from trailseal.services.alerts import record_alert
from trailseal.testing import make_tenant

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"
# The test command installs only the server: import the client from the source tree.
sys.path.insert(0, str(CLIENT_DIR))

import trailseal_client as ts  # noqa: E402


@pytest.fixture(scope="module")
def server_url(trailseal_app):
    from waitress import create_server

    server = create_server(trailseal_app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()
    thread.join(timeout=5)


class _FaultyProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass  # keep pytest's output clean

    def do_GET(self):
        self._relay()

    def do_POST(self):
        self._relay()

    def _relay(self):
        proxy: FaultyProxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy.seen.append({"method": self.command, "path": self.path,
                           "key": self.headers.get("Idempotency-Key")})
        fault = proxy.faults.popleft() if proxy.faults else None
        self.close_connection = True
        if fault == "503":
            self._answer(503, {"Content-Type": "text/plain"}, b"upstream unavailable")
            return
        if isinstance(fault, tuple) and fault[0] == "429":
            self._answer(429, {"Content-Type": "application/json", "Retry-After": str(fault[1])},
                         json.dumps({"error": {"code": "rate_limited", "message": "slow down",
                                               "details": None}}).encode())
            return
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "connection", "content-length")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        if fault == "drop":
            return  # the server acted on the request; its answer is lost on the way back
        self._answer(answer.status, {k: v for k, v in answer.getheaders()
                                     if k.lower() not in ("connection", "transfer-encoding",
                                                          "content-length")}, data)

    def _answer(self, status: int, headers: dict, data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class FaultyProxy:
    """A real HTTP proxy on 127.0.0.1. Each request takes the next fault from ``faults``:
    ``"503"`` (answer 503 with a text body, not forwarded), ``("429", seconds)`` (answer 429
    with Retry-After, not forwarded), ``"drop"`` (forward, then close without answering) or
    none left (forward and relay). ``seen`` records every request."""

    def __init__(self, upstream: str):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream_host, self.upstream_port = host, int(port)
        self.faults: deque = deque()
        self.seen: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FaultyProxyHandler)
        self.server.daemon_threads = True
        self.server.proxy = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(server_url):
    p = FaultyProxy(server_url)
    yield p
    p.close()


@pytest.fixture
def account(trailseal_services):
    return make_tenant(trailseal_services)


@pytest.fixture
def client(server_url, account):
    return ts.Client(server_url, account.token, backoff=0.01, max_backoff=0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_event(entity_id: str, **overrides) -> dict:
    return make_event(entity={"type": "invoice", "id": entity_id}, **overrides)


def events_of(client: ts.Client, entity_id: str) -> list[dict]:
    return list(client.iter_events(entity_id=entity_id))


# -- appending ----------------------------------------------------------------------------


def test_send_then_replay_with_the_same_key(client):
    entity = f"INV-{uuid.uuid4().hex[:8]}"
    key = f"order-{uuid.uuid4()}"
    first = client.send(unique_event(entity), idempotency_key=key)
    assert set(first) == {"id", "seq", "hash", "replayed"}
    assert first["replayed"] is False
    again = client.send(unique_event(entity), idempotency_key=key)
    assert again == {**first, "replayed": True}
    stored = client.get_event(first["id"])
    assert stored["idempotency_key"] == key
    assert stored["hash"] == first["hash"]
    assert len(events_of(client, entity)) == 1


def test_send_batch_appends_in_order_and_replays(client):
    entity = f"INV-{uuid.uuid4().hex[:8]}"
    events = [unique_event(entity, event_type=f"invoice.step{i}") for i in range(3)]
    result = client.send_batch(events, idempotency_key="batch-1")
    assert result["replayed"] is False
    assert len(result["ids"]) == 3
    assert result["last_seq"] - result["first_seq"] == 2
    assert client.get_event(result["ids"][2])["event_type"] == "invoice.step2"
    assert client.send_batch(events, idempotency_key="batch-1") == {**result, "replayed": True}


def test_send_batch_size_is_checked_before_any_request():
    # Nothing listens here: a request would raise ConnectionFailed, not ValueError.
    offline = ts.Client(f"http://127.0.0.1:{free_port()}", "key", max_retries=0)
    with pytest.raises(ValueError, match="1 to 1000 events, got 0"):
        offline.send_batch([])
    with pytest.raises(ValueError, match="got 1001"):
        offline.send_batch([make_event()] * 1001)


def test_unicode_idempotency_key_is_sent_as_utf8(client):
    key = f"clé-{uuid.uuid4()}"
    result = client.send(make_event(), idempotency_key=key)
    assert client.get_event(result["id"])["idempotency_key"] == key


# -- retries and idempotency --------------------------------------------------------------


def test_lost_answer_is_retried_with_the_same_generated_key(proxy, account):
    """The first append reaches the server and its answer is lost: the retry carries the
    same generated key, so the server replays instead of appending again."""
    client = ts.Client(proxy.url, account.token, backoff=0.01, max_backoff=0.05)
    entity = f"INV-{uuid.uuid4().hex[:8]}"
    proxy.faults.append("drop")
    result = client.send(unique_event(entity))
    posts = [r for r in proxy.seen if r["method"] == "POST"]
    assert len(posts) == 2
    assert posts[0]["key"] and posts[0]["key"] == posts[1]["key"]
    assert result["replayed"] is True
    stored = events_of(client, entity)
    assert [e["id"] for e in stored] == [result["id"]]
    assert stored[0]["idempotency_key"] == posts[0]["key"]


def test_5xx_is_retried_and_each_call_gets_its_own_key(proxy, account):
    client = ts.Client(proxy.url, account.token, backoff=0.01, max_backoff=0.05)
    entity = f"INV-{uuid.uuid4().hex[:8]}"
    proxy.faults.extend(["503", "503"])
    first = client.send_batch([unique_event(entity), unique_event(entity)])
    second = client.send(unique_event(entity))
    keys = [r["key"] for r in proxy.seen if r["method"] == "POST"]
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2] != keys[3]
    assert first["replayed"] is False and second["replayed"] is False
    assert len(events_of(client, entity)) == 3


def test_gets_are_retried_too(proxy, account):
    client = ts.Client(proxy.url, account.token, backoff=0.01, max_backoff=0.05)
    proxy.faults.extend(["drop", "503"])
    assert client.verify()["intact"] is True
    assert len(proxy.seen) == 3


def test_retry_after_is_honoured(proxy, account):
    client = ts.Client(proxy.url, account.token, backoff=0.01, max_backoff=5)
    proxy.faults.append(("429", 1))
    began = time.monotonic()
    result = client.send(make_event())
    assert time.monotonic() - began >= 1.0
    assert result["replayed"] is False  # the 429 never reached the server
    assert len(proxy.seen) == 2


def test_rate_limit_raises_rate_limited_with_retry_after(server_url, trailseal_services):
    account = make_tenant(trailseal_services)
    saved = trailseal_services.config["RATE_LIMIT"]
    trailseal_services.config["RATE_LIMIT"] = "3/60"
    try:
        # Retry-After (1–60 s) is above max_backoff: raised at once rather than waited out.
        client = ts.Client(server_url, account.token, max_retries=3, backoff=0.01,
                           max_backoff=0.5)
        for _ in range(3):
            client.send(make_event())
        began = time.monotonic()
        with pytest.raises(ts.RateLimited) as caught:
            client.send(make_event())
        assert time.monotonic() - began < 1.0
        assert caught.value.status == 429
        assert caught.value.code == "rate_limited"
        assert 1 <= caught.value.retry_after <= 60
        assert caught.value.details == {"limit": 3, "window_seconds": 60}
        # With no retries allowed, a read is refused the same way.
        with pytest.raises(ts.RateLimited):
            ts.Client(server_url, account.token, max_retries=0).verify()
    finally:
        trailseal_services.config["RATE_LIMIT"] = saved


def test_connection_refused_raises_connection_failed_after_retries():
    client = ts.Client(f"http://127.0.0.1:{free_port()}", "key", max_retries=2, backoff=0.01,
                       max_backoff=0.02)
    with pytest.raises(ts.ConnectionFailed) as caught:
        client.send(make_event())
    assert caught.value.status is None
    assert caught.value.code == "connection_failed"
    assert caught.value.details == {"attempts": 3}
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_server_errors_raise_server_error_once_retries_run_out(proxy, account):
    client = ts.Client(proxy.url, account.token, max_retries=1, backoff=0.01)
    proxy.faults.extend(["503", "503"])
    with pytest.raises(ts.ServerError) as caught:
        client.verify()
    # Not the API's JSON (a proxy's page): still typed, with the text as the message.
    assert (caught.value.status, caught.value.message) == (503, "upstream unavailable")
    assert len(proxy.seen) == 2


# -- typed errors -------------------------------------------------------------------------


def test_errors_are_typed_and_4xx_never_retried(proxy, account, trailseal_services):
    client = ts.Client(proxy.url, account.token, backoff=0.01)

    def raised(call, cls):
        before = len(proxy.seen)
        with pytest.raises(cls) as caught:
            call()
        assert len(proxy.seen) == before + 1, "a 4xx must not be retried"
        return caught.value

    err = raised(lambda: ts.Client(proxy.url, "not-a-key").verify(), ts.Unauthorized)
    assert (err.status, err.code) == (401, "unauthorized")

    writer = make_tenant(trailseal_services, ("audit:write",))
    err = raised(lambda: ts.Client(proxy.url, writer.token).get_event(uuid.uuid4()),
                 ts.Forbidden)
    assert (err.status, err.code) == (403, "forbidden")

    err = raised(lambda: client.get_event(uuid.uuid4()), ts.NotFound)
    assert (err.status, err.code) == (404, "not_found")

    bad = make_event()
    del bad["actor"]
    err = raised(lambda: client.send(bad), ts.ValidationFailed)
    assert (err.status, err.code) == (422, "validation_failed")
    assert err.details

    key = f"k-{uuid.uuid4()}"
    client.send(make_event(), idempotency_key=key)
    err = raised(lambda: client.send(make_event(severity="high"), idempotency_key=key),
                 ts.Conflict)
    assert (err.status, err.code) == (409, "conflict")
    assert err.details == {"idempotency_key": key}

    huge = make_event(action_details={"blob": "x" * (1024 * 1024)})
    err = raised(lambda: client.send(huge), ts.PayloadTooLarge)
    assert (err.status, err.code) == (413, "payload_too_large")

    err = raised(lambda: client.send(make_event(), idempotency_key=" "), ts.BadRequest)
    assert (err.status, err.code) == (400, "bad_request")
    assert isinstance(err, ts.TrailsealError)


@pytest.mark.parametrize(("status", "body", "cls", "code"), [
    (405, {"code": "method_not_allowed"}, ts.MethodNotAllowed, "method_not_allowed"),
    (415, {"code": "unsupported_media_type"}, ts.UnsupportedMediaType, "unsupported_media_type"),
    (500, {"code": "internal_error"}, ts.ServerError, "internal_error"),
    (409, {"code": "something_new"}, ts.Conflict, "something_new"),  # unknown code: by status
    (418, None, ts.TrailsealError, "http_418"),
    (502, None, ts.ServerError, "http_502"),
    (429, None, ts.RateLimited, "rate_limited"),
])
def test_error_mapping_by_code_then_status(status, body, cls, code):
    from trailseal_client.errors import error_from_response

    raw = (json.dumps({"error": {**body, "message": "m", "details": None}}).encode()
           if body else b"<html>gateway</html>")
    err = error_from_response(status, raw)
    assert type(err) is cls
    assert (err.status, err.code) == (status, code)
    assert err.message == ("m" if body else "<html>gateway</html>")


# -- reading ------------------------------------------------------------------------------


def test_iter_events_follows_cursors_with_filters(proxy, account):
    client = ts.Client(proxy.url, account.token, backoff=0.01)
    entity = f"INV-{uuid.uuid4().hex[:8]}"
    base = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    sent = client.send_batch([
        unique_event(entity, occurred_at=(base + timedelta(hours=i)).isoformat(),
                     event_type="invoice.paid" if i % 2 else "invoice.created",
                     severity="high" if i == 4 else "low", tags=["even" if i % 2 == 0 else "odd"])
        for i in range(5)
    ])
    proxy.seen.clear()
    listed = list(client.iter_events(entity_id=entity, limit=2))
    assert [e["id"] for e in listed] == list(reversed(sent["ids"]))  # newest first
    assert len(proxy.seen) == 3  # pages of 2, 2 and 1
    assert all("cursor=" in r["path"] for r in proxy.seen[1:])

    # 11:00+01:00 is 10:00Z: the +0100 offset must survive the query string (as %2B).
    start = datetime(2026, 11, 20, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    proxy.seen.clear()
    since = list(client.iter_events(entity_id=entity, start=start, end="2026-11-20T12:00:00Z",
                                    limit=2))
    assert [e["occurred_at"][:19] for e in since] == ["2026-11-20T11:00:00", "2026-11-20T10:00:00"]
    assert "start=2026-11-20T11%3A00%3A00%2B01%3A00" in proxy.seen[0]["path"]

    paid_or_high = list(client.iter_events(entity_id=entity,
                                           event_type=["invoice.paid", "invoice.missing"]))
    assert len(paid_or_high) == 2 and {e["event_type"] for e in paid_or_high} == {"invoice.paid"}
    high = list(client.iter_events(entity_id=entity, severity=["high", "critical"], tag="even"))
    assert [e["id"] for e in high] == [sent["ids"][4]]
    assert list(client.iter_events(entity_id=entity, actor="nobody")) == []


def test_naive_datetime_is_refused(client):
    with pytest.raises(ValueError, match="no time zone"):
        next(client.iter_events(start=datetime(2026, 1, 1)))


def test_verify(client):
    client.send_batch([make_event(), make_event()])
    report = client.verify()
    assert report["intact"] is True and report["broken_seq"] is None
    assert client.verify(full=True)["intact"] is True


def test_alerts(client, account, trailseal_services):
    for title in ("first", "second"):
        record_alert(trailseal_services, account.id, kind="test", severity="low", title=title,
                     details={})
    everything = list(client.alerts())
    assert [a["title"] for a in everything] == ["second", "first"]
    assert [a["title"] for a in client.alerts(status="open", limit=500)] == ["second", "first"]
    assert list(client.alerts(status="resolved")) == []
    # A page of one: with cursors on /alerts the iterator follows them to the end; without,
    # it stops after the page. Either way it yields a prefix, newest first, without repeats.
    paged = [a["id"] for a in client.alerts(limit=1)]
    assert paged and paged == [a["id"] for a in everything][: len(paged)]


# -- packaging ----------------------------------------------------------------------------


@pytest.mark.slow
def test_client_installs_and_works_without_server_dependencies(tmp_path, server_url, account):
    """The client's wheel installs into a fresh venv (no network needed) where none of the
    server's packages exist, and talks to the server from there: appends, replays a key and
    lists the event back."""
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    shutil.copytree(CLIENT_DIR, source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(wheels), str(source)], check=True)
    [wheel] = wheels.glob("trailseal_client-0.1.0-*.whl")
    venv = tmp_path / "venv"
    # The client supports Python 3.9+: set TRAILSEAL_CLIENT_TEST_PYTHON to an older
    # interpreter to check it there (the wheel is built by the test's own Python).
    base_python = os.environ.get("TRAILSEAL_CLIENT_TEST_PYTHON", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--quiet",
                    "--disable-pip-version-check", str(wheel)], check=True)
    script = """
import importlib.util, json, sys
from datetime import datetime, timedelta, timezone
from trailseal_client import Client, NotFound
present = [m for m in ("flask", "psycopg", "sqlalchemy", "pydantic", "orjson", "trailseal")
           if importlib.util.find_spec(m) is not None]
client = Client(sys.argv[1], sys.argv[2])
event = {"event_type": "sdk.installed", "occurred_at": "2026-11-20T10:00:00Z",
         "actor": {"id": "ci", "type": "service"},
         "entity": {"type": "package", "id": "trailseal-client"}, "severity": "info"}
first = client.send(event, idempotency_key="install-check")
again = client.send(event, idempotency_key="install-check")
start = datetime(2026, 11, 20, 10, 30, tzinfo=timezone(timedelta(hours=1)))
listed = [e["id"] for e in client.iter_events(start=start, entity_id="trailseal-client")]
try:
    client.get_event("00000000-0000-4000-8000-000000000000")
    missing = None
except NotFound as exc:
    missing = exc.code
print(json.dumps({"python": sys.version_info[:2], "present": present, "first": first,
                  "again": again, "listed": listed, "missing": missing,
                  "intact": client.verify()["intact"]}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(python), "-c", script, server_url, account.token], check=True,
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    report = json.loads(out.stdout)
    expected = subprocess.run([base_python, "-c", "import sys; print(list(sys.version_info[:2]))"],
                              check=True, capture_output=True, text=True).stdout
    assert report["python"] == json.loads(expected)
    assert report["present"] == []
    assert report["first"]["replayed"] is False
    assert report["again"] == {**report["first"], "replayed": True}
    assert report["listed"] == [report["first"]["id"]]
    assert report["missing"] == "not_found"
    assert report["intact"] is True
