"""The local embedder's speed: events embedded per second, as the enrichment pipeline and the
backlog job embed them (``Event.embedding_text()`` of each event, the whole range in one
call).

Events: benign CloudTrail background (``bench/cloudtrail_background.py``) mapped by the
product's importer, so the texts have the length real CloudTrail renderings have (their
decrypted details hold the whole CloudTrail record; the embedder reads the first
``MAX_TOKENS`` word pieces). Also reports the token counts before the cut and the speed at
other cuts, to show what the limit buys.

``--compare`` also runs, interleaved in the same process, the previous configuration: the
full rendering (``Event.text()``) cut at 40 word pieces, and reports the word pieces of both
renderings before the cut.

``python bench/bench_embed.py [--quick] [--events 4096] [--repeat 3] [--compare]``. Offline;
no database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cloudtrail_background as background  # noqa: E402
from benchlib import print_header  # noqa: E402

from trailseal.types import Event  # noqa: E402
from trailseal_plugins import embed_local  # noqa: E402
from trailseal_plugins.import_cloudtrail import map_record  # noqa: E402


def event_of(index: int, body: dict) -> Event:
    actor = body["actor"]
    return Event(id=str(index), tenant_id="bench", seq=index, occurred_at=body["occurred_at"],
                 event_type=body["event_type"], actor_id=actor["id"], actor_type=actor["type"],
                 actor_role=actor.get("role"), actor_department=actor.get("department"),
                 entity_type=body["entity"]["type"], entity_id=body["entity"]["id"],
                 severity=body["severity"], source=body.get("source"),
                 tags=tuple(body.get("tags", ())), ip_address=body.get("ip_address"),
                 user_agent=body.get("user_agent"), action_details=body.get("action_details"))


def events(n: int) -> list[Event]:
    records = background.generate(days=7, seed=0)
    step = max(1, len(records) // n)
    picked = records[::step][:n]
    return [event_of(i, map_record(r)) for i, r in enumerate(picked)]


def texts(n: int) -> list[str]:
    return [e.embedding_text() for e in events(n)]


def set_limit(embedder, limit: int) -> None:
    """Cut texts at ``limit`` word pieces from now on (the module's limit and prefix too)."""
    embed_local.MAX_TOKENS = limit
    embed_local.PREFIX_CHARS = 8 * limit
    embedder.tokenizer.enable_truncation(limit)


def compare(embedder, n: int, repeat: int) -> None:
    """The previous configuration (full rendering, 40 word pieces) against the current one,
    alternating which runs first, 1,000 events per call."""
    evs = events(n)
    limit = embed_local.MAX_TOKENS
    variants = {"previous (Event.text(), 40 pieces)": ([e.text() for e in evs], 40),
                f"current (Event.embedding_text(), {limit} pieces)":
                    ([e.embedding_text() for e in evs], limit)}
    embedder.tokenizer.no_truncation()
    for name, (batch, _) in variants.items():
        counts = [len(e.ids) for e in embedder.tokenizer.encode_batch(batch)]
        print(f"  {name}: word pieces before the cut: mean {statistics.mean(counts):.1f}, "
              f"median {statistics.median(counts):.0f}; characters: median "
              f"{statistics.median(len(t) for t in batch):.0f}")
    runs: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for k in range(repeat):
        for name in names if k % 2 == 0 else names[::-1]:
            batch, cut = variants[name]
            set_limit(embedder, cut)
            runs[name].extend(rate(embedder, batch, 1000, 1))
    set_limit(embedder, limit)
    for name, rates in runs.items():
        print(f"  {name}: median {statistics.median(rates):7.1f} events/s "
              f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")


def rate(embedder, batch: list[str], chunk: int, repeat: int) -> list[float]:
    """Events per second of ``repeat`` runs, each embedding ``batch`` ``chunk`` at a time
    (an enrichment job embeds its whole range in one call: up to 1,000 events)."""
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        for i in range(0, len(batch), chunk):
            embedder.embed(batch[i:i + chunk])
        out.append(len(batch) / (time.perf_counter() - started))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--events", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true",
                        help="also the previous rendering and cut, interleaved")
    args = parser.parse_args(argv)
    n = 256 if args.quick else args.events
    repeat = 1 if args.quick else args.repeat
    print_header("Local embedder (all-MiniLM-L6-v2 int8 ONNX) — events per second",
                 model=embed_local.MODEL, max_tokens=embed_local.MAX_TOKENS,
                 batch=embed_local.BATCH, events=n)
    batch = texts(n)
    started = time.perf_counter()
    embedder = embed_local.MiniLMEmbedder()
    print(f"  load (model check, session, tokenizer): {time.perf_counter() - started:.2f} s")
    embedder.embed(batch[:64])  # warm up
    full = embedder.tokenizer.encode_batch(batch)
    lengths = [min(len(e.ids), 10_000) for e in full]
    untruncated = [sum(e.attention_mask) + len(e.overflowing) * 0 for e in full]
    chars = [len(t) for t in batch]
    print(f"  text length: median {statistics.median(chars):.0f} chars; word pieces read "
          f"per text: median {statistics.median(lengths):.0f} (cut at "
          f"{embed_local.MAX_TOKENS}), {sum(u >= embed_local.MAX_TOKENS for u in untruncated)}"
          f" of {n} texts cut")
    print(f"  example: {batch[len(batch) // 2][:200]}…")
    print()
    for chunk in (1000, 100):
        rates = rate(embedder, batch, chunk, repeat)
        print(f"  {chunk:>5} events per call: median {statistics.median(rates):7.1f} events/s "
              f"(runs: {', '.join(f'{r:.1f}' for r in rates)})")
    single = rate(embedder, [batch[0]] * 50, 1, 1)[0]
    print(f"  one query at a time: {1000 / single:.1f} ms per query text")
    if args.compare:
        print()
        compare(embedder, n, max(2, repeat))
    if not args.quick:
        print()
        print("  other token limits (same texts, 1000 per call; the product uses "
              f"{embed_local.MAX_TOKENS}):")
        for limit in (24, 40, 64, 128):
            embedder.tokenizer.enable_truncation(limit)
            rates = rate(embedder, batch[:1024], 1000, 1)
            print(f"    {limit:>4} word pieces: {rates[0]:7.1f} events/s")
        embedder.tokenizer.enable_truncation(embed_local.MAX_TOKENS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
