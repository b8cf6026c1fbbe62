"""The connection to an OpenAI-compatible server shared by the ``embed_openai`` and
``narrate_openai`` plugins: settings from the ``OPENAI_*`` configuration keys
(``TRAILSEAL_OPENAI_BASE_URL`` ...) and one ``openai.OpenAI`` client per distinct setting.

Nothing here runs unless a model is configured: both plugins answer None (the local plugin
answers) while their model key is empty, so the default install never opens a connection.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Used when ``OPENAI_BASE_URL`` is empty (OpenAI's own API).
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The most inputs OpenAI accepts in one embeddings request.
MAX_BATCH = 2048


@dataclass(frozen=True)
class OpenAISettings:
    """The ``OPENAI_*`` settings of the running app."""

    base_url: str
    api_key: str
    embed_model: str
    embed_dimensions: int
    embed_batch: int
    chat_model: str
    timeout: float
    max_retries: int
    max_tokens: int
    narrate_events: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OpenAISettings:
        """Read (and bound) the settings from an app configuration."""
        return cls(
            base_url=str(config.get("OPENAI_BASE_URL") or "").strip() or DEFAULT_BASE_URL,
            # Servers that need no key accept any value; the client refuses an empty one.
            api_key=str(config.get("OPENAI_API_KEY") or "").strip() or "unused",
            embed_model=str(config.get("OPENAI_EMBED_MODEL") or "").strip(),
            embed_dimensions=max(0, int(config.get("OPENAI_EMBED_DIMENSIONS") or 0)),
            embed_batch=min(MAX_BATCH, max(1, int(config.get("OPENAI_EMBED_BATCH") or 256))),
            chat_model=str(config.get("OPENAI_CHAT_MODEL") or "").strip(),
            timeout=max(0.1, float(config.get("OPENAI_TIMEOUT") or 10.0)),
            max_retries=max(0, int(config.get("OPENAI_MAX_RETRIES") or 0)),
            max_tokens=max(16, int(config.get("OPENAI_MAX_TOKENS") or 800)),
            narrate_events=max(1, int(config.get("OPENAI_NARRATE_EVENTS") or 20)),
        )


def current_settings() -> OpenAISettings | None:
    """The settings of the current app, or None outside an app (a hook called from a plain
    script: nothing is configured there)."""
    from flask import has_app_context

    if not has_app_context():
        return None
    from trailseal.jobs import current_services

    return OpenAISettings.from_config(current_services().config)


_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


def client_for(settings: OpenAISettings):
    """The process's ``openai.OpenAI`` client for these settings (its connection pool is
    reused across calls; the client is thread-safe)."""
    key = (settings.base_url, settings.api_key, settings.timeout, settings.max_retries)
    client = _clients.get(key)
    if client is None:
        import openai

        with _lock:
            client = _clients.get(key)
            if client is None:
                client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key,
                                       timeout=settings.timeout,
                                       max_retries=settings.max_retries)
                _clients[key] = client
    return client
