"""Signed Merkle checkpoints at scale: the first checkpoint over 1,000,000 events and an
incremental one after, inclusion proof latency, and ``trailseal-verify`` on a 100,000-event
bundle.

The events are real (demo events appended through the service layer's bulk path, encrypted
and chained like any others) in the tenant ``merkle-1m`` of this benchmark's own instance
folder (default ``/tmp/ts-merkle-bench``): opening the shared ``/tmp/ts-bench`` with this code
would migrate its schema. Loading happens once; later runs reuse the tenant (the first
checkpoint over the whole chain is then the one the first run measured, and is printed from
the database).

Targets: inclusion proof p95 <= 20 ms at 1,000,000 events; a checkpoint over 1,000,000
events <= 30 s (incremental after); ``trailseal-verify`` of a 100,000-event bundle <= 10 s.

Run: ``.venv/bin/python bench/bench_merkle.py [--quick] [--events N] [--proofs N]``
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    api_token,
    append_all,
    base_parser,
    demo_events,
    ensure_tenant,
    event_count,
    format_latency,
    latency_summary,
    load_events,
    open_app,
    print_header,
    verdict,
)

DEFAULT_INSTANCE = "/tmp/ts-merkle-bench"
PROOF_P95_MS = 20.0
CHECKPOINT_S = 30.0
VERIFY_S = 10.0


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(instance=DEFAULT_INSTANCE)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=500)
    parser.add_argument("--bundle", type=int, default=100_000)
    parser.add_argument("--increment", type=int, default=10_000)
    args = parser.parse_args()
    if args.quick:
        args.events, args.proofs, args.bundle, args.increment = 20_000, 100, 5_000, 1_000
    if args.instance.rstrip("/") == "/tmp/ts-bench":
        sys.exit("use an instance of its own: opening /tmp/ts-bench migrates its schema")

    from trailseal.services.checkpoints import bundle_bytes, make_checkpoint
    from trailseal.services.integrity import verify_chain
    from trailseal.services.merkle_store import check_checkpoints, read_leaves
    from trailseal.services.tenancy import PERMISSIONS, Principal
    from trailseal_verify import merkle

    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Signed Merkle checkpoints", svc, events=f"{args.events:,}",
                 instance=args.instance)
    slug = "merkle-1m" if args.events == 1_000_000 else f"merkle-{args.events}"
    tid, _ = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < args.events:
        spent = load_events(svc, tid, args.events - have, label=f"{slug} ")
        print(f"loaded {args.events - have:,} events in {spent:.1f} s")
    total = event_count(svc, tid)
    principal = Principal("system", "bench", tid, frozenset(PERMISSIONS))

    # 1. the tree alone, from the stored chain hashes
    with svc.db.cursor(tid) as cur:
        t0 = time.perf_counter()
        leaves = [bytes.fromhex(h) for _, h in read_leaves(cur, tid, total)]
        t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    root = merkle.root_of(leaves)
    t_tree = time.perf_counter() - t0
    del leaves
    print(f"read {total:,} chain hashes: {t_read:.2f} s; RFC 9162 root over them: "
          f"{t_tree:.2f} s ({root.hex()[:16]}…)")

    # 2. checkpoints: the first over the whole chain, then incremental
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT count(*) FROM chain_checkpoints WHERE tenant_id = %s", (tid,))
        existing = cur.fetchone()[0]
    if existing == 0:
        t0 = time.perf_counter()
        made = make_checkpoint(svc, tid, publish=False)
        first_s = time.perf_counter() - t0
        assert made["checkpoint"]["root"] == root.hex()
        print(f"first checkpoint over {total:,} events (chain check of every event, tree, "
              f"{total >> 8:,} subtree rows, signature): {first_s:.2f} s  "
              f"{verdict(first_s <= CHECKPOINT_S)} (target <= {CHECKPOINT_S:.0f} s)")
    else:
        print(f"first checkpoint: measured by the first run ({existing} checkpoints exist)")
    events = demo_events(args.increment, end=None, seed=int(time.time()))
    append_all(svc, tid, events)
    t0 = time.perf_counter()
    made = make_checkpoint(svc, tid, publish=False)
    inc_s = time.perf_counter() - t0
    size = made["checkpoint"]["tree_size"]
    print(f"incremental checkpoint after {args.increment:,} more events (tree size {size:,}): "
          f"{inc_s:.2f} s")

    # 3. inclusion proofs over HTTP-in-process (auth, access log, queries, proof, check)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(svc, tid)}"}
    rnd = random.Random(11)
    seqs = [rnd.randint(1, size) for _ in range(args.proofs)]
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT seq, id FROM audit_logs WHERE tenant_id = %s AND seq = ANY(%s)",
                    (tid, seqs))
        ids = dict(cur.fetchall())
    for seq in seqs[:20]:  # warm the pool and caches
        client.get(f"/api/v1/events/{ids[seq]}/proof", headers=headers)
    samples = []
    for seq in seqs:
        t0 = time.perf_counter()
        resp = client.get(f"/api/v1/events/{ids[seq]}/proof", headers=headers)
        samples.append(time.perf_counter() - t0)
        assert resp.status_code == 200 and resp.get_json()["verified"], resp.get_data()[:200]
    summary = latency_summary(samples)
    print(f"GET /events/{{id}}/proof, {args.proofs} random events of {size:,}: "
          f"{format_latency(summary)}  {verdict(summary['p95'] <= PROOF_P95_MS)} "
          f"(target p95 <= {PROOF_P95_MS:.0f} ms)")

    # 4. checking the log against every signed checkpoint (part of chain verification)
    with svc.db.cursor(tid, snapshot=True) as cur:
        t0 = time.perf_counter()
        checked, problem = check_checkpoints(svc, cur, tid)
        t_check = time.perf_counter() - t0
    assert problem is None, problem
    t0 = time.perf_counter()
    report = verify_chain(svc, tid)
    t_verify = time.perf_counter() - t0
    print(f"log against {checked} signed checkpoints: {t_check:.2f} s; whole GET /chain/verify "
          f"work (walk + checkpoints): {t_verify:.2f} s, intact={report.intact}")

    # 5. a bundle of the last N events, checked by the standalone verifier
    first = max(1, size - args.bundle + 1)
    t0 = time.perf_counter()
    data = bundle_bytes(svc, principal, first, size)
    t_bundle = time.perf_counter() - t0
    with svc.db.cursor(tid) as cur:
        from trailseal.services.signing import signing_key

        vkey = signing_key(svc, cur).vkey
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_bytes(data)
        script = Path(sys.executable).with_name("trailseal-verify")
        t0 = time.perf_counter()
        out = subprocess.run([str(script), str(path), "--public-key", vkey],
                             capture_output=True, text=True)
        t_verify_bundle = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    print(f"bundle of events {first:,}..{size:,} ({size - first + 1:,} events, "
          f"{len(data) / 1e6:.0f} MB): built in {t_bundle:.2f} s")
    print(f"trailseal-verify on it (process start, read, every hash, columns, links, range "
          f"proof, signatures): {t_verify_bundle:.2f} s  {verdict(t_verify_bundle <= VERIFY_S)} "
          f"(target <= {VERIFY_S:.0f} s)")
    print(f"  {out.stdout.strip()}")


if __name__ == "__main__":
    main()
