"""The OpenAI-compatible embedder: ``embed_texts`` through ``POST {base}/embeddings`` of
OpenAI or any server speaking its API (vLLM, Ollama, LiteLLM, llama.cpp ...).

A first-party plugin (entry point ``embed_openai``), active only while
``TRAILSEAL_OPENAI_EMBED_MODEL`` is set; otherwise it answers None and the local embedder
(``embed_local``) answers. When active it is tried first (``tryfirst=True``): configuring
the model is what chooses it.

- Vectors are stored under the name ``<model>`` or, with ``OPENAI_EMBED_DIMENSIONS`` set,
  ``<model>@<dimensions>`` (the request then asks for that size, which OpenAI's
  text-embedding-3 models support), so changing either makes the backlog job re-embed.
- Texts go out in requests of at most ``OPENAI_EMBED_BATCH`` inputs (≤ 2048).
- Every reply is checked: one vector per input (by ``index``), numbers only, all of one
  size, and that size the one asked for. A failed request (after the client's
  ``OPENAI_MAX_RETRIES`` retries of 429/5xx/connection errors), a timeout or a reply that
  fails a check raises ``OpenAIEmbedError``: enrichment then stores the events without
  embeddings for the backlog job to retry, and search ranks by full text alone.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trailseal import hookimpl
from trailseal.types import EMBEDDING_TEXT_VERSION

from .openai_client import OpenAISettings, client_for, current_settings


class OpenAIEmbedError(RuntimeError):
    """The OpenAI-compatible server did not give usable vectors; the message says why."""


def model_name(settings: OpenAISettings) -> str:
    """The name vectors of these settings are stored under (``audit_embeddings.model``): the
    model, its dimensions when asked for, and the version of the event rendering it embeds
    (``trailseal.types.EMBEDDING_TEXT_VERSION``: a new rendering is a new model, so the
    backlog job embeds every event again)."""
    name = settings.embed_model
    if settings.embed_dimensions:
        name += f"@{settings.embed_dimensions}"
    return f"{name}+r{EMBEDDING_TEXT_VERSION}"


def _request(settings: OpenAISettings, texts: list[str]) -> Any:
    """One embeddings request; the reply's JSON body."""
    import openai

    client = client_for(settings)
    extra: dict[str, Any] = {}
    if settings.embed_dimensions:
        extra["dimensions"] = settings.embed_dimensions
    where = f"{settings.base_url} (model {settings.embed_model})"
    try:
        raw = client.embeddings.with_raw_response.create(
            model=settings.embed_model, input=texts, encoding_format="float", **extra)
        return json.loads(raw.http_response.content)
    except openai.APITimeoutError as exc:
        raise OpenAIEmbedError(f"embedding request to {where} timed out after "
                               f"{settings.timeout:g} s") from exc
    except openai.APIStatusError as exc:
        raise OpenAIEmbedError(f"embedding request to {where} failed: HTTP "
                               f"{exc.status_code}") from exc
    except openai.APIConnectionError as exc:
        raise OpenAIEmbedError(f"embedding request to {where} failed: {exc}") from exc
    except ValueError as exc:  # the body is not JSON
        raise OpenAIEmbedError(f"embedding reply of {where} is not JSON") from exc


def parse_vectors(body: Any, count: int, dimensions: int) -> list[list[float]]:
    """The ``count`` vectors of an embeddings reply, in input order; raises
    ``OpenAIEmbedError`` naming what is wrong with a malformed reply."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise OpenAIEmbedError("embedding reply has no 'data' list")
    if len(data) != count:
        raise OpenAIEmbedError(f"embedding reply has {len(data)} vectors for {count} inputs")
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(data):
        if not isinstance(item, dict):
            raise OpenAIEmbedError("embedding reply item is not an object")
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise OpenAIEmbedError(f"embedding reply has a bad or repeated index {index!r}")
        vector = item.get("embedding")
        if (not isinstance(vector, list) or not vector
                or not all(isinstance(x, int | float) and not isinstance(x, bool)
                           and math.isfinite(x) for x in vector)):
            raise OpenAIEmbedError(f"embedding {index} of the reply is not a list of numbers")
        vectors[index] = [float(x) for x in vector]
    sizes = {len(v) for v in vectors if v is not None}
    if len(sizes) != 1:
        raise OpenAIEmbedError(f"embedding reply mixes vector sizes {sorted(sizes)}")
    size = sizes.pop()
    if dimensions and size != dimensions:
        raise OpenAIEmbedError(f"embedding reply has {size} dimensions, {dimensions} were "
                               "asked for (OPENAI_EMBED_DIMENSIONS)")
    return vectors  # type: ignore[return-value]


def embed(settings: OpenAISettings, texts: list[str]) -> list[list[float]]:
    """One vector per text, in order, in requests of at most ``embed_batch`` texts."""
    vectors: list[list[float]] = []
    size: int | None = None
    for start in range(0, len(texts), settings.embed_batch):
        # An empty input is refused by OpenAI; a space embeds as "nothing".
        batch = [t if t.strip() else " " for t in texts[start:start + settings.embed_batch]]
        got = parse_vectors(_request(settings, batch), len(batch),
                            settings.embed_dimensions)
        if size is not None and len(got[0]) != size:
            raise OpenAIEmbedError("embedding replies of one call differ in vector size")
        size = len(got[0])
        vectors.extend(got)
    return vectors


@hookimpl(tryfirst=True)
def embed_texts(texts: list[str], model: str | None, tenant_id: str) -> dict[str, Any] | None:
    settings = current_settings()
    if settings is None or not settings.embed_model:
        return None
    name = model_name(settings)
    # Asked for another model by name (the backlog re-embedding for it): not ours.
    if model is not None and model != name:
        return None
    return {"model": name, "vectors": embed(settings, [str(t) for t in texts])}
