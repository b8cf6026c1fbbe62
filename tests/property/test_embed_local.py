"""The local embedder reads the same word pieces, and gives the same vectors, as tokenising
each whole text (the tokeniser cuts long texts at a prefix first; ``embed_local.encode``)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from trailseal_plugins import embed_local


@pytest.fixture(scope="module")
def embedder():
    return embed_local.MiniLMEmbedder()


@pytest.fixture(scope="module")
def whole():
    """The tokeniser as the embedder had it: each whole text, cut at ``MAX_TOKENS``, padded
    to the batch's longest."""
    with gzip.open(embed_local.TOKENIZER_FILE, "rt", encoding="utf-8") as f:
        tok = Tokenizer.from_str(f.read())
    tok.enable_truncation(embed_local.MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


_WORDS = st.sampled_from(["deleted", "bucket", "acme-finance", "arn:aws:iam::1234:role/x",
                          "{\"k\":", "Ünïcödé", "日本語", "e\u0301", "\t", "\n", "  ",
                          "x" * 150, "123.45", "..."])
TEXTS = st.one_of(
    st.text(max_size=2000),
    st.lists(_WORDS, max_size=400).map(" ".join),
    st.lists(_WORDS, max_size=400).map("".join),
    st.builds(lambda head, n, tail: head + "a" * n + tail, st.text(max_size=50),
              st.integers(0, 2000), st.text(max_size=50)),
)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(TEXTS, min_size=1, max_size=8))
def test_the_pieces_read_are_those_of_the_whole_text(embedder, whole, texts):
    expected = [[i for i, m in zip(e.ids, e.attention_mask, strict=True) if m]
                for e in whole.encode_batch([t or " " for t in texts])]
    assert embedder.encode(texts) == expected


def _reference(embedder, whole, texts: list[str]) -> np.ndarray:
    """The vectors as the embedder computed them before the prefix cut."""
    encoded = whole.encode_batch([t or " " for t in texts])
    ids = np.array([e.ids for e in encoded], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
    hidden = embedder.session.run(["last_hidden_state"], {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    w = mask[..., None].astype(np.float32)
    pooled = (hidden * w).sum(axis=1) / w.sum(axis=1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def test_the_vectors_are_those_of_the_whole_text(embedder, whole):
    long_detail = " ".join(f"field{k}=value{k}" for k in range(400))
    texts = ["s3.DeleteBucket by mallory on aws:s3:bucket acme-finance-reports " + long_detail,
             "failed sign-in", "", "x" * 5000, "iam.CreateUser " * 300,
             "日本語のテキスト" * 200, "payment refunded after a chargeback"]
    got = np.array(embedder.embed(texts))
    ref = np.concatenate([_reference(embedder, whole, [t]) for t in texts])
    assert got.shape == (len(texts), embed_local.DIMS)
    assert np.allclose(got, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
