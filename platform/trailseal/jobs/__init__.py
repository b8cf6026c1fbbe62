"""RQ jobs: plain module-level functions taking ids and JSON-safe values.

Plugins may use ``current_services`` (the facade inside a job) and ``enrich_events``
(enrich a seq range of a tenant now, in this process: classifiers, detectors, embeddings,
alerts; idempotent).
"""

from __future__ import annotations

from ..core import current_services
from .enrichment import enrich_events

__all__ = ["current_services", "enrich_events"]
