"""A fake OpenAI-compatible model server for ``tests.receivers.HTTPReceiver``: answers
``/v1/embeddings`` with deterministic bag-of-words vectors and ``/v1/chat/completions``
with whatever its ``chat`` function writes from the request (by default: the first two
events of the data, cited)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from tests.receivers import Request, Response, json_response

WORD = re.compile(r"[a-z0-9]+")


def vector_of(text: str, dims: int) -> list[float]:
    """A unit vector of the text's words, each hashed to one dimension."""
    v = [0.0] * dims
    for word in WORD.findall(text.lower()):
        v[int(hashlib.sha1(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = sum(x * x for x in v) ** 0.5
    if not norm:
        v[0], norm = 1.0, 1.0
    return [x / norm for x in v]


def data_of(chat_body: dict) -> dict:
    """The JSON document the narrator quoted in its user message."""
    content = chat_body["messages"][1]["content"]
    assert content.startswith("<data>\n") and content.endswith("\n</data>")
    return json.loads(content[len("<data>\n"):-len("\n</data>")])


def cite_first_two(body: dict) -> str:
    data = data_of(body)
    events = (data.get("events") or [data["event"]])[:2]
    return "\n".join(f"Event {e['event_type']} by {e['actor']['id']} [{e['id']}]"
                     for e in events)


def completion(content: Any, model: str = "fake-chat") -> Response:
    return json_response({"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                          "model": model,
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": content}}]})


class FakeOpenAI:
    """``respond`` of an ``HTTPReceiver`` that speaks the OpenAI API."""

    def __init__(self, dims: int = 384, chat: Callable[[dict], str] = cite_first_two):
        self.dims = dims
        self.chat = chat

    def __call__(self, req: Request) -> Response:
        body = req.json()
        if req.path == "/v1/embeddings":
            dims = body.get("dimensions") or self.dims
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return json_response({
                "object": "list", "model": body["model"],
                "data": [{"object": "embedding", "index": i, "embedding": vector_of(t, dims)}
                         for i, t in enumerate(inputs)],
                "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
        if req.path == "/v1/chat/completions":
            return completion(self.chat(body), body["model"])
        return json_response({"error": {"message": f"no route {req.path}"}}, 404)
