"""MemoryCache get/set throughput with stats on, against a plain OrderedDict LRU, same run.

Requirement (the cache issue): MemoryCache >= 0.7x the OrderedDict LRU.

    python bench/cache_ops.py [--ops 200000] [--reps 7] [--max-size 1000] [--keys 1500]

The workload is 80 % get / 20 % set over a keyspace larger than ``max_size``, so entries are
evicted all the time. MemoryCache's API is async, so the requirement's ratio is taken against
the same textbook LRU behind ``async def`` methods (like with like: both pay one coroutine per
call); the plain synchronous LRU is printed too, for reference. Every driver yields to the event
loop every 100 operations (as an agent awaiting I/O does), which lets MemoryCache's background
task flush its stats to a private redis-server (started like bench/store_ops.py does) about four
times a second. Repetitions are interleaved in rotating order so drift hits every side alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store import bench_store, redis_version

from store import Connection
from store.cache import MemoryCache

REQUIREMENT = 0.7
SESSION = "bench-cache"
Ops = Sequence[Sequence[tuple[bool, str]]]  # chunks of (is_get, key)


class LRU:
    """The textbook OrderedDict LRU."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.data: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str, default: Any = None) -> Any:
        data = self.data
        if key not in data:
            return default
        data.move_to_end(key)
        return data[key]

    def set(self, key: str, value: Any) -> None:
        data = self.data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.max_size:
            data.popitem(last=False)


class AsyncLRU(LRU):
    """The same LRU behind ``async def``: what the requirement's ratio is taken against."""

    async def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        data = self.data
        if key not in data:
            return default
        data.move_to_end(key)
        return data[key]

    async def set(self, key: str, value: Any) -> None:  # type: ignore[override]
        data = self.data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.max_size:
            data.popitem(last=False)


def workload(ops: int, keys: int, seed: int = 1) -> Ops:
    rng = random.Random(seed)
    names = [f"key:{i}" for i in range(keys)]
    flat = [(rng.random() < 0.8, rng.choice(names)) for _ in range(ops)]
    return [flat[i : i + 100] for i in range(0, ops, 100)]


async def drive_async(cache: MemoryCache | AsyncLRU, chunks: Ops) -> None:
    get, set_ = cache.get, cache.set
    n = 0
    for chunk in chunks:
        for is_get, key in chunk:
            if is_get:
                await get(key)
            else:
                await set_(key, n)
            n += 1
        await asyncio.sleep(0)


async def drive_sync(cache: LRU, chunks: Ops) -> None:
    get, set_ = cache.get, cache.set
    n = 0
    for chunk in chunks:
        for is_get, key in chunk:
            if is_get:
                get(key)
            else:
                set_(key, n)
            n += 1
        await asyncio.sleep(0)


async def timed(run: Callable[[], Awaitable[None]], ops: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        await run()
        return ops / (time.perf_counter() - start)
    finally:
        gc.enable()


async def bench(conn: Connection, args: argparse.Namespace) -> bool:
    chunks = workload(args.ops, args.keys)
    cache = MemoryCache(SESSION, max_size=args.max_size, redis=conn)
    async_lru, sync_lru = AsyncLRU(args.max_size), LRU(args.max_size)
    sides: dict[str, Callable[[], Awaitable[None]]] = {
        "MemoryCache": lambda: drive_async(cache, chunks),
        "async OrderedDict LRU": lambda: drive_async(async_lru, chunks),
        "sync OrderedDict LRU": lambda: drive_sync(sync_lru, chunks),
    }
    names = list(sides)
    await cache.flush_stats()  # load the script, open the connection
    seq_before = int(await conn.client.hget(conn.session(SESSION).meta, "seq") or 0)
    for name in names:  # warm up: fill each cache to max_size
        await sides[name]()
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            rates[name].append(await timed(sides[name], args.ops))
    await cache.aclose()
    flushes = int(await conn.client.hget(conn.session(SESSION).meta, "seq") or 0) - seq_before
    stored = (await MemoryCache.read_stats(SESSION, redis=conn)).stats
    consistent = stored == cache.stats and cache.stats_flush_errors == 0

    ours = statistics.median(rates["MemoryCache"])
    base = statistics.median(rates["async OrderedDict LRU"])
    plain = statistics.median(rates["sync OrderedDict LRU"])
    ratio = ours / base
    stats = cache.stats
    print(
        f"\ncache_ops: {args.ops} ops per run (80 % get / 20 % set, {args.keys} keys, "
        f"max_size {args.max_size}), median of {args.reps} interleaved runs, "
        f"redis {await redis_version(conn)}"
    )
    for name in names:
        runs = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"  {name:<22} {statistics.median(rates[name]):>12,.0f} ops/s   runs: {runs}")
    print(
        f"  stats: hit ratio {stats.hit_ratio:.2f}, {stats.evictions:,} evictions, "
        f"{flushes} flushes to Redis during the runs, stored totals "
        f"{'match' if consistent else 'DO NOT match'} the instance's counts"
    )
    print(
        f"MemoryCache get/set: {ours:,.0f} ops/s vs OrderedDict LRU: {base:,.0f} ops/s "
        f"-> ratio {ratio:.2f} (requirement >= {REQUIREMENT}; baseline behind async def)"
    )
    print(
        f"for reference, vs the synchronous OrderedDict LRU: {plain:,.0f} ops/s "
        f"-> ratio {ours / plain:.2f} (no coroutine per call; not the requirement)"
    )
    ok = ratio >= REQUIREMENT and consistent
    print(f"requirement: ratio >= {REQUIREMENT} -> {'met' if ok else 'NOT met'}")
    return ok


async def amain(args: argparse.Namespace) -> bool:
    async with bench_store(args.url) as conn:
        return await bench(conn, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations per run")
    parser.add_argument("--reps", type=int, default=7, help="interleaved runs per side")
    parser.add_argument("--max-size", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=1500, help="keyspace (> max-size: evictions)")
    parser.add_argument("--url", help="an existing server instead of a private one")
    return 0 if asyncio.run(amain(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
