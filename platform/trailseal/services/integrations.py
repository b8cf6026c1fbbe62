"""Notification integrations of a tenant (``audit_integrations``): the channels plugins
offer (``notification_channels``), configurations checked against each channel's JSON
Schema and URL rules, secrets encrypted with the tenant's data key and never shown again.

A configuration is stored in two parts: the properties the channel's schema marks
``writeOnly`` (URLs holding tokens, signing secrets) as one AES-GCM ciphertext bound to the
tenant, the integration's id and the field name ``integration_secrets``; the others as
JSON. Answers show the secret properties redacted: a URL as its scheme and host, anything
else as ``********``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from ..db import driver_cursor
from ..errors import Conflict, NotFound, ValidationFailed
from ..infra.outbound import DestinationRefused, allow_list, check_url
from ..tables import audit_integrations as integrations
from ..types import ALERT_SEVERITIES, NotificationChannel
from .access import AccessRecord, audited_read
from .chain import format_ts
from .crypto import decrypt_field, encrypt_field
from .tenancy import Principal

log = logging.getLogger(__name__)
SECRET_FIELD = "integration_secrets"
REDACTED = "********"
REDACTED_KEY = "$redacted"  # in the stored public part: how each secret is shown
NAME_MAX = 100
MAX_INTEGRATIONS = 100  # per tenant: each alert is sent to each of them


def channels(pm) -> dict[str, NotificationChannel]:
    """The channel kinds the installed plugins offer, by kind (the first plugin to name a
    kind keeps it; ``notification_channels`` answers in plugin order, newest first)."""
    found: dict[str, NotificationChannel] = {}
    for group in pm.hook.notification_channels() or []:
        for channel in group or []:
            if not isinstance(channel, NotificationChannel):
                log.error("notification_channels returned %r, which is not a "
                          "trailseal.types.NotificationChannel; skipped", channel)
                continue
            found.setdefault(channel.kind, channel)
    return found


def _properties(channel: NotificationChannel) -> dict[str, dict[str, Any]]:
    return dict(channel.config_schema.get("properties") or {})


def secret_keys(channel: NotificationChannel) -> set[str]:
    """The properties of a channel's configuration that are secret (``writeOnly``)."""
    return {k for k, p in _properties(channel).items() if isinstance(p, dict)
            and p.get("writeOnly")}


def url_keys(channel: NotificationChannel) -> set[str]:
    """The properties that are URLs to send to (``"format": "uri"``)."""
    return {k for k, p in _properties(channel).items() if isinstance(p, dict)
            and p.get("format") == "uri"}


def find_channel(pm, kind: Any) -> NotificationChannel:
    """The channel of ``kind``; 422 naming the installed kinds otherwise."""
    found = channels(pm)
    if not isinstance(kind, str) or kind not in found:
        raise ValidationFailed(
            f"type must be one of {', '.join(sorted(found)) or '(no channel installed)'}",
            {"types": sorted(found)})
    return found[kind]


def check_config(svc, channel: NotificationChannel, config: Any) -> dict[str, Any]:
    """``config`` when the channel accepts it; 422 with the reason otherwise (the first
    schema error, every one in ``details.errors``; a refused URL; the channel's own rule)."""
    if not isinstance(config, dict):
        raise ValidationFailed("config must be a JSON object")
    if any(key.startswith("$") for key in config):
        raise ValidationFailed("config keys may not start with $")
    try:
        validator = Draft202012Validator(channel.config_schema)
        errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    except SchemaError as exc:  # the plugin's schema, not the caller's input
        log.error("channel %s has an invalid config schema: %s", channel.kind, exc.message)
        raise ValidationFailed(f"channel {channel.kind} cannot be configured (its schema is "
                               "invalid)") from None
    if errors:
        listed = [{"loc": ["config", *e.absolute_path], "msg": _schema_message(e, channel)}
                  for e in errors[:20]]
        first = listed[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed(f"invalid {where}: {first['msg']}", {"errors": listed})
    allowed = allow_list(svc.config.get("WEBHOOK_ALLOW_HOSTS"))
    for key in sorted(url_keys(channel)):
        if key in config:
            try:
                check_url(config[key], allowed)
            except DestinationRefused as exc:
                raise ValidationFailed(f"config.{key}: {exc}",
                                       {"field": f"config.{key}", "reason": str(exc)}) from None
    if channel.validate is not None:
        reason = channel.validate(config, svc.config)
        if reason:
            raise ValidationFailed(f"config: {reason}", {"reason": reason})
    return config


def _schema_message(error, channel: NotificationChannel) -> str:
    # Never echo a secret the caller sent back into the error (or the access log).
    if error.absolute_path and str(error.absolute_path[0]) in secret_keys(channel):
        return f"does not meet the rule {error.validator!r} of this field"
    return error.message[:300]


def redacted(channel: NotificationChannel | None, config: dict[str, Any],
             secrets: set[str]) -> dict[str, Any]:
    """The configuration as answers show it: secret properties redacted."""
    urls = url_keys(channel) if channel is not None else set()
    shown = dict(config)
    for key in secrets:
        value = shown.get(key)
        shown[key] = REDACTED
        if key in urls and isinstance(value, str):
            try:
                parts = urlsplit(value)
                if parts.scheme and parts.hostname:
                    shown[key] = f"{parts.scheme}://{parts.hostname}/{REDACTED}"
            except ValueError:
                pass
    return shown


def _integration_dict(row) -> dict[str, Any]:
    stored = dict(row["config"] or {})
    shown = {**stored, **stored.pop(REDACTED_KEY, {})}
    shown.pop(REDACTED_KEY, None)
    return {"id": str(row["id"]), "type": row["kind"], "name": row["name"],
            "min_severity": row["min_severity"], "config": shown,
            "created_by": row["created_by"], "created_at": format_ts(row["created_at"])}


def parse_integration(svc, body: Any) -> tuple[NotificationChannel, str, str, dict[str, Any]]:
    """(channel, name, min_severity, config) of a request body; 422 with the reason."""
    if not isinstance(body, dict):
        raise ValidationFailed("body must be a JSON object")
    unknown = sorted(set(body) - {"type", "name", "config", "min_severity"})
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(repr(k[:40]) for k in unknown)}",
                               {"unknown": [k[:40] for k in unknown]})
    for key in ("type", "name", "config"):
        if key not in body:
            raise ValidationFailed(f"{key} is required")
    channel = find_channel(svc.pm, body["type"])
    name = body["name"]
    if (not isinstance(name, str) or not 1 <= len(name.strip()) <= NAME_MAX
            or not name.isprintable()):
        raise ValidationFailed(f"name must be 1–{NAME_MAX} printable characters")
    severity = body.get("min_severity", "medium")
    if severity not in ALERT_SEVERITIES:
        raise ValidationFailed(f"min_severity must be one of {', '.join(ALERT_SEVERITIES)}")
    return channel, name.strip(), severity, check_config(svc, channel, body["config"])


def create_integration(svc, principal: Principal, body: Any) -> dict[str, Any]:
    """Check and store an integration of the caller's tenant; its redacted form."""
    channel, name, severity, config = parse_integration(svc, body)
    secret_names = sorted(secret_keys(channel) & set(config))
    public = {k: v for k, v in config.items() if k not in secret_names}
    shown = redacted(channel, config, set(secret_names))
    public[REDACTED_KEY] = {k: shown[k] for k in secret_names}
    integration_id = uuid.uuid4()
    tid = principal.tenant_id
    created_by = f"{principal.kind}:{principal.id}"
    with svc.db.transaction(tid) as conn:
        count = len(conn.execute(select(integrations.c.id).limit(MAX_INTEGRATIONS)).all())
        if count >= MAX_INTEGRATIONS:
            raise ValidationFailed(f"a tenant has at most {MAX_INTEGRATIONS} integrations")
        secret_blob = key_id = None
        if secret_names:
            with driver_cursor(conn) as cur:
                key_id, dek = svc.keyring.active_key(cur, tid)
            plaintext = orjson.dumps({k: config[k] for k in secret_names})
            secret_blob = encrypt_field(dek, tid, integration_id, SECRET_FIELD, plaintext)
        try:
            with conn.begin_nested():
                row = conn.execute(
                    insert(integrations).values(
                        id=integration_id, tenant_id=tid, kind=channel.kind, name=name,
                        min_severity=severity, config=public, secrets=secret_blob,
                        key_id=key_id, created_by=created_by)
                    .returning(*integrations.c)).mappings().one()
        except IntegrityError:
            raise Conflict(f"an integration named {name!r} exists already") from None
    return _integration_dict(row)


def _parse_id(integration_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(integration_id)
    except (ValueError, TypeError):
        raise NotFound(f"no integration {integration_id[:64]!r}") from None


def list_integrations(svc, principal: Principal, access: AccessRecord) -> dict[str, Any]:
    """The tenant's integrations, oldest first, secrets redacted."""
    with audited_read(svc, principal, access) as conn:
        rows = conn.execute(select(*integrations.c)
                            .order_by(integrations.c.created_at, integrations.c.id)
                            ).mappings().all()
    return {"integrations": [_integration_dict(r) for r in rows]}


def delete_integration(svc, principal: Principal, integration_id: str) -> None:
    """Delete an integration and its deliveries; 404 when the tenant has no such one."""
    iid = _parse_id(integration_id)
    with svc.db.transaction(principal.tenant_id) as conn:
        gone = conn.execute(delete(integrations).where(integrations.c.id == iid)
                            .returning(integrations.c.id)).first()
    if gone is None:
        raise NotFound(f"no integration {integration_id[:64]!r}")


def load_integration(svc, conn, tenant_id: uuid.UUID, integration_id: str | uuid.UUID
                     ) -> dict[str, Any]:
    """An integration with its full configuration (secrets decrypted), in the caller's
    transaction: ``{id, kind, name, min_severity, config}``; 404 when absent."""
    iid = integration_id if isinstance(integration_id, uuid.UUID) else _parse_id(integration_id)
    row = conn.execute(select(*integrations.c).where(integrations.c.id == iid)
                       ).mappings().first()
    if row is None:
        raise NotFound(f"no integration {str(integration_id)[:64]!r}")
    config = dict(row["config"] or {})
    config.pop(REDACTED_KEY, None)
    if row["secrets"] is not None:
        with driver_cursor(conn) as cur:
            dek = svc.keyring.key(cur, tenant_id, row["key_id"])
        config.update(orjson.loads(decrypt_field(dek, tenant_id, iid, SECRET_FIELD,
                                                 bytes(row["secrets"]))))
    return {"id": str(row["id"]), "kind": row["kind"], "name": row["name"],
            "min_severity": row["min_severity"], "config": config}
