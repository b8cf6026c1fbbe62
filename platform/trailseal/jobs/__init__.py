"""RQ jobs: plain module-level functions taking ids and JSON-safe values."""

from __future__ import annotations

from ..core import current_services

__all__ = ["current_services"]
