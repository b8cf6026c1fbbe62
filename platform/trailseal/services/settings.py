"""Per-tenant settings (``tenant_settings``): small JSON values by key, such as the anomaly
threshold and the tenant's tag rules, with who changed them and when."""

from __future__ import annotations

import uuid
import zoneinfo
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ..rules import validate_tag_rules
from ..tables import tenant_settings

# Known settings: key -> (default, validator returning the clean value or raising ValueError)
ANOMALY_THRESHOLD = "anomaly.threshold"
DEFAULT_ANOMALY_THRESHOLD = 0.6


def _threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("threshold must be a number")
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError("threshold must be greater than 0 and less than 1")
    return value


TAG_RULES = "tags.rules"  # a tenant's own business-rule tags (``trailseal.rules``)

TIMEZONE = "timezone"  # the tenant's IANA time zone: where its days, weeks and months begin
DEFAULT_TIMEZONE = "UTC"
TIMEZONE_MAX = 64


@lru_cache(maxsize=1)
def known_time_zones() -> frozenset[str]:
    """The IANA zone names this machine's time zone database holds."""
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: Any) -> str:
    # Only names of the database, never a path: ZoneInfo would also open "../x" files.
    if not isinstance(value, str) or not 1 <= len(value) <= TIMEZONE_MAX:
        raise ValueError(f"timezone must be an IANA time zone name such as Europe/Berlin "
                         f"(1–{TIMEZONE_MAX} characters)")
    if value not in known_time_zones():
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                         "Europe/Berlin, America/New_York or UTC")
    return value


LAST_VERIFICATION = "chain.last_verification"  # written by every verification, not by users


def _report(value: Any) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("intact"), bool):
        raise ValueError("a verification report is an object with intact")
    return value


SETTINGS = {ANOMALY_THRESHOLD: (DEFAULT_ANOMALY_THRESHOLD, _threshold),
            LAST_VERIFICATION: (None, _report),
            TAG_RULES: ([], validate_tag_rules),
            TIMEZONE: (DEFAULT_TIMEZONE, _timezone)}


def get_setting(svc, tenant_id: uuid.UUID | str, key: str) -> Any:
    """The tenant's value of ``key``, or its default."""
    default, _ = SETTINGS[key]
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        value = conn.execute(select(tenant_settings.c.value)
                             .where(tenant_settings.c.key == key)).scalar_one_or_none()
    return default if value is None else value


def describe_setting(svc, tenant_id: uuid.UUID | str, key: str) -> dict[str, Any]:
    """``{key, value, default, updated_by, updated_at}`` (the last two null when unset)."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        return read_setting(conn, key)


def read_setting(conn: Connection, key: str) -> dict[str, Any]:
    """``describe_setting`` in the caller's transaction (of the tenant)."""
    from .chain import format_ts

    default, _ = SETTINGS[key]
    row = conn.execute(select(tenant_settings).where(tenant_settings.c.key == key)
                       ).mappings().first()
    return {"key": key, "value": default if row is None else row["value"], "default": default,
            "updated_by": row["updated_by"] if row else None,
            "updated_at": format_ts(row["updated_at"]) if row else None}


def set_setting(svc, tenant_id: uuid.UUID | str, key: str, value: Any, updated_by: str) -> Any:
    """Validate and store ``value`` for ``key``; the clean value. Raises ``ValueError`` with
    the reason for a bad value, ``KeyError`` for an unknown key."""
    _, validate = SETTINGS[key]
    clean = validate(value)
    stmt = pg_insert(tenant_settings).values(tenant_id=uuid.UUID(str(tenant_id)), key=key,
                                              value=clean, updated_by=updated_by)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "key"],
        set_={"value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by,
              "updated_at": func.now()})
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        conn.execute(stmt)
    return clean


def tenant_zone(conn: Connection) -> zoneinfo.ZoneInfo:
    """The tenant's time zone (``timezone`` setting, UTC by default) in the caller's
    transaction. A stored name the database no longer knows reads as UTC."""
    value = conn.execute(select(tenant_settings.c.value)
                         .where(tenant_settings.c.key == TIMEZONE)).scalar_one_or_none()
    try:
        return zoneinfo.ZoneInfo(_timezone(value if value is not None else DEFAULT_TIMEZONE))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return zoneinfo.ZoneInfo(DEFAULT_TIMEZONE)


#: Settings ``GET/PUT /api/v1/settings`` show and change (the others have endpoints of
#: their own: the anomaly threshold, the tag rules).
GENERAL_SETTINGS = (TIMEZONE,)


def read_general_settings(svc, principal, access) -> dict[str, Any]:
    """``{key: {value, default, updated_by, updated_at}}`` of the general settings, the read
    recorded in the access log."""
    from .access import audited_read

    with audited_read(svc, principal, access) as conn:
        return {key: _without_key(read_setting(conn, key)) for key in GENERAL_SETTINGS}


def write_general_settings(svc, tenant_id: uuid.UUID, values: dict[str, Any],
                           updated_by: str) -> dict[str, Any]:
    """Validate every value first, then store them together (nothing is written when one is
    bad: ``ValueError`` naming it); the settings as ``read_general_settings`` shows them."""
    clean = {}
    for key, value in values.items():
        _, validate = SETTINGS[key]
        try:
            clean[key] = validate(value)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        for key, value in clean.items():
            stmt = pg_insert(tenant_settings).values(tenant_id=uuid.UUID(str(tenant_id)),
                                                      key=key, value=value,
                                                      updated_by=updated_by)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["tenant_id", "key"],
                set_={"value": stmt.excluded.value, "updated_by": stmt.excluded.updated_by,
                      "updated_at": func.now()}))
        return {key: _without_key(read_setting(conn, key)) for key in GENERAL_SETTINGS}


def _without_key(described: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in described.items() if k != "key"}
