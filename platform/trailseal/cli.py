"""The ``trailseal`` command."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from .errors import TrailsealError


def _app(require_redis: bool = False, **overrides):
    import psycopg
    import redis
    import sqlalchemy.exc

    from . import create_app

    try:
        app = create_app(overrides or None)
        if require_redis:
            app.extensions["trailseal"].redis.ping()
        return app
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from exc
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise click.ClickException(f"cannot reach the database: {first}") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise click.ClickException(f"cannot reach Redis: {exc}") from exc


def _services():
    return _app().extensions["trailseal"]


def _tenant(svc, ref: str):
    from .services.tenancy import resolve_tenant

    try:
        return resolve_tenant(svc, ref)
    except TrailsealError as exc:
        raise click.ClickException(exc.message) from exc


class TrailsealGroup(click.Group):
    """Turns ``TrailsealError`` into a clean one-line error and exit code 1."""

    plugin_error: TrailsealError | None = None  # why plugin commands could not be added

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TrailsealError as exc:
            raise click.ClickException(exc.message) from exc

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            # an unknown command may be a broken plugin's: say why it is missing
            if self.plugin_error is not None:
                raise click.ClickException(self.plugin_error.message) from None
            raise


@click.group(cls=TrailsealGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def cli(verbose: bool) -> None:
    """Trailseal: a tamper-evident, multi-tenant audit trail."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
def migrate() -> None:
    """Upgrade the database schema (as the owner) and ensure the app's login role."""
    import psycopg
    import sqlalchemy.exc

    from .config import load_config
    from .core import resolve_service_urls
    from .db import current_revision, ensure_app_login, run_migrations

    cfg = load_config()
    if cfg.get("DATABASE_URL") and not cfg.get("ADMIN_DATABASE_URL"):
        raise click.ClickException(
            "set TRAILSEAL_ADMIN_DATABASE_URL (the schema owner) to migrate an external database"
        )
    cfg = resolve_service_urls(cfg, migrate=False, start_redis=False)
    try:
        run_migrations(cfg["ADMIN_DATABASE_URL"])
        ensure_app_login(cfg["ADMIN_DATABASE_URL"], cfg["DATABASE_URL"])
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise click.ClickException(f"cannot reach the database: {first}") from exc
    click.echo(f"schema at revision {current_revision(cfg['ADMIN_DATABASE_URL'])}")


@cli.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--slug", help="URL-safe identifier (derived from NAME by default).")
def tenant_create(name: str, slug: str | None) -> None:
    """Create a tenant with its own data key and an empty chain."""
    from .services.tenancy import create_tenant

    info = create_tenant(_services(), name, slug)
    click.echo(f"tenant {info['slug']} created: id {info['id']} (data key {info['key_id']})")


@cli.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["viewer", "analyst", "writer", "admin"]), required=True)
@click.option("--password", help="At least 10 characters; prompted for when omitted.")
def user_create(tenant_ref: str, email: str, role: str, password: str | None) -> None:
    """Create a web user of a tenant."""
    from .services.tenancy import create_user

    svc = _services()
    tid = _tenant(svc, tenant_ref)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    info = create_user(svc, tid, email, password, role)
    click.echo(f"user {info['email']} ({info['role']}) created in tenant {tenant_ref}")


@cli.group()
def apikey() -> None:
    """Manage API keys."""


@apikey.command("create")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--permissions", required=True,
              help="Comma-separated: audit:read, audit:write, audit:export, audit:admin.")
@click.option("--name", default="", help="A label for the key.")
def apikey_create(tenant_ref: str, permissions: str, name: str) -> None:
    """Create an API key. The key is printed once; only its hash is stored."""
    from .services.tenancy import create_api_key

    svc = _services()
    info = create_api_key(svc, _tenant(svc, tenant_ref), permissions.split(","), name)
    click.echo(info["token"])
    click.echo(
        f"# key {info['id']} for tenant {tenant_ref}: {', '.join(info['permissions'])}. "
        "Store it now: it is not shown again.", err=True,
    )


@apikey.command("list")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
def apikey_list(tenant_ref: str) -> None:
    """List a tenant's API keys (ids, prefixes, permissions; never the keys)."""
    svc = _services()
    with svc.db.cursor(_tenant(svc, tenant_ref)) as cur:
        cur.execute("SELECT id, name, prefix, permissions, created_at, revoked_at FROM api_keys "
                    "ORDER BY created_at")
        for kid, name, prefix, perms, created, revoked in cur.fetchall():
            state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
            click.echo(f"{kid}  tsk_{prefix}_…  {name}  {','.join(perms)}  "
                       f"created {created:%Y-%m-%d %H:%M}  {state}")


@apikey.command("revoke")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.argument("key_id")
def apikey_revoke(tenant_ref: str, key_id: str) -> None:
    """Revoke an API key by id; it stops working at once."""
    import uuid as _uuid

    svc = _services()
    try:
        kid = _uuid.UUID(key_id)
    except ValueError:
        raise click.ClickException(f"{key_id!r} is not a key id (see `trailseal apikey list`)") from None
    with svc.db.cursor(_tenant(svc, tenant_ref)) as cur:
        cur.execute("UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
                    "RETURNING id", (kid,))
        if cur.fetchone() is None:
            raise click.ClickException(f"no active key {key_id} in tenant {tenant_ref}")
    click.echo(f"key {key_id} revoked")


@user.command("deactivate")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
def user_deactivate(tenant_ref: str, email: str) -> None:
    """Stop a user from signing in and end their sessions (their history stays in the trail)."""
    from .services.tenancy import deactivate_user

    svc = _services()
    info = deactivate_user(svc, _tenant(svc, tenant_ref), email)
    click.echo(f"user {email} deactivated; {info['sessions_ended']} session(s) ended")


@user.command("password")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--email", required=True)
@click.option("--password", help="At least 10 characters; prompted for when omitted.")
def user_password(tenant_ref: str, email: str, password: str | None) -> None:
    """Set a user's password and end every session signed in with the old one."""
    from .services.tenancy import set_password

    svc = _services()
    tid = _tenant(svc, tenant_ref)
    if password is None:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    info = set_password(svc, tid, email, password)
    click.echo(f"password of {email} changed; {info['sessions_ended']} session(s) ended")


@cli.command()
@click.option("--tenant", "tenant_ref", help="Tenant slug or id.")
@click.option("--all", "all_tenants", is_flag=True, help="Verify every tenant.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--full", is_flag=True,
              help="Decode every record and compare it with its columns field by field "
                   "(slower; does not rely on the records' columns_hash).")
def verify(tenant_ref: str | None, all_tenants: bool, as_json: bool, full: bool) -> None:
    """Verify hash chains. Exit 0 when intact, 1 when broken."""
    import json

    from .services.integrity import verify_chain
    from .services.tenancy import tenant_ids

    if bool(tenant_ref) == bool(all_tenants):
        raise click.UsageError("give either --tenant T or --all")
    svc = _services()
    try:
        targets = tenant_ids(svc) if all_tenants else [_tenant(svc, tenant_ref)]
    except click.ClickException as exc:
        click.echo(f"Error: {exc.message}", err=True)
        sys.exit(2)  # 1 is reserved for "chain broken"
    broken = False
    for tid in targets:
        report = verify_chain(svc, tid, full=full)
        broken |= not report.intact
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        elif report.intact:
            click.echo(f"tenant {tid}: chain intact, {report.events_checked} events, "
                       f"head seq {report.head_seq} {report.head_hash[:16]}…")
        else:
            click.echo(
                f"tenant {tid}: CHAIN BROKEN at seq {report.broken_seq} "
                f"(event {report.broken_event_id or 'unknown'}): {report.reason}: {report.detail}"
            )
    sys.exit(1 if broken else 0)


@cli.command("import")
@click.option("--tenant", "tenant_ref", required=True, help="Tenant slug or id.")
@click.option("--batch-size", default=1000, show_default=True,
              type=click.IntRange(1, 1000), help="Events per atomic batch.")
@click.option("--skip", default=0, show_default=True, type=click.IntRange(0),
              help="Skip this many events first (to resume after an error).")
@click.option("--dry-run", is_flag=True, help="Only validate; write nothing.")
@click.option("--workers", type=click.IntRange(0, 8), default=None,
              help="Helper processes that validate and encrypt (default: the shared pool, one "
                   "helper per CPU but one; 0 does everything in this process).")
@click.argument("source", type=click.File("rb"))
def import_events(tenant_ref: str, batch_size: int, skip: int, dry_run: bool,
                  workers: int | None, source) -> None:
    """Append events from SOURCE (JSON Lines, one event per line; - for stdin).

    Each batch is atomic. On the first bad line nothing of its batch is written; the
    batches before it stay committed, and the message says how to resume with --skip.
    """
    from .services.bulk import append_stream, parse_documents
    from .services.ingest import validate_events

    svc = _services()
    tid = _tenant(svc, tenant_ref)
    lines: dict[int, list[int]] = {}  # batch number -> source line of each of its events
    seen = 0

    def batches():
        nonlocal seen
        batch, numbers, number = [], [], 0
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            seen += 1
            if seen <= skip:
                continue
            batch.append(line.strip())  # decoded (and checked) by the helpers
            numbers.append(lineno)
            if len(batch) == batch_size:
                lines[number] = numbers
                number += 1
                yield batch
                batch, numbers = [], []
        if batch:
            lines[number] = numbers
            yield batch

    committed = {"events": 0, "last_seq": None, "batches": 0}

    def progress(result) -> None:
        committed["events"] += len(result.ids)
        committed["last_seq"] = result.last_seq
        lines.pop(committed["batches"], None)  # batches commit in order
        committed["batches"] += 1

    def resume_hint() -> str:
        done = committed["events"]
        return (f"{done} event(s) of this run were committed"
                + (f" (up to seq {committed['last_seq']})" if done else "")
                + f"; re-run with --skip {skip + done}")

    started = time.perf_counter()
    try:
        if dry_run:
            for number, batch in enumerate(batches()):
                try:
                    validate_events(parse_documents(batch))
                except TrailsealError as exc:
                    raise BadLine(lines[number][exc.details["index"]],
                                  _first_error(exc.details)) from None
                committed["events"] += len(batch)
                lines.pop(number, None)
        else:
            try:
                append_stream(svc, tid, batches(), workers=workers, on_batch=progress)
            except TrailsealError as exc:
                details = exc.details or {}
                if "batch" not in details or "index" not in details:
                    raise
                raise BadLine(lines[details["batch"]][details["index"]],
                              _first_error(details)) from None
    except BadLine as exc:
        done = committed["events"]
        hint = "" if dry_run else (
            f"; {done} event(s) before it were committed"
            + (f" (up to seq {committed['last_seq']})" if done else "")
            + f"; fix it and re-run with --skip {skip + done}")
        raise click.ClickException(f"line {exc.lineno}: {exc.reason}{hint}") from None
    except KeyboardInterrupt:
        if dry_run:
            raise
        raise click.ClickException(f"interrupted; {resume_hint()}") from None
    except Exception as exc:  # noqa: BLE001 - the database or a helper failed mid-import
        if dry_run:
            raise
        message = exc.message if isinstance(exc, TrailsealError) else (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise click.ClickException(f"import stopped: {message}; {resume_hint()}") from exc
    elapsed = time.perf_counter() - started
    verb = "validated" if dry_run else "appended"
    rate = committed["events"] / elapsed if elapsed > 0 else 0.0
    click.echo(f"{verb} {committed['events']} events to tenant {tenant_ref} in "
               f"{elapsed:.{1 if elapsed >= 10 else 2}f} s "
               f"({rate:,.0f} events/s)"
               + (f", head seq {committed['last_seq']}" if committed["last_seq"] else ""))


def _first_error(details: dict) -> str:
    errors = details.get("errors") or [{"msg": "invalid event", "loc": []}]
    where = ".".join(str(p) for p in errors[0]["loc"])
    return errors[0]["msg"] + (f" at {where}" if where else "")


class BadLine(Exception):
    def __init__(self, lineno: int, reason: str):
        super().__init__(f"line {lineno}: {reason}")
        self.lineno, self.reason = lineno, reason


@cli.group()
def keys() -> None:
    """Manage encryption keys."""


@keys.command("rotate")
@click.option("--tenant", "tenant_ref", help="Only this tenant (default: every tenant).")
def keys_rotate(tenant_ref: str | None) -> None:
    """Give tenants a new data key; rows encrypted with older keys stay readable."""
    from .services.tenancy import tenant_ids

    svc = _services()
    targets = [_tenant(svc, tenant_ref)] if tenant_ref else tenant_ids(svc)
    for tid in targets:
        with svc.db.cursor(tid) as cur:
            key_id = svc.keyring.create_data_key(cur, tid)
        click.echo(f"tenant {tid}: new data key {key_id}")


@cli.command()
def plugins() -> None:
    """List installed plugins and the hooks they implement."""
    from .config import load_config
    from .plugins import describe_plugins, make_plugin_manager

    pm = make_plugin_manager(load_config().get("DISABLE_PLUGINS"))  # PluginError: one line
    for info in describe_plugins(pm):
        dist = f" [{info['distribution']}]" if info["distribution"] else ""
        click.echo(f"{info['name']}{dist}: {', '.join(info['hooks']) or '(no hooks)'}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app and REST API."""
    app = _app()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        _serve(app, host, port, threads)
    except KeyboardInterrupt:
        pass  # SIGTERM/Ctrl-C: exit normally so embedded services are released


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _serve(app, host: str, port: int, threads: int) -> None:
    from waitress import serve as waitress_serve

    from .infra.proxies import waitress_options

    # Waitress's own cap sits well above Flask's so that oversized bodies get the API's JSON
    # 413 (Flask rejects them from Content-Length before reading the body).
    waitress_serve(app, host=host, port=port, threads=threads, ident="trailseal",
                   max_request_body_size=4 * app.config["MAX_CONTENT_LENGTH"],
                   **waitress_options())


@cli.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker on the queues high, default and low."""
    from .jobs.runtime import run_worker

    run_worker(_app(require_redis=True), burst=burst)


@cli.command()
def scheduler() -> None:
    """Run the cron scheduler with the jobs plugins register."""
    from .jobs.runtime import run_scheduler

    run_scheduler(_app(require_redis=True))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--days", default=28, show_default=True, type=int, help="Days of demo activity.")
@click.option("--load-only", is_flag=True, help="Load the demo data and exit.")
def demo(host: str, port: int, days: int, load_only: bool) -> None:
    """Start everything on the embedded services with a realistic demo data set."""
    from .demo import load_demo

    app = _app()
    svc = app.extensions["trailseal"]
    summary = load_demo(svc, days=days, echo=click.echo)
    if load_only:
        click.echo(f"API key ({summary['api_key_tenant']}): {summary['api_key']}")
        return

    signal.signal(signal.SIGTERM, _terminate)
    env = dict(os.environ, TRAILSEAL_INSTANCE_PATH=svc.config["INSTANCE_PATH"],
               PYTHONUNBUFFERED="1", **{EXIT_WITH_PARENT: str(os.getpid())})
    # The worker and scheduler log to files so this console keeps the URL and logins.
    logs = Path(svc.config["INSTANCE_PATH"]) / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    children: list[subprocess.Popen] = []
    # Everything from the first child on is inside the try: an interrupt or an error at any
    # point stops whatever was started (the children also die with this process when it is
    # killed outright, see _exit_with_parent).
    try:
        for name in ("worker", "scheduler"):
            fd = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as log_file:
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "trailseal", name], env=env, stdout=log_file,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        url = f"http://{host}:{port}"
        click.echo("")
        click.echo(f"Worker and scheduler logs: {logs}")
        click.echo(f"Trailseal is running at {url}/login")
        for line in summary["logins"]:
            click.echo(f"  sign in: {line}")
        click.echo(f"  API key ({summary['api_key_tenant']}): {summary['api_key']}")
        click.echo(f"  try: curl -H 'Authorization: Bearer {summary['api_key']}' {url}/api/v1/chain/verify")
        click.echo("Press Ctrl-C to stop.")
        _serve(app, host, port, 8)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_children(children)


def _stop_children(children: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM the demo's children, SIGKILL those still running after ``grace`` seconds, and
    reap them all: an unreaped child still counts as a live user of the embedded servers,
    which this process would then leave running at exit."""
    # A second Ctrl-C (or SIGTERM) must not cut the clean-up short and orphan a child.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# Set by `demo` for its children: the pid of the process they must not outlive.
EXIT_WITH_PARENT = "TRAILSEAL_EXIT_WITH_PARENT"


def _exit_with_parent() -> None:
    """In a child of `trailseal demo`: get SIGTERM (handled as a normal stop) when the demo
    process dies, however it dies, and stop the embedded servers on the way out if nobody
    uses them any more."""
    raw = os.environ.pop(EXIT_WITH_PARENT, "")  # not for this process's own children
    if not raw.isdigit():
        return
    parent = int(raw)
    from .config import load_config
    from .infra.embedded import stop_at_exit_if_unused

    cfg = load_config()
    if not (cfg.get("DATABASE_URL") and cfg.get("REDIS_URL")):
        # Registered first, so it runs last: after this process released what it joined.
        stop_at_exit_if_unused(cfg["INSTANCE_PATH"])
    if sys.platform.startswith("linux"):
        import ctypes

        # The kernel signals us when the thread that started us (the demo's main thread,
        # which lives as long as the demo) ends, kill -9 included.
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    else:
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="trailseal-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it died before the kernel was told to tell us
        raise SystemExit(128 + signal.SIGTERM)


def _plugin_commands() -> None:
    from .config import load_config
    from .plugins import PluginError, make_plugin_manager

    try:
        pm = make_plugin_manager(load_config().get("DISABLE_PLUGINS"))
    except PluginError as exc:
        # Core commands still work; the command that needs plugins (and `trailseal plugins`)
        # reports the error as one line.
        TrailsealGroup.plugin_error = exc
        return
    pm.hook.register_commands(cli=cli)


def main() -> None:
    # A process told to stop while it is still starting exits through SystemExit, so its
    # exit handlers release the embedded services (commands may install their own handler).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A shell without job control starts background commands (`trailseal demo &`, CI steps,
    # test runners started that way) with SIGINT ignored, and Python then leaves it ignored:
    # Ctrl-C or `kill -INT` would do nothing and `demo` would never stop its children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _exit_with_parent()
    _plugin_commands()
    cli()


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)
