"""The model registry (``audit_ml_models``): every trained model of a tenant, its training
window, feature list, metrics and artifact, one active model per type.

Artifacts are bytes the model's owner wrote (``artifact_format`` names how, e.g. an ``npz``
of plain arrays); the registry stores them with their SHA-256 and checks it on every load,
and never unpickles anything.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from ..errors import ConfigurationError
from ..tables import audit_ml_models as models
from .chain import format_ts

SUMMARY_COLUMNS = (models.c.id, models.c.model_type, models.c.version, models.c.trained_from,
                   models.c.trained_to, models.c.training_events, models.c.features,
                   models.c.params, models.c.metrics, models.c.artifact_format,
                   models.c.artifact_sha256, models.c.is_active, models.c.created_by,
                   models.c.created_at)


def _summary(r) -> dict[str, Any]:
    out = dict(r)
    out["id"] = str(out["id"])
    for name in ("trained_from", "trained_to", "created_at"):
        out[name] = format_ts(out[name]) if out[name] is not None else None
    return out


def save_model(svc, tenant_id: uuid.UUID | str, *, model_type: str, version: str,
               artifact: bytes, artifact_format: str, features: list[str],
               training_events: int, created_by: str, params: dict[str, Any] | None = None,
               metrics: dict[str, Any] | None = None, trained_from: datetime | None = None,
               trained_to: datetime | None = None, activate: bool = True) -> dict[str, Any]:
    """Store a model version; with ``activate`` it becomes the tenant's active model of its
    type in the same transaction (the previous one stays, inactive). Its summary."""
    tid = uuid.UUID(str(tenant_id))
    row = {
        "id": uuid.uuid4(), "tenant_id": tid, "model_type": model_type, "version": version,
        "trained_from": trained_from, "trained_to": trained_to,
        "training_events": int(training_events), "features": list(features),
        "params": params or {}, "metrics": metrics or {}, "artifact": artifact,
        "artifact_format": artifact_format,
        "artifact_sha256": hashlib.sha256(artifact).hexdigest(), "is_active": False,
        "created_by": created_by,
    }
    with svc.db.transaction(tid) as conn:
        # one registration per tenant and type at a time (two trainings finishing together)
        conn.execute(select(func.pg_advisory_xact_lock(
            func.hashtext(f"trailseal-model:{tid}:{model_type}"))))
        if conn.execute(select(models.c.id).where(models.c.model_type == model_type,
                                                  models.c.version == version)).first():
            row["version"] = version = f"{version}-{row['id'].hex[:6]}"
        if activate:
            conn.execute(update(models).where(models.c.model_type == model_type,
                                              models.c.is_active).values(is_active=False))
            row["is_active"] = True
        conn.execute(insert(models).values(**row))
        saved = conn.execute(select(*SUMMARY_COLUMNS).where(models.c.id == row["id"])
                             ).mappings().one()
    return _summary(saved)


def active_model(svc, tenant_id: uuid.UUID | str, model_type: str) -> dict[str, Any] | None:
    """The tenant's active model of ``model_type`` with its ``artifact`` bytes, or None.
    Raises ``ConfigurationError`` when the artifact no longer matches its recorded SHA-256."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        r = conn.execute(select(*SUMMARY_COLUMNS, models.c.artifact)
                         .where(models.c.model_type == model_type, models.c.is_active)
                         ).mappings().first()
    if r is None:
        return None
    artifact = bytes(r["artifact"])
    if hashlib.sha256(artifact).hexdigest() != r["artifact_sha256"]:
        raise ConfigurationError(f"the artifact of model {r['version']} ({model_type}) does not "
                             "match its recorded SHA-256; retrain it")
    out = _summary({k: v for k, v in r.items() if k != "artifact"})
    out["artifact"] = artifact
    return out


def active_version(svc, tenant_id: uuid.UUID | str, model_type: str) -> str | None:
    """The version of the tenant's active model of ``model_type`` (no artifact), or None:
    the cheap check before a model kept in memory is reused."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        return conn.execute(select(models.c.version).where(models.c.model_type == model_type,
                                                           models.c.is_active)).scalar()


def list_models(svc, tenant_id: uuid.UUID | str, model_type: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    """Model versions of a tenant, newest first, without artifacts."""
    with svc.db.transaction(uuid.UUID(str(tenant_id))) as conn:
        return select_models(conn, model_type, limit)


def select_models(conn: Connection, model_type: str | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
    """``list_models`` in the caller's transaction (of the tenant)."""
    stmt = (select(*SUMMARY_COLUMNS)
            .order_by(models.c.created_at.desc(), models.c.id.desc()).limit(limit))
    if model_type:
        stmt = stmt.where(models.c.model_type == model_type)
    return [_summary(r) for r in conn.execute(stmt).mappings()]
