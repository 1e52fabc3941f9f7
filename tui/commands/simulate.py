"""`memdash simulate`: simulated coding agents writing into a store, headless: demo data for your
own Redis, and load for the benchmarks. Prints what it wrote."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from . import add_store_options

if TYPE_CHECKING:
    from store.integrations.simulated import Simulation, SimulationReport

PROGRESS_SECONDS = 1.0
KINDS = (
    ("message", "messages"),
    ("trim", "trims"),
    ("usage", "usage records"),
    ("budget rejection", "budget rejections"),
    ("workflow definition", "workflow definitions"),
    ("transition", "transitions"),
    ("refused move", "refused moves"),
    ("context", "context writes"),
    ("note read", "notes read"),
    ("tool denied", "tools denied"),
    ("prompt blocked", "prompts blocked"),
)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, not {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate",
        help="simulated agents writing into a store, headless (demo data, load)",
        description="Run simulated coding agents against a store without the dashboard: "
        "conversations, token usage (one budget runs out, one binds its agent once spent), "
        "cache traffic, task workflows with refused moves and tools refused in review; the "
        "agents read their operator notes and honour pauses. Sessions are named demo-<task>. "
        "Prints what it wrote; Ctrl-C stops it with a summary.",
    )
    parser.add_argument(
        "--sessions", type=positive_int, default=4, metavar="N", help="live sessions (default 4)"
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=20.0,
        metavar="R",
        help="store operations per second, all sessions together (default 20)",
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        help="seconds to run (default: until Ctrl-C)",
    )
    parser.add_argument("--seed", type=int, metavar="K", help="repeat a run's sessions and content")
    # For `memdash demo`: stop when the parent closes our stdin (or dies).
    parser.add_argument("--stop-on-eof", action="store_true", help=argparse.SUPPRESS)
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_simulate(args))
    except KeyboardInterrupt:  # before the signal handlers were in place
        return 130


def _error(message: str) -> None:
    print(f"memdash simulate: {message}", file=sys.stderr, flush=True)


async def _simulate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from redis.exceptions import RedisError

    from store import connect
    from store.integrations.simulated import Simulation

    try:
        conn = connect(getattr(args, "redis", None), namespace=getattr(args, "namespace", None))
        sim = Simulation(
            conn, sessions=args.sessions, rate=args.rate, seed=args.seed, on_note=_print
        )
    except ValidationError as error:
        _error(f"error: {error.errors()[0]['loc'][0]}: {error.errors()[0]['msg']}")
        return 2
    except ValueError as error:
        _error(f"error: {error}")
        return 2
    try:
        url = await asyncio.to_thread(lambda: conn.display_url)  # may start the embedded server
        await conn.client.ping()
    except (RedisError, OSError) as error:
        _error(f"cannot reach the store at {conn.display_url}: {error}")
        await conn.aclose()
        return 1
    until = f"for {args.duration:g} s" if args.duration else "until Ctrl-C"
    _print(
        f"memdash simulate: {args.sessions} sessions at {args.rate:g} ops/s {until} "
        f"into {url}, namespace {conn.namespace} (seed {sim.seed})"
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, sim.stop)
    if args.stop_on_eof:
        _stop_on_eof(loop, sim)
    progress = asyncio.create_task(_progress(sim)) if sys.stdout.isatty() else None
    try:
        report = await sim.run(args.duration)
    finally:
        if progress is not None:
            progress.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await conn.aclose()
    _summary(report, args.rate)
    return 0


def _print(line: str) -> None:
    print(line, flush=True)


def _stop_on_eof(loop: asyncio.AbstractEventLoop, sim: Simulation) -> None:
    def wait() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to stop
            loop.call_soon_threadsafe(sim.stop)

    threading.Thread(target=wait, name="memdash-stdin-eof", daemon=True).start()


async def _progress(sim: Simulation) -> None:
    started, ops = time.monotonic(), sim.ops
    last = started
    while True:
        await asyncio.sleep(PROGRESS_SECONDS)
        now = time.monotonic()
        rate = (sim.ops - ops) / (now - last)
        ops, last = sim.ops, now
        written = sim.written
        _print(
            f"{now - started:6.0f} s  {sim.ops:,} ops  {rate:.1f} ops/s  "
            f"{len(sim.live)} live  {written['message']:,} messages  "
            f"{written['budget rejection']:,} budget rejections  "
            f"{written['refused move']:,} refused moves  {sim.errors.total():,} errors"
        )


def _summary(report: SimulationReport, target: float) -> None:
    lines = [
        f"summary: {report.ops:,} operations in {report.paced:.1f} s "
        f"({report.rate:.1f} ops/s, target {target:g}), "
        f"after {report.seed_ops:,} operations of seeded history",
    ]
    outcomes: dict[str, int] = {}
    for outcome in report.sessions.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    lines.append(
        f"sessions: {len(report.sessions)} ("
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
        + ")"
    )
    width = max(map(len, report.sessions), default=0)
    lines += [f"  {session:<{width}}  {outcome}" for session, outcome in report.sessions.items()]
    lines.append("wrote:")
    lines += [f"  {report.written.get(kind, 0):>9,}  {label}" for kind, label in KINDS]
    lines.append(_cache_line(report.cache))
    errors = report.errors
    lines.append(
        "errors: "
        + (", ".join(f"{n:,} {name}" for name, n in errors.items()) if errors else "none")
    )
    lines.append(f"seed: {report.seed} (--seed {report.seed} writes the same sessions again)")
    _print("\n".join(lines))


def _cache_line(cache: dict[str, Any]) -> str:
    lookups = cache.get("lookups", 0)
    ratio = f"{100 * cache.get('hits', 0) / lookups:.1f} % hits" if lookups else "no hits"
    return f"cache: {lookups:,} lookups, {ratio}, {cache.get('evictions', 0):,} evictions"
