"""Properties of the OpenAI-compatible plugins against a real HTTP server on 127.0.0.1
(``tests.openai_fake``) and real PostgreSQL + Valkey:

- whatever a chat model replies (claims citing retrieved events, the other tenant's events,
  invented ids, or nothing), every citation and source of the answer is an event of the
  search's results, of the caller's tenant;
- the embedder returns one vector per text, in order, for any texts and batch size, in
  ``ceil(n / batch)`` requests.
"""

from __future__ import annotations

import math
import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import ingest
from tests.integration.test_search import INJECTION, _events
from tests.openai_fake import FakeOpenAI, data_of, vector_of
from tests.property.strategies import PROPERTY
from tests.receivers import HTTPReceiver
from trailseal.services.search import ground_answer
from trailseal.testing import make_tenant
from trailseal_plugins.narrate_local import compose_answer

CITED = re.compile(r"\[([0-9a-f-]{36})\]")
QUESTION = "who deleted the bucket and what else happened?"

line_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)
citation = st.one_of(st.tuples(st.just("mine"), st.integers(0, 9)),
                     st.tuples(st.just("other"), st.integers(0, 5)),
                     st.tuples(st.just("invented"), st.uuids().map(str)))
reply_lines = st.lists(st.tuples(line_text, st.lists(citation, max_size=3)), max_size=8)


@pytest.fixture(scope="module")
def server():
    receiver = HTTPReceiver()
    receiver.fake = FakeOpenAI()
    receiver.respond = receiver.fake
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def trails(trailseal_app, trailseal_services, server):
    """Two tenants with the same kind of trail (one with a planted injection), enriched by
    the local embedder."""
    from trailseal.jobs.runtime import run_worker

    client = trailseal_app.test_client()
    victim, other = make_tenant(trailseal_services), make_tenant(trailseal_services)
    others = ingest(client, other, _events())["ids"]
    planted = {**_events()[0], "action_details": {"text": INJECTION}}
    mine = ingest(client, victim, [*_events(), planted])["ids"]
    run_worker(trailseal_app, burst=True)
    return client, victim, mine, others


@pytest.fixture
def configured(trailseal_services, server, monkeypatch):
    for key, value in {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "k",
                       "OPENAI_CHAT_MODEL": "gpt-4o-mini", "OPENAI_EMBED_MODEL": "m",
                       "OPENAI_MAX_RETRIES": 0, "OPENAI_TIMEOUT": 5.0}.items():
        monkeypatch.setitem(trailseal_services.config, key, value)


def _reply(lines, sent: list[str], others: list[str]) -> str:
    out = []
    for text, refs in lines:
        ids = [sent[i % len(sent)] if kind == "mine" else
               others[i % len(others)] if kind == "other" else i
               for kind, i in refs]
        out.append(text + "".join(f"[{x}]" for x in ids))
    return "\n".join(out)


@PROPERTY
@given(lines=reply_lines)
def test_any_model_reply_cites_only_the_results_of_the_tenant(trails, server, configured,
                                                              monkeypatch, lines):
    client, victim, mine, others = trails
    monkeypatch.setitem(client.application.extensions["trailseal"].config,
                        "OPENAI_EMBED_MODEL", "")  # the question is embedded locally
    written: list[str] = []

    def chat(body):
        written.append(_reply(lines, [e["id"] for e in data_of(body)["events"]], others))
        return written[-1]

    server.fake.chat = chat
    resp = client.post("/api/v1/search", json={"query": QUESTION, "limit": 10,
                                               "answer": True}, headers=victim.headers)
    assert resp.status_code == 200
    body = resp.get_json()
    results = {r["id"]: r for r in body["results"]}
    assert set(results) <= set(mine)
    cited = CITED.findall(body["answer"])
    assert set(cited) <= set(results) and not set(cited) & set(others)
    assert [s["id"] for s in body["sources"]] == list(dict.fromkeys(cited))
    # the model's text is used exactly when it cites a result; grounded either way
    (reply,) = written
    uses_model = any(x in results for x in CITED.findall(reply))
    narrated = reply.strip() if uses_model else compose_answer(QUESTION, body["results"])
    assert body["answer"] == (ground_answer(narrated, results)[0]
                              or "No answer could be composed from the events found.")


@PROPERTY
@given(texts=st.lists(st.text(max_size=40), max_size=30), batch=st.integers(1, 8))
def test_vectors_come_back_one_per_text_in_order_in_bounded_batches(
        trailseal_app, trailseal_services, server, configured, monkeypatch, texts, batch):
    monkeypatch.setitem(trailseal_services.config, "OPENAI_EMBED_BATCH", batch)
    monkeypatch.setitem(trailseal_services.config, "OPENAI_EMBED_DIMENSIONS", 16)
    server.requests.clear()
    with trailseal_app.app_context():
        answer = trailseal_services.pm.hook.embed_texts(texts=texts, model=None,
                                                        tenant_id=str(uuid.uuid4()))
    assert answer["model"] == "m@16+r2"
    assert answer["vectors"] == [vector_of(t if t.strip() else " ", 16) for t in texts]
    assert len(server.requests) == math.ceil(len(texts) / batch)
    assert all(len(r.json()["input"]) <= batch for r in server.requests)
