"""Signed Merkle checkpoints at scale: a checkpoint over 1,000,000 events and incremental
ones, inclusion proof latency at 1,000,000 events, and ``trailseal-verify`` on a
100,000-event bundle.

Three parts, because the shared benchmark instance must not be migrated by this code (its
schema would then be ahead of every other branch's):

1. ``bench-1m`` of the shared instance (``--shared``, default ``/tmp/ts-bench``), read only
   as the database owner: the checkpoint's own work over its 1,000,000 real events, i.e.
   ``checkpoints.walk_and_extend`` (binary COPY, the chain check of every record, the tree
   and every complete subtree); the node insert and signature are part 3's. It joins (or
   starts) that instance's embedded PostgreSQL without migrating it.
2. This benchmark's own instance (``--instance``, default ``/tmp/ts-merkle-bench``): a
   tenant whose tree has bench-1m's 1,000,000 chain hashes as its leaves: every complete
   subtree of 64 leaves and more stored and a signed checkpoint over all of them, as a
   checkpoint leaves them. Disk on the shared VM being short, only the leaf rows the timed
   proofs read are written (each proved event's block of 64 and the last, partial block; by
   COPY as the owner, records and previous hashes left out: a proof reads only ``hash`` and
   ``merkle_nodes``; the secondary indexes dropped), then
   ``GET /api/v1/events/{id}/proof`` in process (auth, access log, queries, proof and its
   check) for random events.
3. Same instance: a tenant of real events (``--bundle``, default 100,000, loaded once
   through the bulk ingest path): the first checkpoint (``make_checkpoint``), an incremental
   one after more events, ``GET /chain/verify``'s checkpoint check, and a bundle of all its
   events checked by the ``trailseal-verify`` script in a subprocess.

Targets: proof p95 <= 20 ms; checkpoint over 1,000,000 <= 30 s; verify 100,000 <= 10 s.

Run: ``.venv/bin/python bench/bench_merkle.py [--quick]``
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
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
SHARED = "/tmp/ts-bench"
PROOF_P95_MS = 20.0
CHECKPOINT_S = 30.0
VERIFY_S = 10.0
SECONDARY_INDEXES = ("audit_logs_time_idx", "audit_logs_type_idx", "audit_logs_actor_idx",
                     "audit_logs_entity_idx", "audit_logs_severity_idx")


def shared_walk(shared: str, slug: str) -> list[bytes] | None:
    """Part 1: the checkpoint's walk over the shared instance's tenant; its chain hashes."""
    from trailseal.db import EMBEDDED_APP_USER, EMBEDDED_DB, with_user_and_db
    from trailseal.infra.embedded import ensure_postgres
    from trailseal.services.checkpoints import walk_and_extend
    from trailseal.services.merkle_store import STORED_LEVEL
    from trailseal_verify import merkle

    if not (Path(shared) / "pgdata").exists():
        print(f"part 1: no shared instance at {shared}; skipped")
        return None
    # As the application's role, so row-level security keeps the reads to the tenant (the
    # owner would bypass it) and nothing can be written.
    url = with_user_and_db(ensure_postgres(shared), EMBEDDED_APP_USER, EMBEDDED_DB)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        conn.read_only = True
        cur.execute("SELECT trailseal_resolve_tenant(%s)", (slug,))
        tid = cur.fetchone()[0]
        if tid is None:
            print(f"part 1: no tenant {slug} in {shared}; skipped")
            return None
        cur.execute("SELECT set_config('trailseal.tenant_id', %s, false)", (str(tid),))
        cur.execute("SELECT last_seq, last_hash FROM chain_heads WHERE tenant_id = %s", (tid,))
        head_seq, head_hash = cur.fetchone()
        builder = merkle.TreeBuilder()
        nodes = []

        def keep(level, index, h):
            if level >= STORED_LEVEL:
                nodes.append((level, index, h))

        t0 = time.perf_counter()
        walk_and_extend(cur, tid, 0, head_seq, head_hash, builder, keep)
        walk_s = time.perf_counter() - t0
        root = builder.root()
        cur.execute("SELECT hash FROM audit_logs WHERE tenant_id = %s ORDER BY seq", (tid,))
        leaves = [bytes.fromhex(h) for (h,) in cur.fetchall()]
    assert merkle.root_of(leaves) == root
    print(f"part 1: {slug} ({head_seq:,} real events, shared instance, read only)")
    print(f"  checkpoint work over all of them (COPY, chain check of every record, RFC 9162 "
          f"tree, {len(nodes):,} subtree hashes): {walk_s:.2f} s  "
          f"{verdict(walk_s <= CHECKPOINT_S)} (target <= {CHECKPOINT_S:.0f} s; the node "
          "insert and the signature are measured in part 3)")
    return leaves


def proof_seqs(size: int, n: int) -> list[int]:
    """The events whose proofs are timed: ``n`` at random, the first and the last."""
    rnd = random.Random(11)
    return [rnd.randint(1, size) for _ in range(n)] + [1, size]


def synthetic_tenant(svc, leaves: list[bytes], seqs: list[int]) -> uuid.UUID:
    """Part 2's tenant: the tree of ``leaves`` (every complete subtree of 64 leaves and more
    stored, and a signed checkpoint over all of them), and the leaf rows a proof of one of
    ``seqs`` reads: its block of 64 and the last, partial block (disk on this shared VM is
    too short for a million more rows)."""
    from trailseal.services.merkle_store import STORED_LEVEL
    from trailseal.services.signing import signing_key
    from trailseal_verify import merkle
    from trailseal_verify.note import checkpoint_text, sign_note

    size = len(leaves)
    slug = f"merkle-proofs-{size}-l{STORED_LEVEL}"
    tid, created = ensure_tenant(svc, slug)
    if not created and event_count(svc, tid) == size:
        _analyze(svc)
        return tid
    block = 1 << STORED_LEVEL
    blocks = sorted({(seq - 1) // block for seq in seqs} | {(size - 1) // block})
    rows = [seq for b in blocks for seq in range(b * block + 1, min(size, (b + 1) * block) + 1)]
    admin = svc.config["ADMIN_DATABASE_URL"].replace("+psycopg", "")
    t0 = time.perf_counter()
    with psycopg.connect(admin) as conn, conn.cursor() as cur:
        for name in SECONDARY_INDEXES:
            cur.execute(f"DROP INDEX IF EXISTS {name}")
        cur.execute("SELECT key_id FROM tenant_keys WHERE tenant_id = %s", (tid,))
        key_id = cur.fetchone()[0]
        with cur.copy("COPY audit_logs (id, tenant_id, seq, occurred_at, received_at, "
                      "event_type, actor_id, actor_type, entity_type, entity_id, severity, "
                      "key_id, previous_hash, hash, record) FROM STDIN") as copy:
            for seq in rows:
                copy.write_row((uuid.uuid4(), tid, seq, "2026-01-01T00:00:00Z",
                                "2026-01-01T00:00:00Z", "bench", "a", "user", "e", "1", "info",
                                key_id, "", leaves[seq - 1].hex(), b"{}"))
        builder = merkle.TreeBuilder()
        nodes: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            builder.append(leaf, lambda lv, ix, h: nodes.append((lv, ix, h))
                           if lv >= STORED_LEVEL else None)
        cur.execute("INSERT INTO merkle_nodes (tenant_id, level, index, hash) SELECT %s, * "
                    "FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])",
                    (tid, [n[0] for n in nodes], [n[1] for n in nodes], [n[2] for n in nodes]))
        cur.execute("UPDATE chain_heads SET last_seq = %s, last_hash = %s WHERE tenant_id = %s",
                    (size, leaves[-1].hex(), tid))
    with svc.db.cursor(tid) as cur:
        key = signing_key(svc, cur)
        note = sign_note(checkpoint_text(key.origin(tid), size, builder.root()),
                         key.name, key.private_key)
        cur.execute("INSERT INTO chain_checkpoints (tenant_id, tree_size, root, key_name, note) "
                    "VALUES (%s, %s, %s, %s, %s)", (tid, size, builder.root(), key.name, note))
    _analyze(svc)
    print(f"  wrote {len(rows):,} leaf rows ({len(blocks)} blocks of {block}), {len(nodes):,} "
          f"subtree rows and a checkpoint over {size:,} leaves in "
          f"{time.perf_counter() - t0:.1f} s")
    return tid


def _analyze(svc) -> None:
    """Statistics after a load, as autovacuum gathers them shortly after one."""
    with psycopg.connect(svc.config["ADMIN_DATABASE_URL"].replace("+psycopg", ""),
                         autocommit=True) as conn:
        conn.execute("ANALYZE audit_logs")
        conn.execute("ANALYZE merkle_nodes")


def proof_latency(app, svc, tid: uuid.UUID, seqs: list[int]) -> None:
    """Part 2's measurement: in-process GET /events/{id}/proof of ``seqs``."""
    size = event_count(svc, tid)
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT seq, id FROM audit_logs WHERE tenant_id = %s AND "
                    "seq = ANY(%s::bigint[])", (tid, seqs))
        ids = dict(cur.fetchall())
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(svc, tid)}"}
    for seq in seqs[:20]:
        client.get(f"/api/v1/events/{ids[seq]}/proof", headers=headers)
    samples = []
    for seq in seqs:
        t0 = time.perf_counter()
        resp = client.get(f"/api/v1/events/{ids[seq]}/proof", headers=headers)
        samples.append(time.perf_counter() - t0)
        body = resp.get_json()
        assert resp.status_code == 200 and body["verified"], resp.get_data()[:300]
    summary = latency_summary(samples)
    print(f"  GET /events/{{id}}/proof, {len(seqs)} events of {size:,} (random, first, last): "
          f"{format_latency(summary)}  {verdict(summary['p95'] <= PROOF_P95_MS)} "
          f"(target p95 <= {PROOF_P95_MS:.0f} ms; the last proof has {len(body['proof'])} "
          "hashes)")


def compare_reads(app, svc, tid: uuid.UUID, size: int, n: int = 300) -> None:
    """The proof of an event next to the smallest audited read (``GET /checkpoints?limit=1``:
    auth, the access log's fsync'd commit, one row), interleaved, so both see the same load
    on this shared machine: the difference is what the proof itself costs."""
    rnd = random.Random(3)
    seqs = [rnd.randint(1, size) for _ in range(n)]
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT seq, id FROM audit_logs WHERE tenant_id = %s AND "
                    "seq = ANY(%s::bigint[])", (tid, seqs))
        ids = dict(cur.fetchall())
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api_token(svc, tid)}"}
    plain, proofs = [], []
    for seq in seqs:
        for url, into in (("/api/v1/checkpoints?limit=1", plain),
                          (f"/api/v1/events/{ids[seq]}/proof", proofs)):
            t0 = time.perf_counter()
            resp = client.get(url, headers=headers)
            into.append(time.perf_counter() - t0)
            assert resp.status_code == 200
    print(f"  interleaved on {size:,} real events: GET /checkpoints?limit=1 "
          f"{format_latency(latency_summary(plain))}")
    print(f"  {'':>38}GET /events/{{id}}/proof {format_latency(latency_summary(proofs))}")


def real_tenant(app, svc, n: int, increment: int) -> None:
    """Part 3."""
    from trailseal.services.checkpoints import bundle_bytes, make_checkpoint
    from trailseal.services.merkle_store import STORED_LEVEL, check_checkpoints
    from trailseal.services.signing import signing_key
    from trailseal.services.tenancy import PERMISSIONS, Principal

    slug = f"merkle-real-{n}-l{STORED_LEVEL}"
    tid, _ = ensure_tenant(svc, slug)
    have = event_count(svc, tid)
    if have < n:
        spent = load_events(svc, tid, n - have, label=f"{slug} ")
        print(f"  loaded {n - have:,} events in {spent:.1f} s")
    with svc.db.cursor(tid) as cur:
        cur.execute("SELECT count(*) FROM chain_checkpoints WHERE tenant_id = %s", (tid,))
        existing = cur.fetchone()[0]
    if existing == 0:
        t0 = time.perf_counter()
        made = make_checkpoint(svc, tid, publish=False)
        print(f"  first checkpoint over {made['checkpoint']['tree_size']:,} events "
              f"(make_checkpoint: chain check, tree, subtree rows, signature, commit): "
              f"{time.perf_counter() - t0:.2f} s")
    else:
        print(f"  first checkpoint: made by an earlier run ({existing} exist)")
    append_all(svc, tid, demo_events(increment, seed=int(time.time())))
    t0 = time.perf_counter()
    made = make_checkpoint(svc, tid, publish=False)
    size = made["checkpoint"]["tree_size"]
    print(f"  incremental checkpoint after {increment:,} more events (tree size {size:,}): "
          f"{time.perf_counter() - t0:.2f} s")
    with svc.db.cursor(tid, snapshot=True) as cur:
        t0 = time.perf_counter()
        checked, problem = check_checkpoints(svc, cur, tid)
        print(f"  chain verification's check of the log against its {checked} checkpoints: "
              f"{time.perf_counter() - t0:.2f} s")
        assert problem is None
    compare_reads(app, svc, tid, size)
    principal = Principal("system", "bench", tid, frozenset(PERMISSIONS))
    first = max(1, size - n + 1)
    t0 = time.perf_counter()
    data = bundle_bytes(svc, principal, first, size)
    t_bundle = time.perf_counter() - t0
    with svc.db.cursor(tid) as cur:
        vkey = signing_key(svc, cur).vkey
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bundle.json"
        path.write_bytes(data)
        script = Path(sys.executable).with_name("trailseal-verify")
        t0 = time.perf_counter()
        out = subprocess.run([str(script), str(path), "--public-key", vkey],
                             capture_output=True, text=True)
        t_verify = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    print(f"  bundle of events {first:,}..{size:,} ({size - first + 1:,} events, "
          f"{len(data) / 1e6:.0f} MB) built in {t_bundle:.2f} s")
    print(f"  trailseal-verify on it (process start, JSON, every record hash, columns, link, "
          f"range proof, signatures): {t_verify:.2f} s  {verdict(t_verify <= VERIFY_S)} "
          f"(target <= {VERIFY_S:.0f} s)")
    print(f"    {out.stdout.strip()}")


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.set_defaults(instance=DEFAULT_INSTANCE)
    parser.add_argument("--shared", default=SHARED, help="instance holding bench-1m (read only)")
    parser.add_argument("--proofs", type=int, default=500)
    parser.add_argument("--bundle", type=int, default=100_000)
    parser.add_argument("--increment", type=int, default=10_000)
    args = parser.parse_args()
    if args.quick:
        args.proofs, args.bundle, args.increment = 100, 5_000, 1_000
    if Path(args.instance).resolve() == Path(args.shared).resolve():
        sys.exit("--instance must be an instance of its own (this code migrates it)")
    app = open_app(args.instance)
    svc = app.extensions["trailseal"]
    print_header("Signed Merkle checkpoints", svc, instance=args.instance, shared=args.shared)
    leaves = shared_walk(args.shared, "bench-1m")
    if leaves is None:  # no shared data: synthetic chain hashes, said so
        rnd = random.Random(5)
        leaves = [rnd.randbytes(32) for _ in range(20_000 if args.quick else 1_000_000)]
        print(f"part 2 uses {len(leaves):,} synthetic chain hashes")
    print(f"part 2: inclusion proofs over {len(leaves):,} leaves")
    seqs = proof_seqs(len(leaves), args.proofs)
    tid = synthetic_tenant(svc, leaves, seqs)
    del leaves
    proof_latency(app, svc, tid, seqs)
    print(f"part 3: {args.bundle:,} real events")
    real_tenant(app, svc, args.bundle, args.increment)


if __name__ == "__main__":
    main()
