"""HTTP exchanges with the API and the retry policy around them (standard library only)."""

from __future__ import annotations

import http.client
import random
import ssl
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

from .errors import ConnectionFailed, TrailsealError, error_from_response, parse_retry_after


@dataclass(frozen=True)
class Response:
    """A successful (2xx) answer: status, headers (case-insensitive ``get``) and raw body."""

    status: int
    headers: Message
    body: bytes


def is_retryable(status: int) -> bool:
    """Statuses worth another attempt: rate limiting and server or gateway failures."""
    return status == 429 or status >= 500


class Transport:
    """Sends requests to one base URL, retrying what is safe to retry.

    Every request the client makes is safe to repeat: reads change nothing, and appends
    carry an Idempotency-Key that the caller keeps across attempts. So connection failures,
    timeouts, 5xx and 429 are retried alike, at most ``max_retries`` times, waiting an
    exponentially growing, jittered delay (or the server's Retry-After). Other 4xx answers
    are final and raised at once. A connection is opened per request, so one Transport may
    be shared by threads.
    """

    def __init__(self, base_url: str, *, headers: dict[str, str], timeout: float,
                 max_retries: int, backoff: float, max_backoff: float,
                 ssl_context: ssl.SSLContext | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL, got {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError("url must not carry a query string or fragment")
        if max_retries < 0 or backoff < 0 or max_backoff < 0 or timeout <= 0:
            raise ValueError("timeout must be positive; max_retries, backoff and max_backoff "
                             "must not be negative")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.headers = dict(headers)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.ssl_context = ssl_context

    def request(self, method: str, path: str, *, query: str = "", body: bytes | None = None,
                headers: dict[str, bytes | str] | None = None) -> Response:
        """Send ``method path?query`` until it succeeds or the retries run out.

        Raises the ``TrailsealError`` subclass of the last error answer, or
        ``ConnectionFailed`` when the last attempt got no answer at all.
        """
        target = self.prefix + path + (f"?{query}" if query else "")
        sent = dict(self.headers)
        if body is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        attempt = 0
        while True:
            try:
                response = self._exchange(method, target, body, sent)
            except ssl.SSLCertVerificationError as exc:
                # The same certificate will fail the same way: retrying only delays the error.
                raise ConnectionFailed(f"{method} {path}: TLS verification failed: {exc}",
                                       {"attempts": attempt + 1}) from exc
            except (OSError, http.client.HTTPException) as exc:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(
                        f"{method} {path}: no response after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}", {"attempts": attempt + 1},
                    ) from exc
                delay = self.delay(attempt)
            else:
                if 200 <= response.status < 300:
                    return response
                error = error_from_response(response.status, response.body, response.headers)
                delay = self._retry_delay(response, error, attempt)
            time.sleep(delay)
            attempt += 1

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt + 1``: ``backoff * 2**attempt`` capped at
        ``max_backoff``, half of it fixed and half random, so that clients failing together
        do not retry together."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_delay(self, response: Response, error: TrailsealError, attempt: int) -> float:
        """The wait before retrying an error answer; raises ``error`` when it is final."""
        if not is_retryable(response.status) or attempt >= self.max_retries:
            raise error
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self.delay(attempt)
        if retry_after > self.max_backoff:
            # Waiting less than asked only earns another 429; blocking the caller for longer
            # than it allowed is worse. Hand the decision back with the wait attached.
            raise error
        return retry_after

    def _exchange(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, bytes | str]) -> Response:
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            context = self.ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            answer = conn.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            conn.close()
