"""The event classifier (``register_classifiers``): business-rule tags, then a category and
a risk level with their confidences from the tenant's own models (once trained) or the
shared baseline.

Results are cached in Redis for an hour, keyed by the tenant, the model version and the
SHA-256 of what the models read of the event (``features.content_key``): an event like one
seen before is answered from the cache, and a new model version reads other keys, so its
first answers are its own. The active version itself is noted in Redis (``ACTIVE_TTL``), so
a cached lookup is two Redis reads and no database round trip. Tags are not cached (they follow the tenant's rules, which can
change at any time, and cost microseconds).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from trailseal.rules import compile_tag_rules
from trailseal.types import REVIEW_BELOW, Classification, Event

from ..common import UsesServices
from .baseline import baseline_model
from .features import key_of, numbers_of, text_of
from .model import MODEL_TYPE, ClassifierModel

log = logging.getLogger(__name__)

NAME = "classifier"
CACHE_TTL = 3600  # seconds
ACTIVE_TTL = 60  # seconds the active version noted in Redis is trusted
_MODELS_KEPT = 32
_models: OrderedDict[tuple[str, str], ClassifierModel] = OrderedDict()


def cache_key(tenant_id: str, version: str, content: str) -> str:
    return f"trailseal:cls:{tenant_id}:{version}:{content}"


def active_key(tenant_id: str) -> str:
    return f"trailseal:cls:active:{tenant_id}"


def remember_active(svc, tenant_id: str, version: str | None) -> None:
    """Note the tenant's active classifier version in Redis for ``ACTIVE_TTL`` seconds (""
    for none), so a lookup needs no database round trip. Training calls it on activation;
    any other change of the active model is seen within ``ACTIVE_TTL``."""
    try:
        svc.redis.set(active_key(tenant_id), version or "", ex=ACTIVE_TTL)
    except Exception:  # noqa: BLE001 - no Redis: the database is asked every time
        pass


def _active_version(svc, tenant_id: str) -> str | None:
    try:
        noted = svc.redis.get(active_key(tenant_id))
    except Exception:  # noqa: BLE001
        noted = None
    if noted is not None:
        return noted.decode() or None
    version = svc.active_model_version(tenant_id, MODEL_TYPE)
    remember_active(svc, tenant_id, version)
    return version


def choose_model(svc, tenant_id: str) -> tuple[ClassifierModel, str, str]:
    """(models, version, "tenant" or "baseline"): the tenant's active model when it has one
    that loads, else the baseline (a damaged artifact is logged, never fatal). A model
    already loaded is reused while it stays the active version."""
    try:
        version = _active_version(svc, tenant_id)
        key = (str(tenant_id), version or "")
        model = _models.get(key) if version else None
        if version and model is None:
            found = svc.active_model(tenant_id, MODEL_TYPE)
            if found is not None:
                model = ClassifierModel.from_bytes(found["artifact"])
                key = (str(tenant_id), found["version"])
                version = found["version"]
                _models[key] = model
                while len(_models) > _MODELS_KEPT:
                    _models.popitem(last=False)
    except Exception:  # noqa: BLE001 - a damaged artifact must not stop enrichment
        log.exception("tenant %s: the active classifier cannot be loaded; using the baseline",
                      tenant_id)
        model = None
    if model is not None:
        _models.move_to_end(key)
        return model, version, "tenant"
    model, version = baseline_model()
    return model, version, "baseline"


class EventClassifier(UsesServices):
    """Classifies a tenant's events (see the module docstring)."""

    name = NAME

    def __init__(self, tenant_id: str, svc=None):
        super().__init__(tenant_id, svc)
        self.last_run: dict[str, Any] = {}

    def predict(self, events: Sequence[Event]) -> tuple[list[dict], str, str]:
        """Per event ``{category, risk_level, category_confidence, risk_confidence}``, from
        the cache where it holds them; and the model version and scope used."""
        svc = self.svc
        model, version, scope = choose_model(svc, self.tenant_id)
        texts = [text_of(e) for e in events]
        numbers = [numbers_of(e) for e in events]
        keys = [cache_key(self.tenant_id, version, key_of(t, n))
                for t, n in zip(texts, numbers, strict=True)]
        try:
            cached = svc.redis.mget(keys) if keys else []
        except Exception:  # noqa: BLE001 - no cache: classify everything
            log.warning("classification cache unavailable; classifying without it")
            cached = [None] * len(keys)
        results: list[dict | None] = [orjson.loads(c) if c else None for c in cached]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            cats, pc, risks, pr = model.predict([texts[i] for i in missing],
                                                np.array([numbers[i] for i in missing]))
            fresh = {}
            for j, i in enumerate(missing):
                results[i] = {"category": str(cats[j]), "risk_level": str(risks[j]),
                              "category_confidence": round(float(pc[j]), 4),
                              "risk_confidence": round(float(pr[j]), 4)}
                fresh[keys[i]] = orjson.dumps(results[i])
            try:
                pipe = svc.redis.pipeline(transaction=False)
                for key, value in fresh.items():
                    pipe.set(key, value, ex=CACHE_TTL)
                pipe.execute()
            except Exception:  # noqa: BLE001
                log.warning("classification cache unavailable; results not cached")
        self.last_run = {"events": len(events), "cached": len(events) - len(missing),
                         "model_version": version, "model_scope": scope}
        return results, version, scope  # type: ignore[return-value]

    def classify(self, events: Sequence[Event]) -> list[Classification]:
        if not events:
            return []
        tags_of = compile_tag_rules(self.svc.tag_rules(self.tenant_id))
        results, version, _ = self.predict(events)
        out = []
        for e, r in zip(events, results, strict=True):
            confidence = min(r["category_confidence"], r["risk_confidence"])
            out.append(Classification(
                event_id=e.id, category=r["category"], risk_level=r["risk_level"],
                confidence=confidence, tags=tuple(tags_of(e)),
                review_required=confidence < REVIEW_BELOW, model_version=version,
                category_confidence=r["category_confidence"],
                risk_confidence=r["risk_confidence"]))
        return out
