"""The shared baseline: what a tenant with few events is scored with.

It is shipped as data, not as a model: ``baseline_features.csv.gz`` holds feature rows
(``FEATURE_NAMES`` as the header) computed by ``bench/build_baseline.py`` from benign
public-format CloudTrail activity replayed through the same featuriser, from a tenant's
first event on, so it knows what a young trail looks like. The forest is fitted from those
rows, deterministically, the first time a process needs it (well under a second).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from .features import FEATURE_NAMES
from .forest import Forest, train_forest

DATA = Path(__file__).with_name("baseline_features.csv.gz")
SEED = 20261127


def read_rows(path: Path = DATA) -> np.ndarray:
    """The baseline's feature rows; a clear error when the file is missing or does not
    carry the current features."""
    if not path.exists():
        raise FileNotFoundError(f"the anomaly baseline {path} is missing; rebuild it with "
                                "python bench/build_baseline.py")
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if tuple(header) != FEATURE_NAMES:
            raise ValueError(f"{path.name} has other features than this version; rebuild it "
                             "with python bench/build_baseline.py")
        return np.array([[float(v) for v in row] for row in reader], dtype=np.float64)


def write_rows(X: np.ndarray, path: Path = DATA) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FEATURE_NAMES)
    for row in X:
        writer.writerow([f"{v:.6g}" for v in row])
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # reproducible bytes
        f.write(buf.getvalue().encode())


@lru_cache(maxsize=1)
def baseline_forest() -> tuple[Forest, str]:
    """The baseline forest and its version (``baseline-`` and the data's SHA-256 prefix)."""
    blob = DATA.read_bytes() if DATA.exists() else b""
    X = read_rows()
    version = "baseline-" + hashlib.sha256(blob).hexdigest()[:12]
    return train_forest(X, seed=SEED), version
