"""The long-running processes (``serve``, ``worker``, ``scheduler``) and what supervising
them takes: a SIGTERM that stops like Ctrl-C, children that die with their parent, and
stopping children without orphaning any."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time

import click

from .helpers import make_app

__all__ = ["EXIT_WITH_PARENT", "exit_with_parent", "scheduler", "serve", "serve_app",
           "stop_children", "stop_on_sigterm", "worker"]

# Set by a supervising command (`trailseal demo`) for its children: the pid of the process
# they must not outlive.
EXIT_WITH_PARENT = "TRAILSEAL_EXIT_WITH_PARENT"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app and REST API."""
    app = make_app()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        serve_app(app, host, port, threads)
    except KeyboardInterrupt:
        pass  # SIGTERM/Ctrl-C: exit normally so embedded services are released


def stop_on_sigterm(signum, frame):
    """A SIGTERM handler that stops the process the way Ctrl-C does (``KeyboardInterrupt``)."""
    raise KeyboardInterrupt


def serve_app(app, host: str, port: int, threads: int) -> None:
    """Serve ``app`` with waitress until interrupted."""
    from waitress import serve as waitress_serve

    from ..infra.proxies import waitress_options

    # What start-up made (modules, the app, its plugins) lives as long as the process: the
    # garbage collector stops walking it on every full collection. Large exports make many
    # short-lived objects, and each full collection walked some 250,000 start-up objects
    # (1-3 µs more a CSV row, measured in bench/BENCHMARKS.md).
    gc.freeze()
    # Waitress's own cap sits well above Flask's so that oversized bodies get the API's JSON
    # 413 (Flask rejects them from Content-Length before reading the body).
    waitress_serve(app, host=host, port=port, threads=threads, ident="trailseal",
                   max_request_body_size=4 * app.config["MAX_CONTENT_LENGTH"],
                   **waitress_options())


@click.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(burst: bool) -> None:
    """Run an RQ worker on the queues high, default and low."""
    from ..jobs.runtime import run_worker

    run_worker(make_app(require_redis=True), burst=burst)


@click.command()
def scheduler() -> None:
    """Run the cron scheduler with the jobs plugins register."""
    from ..jobs.runtime import run_scheduler

    run_scheduler(make_app(require_redis=True))


def stop_children(children: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM a supervisor's children, SIGKILL those still running after ``grace`` seconds,
    and reap them all: an unreaped child still counts as a live user of the embedded servers,
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


def exit_with_parent() -> None:
    """In a child started with ``EXIT_WITH_PARENT`` set (by `trailseal demo`): get SIGTERM
    (handled as a normal stop) when that parent dies, however it dies, and stop the embedded
    servers on the way out if nobody uses them any more. Does nothing in other processes."""
    raw = os.environ.pop(EXIT_WITH_PARENT, "")  # not for this process's own children
    if not raw.isdigit():
        return
    parent = int(raw)
    from ..config import load_config
    from ..infra.embedded import stop_at_exit_if_unused

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
