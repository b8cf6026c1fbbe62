"""Tenants, users and API keys: creation and look-up."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import Conflict, NotFound, ValidationFailed
from .chain import GENESIS_HASH

PERMISSIONS = ("audit:read", "audit:export", "audit:write", "audit:admin")
ROLES = {
    "viewer": ("audit:read",),
    "analyst": ("audit:read", "audit:export"),
    "writer": ("audit:write",),
    "admin": PERMISSIONS,
}
_hasher = PasswordHasher()


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
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("INSERT INTO tenants (id, slug, name) VALUES (%s, %s, %s)", (tenant_id, slug, name))
        cur.execute(
            "INSERT INTO chain_heads (tenant_id, last_seq, last_hash) VALUES (%s, 0, %s)",
            (tenant_id, GENESIS_HASH),
        )
        key_id = svc.keyring.create_data_key(cur, tenant_id)
    return {"id": str(tenant_id), "slug": slug, "name": name, "key_id": key_id}


def resolve_tenant(svc, ref: str, missing_ok: bool = False) -> uuid.UUID | None:
    """Tenant id from a slug or an id."""
    with svc.db.cursor() as cur:
        cur.execute("SELECT trailseal_resolve_tenant(%s)", (str(ref).strip(),))
        row = cur.fetchone()
    if row is None or row[0] is None:
        if missing_ok:
            return None
        raise NotFound(f"no tenant {ref!r}")
    return row[0]


def tenant_ids(svc) -> list[uuid.UUID]:
    with svc.db.cursor() as cur:
        cur.execute("SELECT trailseal_tenant_ids()")
        return [r[0] for r in cur.fetchall()]


def get_tenant(svc, tenant_id: uuid.UUID) -> dict:
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT id, slug, name, created_at FROM tenants WHERE id = %s", (tenant_id,))
        row = cur.fetchone()
    if row is None:
        raise NotFound("no such tenant")
    return {"id": str(row[0]), "slug": row[1], "name": row[2], "created_at": row[3].isoformat()}


def create_user(svc, tenant_id: uuid.UUID, email: str, password: str, role: str) -> dict:
    email = email.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ValidationFailed(f"{email!r} is not an email address")
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValidationFailed("password must be at least 10 characters")
    with svc.db.cursor() as cur:
        cur.execute("SELECT id FROM trailseal_find_login(%s)", (email,))
        if cur.fetchone() is not None:
            raise Conflict(f"a user {email!r} already exists")
    user_id = uuid.uuid4()
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(
            "INSERT INTO users (id, tenant_id, email, password_hash, role) VALUES (%s, %s, %s, %s, %s)",
            (user_id, tenant_id, email, _hasher.hash(password), role),
        )
    return {"id": str(user_id), "tenant_id": str(tenant_id), "email": email, "role": role}


def authenticate_user(svc, email: str, password: str) -> Principal | None:
    with svc.db.cursor() as cur:
        cur.execute(
            "SELECT id, tenant_id, password_hash, role, is_active FROM trailseal_find_login(%s)",
            (email.strip(),),
        )
        row = cur.fetchone()
    if row is None:
        _hasher.hash(password)  # same work whether or not the user exists
        return None
    user_id, tenant_id, pw_hash, role, active = row
    try:
        _hasher.verify(pw_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if not active:
        return None
    return Principal("user", str(user_id), tenant_id, frozenset(ROLES[role]), email.strip())


def open_session(svc, principal: Principal, remote_addr: str | None = None) -> str:
    """Record a new sign-in session of a user; its id goes into the signed session cookie."""
    session_id = uuid.uuid4()
    with svc.db.cursor(principal.tenant_id) as cur:
        cur.execute(
            "INSERT INTO user_sessions (id, tenant_id, user_id, remote_addr) "
            "VALUES (%s, %s, %s, %s)",
            (session_id, principal.tenant_id, uuid.UUID(principal.id), remote_addr),
        )
    return str(session_id)


def session_user(svc, tenant_id: uuid.UUID, user_id: str, session_id: str,
                 max_age_hours: float) -> Principal | None:
    """The user of a live session: not revoked, younger than ``max_age_hours``, and the user
    still active. None otherwise (the cookie then signs nobody in)."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(
            "SELECT u.id, u.email, u.role FROM user_sessions s JOIN users u "
            "ON u.tenant_id = s.tenant_id AND u.id = s.user_id "
            "WHERE s.id = %s AND s.user_id = %s AND s.revoked_at IS NULL AND u.is_active "
            "AND s.created_at > now() - make_interval(secs => %s)",
            (uuid.UUID(session_id), uuid.UUID(user_id), max_age_hours * 3600),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return Principal("user", str(row[0]), tenant_id, frozenset(ROLES[row[2]]), row[1])


def revoke_session(svc, tenant_id: uuid.UUID, session_id: str, reason: str = "signed out") -> None:
    """End one session server-side (its cookie stops working even if it was copied)."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(
            "UPDATE user_sessions SET revoked_at = now(), revoked_reason = %s "
            "WHERE id = %s AND revoked_at IS NULL",
            (reason, uuid.UUID(session_id)),
        )


def _revoke_user_sessions(cur, user_id: uuid.UUID, reason: str) -> int:
    cur.execute(
        "UPDATE user_sessions SET revoked_at = now(), revoked_reason = %s "
        "WHERE user_id = %s AND revoked_at IS NULL",
        (reason, user_id),
    )
    return cur.rowcount


def deactivate_user(svc, tenant_id: uuid.UUID, email: str) -> dict:
    """Stop a user from signing in and end their sessions; their history stays in the trail."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("UPDATE users SET is_active = false WHERE lower(email) = lower(%s) "
                    "RETURNING id", (email.strip(),))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no user {email} in this tenant")
        ended = _revoke_user_sessions(cur, row[0], "user deactivated")
    return {"id": str(row[0]), "email": email.strip(), "sessions_ended": ended}


def set_password(svc, tenant_id: uuid.UUID, email: str, password: str) -> dict:
    """Give a user a new password and end every session signed in with the old one."""
    if len(password) < 10:
        raise ValidationFailed("password must be at least 10 characters")
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("UPDATE users SET password_hash = %s WHERE lower(email) = lower(%s) "
                    "RETURNING id", (_hasher.hash(password), email.strip()))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no user {email} in this tenant")
        ended = _revoke_user_sessions(cur, row[0], "password changed")
    return {"id": str(row[0]), "email": email.strip(), "sessions_ended": ended}


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
    with svc.db.cursor(tenant_id) as cur:
        cur.execute(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, permissions) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (key_id, tenant_id, name or f"key-{prefix}", prefix, _key_hash(token), perms),
        )
    return {"id": str(key_id), "token": token, "prefix": prefix, "permissions": perms,
            "tenant_id": str(tenant_id)}


def authenticate_api_key(svc, token: str) -> Principal | None:
    if not token.startswith("tsk_") or len(token) > 200:
        return None
    with svc.db.cursor() as cur:
        cur.execute(
            "SELECT id, tenant_id, name, permissions, revoked_at FROM trailseal_find_api_key(%s)",
            (_key_hash(token),),
        )
        row = cur.fetchone()
    if row is None or row[4] is not None:
        return None
    return Principal("api_key", str(row[0]), row[1], frozenset(row[3]), row[2])
