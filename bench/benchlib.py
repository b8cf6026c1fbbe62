"""Shared helpers for the Trailseal benchmarks in this folder (not a benchmark itself).

Every benchmark runs against one dedicated instance folder (default ``/tmp/ts-bench``, a
short path because the embedded PostgreSQL and Valkey put their unix sockets there). Data
loaded by one run stays there and is reused by later runs where a benchmark says so.

The per-key rate limit is set to a limit no benchmark reaches (``1000000000/60``) rather
than switched off, so its Valkey round trip stays part of every API request.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import http.client
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_INSTANCE = "/tmp/ts-bench"
RATE_LIMIT = "1000000000/60"

# What the enrichment worker stores for an event when no classifier/detector plugin is
# installed (every field at its default), for the events of the benchmark tenants that have
# none yet (the parameter: a tenant slug pattern for LIKE): in steady state every event has an insights row, and the API joins them.
INSIGHTS_SQL = """
INSERT INTO event_insights (event_id, tenant_id, anomaly_score, is_anomaly, category,
  risk_level, tags, ai_insights, model_versions, review_required)
SELECT a.id, a.tenant_id, NULL, NULL, NULL, NULL, '{}', '{}', '{}', false
  FROM audit_logs a JOIN tenants t ON t.id = a.tenant_id
 WHERE t.slug LIKE %s
   AND NOT EXISTS (SELECT 1 FROM event_insights i WHERE i.event_id = a.id)
"""
BATCH = 1000
SERVER_THREADS = 8


# --------------------------------------------------------------------------------------------
# Command line, app, machine
# --------------------------------------------------------------------------------------------


def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--instance", default=DEFAULT_INSTANCE,
                        help=f"instance folder (default {DEFAULT_INSTANCE})")
    return parser


def app_config(instance: str) -> dict[str, Any]:
    """The configuration every benchmark (and the benchmark HTTP server) uses."""
    return {"INSTANCE_PATH": instance, "RATE_LIMIT": RATE_LIMIT}


def open_app(instance: str):
    """Create the Flask app on the benchmark instance (starts embedded PG + Valkey). A
    SIGTERM then stops the benchmark as Ctrl-C does, so the exit handlers that stop the
    embedded servers it started still run."""
    import threading

    from trailseal import create_app
    from trailseal.cli import stop_on_sigterm

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop_on_sigterm)

    return create_app(app_config(instance))


def admin_dsn(svc) -> str:
    """libpq URL of the schema owner (superuser on the embedded server)."""
    return svc.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")


def machine_info(svc=None) -> dict[str, str]:
    """Date, CPU, RAM, Python and (when ``svc`` is given) PostgreSQL version."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    info = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "code": code_version(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "ram": mem,
        "python": platform.python_version(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if svc is not None:
        import psycopg

        with psycopg.connect(admin_dsn(svc)) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            for setting in ("shared_buffers", "synchronous_commit", "fsync"):
                info[setting] = conn.execute(f"SHOW {setting}").fetchone()[0]
    return info


def code_version() -> str:
    """The code under test: the git commit of the checkout ``trailseal`` is imported from
    (marked when its platform/ has local changes), or the ``COMMIT`` note of an exported
    snapshot put first on PYTHONPATH."""
    import trailseal

    root = Path(trailseal.__file__).resolve().parents[2]
    if (root / "COMMIT").exists():
        return f"{(root / 'COMMIT').read_text().strip()} at {root}"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "platform"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"unknown ({root})"
    return head + (" + uncommitted changes in platform/" if dirty else "")


def print_header(title: str, svc=None, **extra: Any) -> None:
    """Print the benchmark title, the machine and the run's parameters."""
    print("=" * 78)
    print(title)
    print("=" * 78)
    for key, value in {**machine_info(svc), **extra, "cpu speed": cpu_calibration()}.items():
        print(f"  {key:<20} {value}")
    print()


def cpu_calibration() -> str:
    """This core's speed right now, to compare runs on a shared VM: SHA-256 of 1,100 bytes
    (about one stored record) and a pure-Python loop; best of 5."""
    import hashlib
    import timeit

    blob = bytes(range(256)) * 4 + bytes(76)
    sha = min(timeit.repeat(lambda: hashlib.sha256(blob).hexdigest(), number=20_000, repeat=5))
    loop = min(timeit.repeat("for i in range(100_000): pass", number=10, repeat=5))
    return (f"sha256(1,100 B) {sha / 20_000 * 1e6:.2f} us; 1M-step Python loop "
            f"{loop / 10 * 10 * 1e3:.1f} ms")


# --------------------------------------------------------------------------------------------
# Tenants and data
# --------------------------------------------------------------------------------------------


def ensure_tenant(svc, slug: str) -> tuple[uuid.UUID, bool]:
    """The tenant with ``slug``, created when missing; returns (id, created)."""
    from trailseal.services.tenancy import create_tenant, resolve_tenant

    tid = resolve_tenant(svc, slug, missing_ok=True)
    if tid is not None:
        return uuid.UUID(str(tid)), False
    return uuid.UUID(create_tenant(svc, slug, slug)["id"]), True


def new_tenant(svc, prefix: str) -> uuid.UUID:
    """A fresh tenant with a unique slug ``<prefix>-<random>``."""
    return ensure_tenant(svc, f"{prefix}-{uuid.uuid4().hex[:10]}")[0]


def api_token(svc, tenant_id: uuid.UUID) -> str:
    """A new API key of the tenant holding every permission."""
    from trailseal.services.tenancy import PERMISSIONS, create_api_key

    return create_api_key(svc, tenant_id, list(PERMISSIONS), "bench")["token"]


def event_count(svc, tenant_id: uuid.UUID) -> int:
    """Events in the tenant's chain (the chain head's ``last_seq``)."""
    with svc.db.cursor(tenant_id) as cur:
        cur.execute("SELECT last_seq FROM chain_heads WHERE tenant_id = %s", (tenant_id,))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def demo_events(n: int, profile: str = "acme", *, end: dt.datetime | None = None,
                days: int | None = None, seed: int = 7) -> list[dict]:
    """Exactly ``n`` realistic events (demo_data) ending at ``end``, oldest first.

    ``profile`` is one of the demo tenants' profiles (acme, globex, initech); every event
    carries ip_address, user_agent and action_details, so all three get encrypted.
    """
    from trailseal_plugins.demo.data import generate_events

    if n <= 0:
        return []
    days = days or max(1, math.ceil(n / 1000))
    per_day = math.ceil(n / days) + 20
    events = generate_events(profile, days=days, events_per_day=per_day, end=end, seed=seed)
    while len(events) < n:  # generate_events gives "about" days * per_day events
        per_day += 50
        events = generate_events(profile, days=days, events_per_day=per_day, end=end, seed=seed)
    return events[-n:]


def chunked(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def append_all(svc, tenant_id: uuid.UUID, events: list[dict], batch: int = BATCH) -> float:
    """Append ``events`` in batches through the service layer's bulk path (``append_stream``);
    return seconds."""
    from trailseal.services.bulk import append_stream

    t0 = time.perf_counter()
    append_stream(svc, tenant_id, chunked(events, batch))
    return time.perf_counter() - t0


def load_events(svc, tenant_id: uuid.UUID, total: int, profile: str = "acme",
                chunk: int = 100_000, span_days: int = 365, label: str = "") -> float:
    """Append ``total`` events to the tenant, generated in chunks, oldest first.

    The events are spread over the ``span_days`` days before now. Prints progress; returns
    the seconds spent in the service layer (generation excluded).
    """
    chunks = max(1, math.ceil(total / chunk))
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    days_per_chunk = max(1, span_days // chunks)
    spent = 0.0
    done = 0
    for i in range(chunks):
        n = min(chunk, total - done)
        end = now - dt.timedelta(days=days_per_chunk * (chunks - 1 - i))
        events = demo_events(n, profile, end=end, days=days_per_chunk, seed=7 + i)
        gc.collect()
        gc.freeze()  # the pre-generated input is harness data: keep it out of GC scans
        spent += append_all(svc, tenant_id, events)
        done += n
        del events
        gc.unfreeze()
        gc.collect()
        print(f"  loaded {label}{done:,}/{total:,} events "
              f"({done / spent:,.0f} events/s so far)", flush=True)
    return spent


# --------------------------------------------------------------------------------------------
# Instrumentation of the ingest path
# --------------------------------------------------------------------------------------------


class TimedCursor:
    """Delegates to a psycopg cursor, timing ``execute`` per kind of statement."""

    KINDS = (
        ("INSERT INTO audit_logs", "sql INSERT audit_logs (unnest, incl. param adaptation)"),
        ("SELECT last_seq", "sql SELECT chain head FOR UPDATE"),
        ("UPDATE chain_heads", "sql UPDATE chain head"),
        ("SELECT key_id", "sql SELECT active data key"),
        ("SELECT id, tenant_id, name, permissions", "sql SELECT trailseal_find_api_key"),
        ("INSERT INTO audit_access_log", "sql INSERT audit_access_log"),
        ("SELECT a.seq, a.occurred_at, a.record", "sql SELECT events page (list_events)"),
    )

    def __init__(self, cur, timers: dict[str, float], captured: dict):
        self._cur = cur
        self._timers = timers
        self._captured = captured

    def execute(self, sql, params=None, **kw):
        head = " ".join(str(sql).split())
        label = next((name for prefix, name in self.KINDS if head.startswith(prefix)),
                     "sql other")
        if label.startswith("sql INSERT"):
            self._captured["insert_params"] = params
        t0 = time.perf_counter()
        try:
            return self._cur.execute(sql, params, **kw)
        finally:
            self._timers[label] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._cur, name)


@contextmanager
def patched(module, name: str, timers: dict[str, float], label: str):
    """Time every call of ``module.name`` into ``timers[label]``."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timers[label] += time.perf_counter() - t0

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


# Functions of the ingest path timed by ``instrumented`` (as ``ingest`` imported them).
INGEST_FUNCTIONS = (
    ("prepare_batch", "prepare_batch (ids, AES-GCM x3, canonical JSON, joined columns)"),
    ("link_batch", "link_batch (seqs, previous_hash, sha256)"),
)


@contextmanager
def instrumented(svc, timers: dict[str, float], captured: dict):
    """Patch timing wrappers into the ingest path (restored on exit).

    Times the functions of ``INGEST_FUNCTIONS``, every transaction's checkout/BEGIN and
    COMMIT, each statement run through ``svc.db.cursor`` (by kind) and ``svc.after_ingest``;
    the INSERT's parameters are kept in ``captured["insert_params"]``.
    """
    from contextlib import ExitStack

    import trailseal.services.ingest as ingest_mod

    orig_cursor = svc.db.cursor

    @contextmanager
    def cursor(tenant_id=None, **kw):
        t0 = time.perf_counter()
        with orig_cursor(tenant_id, **kw) as cur:
            timers["checkout + BEGIN + set_config"] += time.perf_counter() - t0
            yield TimedCursor(cur, timers, captured)
            t1 = time.perf_counter()
        timers["COMMIT"] += time.perf_counter() - t1

    with ExitStack() as stack:
        for name, label in INGEST_FUNCTIONS:
            stack.enter_context(patched(ingest_mod, name, timers, label))
        stack.enter_context(patched(svc, "after_ingest", timers,
                                    "after_ingest (hook + RQ enqueue)"))
        svc.db.cursor = cursor
        try:
            yield
        finally:
            del svc.db.cursor


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean in milliseconds of latencies given in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": ms[-1] if ms else float("nan"),
        "mean": statistics.fmean(ms) if ms else float("nan"),
    }


def format_latency(summary: dict[str, float]) -> str:
    return (f"n={summary['n']:<5} p50 {summary['p50']:7.2f} ms  p95 {summary['p95']:7.2f} ms  "
            f"p99 {summary['p99']:7.2f} ms  max {summary['max']:7.2f} ms  "
            f"mean {summary['mean']:7.2f} ms")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# --------------------------------------------------------------------------------------------
# CPU accounting
# --------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(instance: str) -> list[int]:
    """The embedded postmaster of the instance and its children (backends, walwriter, ...)."""
    try:
        master = int(Path(instance, "pgdata", "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except (OSError, ValueError, IndexError):
        return []
    return [master, *map(int, children)]


class CpuMeter:
    """CPU seconds used by this process, an optional server process and PostgreSQL."""

    def __init__(self, instance: str, server_pid: int | None = None):
        self.instance = instance
        self.server_pid = server_pid

    def sample(self) -> dict[int | str, float]:
        out: dict[int | str, float] = {"self": sum(os.times()[:2])}
        if self.server_pid:
            out["server"] = proc_cpu(self.server_pid)
        for pid in postgres_pids(self.instance):
            out[pid] = proc_cpu(pid)
        return out

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds between two samples: client (this process), server, postgres."""
        pg = sum(v - before.get(k, 0.0) for k, v in after.items() if isinstance(k, int))
        return {"client": after["self"] - before["self"],
                "server": after.get("server", 0.0) - before.get("server", 0.0),
                "postgres": pg}


# --------------------------------------------------------------------------------------------
# HTTP: the app under waitress in a subprocess, keep-alive clients
# --------------------------------------------------------------------------------------------

_SERVER_CODE = """
import sys
sys.path.insert(0, sys.argv[4])
from benchlib import app_config
from trailseal import create_app
from trailseal.cli.runtime import serve_app
app = create_app(app_config(sys.argv[1]))
try:
    serve_app(app, "127.0.0.1", int(sys.argv[2]), int(sys.argv[3]))
except KeyboardInterrupt:
    pass
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``trailseal.cli.runtime.serve_app`` (waitress) in a subprocess on 127.0.0.1 and a free
    port."""

    def __init__(self, instance: str, threads: int = SERVER_THREADS):
        self.instance = instance
        self.threads = threads
        self.port = free_port()
        self.log_path = Path(instance) / "bench-server.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CODE, self.instance, str(self.port),
             str(self.threads), str(Path(__file__).parent)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/alerts")
                conn.getresponse().read()
                conn.close()
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start; see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Client:
    """A keep-alive HTTP/1.1 client (http.client) bound to one API key."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def timed(self, method: str, path: str, body: bytes | None = None,
              expect: int = 200) -> float:
        """Seconds for one request (send to last byte read); raises on another status."""
        t0 = time.perf_counter()
        status, data = self.request(method, path, body)
        elapsed = time.perf_counter() - t0
        if status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:300]!r}")
        return elapsed

    def close(self) -> None:
        self.conn.close()


def run_clients(n_clients: int, worker: Callable[[int], list[float]]) -> tuple[list[float], float]:
    """Run ``worker(i)`` in ``n_clients`` threads; return all latencies and the wall time."""
    import threading

    results: list[list[float]] = [[] for _ in range(n_clients)]
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = worker(i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return [x for r in results for x in r], wall
