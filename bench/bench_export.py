"""Exports over real HTTP: ``POST /api/v1/export/csv`` of a whole tenant (rows/s and the web
process's peak memory) and ``POST /api/v1/export/pdf`` of its newest 10,000 events (seconds).

The tenant (``bench-export-<N>``) is filled once through the service layer (demo events over
the last 365 days) and reused by later runs; every event gets the ``event_insights`` row the
enrichment worker writes when no AI plugin is installed, so the export joins real rows.

The server is the app under waitress (``trailseal.cli.runtime.serve_app``) in a subprocess;
the client reads the streamed CSV as it arrives and counts its rows. Peak memory is the
server process's high-water mark (``VmHWM``, start-up included), read after the export,
plus that of each helper process it started (the export shares pages with them): the
processes' own peaks added, which counts the memory they share twice.
The PDF runs while the client waits (``TRAILSEAL_EXPORT_SYNC_MAX_EVENTS`` raised to 10,000 for
the server) so the figure is the time to write it. Targets: CSV >= 50,000 rows/s with peak
memory <= 300 MB; PDF of 10,000 events <= 30 s.

``--compare N`` first reads the tenant's first N events in this process both ways, interleaved
(the CSV exporter over the fast path, ``export_rows.iter_event_rows`` + ``stream_rows``, and
over the reference path, ``exports.iter_events`` + ``stream``): rows/s and this process's CPU
µs per row of each, with the load average, so the two compare under the same load.

Run: ``.venv/bin/python bench/bench_export.py [--quick] [--events N] [--instance DIR]
[--compare N]``
"""

from __future__ import annotations

import http.client
import os
import re
import time
from pathlib import Path

import orjson
import psycopg
from benchlib import (
    Server,
    admin_dsn,
    api_token,
    base_parser,
    ensure_tenant,
    event_count,
    load_events,
    open_app,
    print_header,
    verdict,
)

TARGET_ROWS_PER_S = 50_000
TARGET_PEAK_MB = 300
TARGET_PDF_S = 30.0
PDF_EVENTS = 10_000

INSIGHTS_SQL = """
INSERT INTO event_insights (event_id, tenant_id, anomaly_score, is_anomaly, category,
  risk_level, tags, ai_insights, model_versions, review_required, enriched_at)
SELECT a.id, a.tenant_id, NULL, NULL, NULL, NULL, '{}', '{}', '{}', false, now()
  FROM audit_logs a
 WHERE a.tenant_id = %s
   AND NOT EXISTS (SELECT 1 FROM event_insights i
                    WHERE i.tenant_id = a.tenant_id AND i.event_id = a.id)
"""


def _vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` and theirs (its helper processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far (those still running)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_by_process(web_pid: int, instance: str) -> dict[str, float]:
    """CPU seconds so far of the web process, its helper processes and the database."""
    postmaster = int(Path(instance, "pgdata", "postmaster.pid").read_text().split()[0])
    return {"web": _cpu_s([web_pid]), "helpers": _cpu_s(_descendants(web_pid)),
            "database": _cpu_s([postmaster, *_descendants(postmaster)])}


def _post(port: int, token: str, path: str, body: dict) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", path, body=orjson.dumps(body),
                 headers={"Authorization": f"Bearer {token}",
                          "Content-Type": "application/json"})
    return conn.getresponse()


def compare_paths(svc, tid, n: int) -> None:
    """The CSV of the first ``n`` events over the fast and the reference read path, in
    process, twice each, interleaved."""
    from trailseal.schemas import ExportFilters
    from trailseal.services.export_rows import iter_event_rows
    from trailseal.services.exports import export_scope, iter_events
    from trailseal_plugins.exports.csv_format import CsvExporter

    head = event_count(svc, tid)
    exporter = CsvExporter()
    for kind in ("fast", "reference", "fast", "reference"):
        scope = export_scope(svc, tid, ExportFilters(), head, "bench")
        chunks = (exporter.stream_rows(iter_event_rows(svc, scope), {}) if kind == "fast"
                  else exporter.stream(iter_events(svc, scope), {}))
        t0, c0, rows = time.perf_counter(), time.process_time(), -1
        for chunk in chunks:
            rows += chunk.count(b"\n")
            if rows >= n:
                break
        chunks.close()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"in process, {kind:9}: {rows:,} rows at {rows / wall:,.0f} rows/s, "
              f"{cpu / rows * 1e6:.1f} us CPU per row (load average {os.getloadavg()[0]:.2f})")


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help="events in the tenant (1,000,000)")
    parser.add_argument("--compare", type=int, default=0, metavar="N",
                        help="first compare both read paths in process over N events")
    args = parser.parse_args()
    n = args.events or (50_000 if args.quick else 1_000_000)
    slug = f"bench-export-{n}"

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_export: CSV and PDF exports over HTTP", svc, events=f"{n:,}",
                 tenant=slug, instance=args.instance)
    tid, _ = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < n:
        load_events(svc, tid, n - have, label=f"{slug}: ")
    with psycopg.connect(admin_dsn(svc), autocommit=True) as conn:
        conn.execute(INSIGHTS_SQL, (tid,))
        conn.execute("ANALYZE audit_logs")
        conn.execute("ANALYZE event_insights")
        start = conn.execute(
            "SELECT occurred_at FROM audit_logs WHERE tenant_id = %s "
            "ORDER BY occurred_at DESC, seq DESC OFFSET %s LIMIT 1",
            (tid, PDF_EVENTS - 1)).fetchone()[0]
    token = api_token(svc, tid)
    total = event_count(svc, tid)
    if args.compare:
        compare_paths(svc, tid, args.compare)

    os.environ["TRAILSEAL_EXPORT_SYNC_MAX_EVENTS"] = str(PDF_EVENTS)
    with Server(args.instance) as server:
        pid = server.proc.pid
        started = _vm_hwm_mb(pid)
        print(f"web process after start-up (VmHWM) {started:,.0f} MB; load average "
              f"{os.getloadavg()[0]:.2f}")
        cpu_before = _cpu_by_process(pid, args.instance)
        t0 = time.perf_counter()
        resp = _post(server.port, token, "/api/v1/export/csv", {})
        assert resp.status == 200, resp.read()[:300]
        size = lines = 0
        while chunk := resp.read1(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")  # no exported value holds a line feed here
        csv_s = time.perf_counter() - t0
        cpu_after = _cpu_by_process(pid, args.instance)
        rows = lines - 1  # the header
        peak = _vm_hwm_mb(pid)
        children = {child: _vm_hwm_mb(child) for child in _descendants(pid)}
        rate = rows / csv_s
        print(f"CSV: {rows:,} rows ({total:,} events), {size / 1e6:,.0f} MB in {csv_s:.1f} s "
              f"= {rate:,.0f} rows/s {verdict(rate >= TARGET_ROWS_PER_S)} "
              f"(target >= {TARGET_ROWS_PER_S:,})")
        print(f"CSV: load average after it {os.getloadavg()[0]:.2f}")
        used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        print("CSV: CPU a row " + ", ".join(f"{name} {sec / rows * 1e6:.1f} us"
                                            for name, sec in used.items())
              + f"; together {sum(used.values()) / rows * 1e6:.1f} us, "
              f"{sum(used.values()) / csv_s:.2f} cores busy of {os.cpu_count()}")
        print(f"CSV: web process peak memory (VmHWM) {peak:,.0f} MB; its helper processes "
              f"{', '.join(f'{mb:,.0f} MB' for mb in children.values()) or 'none'}")
        together = peak + sum(children.values())
        print(f"CSV: peak memory of the web process and its helpers together "
              f"{together:,.0f} MB {verdict(together <= TARGET_PEAK_MB)} "
              f"(target <= {TARGET_PEAK_MB}; each process's own peak, added)")

        t0 = time.perf_counter()
        resp = _post(server.port, token, "/api/v1/export/pdf",
                     {"start": start.isoformat()})
        data = resp.read()
        pdf_s = time.perf_counter() - t0
        assert resp.status == 200, data[:300]
        pages = len(re.findall(rb"/Type /Page[^s]", data))
        print(f"PDF: {PDF_EVENTS:,} newest events, {len(data) / 1e6:.1f} MB, ~{pages} pages, "
              f"in {pdf_s:.1f} s {verdict(pdf_s <= TARGET_PDF_S)} (target <= {TARGET_PDF_S:.0f}"
              f" s; includes verifying the chain of {total:,} events)")
        print(f"web process peak memory after both: {_vm_hwm_mb(pid):,.0f} MB")


if __name__ == "__main__":
    main()
