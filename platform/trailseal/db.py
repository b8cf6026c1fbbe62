"""Database access: the engine, per-transaction tenant context, migrations, role bootstrap.

The app connects as a login role that is a member of ``trailseal_app``: not the owner of any
table, not a superuser, no BYPASSRLS. Every tenant-scoped transaction starts with
``set_config('trailseal.tenant_id', …, true)`` so the row-level-security policies see it and
forget it at commit.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import orjson
import psycopg
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from .errors import ConfigurationError

log = logging.getLogger(__name__)

APP_GROUP_ROLE = "trailseal_app"
MAINTENANCE_GROUP_ROLE = "trailseal_maintenance"
EMBEDDED_APP_USER = "trailseal_web"
EMBEDDED_MAINTENANCE_USER = "trailseal_maintainer"
EMBEDDED_DB = "trailseal"


def sqlalchemy_url(url: str) -> str:
    """Point a ``postgresql://`` URL at the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ConfigurationError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The plain libpq form of a URL (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def with_user_and_db(url: str, user: str, dbname: str, password: str | None = None) -> str:
    """Same server as ``url``, another user/database (keeps host/socket query parameters)."""
    parts = urlsplit(libpq_url(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    auth = quote(user) + (f":{quote(password)}" if password else "")
    netloc = f"{auth}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, ""))


def snapshot_statements(snapshot: str | bool) -> list[str]:
    """The statements that open a read-only REPEATABLE READ transaction, seeing exactly the
    exported ``snapshot`` when it is an id (from ``pg_export_snapshot()``)."""
    statements = ["SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]
    if isinstance(snapshot, str):
        # The id is interpolated (SET TRANSACTION SNAPSHOT takes no parameter): check it.
        if not re.fullmatch(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?", snapshot):
            raise ValueError(f"not a snapshot id: {snapshot!r}")
        statements.append(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
    return statements


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[psycopg.Cursor]:
    """A psycopg cursor on the connection of a ``Database.transaction`` (same transaction),
    for code that speaks psycopg, such as the keyring."""
    with conn.connection.driver_connection.cursor() as cur:
        yield cur


def _json_text(value) -> str:
    return orjson.dumps(value).decode()


class Database:
    """The app's connection pool plus tenant-scoped transactions."""

    def __init__(self, url: str, pool_size: int = 10):
        self.url = libpq_url(url)
        self.engine: Engine = create_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            # JSON columns written through SQLAlchemy (alert details, access-log queries)
            # serialise exactly as the raw-SQL paths do.
            json_serializer=_json_text,
        )

    @contextmanager
    def transaction(
        self, tenant_id: uuid.UUID | str | None = None, *, snapshot: str | bool = False
    ) -> Iterator[Connection]:
        """One transaction; with ``tenant_id`` the RLS context is that tenant.

        ``snapshot=True`` makes it a read-only REPEATABLE READ transaction; a snapshot id
        (from ``pg_export_snapshot()``) makes it see exactly that snapshot.
        """
        with self.engine.begin() as conn:
            if snapshot:
                for statement in snapshot_statements(snapshot):
                    conn.exec_driver_sql(statement)
            if tenant_id is not None:
                conn.exec_driver_sql(
                    "SELECT set_config('trailseal.tenant_id', %s, true)", (str(tenant_id),)
                )
            yield conn

    @contextmanager
    def cursor(
        self, tenant_id: uuid.UUID | str | None = None, *, snapshot: str | bool = False
    ) -> Iterator[psycopg.Cursor]:
        """A raw psycopg cursor inside a tenant transaction (hot paths: ingest, verify)."""
        with self.transaction(tenant_id, snapshot=snapshot) as conn, driver_cursor(conn) as cur:
            yield cur

    def check_role(self) -> None:
        """Refuse to run as a role that could bypass row-level security or the append-only rules."""
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql(
                """
                SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                       pg_has_role(current_user, %s, 'MEMBER') AS member,
                       (SELECT pg_has_role(current_user, c.relowner, 'MEMBER')
                          FROM pg_class c WHERE c.relname = 'audit_logs'
                           AND c.relnamespace = 'public'::regnamespace) AS owns
                  FROM pg_roles r WHERE r.rolname = current_user
                """,
                (APP_GROUP_ROLE,),
            ).one()
        name, is_super, bypass, member, owns = row
        problems = []
        if is_super:
            problems.append("is a superuser")
        if bypass:
            problems.append("has BYPASSRLS")
        if owns:
            problems.append("owns (or is a member of the owner of) audit_logs")
        if not member:
            problems.append(f"is not a member of {APP_GROUP_ROLE}")
        if problems:
            raise ConfigurationError(
                f"TRAILSEAL_DATABASE_URL connects as {name!r}, which "
                + ", ".join(problems)
                + ". Connect as a login role that is only a member of "
                f"{APP_GROUP_ROLE} (see docs/admin-guide.md)."
            )

    def dispose(self) -> None:
        self.engine.dispose()


def run_migrations(admin_url: str, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` as the database owner."""
    from importlib.resources import as_file, files

    from alembic import command
    from alembic.config import Config

    # The scripts are the package ``trailseal.migrations`` (top-level ``migrations/`` in the
    # source tree, mapped by package-dir), so editable and wheel installs both find them.
    with as_file(files("trailseal.migrations")) as here:
        cfg = Config(str(here / "alembic.ini"))
        cfg.set_main_option("script_location", str(here))
        cfg.attributes["admin_url"] = sqlalchemy_url(admin_url)
        command.upgrade(cfg, revision)


def current_revision(admin_url: str) -> str | None:
    with psycopg.connect(libpq_url(admin_url)) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def ensure_database(server_url: str, dbname: str) -> None:
    """Create ``dbname`` on the server if missing (embedded bootstrap)."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def ensure_app_login(admin_url: str, app_url: str, group: str = APP_GROUP_ROLE,
                     setting: str = "TRAILSEAL_DATABASE_URL") -> None:
    """Make the user of ``app_url`` a login role inside ``group`` (``trailseal_app``, or
    ``trailseal_maintenance`` for the retention purge's connection), created if missing.

    Does nothing to the password of an existing role; a new role gets the URL's password,
    or none when the URL has none (trust/peer authentication, as on the embedded server).
    """
    parts = urlsplit(libpq_url(app_url))
    user = parts.username or ""
    if not user:
        query_user = parse_qs(parts.query).get("user")
        user = query_user[0] if query_user else ""
    if not user:
        raise ConfigurationError(f"{setting} names no user")
    admin_user = urlsplit(libpq_url(admin_url)).username
    if user == admin_user:
        raise ConfigurationError(
            f"{setting} and TRAILSEAL_ADMIN_DATABASE_URL use the same role "
            f"({user!r}); the app must not connect as the schema owner."
        )
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        ident = psycopg.sql.Identifier(user)
        if not exists:
            if parts.password:
                conn.execute(
                    psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        ident, psycopg.sql.Literal(parts.password)
                    )
                )
            else:
                conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        conn.execute(
            psycopg.sql.SQL("GRANT {} TO {}").format(psycopg.sql.Identifier(group), ident)
        )


def ensure_maintenance_login(admin_url: str, maintenance_url: str) -> None:
    """Make the user of ``maintenance_url`` a login role inside ``trailseal_maintenance``:
    the only role that may run the retention purge (``services.retention``)."""
    ensure_app_login(admin_url, maintenance_url, MAINTENANCE_GROUP_ROLE,
                     "TRAILSEAL_MAINTENANCE_DATABASE_URL")


@contextmanager
def maintenance_connection(url: str) -> Iterator[psycopg.Connection]:
    """One transaction on a connection as the maintenance role (a short-lived connection:
    the purge runs once a day). Refuses a role that could do more than the purge."""
    with psycopg.connect(libpq_url(url)) as conn:
        name, is_super, bypass, member, app = conn.execute(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls, pg_has_role(current_user, %s, "
            "'MEMBER'), pg_has_role(current_user, %s, 'MEMBER') FROM pg_roles r "
            "WHERE r.rolname = current_user", (MAINTENANCE_GROUP_ROLE, APP_GROUP_ROLE)).fetchone()
        if is_super or bypass or not member or app:
            raise ConfigurationError(
                f"TRAILSEAL_MAINTENANCE_DATABASE_URL connects as {name!r}: it must be a login "
                f"role that is only a member of {MAINTENANCE_GROUP_ROLE} (not a superuser, "
                f"not BYPASSRLS, not in {APP_GROUP_ROLE}); see docs/admin-guide.md")
        with conn.transaction():
            yield conn

