"""The service facade: configuration, database, Redis, keys, plugins and queues in one
object (``app.extensions["trailseal"]``). The API, web pages, jobs, the CLI and plugins
reach it through ``current_services()``."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import redis
from rq import Queue

from .config import load_config
from .db import (
    EMBEDDED_APP_USER,
    EMBEDDED_DB,
    EMBEDDED_MAINTENANCE_USER,
    Database,
    ensure_app_login,
    ensure_database,
    ensure_maintenance_login,
    run_migrations,
    with_user_and_db,
)
from .errors import ConfigurationError
from .infra import embedded, helpers
from .plugins import make_plugin_manager
from .services.crypto import KeyRing, load_or_create_master_key, parse_master_key

log = logging.getLogger(__name__)
QUEUE_NAMES = ("high", "default", "low")
# By name: the job module sits above this one (jobs use the facade, not the reverse).
ENRICH_JOB = "trailseal.jobs.enrichment.enrich_events"


def resolve_service_urls(
    cfg: dict[str, Any], migrate: bool = True, start_redis: bool = True
) -> dict[str, Any]:
    """Fill in database/Redis URLs, starting the embedded servers when none are configured.

    With embedded PostgreSQL the schema is migrated and the app's login role created here,
    so the first run needs no extra step.
    """
    cfg = dict(cfg)
    instance = Path(cfg["INSTANCE_PATH"])
    if not cfg.get("DATABASE_URL"):
        server = embedded.ensure_postgres(instance)
        ensure_database(server, EMBEDDED_DB)
        cfg["ADMIN_DATABASE_URL"] = with_user_and_db(server, "postgres", EMBEDDED_DB)
        cfg["DATABASE_URL"] = with_user_and_db(server, EMBEDDED_APP_USER, EMBEDDED_DB)
        cfg["MAINTENANCE_DATABASE_URL"] = with_user_and_db(server, EMBEDDED_MAINTENANCE_USER,
                                                           EMBEDDED_DB)
        cfg["EMBEDDED_DATABASE"] = True
        if migrate:
            run_migrations(cfg["ADMIN_DATABASE_URL"])
            ensure_app_login(cfg["ADMIN_DATABASE_URL"], cfg["DATABASE_URL"])
            ensure_maintenance_login(cfg["ADMIN_DATABASE_URL"], cfg["MAINTENANCE_DATABASE_URL"])
    if start_redis and not cfg.get("REDIS_URL"):
        cfg["REDIS_URL"] = embedded.ensure_valkey(instance)
        cfg["EMBEDDED_REDIS"] = True
    return cfg


def resolve_master_key(cfg: dict[str, Any]) -> bytes:
    if cfg.get("MASTER_KEY"):
        return parse_master_key(cfg["MASTER_KEY"])
    if cfg.get("EMBEDDED_DATABASE"):
        key, path, created = load_or_create_master_key(cfg["INSTANCE_PATH"])
        if created:
            log.warning("generated a new master key in %s (set TRAILSEAL_MASTER_KEY in production)", path)
        return key
    raise ConfigurationError(
        "TRAILSEAL_MASTER_KEY is required with an external database "
        "(32 random bytes, base64: python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\")"
    )


class Trailseal:
    """Everything a request, a job or a plugin needs, created once per process."""

    def __init__(self, config: dict[str, Any] | None = None, *, pm=None):
        cfg = load_config(config)
        # Result folders of helper pools whose process was killed (kill -9 runs no exit handler).
        helpers.remove_stale_result_folders()
        cfg = resolve_service_urls(cfg)
        self.config = cfg
        self.db = Database(cfg["DATABASE_URL"], pool_size=int(cfg["DB_POOL_SIZE"]))
        self.db.check_role()
        # Fail fast when Redis is unreachable (blocking reads of workers keep no read timeout).
        self.redis = redis.Redis.from_url(cfg["REDIS_URL"], socket_connect_timeout=3)
        self.keyring = KeyRing(resolve_master_key(cfg))
        self.pm = pm if pm is not None else make_plugin_manager(cfg.get("DISABLE_PLUGINS"))

    @property
    def queues(self) -> dict[str, Queue]:
        """The RQ queues ``high``, ``default`` and ``low`` on the current Redis connection."""
        return {name: Queue(name, connection=self.redis) for name in QUEUE_NAMES}

    # --- pipeline ----------------------------------------------------------------------
    def after_ingest(self, tenant_id: uuid.UUID, result) -> None:
        """Post-commit work of an append: the ``event_ingested`` hook and enrichment.

        Failures here never undo the append; the reconciler finds events left unenriched.
        """
        try:
            self.pm.hook.event_ingested(
                tenant_id=str(tenant_id), event_ids=list(result.ids),
                first_seq=result.first_seq, last_seq=result.last_seq,
            )
        except Exception:
            log.exception("event_ingested hook failed (tenant %s)", tenant_id)
        try:
            self.enqueue_enrichment(tenant_id, result.first_seq, result.last_seq)
        except redis.RedisError:
            log.warning("could not enqueue enrichment for tenant %s; the reconciler will", tenant_id)

    def enqueue_enrichment(self, tenant_id: uuid.UUID, first_seq: int, last_seq: int) -> bool:
        """Queue enrichment of a seq range; False when that very job is already waiting or
        running (so the reconciler never piles up duplicates)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        job_id = f"enrich-{tenant_id}-{first_seq}-{last_seq}"
        try:
            status = Job.fetch(job_id, connection=self.redis).get_status()
        except NoSuchJobError:
            status = None
        if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            return False
        self.queues["default"].enqueue(
            ENRICH_JOB, str(tenant_id), first_seq, last_seq, job_id=job_id,
            job_timeout=600, failure_ttl=7 * 86400, result_ttl=3600,
        )
        return True

    # --- for plugins ----------------------------------------------------------------------
    def raise_alert(self, tenant_id: uuid.UUID | str, *, kind: str, title: str, severity: str,
                    event_id: str | None = None, details: dict[str, Any] | None = None,
                    dedupe_key: str | None = None):
        """Raise an alert for a tenant the way the built-ins do (dedupe, ``anomaly_detected``,
        shown by ``GET /api/v1/alerts``); see ``services.alerts.raise_alert``."""
        from .services.alerts import raise_alert

        return raise_alert(self, tenant_id, kind=kind, title=title, severity=severity,
                           event_id=event_id, details=details, dedupe_key=dedupe_key)

    def resolve_tenant(self, ref: str, *, missing_ok: bool = False) -> uuid.UUID | None:
        """A tenant's id from its slug or id (None with ``missing_ok`` when there is none)."""
        from .services.tenancy import resolve_tenant

        return resolve_tenant(self, ref, missing_ok=missing_ok)

    def create_tenant(self, name: str, slug: str | None = None) -> dict[str, Any]:
        """Create a tenant with its data key and an empty chain: ``{id, slug, name, key_id}``."""
        from .services.tenancy import create_tenant

        return create_tenant(self, name, slug)

    def create_user(self, tenant_id: uuid.UUID | str, email: str, password: str,
                    role: str) -> dict[str, Any]:
        """Create a web user of a tenant (roles: viewer, analyst, writer, admin)."""
        from .services.tenancy import create_user

        return create_user(self, uuid.UUID(str(tenant_id)), email, password, role)

    def create_api_key(self, tenant_id: uuid.UUID | str, permissions: list[str],
                       name: str = "") -> dict[str, Any]:
        """Create an API key; its ``token`` is in the answer, once."""
        from .services.tenancy import create_api_key

        return create_api_key(self, uuid.UUID(str(tenant_id)), permissions, name)

    def append_events(self, tenant_id: uuid.UUID | str, events: list[dict[str, Any]]) -> int:
        """Validate and append event bodies (as ``POST /events`` takes them) to a tenant's
        chain, in atomic batches of ``BATCH_MAX_EVENTS``; how many were appended. An invalid
        event raises ``ValidationFailed`` before anything is written."""
        from .services.ingest import append_events, validate_events

        validated = validate_events(events)
        size = int(self.config["BATCH_MAX_EVENTS"])
        for start in range(0, len(validated), size):
            append_events(self, uuid.UUID(str(tenant_id)), validated[start:start + size])
        return len(validated)

    def verify_chain(self, tenant_id: uuid.UUID | str):
        """Verify a tenant's chain (``ChainReport``: ``intact``, ``broken_seq``, …)."""
        from .services.integrity import verify_chain

        return verify_chain(self, uuid.UUID(str(tenant_id)))

    def make_checkpoint(self, tenant_id: uuid.UUID | str) -> dict[str, Any]:
        """Sign a Merkle checkpoint of a tenant's chain head and publish it to the witness
        (``services.checkpoints.make_checkpoint``): ``{created, checkpoint, witness}``."""
        from .services.checkpoints import make_checkpoint

        return make_checkpoint(self, uuid.UUID(str(tenant_id)))

    def tenant_ids(self) -> list[uuid.UUID]:
        """Every tenant's id, oldest first (for jobs that visit each tenant)."""
        from .services.tenancy import tenant_ids

        return list(tenant_ids(self))

    def iter_events(self, tenant_id: uuid.UUID | str, *, after_seq: int = 0,
                    last_seq: int | None = None, start=None, end=None, batch: int = 2000):
        """A tenant's events (``trailseal.types.Event``, decrypted) in seq order, as lists of
        up to ``batch``: those after ``after_seq`` up to ``last_seq``, occurred in
        ``[start, end)`` when given (datetimes). Memory stays bounded whatever the size."""
        from .services.insights import iter_events

        return iter_events(self, uuid.UUID(str(tenant_id)), after_seq=after_seq,
                           last_seq=last_seq, start=start, end=end, batch=batch)

    def save_model(self, tenant_id: uuid.UUID | str, **fields: Any) -> dict[str, Any]:
        """Store a model version in ``audit_ml_models`` (see ``services.models.save_model``)
        and, by default, make it the active one of its type. Its summary."""
        from .services.models import save_model

        return save_model(self, tenant_id, **fields)

    def active_model(self, tenant_id: uuid.UUID | str, model_type: str) -> dict[str, Any] | None:
        """The tenant's active model of ``model_type`` with its verified ``artifact`` bytes."""
        from .services.models import active_model

        return active_model(self, tenant_id, model_type)

    def active_model_version(self, tenant_id: uuid.UUID | str, model_type: str) -> str | None:
        """The version of the tenant's active model of ``model_type``, without its artifact
        (to check whether a model already loaded is still the active one)."""
        from .services.models import active_version

        return active_version(self, tenant_id, model_type)

    def list_models(self, tenant_id: uuid.UUID | str, model_type: str | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:
        """The tenant's model versions, newest first (no artifacts)."""
        from .services.models import list_models

        return list_models(self, tenant_id, model_type, limit)

    def get_setting(self, tenant_id: uuid.UUID | str, key: str) -> Any:
        """A tenant setting (``anomaly.threshold`` …), or its default."""
        from .services.settings import get_setting

        return get_setting(self, tenant_id, key)

    def tenant_zone(self, tenant_id: uuid.UUID | str) -> str:
        """The tenant's time zone, by IANA name (its ``timezone`` setting; UTC by default,
        and for a name this machine does not know)."""
        from .services.settings import tenant_zone

        with self.db.transaction(uuid.UUID(str(tenant_id))) as conn:
            return tenant_zone(conn).key

    def set_setting(self, tenant_id: uuid.UUID | str, key: str, value: Any,
                    updated_by: str) -> Any:
        """Validate and store a tenant setting; raises ``ValueError`` for a bad value."""
        from .services.settings import set_setting

        return set_setting(self, tenant_id, key, value, updated_by)

    def corrections(self, tenant_id: uuid.UUID | str,
                    event_ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Analysts' corrections by event id: the latest ``category`` and ``risk_level``
        (either may be None), ``notes``, ``corrected_by``, ``corrected_at``; every corrected
        event of the tenant when ``event_ids`` is None (training labels)."""
        from .services.corrections import latest_corrections

        return latest_corrections(self, tenant_id, event_ids)

    def tag_rules(self, tenant_id: uuid.UUID | str) -> list[dict[str, Any]]:
        """The business-rule tags that apply to a tenant's events: the built-in rules, then
        the tenant's own (``trailseal.rules``; compile them with ``compile_tag_rules``)."""
        from .rules import BUILTIN_TAG_RULES
        from .services.settings import TAG_RULES, get_setting

        return [*BUILTIN_TAG_RULES, *get_setting(self, tenant_id, TAG_RULES)]

    def close(self) -> None:
        self.db.dispose()
        self.redis.close()


def current_services() -> Trailseal:
    """The ``Trailseal`` facade of the current Flask app: in a request, a job (the worker runs
    each job in the app context) or a CLI command."""
    from flask import current_app

    return current_app.extensions["trailseal"]
