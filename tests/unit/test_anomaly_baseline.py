"""The shipped anomaly baseline is data of the current features (rebuilt by
``bench/build_baseline.py`` whenever the features change) and fits deterministically."""

from __future__ import annotations

import numpy as np

from trailseal_plugins.anomaly.baseline import DATA, baseline_forest, read_rows
from trailseal_plugins.anomaly.features import FEATURE_NAMES


def test_baseline_rows_carry_the_current_features():
    X = read_rows()
    assert X.shape[1] == len(FEATURE_NAMES) and len(X) >= 1000
    assert np.isfinite(X).all()
    assert not DATA.read_bytes().startswith(b"\x80")  # gzip of CSV, not a pickle


def test_baseline_forest_is_deterministic():
    forest, version = baseline_forest()
    baseline_forest.cache_clear()
    again, version2 = baseline_forest()
    X = read_rows()[:200]
    assert version == version2 and version.startswith("baseline-")
    assert np.array_equal(forest.score(X, 0.6)[0], again.score(X, 0.6)[0])
