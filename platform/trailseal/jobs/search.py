"""Search's job: refreshes a tenant's word estimates (``services.search.lexeme_shares``) so
that no search waits for them."""

from __future__ import annotations

from ..core import current_services
from ..services import search


def refresh_lexemes(tenant_id: str) -> int:
    """Compute the tenant's word estimates afresh; the tenant's events."""
    return search.refresh_lexeme_shares(current_services(), tenant_id)
