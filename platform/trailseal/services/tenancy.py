"""Tenants, users, sign-in sessions and API keys: creation and look-up.

Look-ups that must cross tenants before one is known (a login, an API key, a slug) go
through the SECURITY DEFINER functions of the first migration, the only doors through
row-level security.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from ..db import driver_cursor
from ..errors import Conflict, NotFound, ValidationFailed
from ..tables import api_keys, chain_heads, tenants, user_sessions, users
from .chain import GENESIS_HASH

PERMISSIONS = ("audit:read", "audit:export", "audit:review", "audit:write", "audit:admin")
ROLES = {
    "viewer": ("audit:read",),
    "analyst": ("audit:read", "audit:export", "audit:review"),
    "writer": ("audit:write",),
    "admin": PERMISSIONS,
}
_hasher = PasswordHasher()


def _find_login(email: str):
    return func.trailseal_find_login(email).table_valued(
        "id", "tenant_id", "password_hash", "role", "is_active")


def _find_api_key(key_hash: bytes):
    return func.trailseal_find_api_key(key_hash).table_valued(
        "id", "tenant_id", "name", "permissions", "revoked_at")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (web session) or an API key, bound to one tenant."""

    kind: str  # "user" | "api_key" | "system"
    id: str
    tenant_id: uuid.UUID
    permissions: frozenset[str]
    name: str = ""

    def can(self, permission: str) -> bool:
        return permission in self.permissions or "audit:admin" in self.permissions


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    if not slug:
        raise ValidationFailed("tenant name must contain a letter or digit")
    return slug


def create_tenant(svc, name: str, slug: str | None = None) -> dict:
    """Create a tenant with its first data key and an empty chain head."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("tenant name must be 1–200 characters")
    slug = slugify(slug or name)
    if resolve_tenant(svc, slug, missing_ok=True) is not None:
        raise Conflict(f"tenant {slug!r} already exists", {"slug": slug})
    tenant_id = uuid.uuid4()
    with svc.db.transaction(tenant_id) as conn:
        conn.execute(insert(tenants).values(id=tenant_id, slug=slug, name=name))
        conn.execute(insert(chain_heads).values(tenant_id=tenant_id, last_seq=0,
                                                last_hash=GENESIS_HASH))
        with driver_cursor(conn) as cur:
            key_id = svc.keyring.create_data_key(cur, tenant_id)
    return {"id": str(tenant_id), "slug": slug, "name": name, "key_id": key_id}


def resolve_tenant(svc, ref: str, missing_ok: bool = False) -> uuid.UUID | None:
    """Tenant id from a slug or an id."""
    with svc.db.transaction() as conn:
        found = conn.execute(select(func.trailseal_resolve_tenant(str(ref).strip()))).scalar()
    if found is None:
        if missing_ok:
            return None
        raise NotFound(f"no tenant {ref!r}")
    return found


def tenant_ids(svc) -> list[uuid.UUID]:
    """Every tenant's id, oldest first (for jobs that visit each tenant)."""
    with svc.db.transaction() as conn:
        return list(conn.execute(select(func.trailseal_tenant_ids())).scalars())


def get_tenant(svc, tenant_id: uuid.UUID) -> dict:
    """A tenant's id, slug, name and creation time; 404 for an unknown id."""
    stmt = select(tenants.c.id, tenants.c.slug, tenants.c.name, tenants.c.created_at).where(
        tenants.c.id == tenant_id)
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFound("no such tenant")
    return {"id": str(row["id"]), "slug": row["slug"], "name": row["name"],
            "created_at": row["created_at"].isoformat()}


def create_user(svc, tenant_id: uuid.UUID, email: str, password: str, role: str) -> dict:
    """Create a user of the tenant with ``role``; an email is unique across tenants."""
    email = email.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ValidationFailed(f"{email!r} is not an email address")
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValidationFailed("password must be at least 10 characters")
    with svc.db.transaction() as conn:
        taken = conn.execute(select(_find_login(email).c.id)).first()
    if taken is not None:
        raise Conflict(f"a user {email!r} already exists")
    user_id = uuid.uuid4()
    with svc.db.transaction(tenant_id) as conn:
        conn.execute(insert(users).values(id=user_id, tenant_id=tenant_id, email=email,
                                          password_hash=_hasher.hash(password), role=role))
    return {"id": str(user_id), "tenant_id": str(tenant_id), "email": email, "role": role}


def authenticate_user(svc, email: str, password: str) -> Principal | None:
    """The user with this email and password, if active; None otherwise (same work either
    way, so timing does not tell whether the email exists)."""
    login = _find_login(email.strip())
    with svc.db.transaction() as conn:
        row = conn.execute(select(login)).mappings().first()
    if row is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if not row["is_active"]:
        return None
    return Principal("user", str(row["id"]), row["tenant_id"], frozenset(ROLES[row["role"]]),
                     email.strip())


def open_session(svc, principal: Principal, remote_addr: str | None = None) -> str:
    """Record a new sign-in session of a user; its id goes into the signed session cookie."""
    session_id = uuid.uuid4()
    with svc.db.transaction(principal.tenant_id) as conn:
        conn.execute(insert(user_sessions).values(
            id=session_id, tenant_id=principal.tenant_id, user_id=uuid.UUID(principal.id),
            remote_addr=remote_addr))
    return str(session_id)


def session_user(svc, tenant_id: uuid.UUID, user_id: str, session_id: str,
                 max_age_hours: float) -> Principal | None:
    """The user of a live session: not revoked, younger than ``max_age_hours``, and the user
    still active. None otherwise (the cookie then signs nobody in)."""
    s, u = user_sessions, users
    stmt = (
        select(u.c.id, u.c.email, u.c.role)
        .select_from(s.join(u, (u.c.tenant_id == s.c.tenant_id) & (u.c.id == s.c.user_id)))
        .where(s.c.id == uuid.UUID(session_id), s.c.user_id == uuid.UUID(user_id),
               s.c.revoked_at.is_(None), u.c.is_active,
               # a tenant marked deleted signs nobody in
               ~func.trailseal_tenant_deleted(tenant_id),
               # make_interval(years, months, weeks, days, hours, mins, secs)
               s.c.created_at > func.now() - func.make_interval(
                   0, 0, 0, 0, 0, 0, float(max_age_hours * 3600)))
    )
    with svc.db.transaction(tenant_id) as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    return Principal("user", str(row["id"]), tenant_id, frozenset(ROLES[row["role"]]),
                     row["email"])


def revoke_session(svc, tenant_id: uuid.UUID, session_id: str, reason: str = "signed out") -> None:
    """End one session server-side (its cookie stops working even if it was copied)."""
    with svc.db.transaction(tenant_id) as conn:
        conn.execute(
            update(user_sessions)
            .where(user_sessions.c.id == uuid.UUID(session_id),
                   user_sessions.c.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason=reason)
        )


def _revoke_user_sessions(conn: Connection, user_id: uuid.UUID, reason: str) -> int:
    result = conn.execute(
        update(user_sessions)
        .where(user_sessions.c.user_id == user_id, user_sessions.c.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return result.rowcount


def deactivate_user(svc, tenant_id: uuid.UUID, email: str) -> dict:
    """Stop a user from signing in and end their sessions; their history stays in the trail."""
    with svc.db.transaction(tenant_id) as conn:
        user_id = _update_user(conn, email, is_active=False)
        ended = _revoke_user_sessions(conn, user_id, "user deactivated")
    return {"id": str(user_id), "email": email.strip(), "sessions_ended": ended}


def set_password(svc, tenant_id: uuid.UUID, email: str, password: str) -> dict:
    """Give a user a new password and end every session signed in with the old one."""
    if len(password) < 10:
        raise ValidationFailed("password must be at least 10 characters")
    with svc.db.transaction(tenant_id) as conn:
        user_id = _update_user(conn, email, password_hash=_hasher.hash(password))
        ended = _revoke_user_sessions(conn, user_id, "password changed")
    return {"id": str(user_id), "email": email.strip(), "sessions_ended": ended}


def _update_user(conn: Connection, email: str, **values) -> uuid.UUID:
    """Set ``values`` on the tenant's user with ``email`` (any case); their id, or 404."""
    user_id = conn.execute(
        update(users).where(func.lower(users.c.email) == func.lower(email.strip()))
        .values(**values).returning(users.c.id)
    ).scalar_one_or_none()
    if user_id is None:
        raise NotFound(f"no user {email} in this tenant")
    return user_id


def _key_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_api_key(svc, tenant_id: uuid.UUID, permissions: list[str], name: str = "") -> dict:
    """Create an API key; the token is returned here once and stored only as a hash."""
    perms = sorted({p.strip() for p in permissions if p.strip()})
    unknown = [p for p in perms if p not in PERMISSIONS]
    if unknown or not perms:
        raise ValidationFailed(
            f"permissions must be a non-empty subset of {', '.join(PERMISSIONS)}",
            {"unknown": unknown},
        )
    key_id = uuid.uuid4()
    prefix = secrets.token_hex(4)
    token = f"tsk_{prefix}_{secrets.token_urlsafe(32)}"
    with svc.db.transaction(tenant_id) as conn:
        conn.execute(insert(api_keys).values(
            id=key_id, tenant_id=tenant_id, name=name or f"key-{prefix}", prefix=prefix,
            key_hash=_key_hash(token), permissions=perms))
    return {"id": str(key_id), "token": token, "prefix": prefix, "permissions": perms,
            "tenant_id": str(tenant_id)}


def authenticate_api_key(svc, token: str) -> Principal | None:
    """The API key a Bearer token names, unless unknown or revoked (then None)."""
    if not token.startswith("tsk_") or len(token) > 200:
        return None
    with svc.db.transaction() as conn:
        row = conn.execute(select(_find_api_key(_key_hash(token)))).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    return Principal("api_key", str(row["id"]), row["tenant_id"],
                     frozenset(row["permissions"]), row["name"])


def rotate_data_key(svc, tenant_id: uuid.UUID) -> str:
    """Give a tenant a new data key for new events (older ones stay readable); its id."""
    with svc.db.cursor(tenant_id) as cur:
        return svc.keyring.create_data_key(cur, tenant_id)
