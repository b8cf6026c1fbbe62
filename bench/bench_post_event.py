"""Single-event ``POST /api/v1/events`` latency over real HTTP (waitress, keep-alive).

The app runs under ``trailseal.cli.runtime.serve_app`` (waitress, 8 threads) in a subprocess on
127.0.0.1; clients are ``http.client`` keep-alive connections in this process, one event per
request (realistic demo_data events with ip_address, user_agent and action_details).

1. One client, sequential requests. Target: p95 <= 15 ms.
2. Four concurrent clients on the same tenant (their appends serialise on the tenant's chain
   head row lock), and four concurrent clients on four different tenants.
3. In-process breakdown of one request (Flask test client, timing wrappers around API-key
   authentication, the rate-limit check, validation, append_events and the post-commit
   enqueue).

Run: ``.venv/bin/python bench/bench_post_event.py [--quick] [--requests N]``
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict

import orjson
from benchlib import (
    SERVER_THREADS,
    Client,
    CpuMeter,
    Server,
    api_token,
    base_parser,
    demo_events,
    event_count,
    format_latency,
    instrumented,
    latency_summary,
    new_tenant,
    open_app,
    patched,
    print_header,
    run_clients,
    verdict,
)

TARGET_P95_MS = 15.0
PATH = "/api/v1/events"


def sequential(port: int, token: str, bodies: list[bytes]) -> list[float]:
    client = Client(port, token)
    try:
        return [client.timed("POST", PATH, body, expect=201) for body in bodies]
    finally:
        client.close()


def _timed_sequential(port: int, token: str, bodies: list[bytes]) -> tuple[list[float], float]:
    t0 = time.perf_counter()
    lat = sequential(port, token, bodies)
    return lat, time.perf_counter() - t0


def concurrent(port: int, tokens: list[str], bodies: list[bytes]) -> tuple[list[float], float]:
    """Each client posts its share of ``bodies``; returns latencies and wall time."""
    k = len(tokens)

    def worker(i: int) -> list[float]:
        return sequential(port, tokens[i], bodies[i::k])

    return run_clients(k, worker)


def in_process_breakdown(app, token: str, bodies: list[bytes]) -> None:
    """Time the phases of ``POST /api/v1/events`` with the Flask test client."""
    import trailseal.api.v1 as v1
    import trailseal.auth as auth

    svc = app.extensions["trailseal"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for body in bodies[:50]:  # warm-up
        client.post(PATH, data=body, headers=headers)
    top: dict[str, float] = defaultdict(float)
    inner: dict[str, float] = defaultdict(float)
    measured = bodies[50:]
    auth_label = "authenticate_api_key (its own DB transaction)"
    append_label = "append_events, after_ingest excluded (1 DB txn)"
    with (
        patched(auth, "authenticate_api_key", top, auth_label),
        patched(auth, "enforce_rate_limit", top, "enforce_rate_limit (Valkey pipeline)"),
        patched(v1, "validate_events", top, "validate_events (pydantic)"),
        patched(v1, "append_events", top, append_label),
        instrumented(svc, inner, {}),
    ):
        t0 = time.perf_counter()
        for body in measured:
            resp = client.post(PATH, data=body, headers=headers)
            if resp.status_code != 201:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.data[:200]!r}")
        total = time.perf_counter() - t0
    n = len(measured)
    after = inner.pop("after_ingest (hook + RQ enqueue)")
    top[append_label] -= after
    top["after_ingest: plugin hook + RQ enqueue (Valkey)"] = after
    print(f"In-process breakdown (Flask test client, no HTTP/waitress, {n} sequential requests; "
          "timing wrappers add a few us):")
    print(f"  {'phase':<66} {'ms/req':>7} {'share':>6}")
    rows = sorted(top.items(), key=lambda kv: -kv[1])
    rows.append(("Flask/werkzeug test client, JSON parse, response (the rest)",
                 total - sum(top.values())))
    for label, secs in rows:
        print(f"  {label:<66} {secs / n * 1e3:7.3f} {secs / total:6.1%}")
    print(f"  {'TOTAL':<66} {total / n * 1e3:7.3f}   100%")
    print("  of which, inside the two DB transactions (auth + append):")
    for label, secs in sorted(inner.items(), key=lambda kv: -kv[1]):
        print(f"    {label:<64} {secs / n * 1e3:7.3f} {secs / total:6.1%}")
    print()


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, help="requests per scenario (2,000)")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    n = args.requests or (200 if args.quick else 2_000)
    warm = 20 if args.quick else 200
    k = args.clients

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("bench_post_event: POST /api/v1/events latency over HTTP", svc,
                 requests=f"{n:,} per scenario (+{warm} warm-up)", clients=k,
                 server=f"waitress, {SERVER_THREADS} threads, subprocess",
                 client="http.client keep-alive", instance=args.instance)

    events = demo_events(3 * n + warm + 600, "globex")
    bodies = [orjson.dumps(e) for e in events]
    del events
    gc.collect()
    gc.freeze()
    warm_bodies, seq_bodies = bodies[:warm], bodies[warm:warm + n]
    same_bodies = bodies[warm + n:warm + 2 * n]
    multi_bodies = bodies[warm + 2 * n:warm + 3 * n]
    local_bodies = bodies[warm + 3 * n:]

    tenant = new_tenant(svc, "bench-post")
    token = api_token(svc, tenant)
    same_tokens = [api_token(svc, tenant) for _ in range(k)]
    tenants = [new_tenant(svc, "bench-post-multi") for _ in range(k)]
    multi_tokens = [api_token(svc, t) for t in tenants]

    results: dict[str, dict] = {}
    with Server(args.instance) as server:
        print(f"server on 127.0.0.1:{server.port} (pid {server.proc.pid})")
        sequential(server.port, token, warm_bodies)
        meter = CpuMeter(args.instance, server.proc.pid)
        scenarios = [
            ("1 client", lambda: _timed_sequential(server.port, token, seq_bodies)),
            (f"{k} clients, same tenant",
             lambda: concurrent(server.port, same_tokens, same_bodies)),
            (f"{k} clients, {k} tenants",
             lambda: concurrent(server.port, multi_tokens, multi_bodies)),
        ]
        for label, run in scenarios:
            before = meter.sample()
            lat, wall = run()
            cpu = CpuMeter.delta(before, meter.sample())
            results[label] = latency_summary(lat)
            results[label]["rps"] = n / wall
            results[label]["cpu"] = {key: secs / n * 1e3 for key, secs in cpu.items()}
            results[label]["util"] = sum(cpu.values()) / wall

    assert event_count(svc, tenant) == warm + 2 * n, "the server did not append every event"
    assert sum(event_count(svc, t) for t in tenants) == n

    print()
    print("POST /api/v1/events, one event per request, HTTP 201 checked:")
    for label, summary in results.items():
        print(f"  {label:<22} {format_latency(summary)}  {summary['rps']:7.0f} req/s")
    print("  CPU per request (ms) and cores busy on average (of 2):")
    for label, summary in results.items():
        cpu = summary["cpu"]
        print(f"  {label:<22} client {cpu['client']:5.2f}  waitress/app {cpu['server']:5.2f}  "
              f"postgres {cpu['postgres']:5.2f}  total {sum(cpu.values()):5.2f}  "
              f"-> {summary['util']:.2f} cores busy")
    p95 = results["1 client"]["p95"]
    print(f"  target p95 <= {TARGET_P95_MS:.0f} ms (1 client): {p95:.2f} ms, "
          f"{verdict(p95 <= TARGET_P95_MS)}")
    for label, summary in results.items():
        if label != "1 client":
            print(f"  p95 <= {TARGET_P95_MS:.0f} ms with {label}: {verdict(summary['p95'] <= 15)}")
    print()

    in_process_breakdown(app, token, local_bodies)
    svc.close()


if __name__ == "__main__":
    main()
