"""The shared baseline: what a tenant without a model of its own is classified with.

It is shipped as data, not as a model: ``baseline_events.csv.gz`` holds labelled example
events (a SaaS application's events labelled by hand per event type, and real public audit
events from CloudTrail, Okta, GitHub and Kubernetes with the labels committed in
``bench/data/classify_labels.csv``), built by ``bench/build_classify_baseline.py``. The
models are fitted from them, deterministically, the first time a process needs them (a few
seconds).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from functools import lru_cache
from pathlib import Path

import orjson

from trailseal.types import Event

from .model import ClassifierModel

DATA = Path(__file__).with_name("baseline_events.csv.gz")
COLUMNS = ("event_type", "actor_type", "actor_role", "entity_type", "severity", "source",
           "occurred_at", "action_details", "category", "risk_level")


def read_rows(path: Path = DATA) -> tuple[list[Event], list[str], list[str]]:
    """The baseline's events and their category and risk labels."""
    if not path.exists():
        raise FileNotFoundError(f"the classification baseline {path} is missing; rebuild it "
                                "with python bench/build_classify_baseline.py")
    events, categories, risks = [], [], []
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path.name} has other columns than this version; rebuild it")
        for i, row in enumerate(reader):
            events.append(Event(
                id=f"baseline-{i}", tenant_id="", seq=i + 1, occurred_at=row["occurred_at"],
                event_type=row["event_type"], actor_id="baseline",
                actor_type=row["actor_type"], actor_role=row["actor_role"] or None,
                actor_department=None, entity_type=row["entity_type"], entity_id="",
                severity=row["severity"], source=row["source"] or None, tags=(),
                action_details=orjson.loads(row["action_details"] or "null")))
            categories.append(row["category"])
            risks.append(row["risk_level"])
    return events, categories, risks


def write_rows(events: list[Event], categories: list[str], risks: list[str],
               path: Path = DATA) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e, c, r in zip(events, categories, risks, strict=True):
        writer.writerow([e.event_type, e.actor_type, e.actor_role or "", e.entity_type,
                         e.severity, e.source or "", e.occurred_at,
                         orjson.dumps(e.action_details).decode() if e.action_details else "",
                         c, r])
    with gzip.GzipFile(path, "wb", mtime=0) as f:  # reproducible bytes
        f.write(buf.getvalue().encode())


@lru_cache(maxsize=1)
def baseline_model() -> tuple[ClassifierModel, str]:
    """The baseline models and their version (``baseline-`` and the data's SHA-256 prefix)."""
    from .training import fit

    blob = DATA.read_bytes() if DATA.exists() else b""
    events, categories, risks = read_rows()
    model, _ = fit(events, categories, risks, holdout=False)
    return model, "cls-baseline-" + hashlib.sha256(blob).hexdigest()[:12]
