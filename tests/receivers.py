"""Real receivers on 127.0.0.1 for the outside world: an HTTP server that records requests
(Slack, Teams, Zapier, webhooks, OpenAI-compatible APIs) and an SMTP server (aiosmtpd).

``HTTPReceiver`` answers each request with ``respond(request) -> (status, headers, body)``
(default 200 ``{"ok": true}``); ``fail_first = N`` answers the first N requests 503;
``delay`` sleeps before answering (timeouts).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Response = tuple[int, dict[str, str], bytes]


def json_response(payload: Any, status: int = 200) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()


@dataclass
class HTTPReceiver:
    respond: Callable[[Request], Response] | None = None
    fail_first: int = 0
    fail_status: int = 503
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.requests.append(req)
                    n = len(receiver.requests)
                if receiver.delay:
                    time.sleep(receiver.delay)
                if n <= receiver.fail_first:
                    status, headers, out = json_response({"error": "unavailable"},
                                                         receiver.fail_status)
                elif receiver.respond is not None:
                    status, headers, out = receiver.respond(req)
                else:
                    status, headers, out = json_response({"ok": True})
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def attachments(self) -> list[tuple[str, bytes]]:
        return [(part.get_filename(), part.get_payload(decode=True))
                for part in self.message.iter_attachments()]

    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""


class SMTPReceiver:
    """aiosmtpd on 127.0.0.1 (no TLS, no auth) that keeps every message it accepts."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[Mail] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
                outer.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))
                return "250 Message accepted for delivery"

        # aiosmtpd connects to its own port once started, so it needs a real one, not 0.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def config(self) -> dict[str, Any]:
        """The ``SMTP_*`` settings that send to this receiver."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_SECURITY": "none",
                "SMTP_FROM": "reports@trailseal.test", "SMTP_TIMEOUT": 5.0}

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)

    def close(self) -> None:
        if self.controller.loop.is_running():
            self.controller.stop()
