"""A tenant's API keys once created: listing them (never the keys) and revoking one."""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import NotFound, ValidationFailed

__all__ = ["list_api_keys", "parse_key_id", "revoke_api_key"]


def parse_key_id(key_id: str | uuid.UUID) -> uuid.UUID:
    """``key_id`` as a UUID; ``ValidationFailed`` when it is not one."""
    if isinstance(key_id, uuid.UUID):
        return key_id
    try:
        return uuid.UUID(key_id)
    except ValueError:
        raise ValidationFailed(
            f"{key_id!r} is not a key id (see `trailseal apikey list`)", {"key_id": key_id}
        ) from None


def list_api_keys(svc, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """The tenant's keys, oldest first: id, name, prefix, permissions, created_at and
    revoked_at (``None`` while active). Only the hash of a key is stored, so no key is here."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT id, name, prefix, permissions, created_at, revoked_at FROM api_keys "
                    "ORDER BY created_at")
        return [
            {"id": kid, "name": name, "prefix": prefix, "permissions": list(perms),
             "created_at": created, "revoked_at": revoked}
            for kid, name, prefix, perms, created, revoked in cur.fetchall()
        ]


def revoke_api_key(svc, tenant_id: uuid.UUID, key_id: str | uuid.UUID) -> dict[str, Any]:
    """Revoke an active key of the tenant; it stops working at once. ``ValidationFailed``
    when ``key_id`` is not a key id, ``NotFound`` when the tenant has no such active key."""
    kid = parse_key_id(key_id)
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
                    "RETURNING id, revoked_at", (kid,))
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"no active key {key_id} in tenant {tenant_id}",
                       {"key_id": str(kid), "tenant_id": str(tenant_id)})
    return {"id": str(row[0]), "tenant_id": str(tenant_id), "revoked_at": row[1]}
