"""Notification jobs: one attempt of a delivery, and the sweep that sends every delivery
whose retry is due (see ``services.deliveries``)."""

from __future__ import annotations

from datetime import datetime

from ..core import current_services
from ..services.deliveries import attempt_delivery, deliver_due


def deliver_notification(tenant_id: str, delivery_id: str) -> str | None:
    """Attempt one delivery now if it is due; its status after."""
    return attempt_delivery(current_services(), tenant_id, delivery_id)


def deliver_due_notifications(now: str | None = None) -> dict[str, int]:
    """Send every delivery due at ``now`` (RFC 3339; default: the clock)."""
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else None
    return deliver_due(current_services(), moment)
