"""The classification models as plain arrays: trained with scikit-learn (TF-IDF, a
RandomForestClassifier for the category, a GradientBoostingClassifier for the risk level),
stored as one ``npz`` of numbers and text (never a pickle), and applied from those arrays.

Predictions equal scikit-learn's (a test compares them): a forest averages the class shares
of the leaves an event reaches; boosting adds the leaf values of each stage, scaled by the
learning rate, to the initial log-odds, and takes the softmax (the sigmoid for two classes).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .features import NUMERIC

if TYPE_CHECKING:
    from scipy import sparse

# scikit-learn and SciPy (about 85 MB) are imported when a model is first applied, not
# when the plugin loads: a web process that never classifies never holds them.
MODEL_TYPE = "classifier"  # in ``audit_ml_models``
ARTIFACT_FORMAT = "trailseal-classifier-npz-1"
TOKEN_PATTERN = r"[^ ]+"  # texts are already words separated by spaces
NGRAMS = (1, 2)


@dataclass
class Trees:
    """Decision trees concatenated: node ``i`` tests ``feature[i] <= threshold[i]`` and goes
    to ``left[i]``/``right[i]`` (global indices, -1 at leaves); ``value[i]`` is what a leaf
    gives (class shares for a forest, one number per class for boosting)."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray  # (nodes, outputs)
    roots: np.ndarray

    @classmethod
    def from_sklearn(cls, trees: list, values: list[np.ndarray]) -> Trees:
        parts, offset = [], 0
        for t, v in zip(trees, values, strict=True):
            left = np.where(t.children_left >= 0, t.children_left + offset, -1)
            right = np.where(t.children_right >= 0, t.children_right + offset, -1)
            parts.append((left, right, t.feature, t.threshold, v, offset))
            offset += t.node_count
        return cls(
            left=np.concatenate([p[0] for p in parts]).astype(np.int32),
            right=np.concatenate([p[1] for p in parts]).astype(np.int32),
            feature=np.concatenate([p[2] for p in parts]).astype(np.int32),
            threshold=np.concatenate([p[3] for p in parts]).astype(np.float64),
            value=np.concatenate([p[4] for p in parts]).astype(np.float64),
            roots=np.array([p[5] for p in parts], dtype=np.int32))

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each event reaches in each tree: shape (trees, events)."""
        leaf = self.left < 0
        index = np.arange(len(self.left))
        go_left = np.where(leaf, index, self.left)
        go_right = np.where(leaf, index, self.right)
        feature = np.where(leaf, 0, self.feature)
        threshold = np.where(leaf, np.inf, self.threshold)
        nodes = np.repeat(self.roots[:, None], X.shape[0], axis=1)
        rows = np.arange(X.shape[0])[None, :]
        while True:
            if leaf[nodes].all():
                return nodes
            x = X[rows, feature[nodes]]
            nodes = np.where(x <= threshold[nodes], go_left[nodes], go_right[nodes])

    def check(self, n_features: int, outputs: int) -> None:
        n = len(self.left)
        for name in ("right", "feature", "threshold", "value"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"model arrays disagree in length ({name})")
        inner = self.left >= 0
        if ((self.left[inner] <= np.arange(n)[inner]).any()
                or (self.right[inner] <= np.arange(n)[inner]).any()
                or (self.right[inner] >= n).any() or (self.left[inner] >= n).any()):
            raise ValueError("model trees point backwards or outside themselves")
        if ((self.feature[inner] < 0) | (self.feature[inner] >= n_features)).any():
            raise ValueError("model trees read features that do not exist")
        if self.value.shape[1:] != (outputs,) or not np.isfinite(self.value).all():
            raise ValueError("model leaf values have the wrong shape")
        if len(self.roots) and ((self.roots < 0) | (self.roots >= n)).any():
            raise ValueError("model tree roots outside the trees")


@dataclass
class Vectorizer:
    """TF-IDF (sublinear term frequency, L2-normalised rows) over a fixed vocabulary."""

    vocabulary: np.ndarray  # terms, in column order
    idf: np.ndarray

    def __post_init__(self) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self._counter = CountVectorizer(
            vocabulary={t: i for i, t in enumerate(self.vocabulary.tolist())},
            token_pattern=TOKEN_PATTERN, ngram_range=NGRAMS, lowercase=False)

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        from scipy import sparse

        counts = self._counter.transform(texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)
        tfidf = counts.multiply(self.idf).tocsr()
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
        norms[norms == 0.0] = 1.0
        return sparse.diags(1.0 / norms) @ tfidf

    @property
    def size(self) -> int:
        return len(self.vocabulary)


@dataclass
class ClassifierModel:
    """Both models and what they read."""

    vectorizer: Vectorizer
    categories: np.ndarray
    category_trees: Trees
    risks: np.ndarray
    risk_trees: Trees
    risk_init: np.ndarray  # initial raw scores, one per risk output
    learning_rate: float

    @property
    def n_features(self) -> int:
        return self.vectorizer.size + len(NUMERIC)

    def matrix(self, texts: list[str], numbers: np.ndarray) -> np.ndarray:
        return np.hstack([self.vectorizer.transform(texts).toarray(), numbers])

    def category_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.category_trees.leaves(X)  # (trees, events)
        return self.category_trees.value[leaves].mean(axis=0)

    def risk_proba(self, X: np.ndarray) -> np.ndarray:
        leaves = self.risk_trees.leaves(X)
        stages = len(self.risk_trees.roots) // len(self.risk_init)
        per_tree = self.risk_trees.value[leaves][..., 0]  # (trees, events)
        raw = self.risk_init[None, :] + self.learning_rate * per_tree.reshape(
            stages, len(self.risk_init), -1).sum(axis=0).T
        if raw.shape[1] == 1:  # two classes: log-odds of the second
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.column_stack([1.0 - p, p])
        raw -= raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, texts: list[str], numbers: np.ndarray):
        """``(categories, category confidences, risks, risk confidences)`` per event."""
        X = self.matrix(texts, numbers)
        pc, pr = self.category_proba(X), self.risk_proba(X)
        ic, ir = pc.argmax(axis=1), pr.argmax(axis=1)
        rows = np.arange(len(texts))
        return (self.categories[ic], pc[rows, ic], self.risks[ir], pr[rows, ir])

    # --- storage ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays = {"vocabulary": self.vectorizer.vocabulary.astype(str), "idf": self.vectorizer.idf,
                  "categories": self.categories, "risks": self.risks,
                  "risk_init": self.risk_init,
                  "learning_rate": np.array([self.learning_rate]),
                  "numeric": np.array(NUMERIC)}
        for prefix, trees in (("c", self.category_trees), ("r", self.risk_trees)):
            for name in ("left", "right", "feature", "threshold", "value", "roots"):
                arrays[f"{prefix}_{name}"] = getattr(trees, name)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> ClassifierModel:
        """Load and check an artifact (``ValueError`` when it cannot be this model)."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a classifier artifact: {exc}") from None
        try:
            if tuple(a["numeric"].tolist()) != NUMERIC:
                raise ValueError("the artifact reads other features than this version")
            trees = {p: Trees(*(a[f"{p}_{n}"] for n in ("left", "right", "feature", "threshold",
                                                         "value", "roots")))
                     for p in ("c", "r")}
            model = cls(Vectorizer(a["vocabulary"], a["idf"]), a["categories"], trees["c"],
                        a["risks"], trees["r"], a["risk_init"], float(a["learning_rate"][0]))
        except KeyError as exc:
            raise ValueError(f"classifier artifact lacks {exc}") from None
        if len(model.vectorizer.idf) != model.vectorizer.size:
            raise ValueError("vocabulary and idf disagree")
        model.category_trees.check(model.n_features, len(model.categories))
        model.risk_trees.check(model.n_features, 1)
        outputs = len(model.risk_init)
        if outputs not in (1, len(model.risks)) or len(model.risk_trees.roots) % outputs:
            raise ValueError("risk model outputs disagree with its classes")
        return model
