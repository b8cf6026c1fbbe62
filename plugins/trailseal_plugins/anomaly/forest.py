"""An Isolation Forest as plain arrays: trained with scikit-learn, stored as an ``npz`` of
numbers (never a pickle), scored and explained from those arrays.

Scores are scikit-learn's: ``2 ** (-mean path length / c(max_samples))``, in (0, 1); about
0.5 for ordinary events, towards 1 for events the trees isolate quickly. The confidence of
a verdict is the share of trees whose own score falls on the same side of the threshold.
Explanations are SHAP values (``shap.TreeExplainer``, exact for trees) of the mean path
length, signed so that a positive contribution pushes the event towards "anomalous".

One documented addition to the trees (``extreme_shortening``): an amount far outside its
event type's norm (``amount_deviation`` beyond ``EXTREME_FROM`` deviations) shortens the
event's path in every tree by ``EXTREME_STEP`` per deviation beyond it, at most
``EXTREME_CAP``. A forest picks the column of each split at random, so one extreme column
among 31 is isolated only now and then; the term makes such an amount count every time.
It is credited to ``amount_deviation`` in the explanation, which therefore stays exact (the
contributions still add up to the mean path length's difference from the average). A
tree's path is never shortened below 1 (an event isolated at the first split), so scores
stay below 1.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .features import INDEX, N_FEATURES

ARTIFACT_FORMAT = "trailseal-iforest-npz-1"
EULER = 0.5772156649015329
CHUNK = 8192  # events scored at once (memory: trees × CHUNK node indices)
EXTREME_FROM = 4.0  # amount deviations (standard deviations) from which the path shortens
EXTREME_STEP = 1.5  # path length taken off per deviation beyond EXTREME_FROM
EXTREME_CAP = 4.5  # at most this much path length taken off (reached at 7 deviations)


def extreme_shortening(X: np.ndarray) -> np.ndarray:
    """Path length each event's extreme amount takes off in every tree (0 for most events):
    ``EXTREME_STEP × (amount_deviation − EXTREME_FROM)``, between 0 and ``EXTREME_CAP``.
    Only for forests over the detector's own features."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != N_FEATURES:
        return np.zeros(len(X))
    dev = X[:, INDEX["amount_deviation"]].astype(np.float64)
    return np.clip((dev - EXTREME_FROM) * EXTREME_STEP, 0.0, EXTREME_CAP)


def average_path_length(n: np.ndarray | float) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of
    n points (the normaliser of Isolation Forest)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    nb = n[big]
    out[big] = 2.0 * (np.log(nb - 1.0) + EULER) - 2.0 * (nb - 1.0) / nb
    return out


@dataclass
class Forest:
    """Trees concatenated: node ``i`` has children ``left[i]``/``right[i]`` (global indices,
    -1 for leaves), splits on ``feature[i]`` at ``threshold[i]`` and saw ``n_samples[i]``
    training points; ``roots`` are the trees' first nodes."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    n_samples: np.ndarray
    roots: np.ndarray
    max_samples: int
    n_features: int

    def __post_init__(self) -> None:
        depth = np.zeros(len(self.left), dtype=np.int64)
        for root in self.roots:  # parents come before children within a tree
            stack = [int(root)]
            while stack:
                node = stack.pop()
                for child in (self.left[node], self.right[node]):
                    if child >= 0:
                        depth[child] = depth[node] + 1
                        stack.append(int(child))
        self.depth = depth
        self.is_leaf = self.left < 0
        # path length credited at each leaf: its depth plus c(points left in it)
        self.leaf_value = depth + average_path_length(self.n_samples)
        self.norm = float(average_path_length(self.max_samples))
        self.max_depth = int(depth.max()) if len(depth) else 0
        # traversal arrays in which a leaf leads to itself whichever way the test goes
        index = np.arange(len(self.left))
        self._left = np.where(self.is_leaf, index, self.left)
        self._right = np.where(self.is_leaf, index, self.right)
        self._feature = np.where(self.is_leaf, 0, self.feature)
        self._threshold = np.where(self.is_leaf, np.inf, self.threshold)

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    # --- scoring ------------------------------------------------------------------------
    def path_lengths(self, X: np.ndarray) -> np.ndarray:
        """Path length of each event in each tree: shape (trees, events), shortened by the
        extreme-amount term (``extreme_shortening``) for forests over the detector's
        features."""
        X = np.asarray(X, dtype=np.float32)
        out = self._tree_paths(X)
        if self.n_features == N_FEATURES and len(X):  # the extreme-amount term
            cut = extreme_shortening(X)
            if cut.any():  # never below 1 (isolated at the first split), scores stay < 1
                out = np.maximum(out - cut[None, :], np.minimum(out, 1.0))
        return out

    def _tree_paths(self, X: np.ndarray) -> np.ndarray:
        """The trees' own path lengths, shape (trees, events)."""
        out = np.empty((self.n_trees, len(X)), dtype=np.float64)
        for start in range(0, len(X), CHUNK):
            part = X[start:start + CHUNK]
            n = len(part)
            node = np.repeat(self.roots, n)
            sample = np.tile(np.arange(n), self.n_trees) * self.n_features
            flat = part.ravel()
            for _ in range(self.max_depth):  # leaves point at themselves: extra steps are no-ops
                go_left = flat[sample + self._feature[node]] <= self._threshold[node]
                node = np.where(go_left, self._left[node], self._right[node])
            out[:, start:start + n] = self.leaf_value[node].reshape(self.n_trees, n)
        return out

    def score(self, X: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Anomaly scores in (0, 1) and the confidence (0.5–1) of the verdict
        ``score >= threshold``: the share of trees that agree with it."""
        h = self.path_lengths(X)
        if not h.size:
            return np.zeros(0), np.zeros(0)
        scores = np.power(2.0, -h.mean(axis=0) / self.norm)
        votes = (np.power(2.0, -h / self.norm) >= threshold).mean(axis=0)
        flagged = scores >= threshold
        confidence = np.where(flagged, votes, 1.0 - votes)
        return scores, np.clip(confidence, 0.0, 1.0)

    # --- explaining ---------------------------------------------------------------------
    def shap_model(self) -> dict:
        """The forest in ``shap.TreeExplainer``'s dictionary form: each tree's output is its
        expected path length (internal nodes: the sample-weighted mean of their leaves)."""
        trees = []
        bounds = list(self.roots) + [len(self.left)]
        for t in range(self.n_trees):
            lo, hi = bounds[t], bounds[t + 1]
            left = np.where(self.left[lo:hi] >= 0, self.left[lo:hi] - lo, -1)
            right = np.where(self.right[lo:hi] >= 0, self.right[lo:hi] - lo, -1)
            weight = self.n_samples[lo:hi].astype(np.float64)
            values = np.zeros(hi - lo)
            for i in range(hi - lo - 1, -1, -1):  # children after parents: go backwards
                if left[i] < 0:
                    values[i] = self.leaf_value[lo + i]
                else:
                    values[i] = (values[left[i]] * weight[left[i]]
                                 + values[right[i]] * weight[right[i]]) / weight[i]
            features = np.where(left >= 0, self.feature[lo:hi], -1)
            trees.append({
                "children_left": left.astype(np.int32), "children_right": right.astype(np.int32),
                "children_default": left.astype(np.int32), "features": features.astype(np.int32),
                "thresholds": self.threshold[lo:hi].astype(np.float64),
                "values": (values / self.n_trees).reshape(-1, 1),
                "node_sample_weight": weight,
            })
        return {"trees": trees, "base_offset": 0.0, "tree_output": "raw_value",
                "objective": "squared_error", "input_dtype": np.float32,
                "internal_dtype": np.float64}

    def explain(self, X: np.ndarray) -> np.ndarray:
        """SHAP contributions, shape (events, features), signed towards "anomalous": a
        positive value shortens the event's mean path length (more isolated)."""
        import shap

        X = np.asarray(X, dtype=np.float32)
        if not len(X):
            return np.zeros((0, self.n_features))
        explainer = getattr(self, "_explainer", None)
        if explainer is None:
            explainer = self._explainer = shap.TreeExplainer(self.shap_model())
        out = -np.asarray(explainer.shap_values(X, check_additivity=False))
        if self.n_features == N_FEATURES:  # the extreme-amount term, exactly
            rows = np.flatnonzero(extreme_shortening(X) > 0)
            if len(rows):  # the mean path it took off (less where the floor of 1 held)
                part = X[rows]
                taken = self._tree_paths(part).mean(axis=0) - self.path_lengths(part).mean(axis=0)
                out[rows, INDEX["amount_deviation"]] += taken
        return out

    # --- storage ------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, left=self.left, right=self.right, feature=self.feature,
                            threshold=self.threshold, n_samples=self.n_samples,
                            roots=self.roots,
                            meta=np.array([self.max_samples, self.n_features], dtype=np.int64))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Forest:
        """Load an artifact: plain arrays only (``allow_pickle=False``), checked for shape and
        index ranges so a damaged artifact fails here, not while scoring."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("left", "right", "feature", "threshold",
                                           "n_samples", "roots", "meta")}
        n = len(arrays["left"])
        max_samples, n_features = (int(v) for v in arrays["meta"])
        if not all(len(arrays[k]) == n for k in ("right", "feature", "threshold", "n_samples")):
            raise ValueError("forest artifact: arrays of different lengths")
        index = np.arange(n)
        for k in ("left", "right"):
            child = arrays[k]
            if ((child < -1) | (child >= n)).any():
                raise ValueError("forest artifact: a child index out of range")
            if ((child >= 0) & (child <= index)).any():  # no cycles: children come later
                raise ValueError("forest artifact: a child before its parent")
        inner = arrays["left"] >= 0
        if ((arrays["feature"][inner] < 0) | (arrays["feature"][inner] >= n_features)).any():
            raise ValueError("forest artifact: a feature index out of range")
        if ((arrays["roots"] < 0) | (arrays["roots"] >= n)).any():
            raise ValueError("forest artifact: a root out of range")
        return cls(arrays["left"].astype(np.int64), arrays["right"].astype(np.int64),
                   arrays["feature"].astype(np.int64), arrays["threshold"].astype(np.float64),
                   arrays["n_samples"].astype(np.int64), arrays["roots"].astype(np.int64),
                   max_samples, n_features)


def train_forest(X: np.ndarray, *, n_trees: int = 100, max_samples: int = 1024,
                 seed: int = 0) -> Forest:
    """Fit scikit-learn's IsolationForest on ``X`` and keep its trees as arrays."""
    from sklearn.ensemble import IsolationForest

    X = np.asarray(X, dtype=np.float32)
    if len(X) < 2:
        raise ValueError(f"training needs at least 2 events, got {len(X)}")
    psi = min(max_samples, len(X))
    model = IsolationForest(n_estimators=n_trees, max_samples=psi, random_state=seed,
                            n_jobs=1).fit(X)
    lefts, rights, feats, thrs, counts, roots = [], [], [], [], [], []
    offset = 0
    for est, cols in zip(model.estimators_, model.estimators_features_, strict=True):
        tree = est.tree_
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        feature = np.where(left >= 0, np.asarray(cols)[np.maximum(tree.feature, 0)], -1)
        roots.append(offset)
        lefts.append(np.where(left >= 0, left + offset, -1))
        rights.append(np.where(right >= 0, right + offset, -1))
        feats.append(feature.astype(np.int64))
        thrs.append(tree.threshold.astype(np.float64))
        counts.append(tree.n_node_samples.astype(np.int64))
        offset += tree.node_count
    return Forest(np.concatenate(lefts), np.concatenate(rights), np.concatenate(feats),
                  np.concatenate(thrs), np.concatenate(counts), np.array(roots, dtype=np.int64),
                  psi, X.shape[1])
