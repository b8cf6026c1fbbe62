"""``Client``: append events to a Trailseal trail and read them back over its REST API."""

from __future__ import annotations

import json
import platform
import ssl
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Union
from urllib.parse import quote

from . import query
from .errors import TrailsealError
from .transport import Response, Transport

__version__ = "0.1.0"

API_PREFIX = "/api/v1"
BATCH_MAX_EVENTS = 1000  # the server's limit; checked here so a bad batch costs no request

DEFAULT_USER_AGENT = f"trailseal-client/{__version__} (Python {platform.python_version()})"

Timestamp = Union[datetime, str]
OneOrMany = Union[str, list[str], tuple[str, ...]]


class Client:
    """A Trailseal API client for one tenant's API key.

    ``url`` is the server's base URL (``https://audit.example.com``, or with a path prefix
    if the API is mounted under one). Requests that fail for transient reasons (no
    connection, timeout, 5xx, 429) are retried up to ``max_retries`` times with
    exponential backoff from ``backoff`` seconds, capped at ``max_backoff``; appends keep
    one Idempotency-Key across their retries. ``ssl_context`` overrides certificate checks (a private CA, say).
    A client holds no connection between calls and may be shared by threads.
    """

    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0, max_retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0,
                 user_agent: str = DEFAULT_USER_AGENT,
                 ssl_context: ssl.SSLContext | None = None):
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        self.url = url
        self._transport = Transport(
            url,
            headers={"Authorization": f"Bearer {api_key.strip()}", "User-Agent": user_agent,
                     "Accept": "application/json"},
            timeout=timeout, max_retries=max_retries, backoff=backoff,
            max_backoff=max_backoff, ssl_context=ssl_context,
        )

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the API key

    # -- appending ------------------------------------------------------------------------

    def send(self, event: dict[str, Any], *, idempotency_key: str | None = None
             ) -> dict[str, Any]:
        """Append one event (``POST /api/v1/events``).

        Returns ``{"id", "seq", "hash", "replayed"}``; ``replayed`` is True when the server
        had already stored this request under the same Idempotency-Key and answered with
        the stored result. Without ``idempotency_key`` a fresh one is made for this call and
        kept across its retries, so a retried append is never stored twice.
        """
        if not isinstance(event, dict):
            raise TypeError(f"event must be a dict, got {type(event).__name__}")
        response = self._append("/events", event, idempotency_key)
        return {**_json(response), "replayed": _replayed(response)}

    def send_batch(self, events: list[dict[str, Any]], *, idempotency_key: str | None = None
                   ) -> dict[str, Any]:
        """Append 1–1000 events atomically (``POST /api/v1/events/batch``).

        Returns ``{"ids", "first_seq", "last_seq", "replayed"}``; idempotency as in ``send``.
        """
        events = list(events)
        if not 1 <= len(events) <= BATCH_MAX_EVENTS:
            raise ValueError(f"a batch holds 1 to {BATCH_MAX_EVENTS} events, got {len(events)}")
        for event in events:
            if not isinstance(event, dict):
                raise TypeError(f"every event must be a dict, got {type(event).__name__}")
        response = self._append("/events/batch", {"events": events}, idempotency_key)
        return {**_json(response), "replayed": _replayed(response)}

    def _append(self, path: str, body: Any, idempotency_key: str | None) -> Response:
        key = str(idempotency_key) if idempotency_key is not None else str(uuid.uuid4())
        # Encoded once: every attempt sends the same bytes under the same key.
        payload = json.dumps(body, ensure_ascii=False, allow_nan=False,
                             separators=(",", ":")).encode("utf-8")
        # The server reads the key as UTF-8 bytes; http.client would encode a str as latin-1.
        headers = {"Idempotency-Key": key.encode("utf-8")}
        return self._transport.request("POST", API_PREFIX + path, body=payload, headers=headers)

    # -- reading --------------------------------------------------------------------------

    def get_event(self, event_id: str | uuid.UUID) -> dict[str, Any]:
        """One event by id (``GET /api/v1/events/{id}``); ``NotFound`` if this tenant has
        no such event."""
        return self._get(f"/events/{quote(str(event_id), safe='')}")

    def iter_events(self, *, start: Timestamp | None = None, end: Timestamp | None = None,
                    event_type: OneOrMany | None = None, actor: str | None = None,
                    entity_type: str | None = None, entity_id: str | None = None,
                    severity: OneOrMany | None = None, category: str | None = None,
                    risk_level: str | None = None, tag: OneOrMany | None = None,
                    limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Every event matching the filters, newest first (``GET /api/v1/events``, all pages).

        ``start`` (inclusive) and ``end`` (exclusive) take timezone-aware datetimes or
        RFC 3339 strings; ``event_type``, ``severity`` and ``tag`` take one value or a list
        (any of them matches); ``limit`` is the page size (1–500). Pages are fetched lazily
        as the iterator is consumed.
        """
        pairs: query.Pairs = []
        query.add(pairs, "start", start)
        query.add(pairs, "end", end)
        query.add(pairs, "event_type", event_type)
        query.add(pairs, "actor", actor)
        query.add(pairs, "entity_type", entity_type)
        query.add(pairs, "entity_id", entity_id)
        query.add(pairs, "severity", severity)
        query.add(pairs, "category", category)
        query.add(pairs, "risk_level", risk_level)
        query.add(pairs, "tag", tag)
        query.add(pairs, "limit", limit)
        yield from self._pages("/events", "events", pairs)

    def verify(self, full: bool = False) -> dict[str, Any]:
        """Verify the tenant's hash chain (``GET /api/v1/chain/verify``).

        Returns the server's report: ``intact``, ``broken_seq`` and the rest. ``full=True``
        decodes every record instead of trusting matching column hashes (slower).
        """
        return self._get("/chain/verify", [("full", "true")] if full else [])

    def alerts(self, status: str | None = None, limit: int | None = None
               ) -> Iterator[dict[str, Any]]:
        """Alerts newest first (``GET /api/v1/alerts``), optionally only those with
        ``status`` (``open``, ``acknowledged``, ``resolved``); ``limit`` is the page size
        (1–500). Follows ``next_cursor`` while the server returns one."""
        pairs: query.Pairs = []
        query.add(pairs, "status", status)
        query.add(pairs, "limit", limit)
        yield from self._pages("/alerts", "alerts", pairs)

    def _pages(self, path: str, field: str, pairs: query.Pairs) -> Iterator[dict[str, Any]]:
        # Only a missing or null next_cursor ends the listing: a page may hold fewer items
        # than the limit (the server also cuts pages by size) while more follow.
        cursor = None
        while True:
            page = self._get(path, pairs + ([("cursor", cursor)] if cursor else []))
            yield from page.get(field) or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _get(self, path: str, pairs: query.Pairs | None = None) -> Any:
        response = self._transport.request("GET", API_PREFIX + path,
                                           query=query.encode(pairs or []))
        return _json(response)


def _json(response: Response) -> Any:
    try:
        return json.loads(response.body.decode("utf-8"))
    except ValueError:
        # A 2xx that is not JSON comes from something in front of the API (a login portal,
        # a misrouted proxy), not from Trailseal.
        text = response.body[:200].decode("utf-8", "replace")
        raise TrailsealError(response.status, "invalid_response",
                             f"expected a JSON answer, got: {text!r}") from None


def _replayed(response: Response) -> bool:
    return (response.headers.get("Idempotent-Replayed") or "").strip().lower() == "true"
