"""How well the category model classifies real audit events it has never seen the like of.

Data: the labelled public events of ``bench/classify_dataset.py`` (CloudTrail detonations
and Panther fixtures for CloudTrail, Okta, GitHub, EKS, GCP, Slack and Workspace; Falco's
Kubernetes audit traces), one label per event type, chosen by hand
(``bench/data/classify_labels.csv``, how in ``bench/data/CLASSIFY_LABELS.md``).

Cross-validation is grouped: a Stratus technique, a Panther rule's fixtures or a Falco trace
file is wholly in the training folds or wholly in the test fold, so the model is scored on
activity it did not train on. Pooled over the folds, the script prints macro-F1 (and
accuracy) of the category model against two peers in the same run: the majority class of
the training folds, and the keyword rules alone (``weak.rule_category``, falling back to
the training folds' majority class when no rule matches). The risk model's figures are
printed too.

    python bench/eval_classify.py [--folds 5] [--seeds 3]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_dataset import labelled_events  # noqa: E402

from trailseal.types import CATEGORIES, RISK_LEVELS, Event  # noqa: E402
from trailseal_plugins.classify.features import inputs  # noqa: E402
from trailseal_plugins.classify.training import fit  # noqa: E402
from trailseal_plugins.classify.weak import rule_labels  # noqa: E402


def as_event(i: int, d: dict) -> Event:
    return Event(id=f"e{i}", tenant_id="eval", seq=i + 1, occurred_at=d["occurred_at"],
                 event_type=d["event_type"], actor_id=d["actor_id"],
                 actor_type=d["actor_type"], actor_role=d.get("actor_role"),
                 actor_department=None, entity_type=d["entity_type"],
                 entity_id=d["entity_id"], severity=d["severity"], source=d.get("source"),
                 tags=(), action_details=d.get("action_details"))


def scores(y_true, y_pred, labels) -> dict[str, float]:
    return {"macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro",
                                 zero_division=0),
            "accuracy": accuracy_score(y_true, y_pred)}


def run(folds: int, seed: int, events, cats, risks, groups) -> dict[str, dict]:
    """Pooled predictions over grouped folds (the groups shuffled by ``seed``)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    shuffled = dict(zip(names, rng.permutation(len(names)), strict=True))
    g = np.array([shuffled[x] for x in groups])
    pred = {"model": [None] * len(events), "rules": [None] * len(events),
            "majority": [None] * len(events), "risk_model": [None] * len(events),
            "risk_rules": [None] * len(events)}
    for train, test in GroupKFold(n_splits=folds).split(events, groups=g):
        tr = [events[i] for i in train]
        model, _ = fit(tr, [cats[i] for i in train], [risks[i] for i in train], seed=seed,
                       holdout=False)
        majority = Counter(cats[i] for i in train).most_common(1)[0][0]
        te = [events[i] for i in test]
        texts, numbers = inputs(te)
        c, _, r, _ = model.predict(texts, numbers)
        for k, i in enumerate(test):
            pred["model"][i] = str(c[k])
            pred["risk_model"][i] = str(r[k])
            pred["majority"][i] = majority
            rule_cat, rule_risk = rule_labels(events[i])
            pred["rules"][i] = rule_cat or majority
            pred["risk_rules"][i] = rule_risk
    labels = [c for c in CATEGORIES if c in set(cats)]
    out = {name: scores(cats, pred[name], labels) for name in ("model", "rules", "majority")}
    risk_labels = [r for r in RISK_LEVELS if r in set(risks)]
    out["risk_model"] = scores(risks, pred["risk_model"], risk_labels)
    out["risk_rules"] = scores(risks, pred["risk_rules"], risk_labels)
    out["_per_class"] = {c: f for c, f in zip(labels, f1_score(
        cats, pred["model"], labels=labels, average=None, zero_division=0), strict=True)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    raw = labelled_events()
    events = [as_event(i, d) for i, d in enumerate(raw)]
    cats = [d["category"] for d in raw]
    risks = [d["risk_level"] for d in raw]
    groups = [d["_group"] for d in raw]
    print(f"{len(events)} labelled events, {len(set(groups))} groups, "
          f"{len({d['event_type'] for d in raw})} event types; {args.folds}-fold grouped CV; "
          f"{platform.processor() or platform.machine()}")
    started = time.perf_counter()
    results = [run(args.folds, seed, events, cats, risks, groups) for seed in range(args.seeds)]
    print(f"({time.perf_counter() - started:.1f} s)")
    print(f"{'':24}{'macro-F1':>10}{'accuracy':>10}   per seed (macro-F1)")
    for name, title in (("model", "category model"), ("rules", "keyword rules alone"),
                        ("majority", "majority class"), ("risk_model", "risk model"),
                        ("risk_rules", "risk rules alone")):
        f1s = [r[name]["macro_f1"] for r in results]
        acc = [r[name]["accuracy"] for r in results]
        print(f"{title:24}{np.mean(f1s):10.3f}{np.mean(acc):10.3f}   "
              + " ".join(f"{f:.3f}" for f in f1s))
    model = np.mean([r["model"]["macro_f1"] for r in results])
    rules = np.mean([r["rules"]["macro_f1"] for r in results])
    major = np.mean([r["majority"]["macro_f1"] for r in results])
    print(f"ratio model / rules: {model / rules:.2f}; model / majority: {model / major:.2f}")
    print("per-class F1 of the model (seed 0): " + ", ".join(
        f"{c} {f:.2f}" for c, f in results[0]["_per_class"].items()))


if __name__ == "__main__":
    main()
