"""The headless dashboard under load, and opening a 1,000,000-message conversation.

Requirements (issue #5): >= 20,000 events/s sustained with lag p99 < 250 ms; a key press answers
within 100 ms; opening a 1,000,000-message conversation < 300 ms; RSS < 150 MB.

    python bench/dashboard_load.py [--duration 5] [--rates sim:500 2000 10000 20000 30000 max]

Writer processes stamp each write with CLOCK_MONOTONIC; lag is the time from the write to the
repaint that put it on screen. `sim:R` runs `memdash simulate` (every component, the realistic
mix of events) at R operations/s instead; its lag is measured from the event's server time.
Key presses are sent every 50 ms during the load; response is the time until the sessions
table's cursor moved.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store import NAMESPACE, bench_store

from store import Connection
from tui.app import MemdashApp
from tui.panes.sessions import SessionsPane

SIZE = (160, 45)
QUIET = 0.5  # seconds without a new event that mean a simulated run has been applied

WRITER = """
import asyncio, sys, time
from store import MemoryKey, MemoryStore, connect

# The writes are the real MemoryStore.set script (same keys, arguments and event), pipelined in
# batches of at least 5 ms worth, the value JSON written directly (it is what store.codec makes of
# {"t": int}): the writers share the 2 cores with the dashboard, so they spend as little CPU per
# event as they can. What is measured is the dashboard, not the writers.
BATCH = 500

async def main(rate, duration, sessions, worker):
    conn = connect(namespace="memdash-bench")
    store = MemoryStore(conn)
    keys = [MemoryKey("session", f"w{worker}-{i}", "context") for i in range(sessions)]
    layouts = [store._layout(key) for key in keys]
    await store.set(keys[0], {"t": time.monotonic_ns()})  # loads the script
    sha = conn._clients.script("memory_set").sha
    registry = conn.keys.sessions
    client = conn.client
    least = max(1, int(rate * 0.005)) if rate else BATCH
    start = time.monotonic()
    sent = 1
    while (now := time.monotonic()) - start < duration:
        due = min(BATCH, int((now - start) * rate) + 1 - sent) if rate else BATCH
        if due < least:
            await asyncio.sleep(max(0.001, (sent + least) / rate - (now - start)))
            continue
        async with client.pipeline(transaction=False) as pipe:
            for n in range(sent, sent + due):
                layout = layouts[n % sessions]
                keys = layout.session
                pipe.evalsha(sha, 3, keys.meta, registry, layout.name, keys.session, keys.header,
                             '{"t":%d}' % time.monotonic_ns(), layout.event_head, "")
            await pipe.execute()
        sent += due
    print(sent, time.monotonic() - start, flush=True)

rate, duration, sessions, worker = sys.argv[1:5]
asyncio.run(main(float(rate), float(duration), int(sessions), int(worker)))
"""


def pct(samples: list[float], q: float) -> float:
    if len(samples) < 2:
        return samples[0] if samples else 0.0
    return statistics.quantiles(samples, n=100)[int(q * 100) - 1]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class Lag:
    """Wraps the app's repaint: for each changed session, now - the write's timestamp."""

    def __init__(self, app: MemdashApp) -> None:
        self.samples: list[float] = []
        self.app = app
        original = app._repaint

        def repaint() -> None:
            changed = set(app.model.changed)
            original()
            now = time.monotonic_ns()
            for session in changed:
                view = app.feed.sessions.get(session)
                value = view.context if view is not None else None
                if isinstance(value, dict) and "t" in value:
                    self.samples.append((now - value["t"]) / 1e6)
                elif view is not None and view.last_activity:  # a simulated agent's write:
                    self.samples.append(time.time() * 1000 - view.last_activity)  # server time

        app._repaint = repaint  # type: ignore[method-assign]


async def press_and_wait(app: MemdashApp, key: str) -> float:
    """Seconds from a key press to the sessions cursor having moved."""
    table = app.query_one("#sessions-table")
    before = table.cursor_row
    if key == "down" and before >= table.row_count - 1:
        key = "up"
    elif key == "up" and before <= 0:
        key = "down"
    started = time.monotonic()
    app.simulate_key(key)
    while table.cursor_row == before and time.monotonic() - started < 2:
        await asyncio.sleep(0.001)
    return time.monotonic() - started


def simulate(rate: float, duration: float, env: dict[str, str]) -> subprocess.Popen[str]:
    """`memdash simulate`: agents using every component (the dashboard's realistic mix)."""
    command = [sys.executable, "-m", "tui.cli", "simulate", "--sessions", "20", "--seed", "1",
               "--rate", str(rate), "--duration", str(duration),
               "--namespace", NAMESPACE]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


async def load(conn: Connection, rate_arg: str, duration: float, writers: int) -> None:
    simulated = rate_arg.startswith("sim:")
    rate = 0.0 if rate_arg == "max" else float(rate_arg.removeprefix("sim:"))
    count = writers if rate_arg == "max" else max(1, int(rate // 25_000) + 1)
    await conn.client.flushall()
    app = MemdashApp(conn)
    lag = Lag(app)
    keys: list[float] = []
    async with app.run_test(size=SIZE, headless=True) as pilot:
        while app.feed.status != "connected":
            await pilot.pause(0.02)
        env = {**os.environ, "MEMDASH_REDIS_URL": conn.url}
        applied_before = app.feed.applied
        procs = [simulate(rate, duration, env)] if simulated else [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(WRITER), str(rate / count), str(duration),
                 "25", str(n)],
                env=env, stdout=subprocess.PIPE, text=True,
            )
            for n in range(count)
        ]  # fmt: skip
        await pilot.pause(0.5)
        table = app.query_one("#sessions-table")
        table.focus()
        started = time.monotonic() - 0.5
        cpu_started = time.process_time()
        while table.row_count < 2 and time.monotonic() - started < 5:
            await pilot.pause(0.01)  # a press with one row to move to would wait for the next
        direction = "down"
        while any(proc.poll() is None for proc in procs):
            keys.append(await press_and_wait(app, direction))
            direction = "up" if direction == "down" else "down"
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        cpu = (time.process_time() - cpu_started) / (elapsed - 0.5)
        sent = 0
        writing = 0.0  # the writers' own clock: from their first write to their last
        for proc in procs:
            out, _ = proc.communicate()
            if not simulated:
                sent += int(out.split()[0])
                writing = max(writing, float(out.split()[1]))
        drain_started = time.monotonic()
        if simulated:  # events per operation vary: drained when the count stops moving
            sent = await settled(pilot, app, QUIET) - applied_before
            writing = elapsed
            drain_started += QUIET
        while app.feed.applied - applied_before < sent and time.monotonic() - drain_started < 10:
            await pilot.pause(0.05)
        applied = app.feed.applied - applied_before
        drained = time.monotonic() - drain_started
        memory = rss_mb()
    label = (
        f"simulate {rate:,.0f} ops/s"
        if simulated
        else f"{rate_arg} ev/s"
        if rate
        else f"flat out ({count} writers)"
    )
    print(
        f"load {label:<24} written {sent / writing:>8,.0f} ev/s  applied {applied:>7,}/{sent:,}"
        f"  lag p50 {pct(lag.samples, 0.5):6.1f} ms p99 {pct(lag.samples, 0.99):6.1f} ms"
        f"  key p99 {pct(keys, 0.99) * 1000:5.1f} ms (n={len(keys)})"
        f"  drained {drained:4.2f} s  repaints {app.repaints}  app CPU {cpu:4.0%}"
        f"  RSS {memory:5.1f} MB"
    )


async def settled(pilot: Any, app: MemdashApp, quiet: float = 0.5) -> int:
    """The feed's applied count once it has not moved for ``quiet`` seconds."""
    count, since = app.feed.applied, time.monotonic()
    while time.monotonic() - since < quiet:
        await pilot.pause(0.05)
        if app.feed.applied != count:
            count, since = app.feed.applied, time.monotonic()
    return count


async def open_million(conn: Connection) -> None:
    await conn.client.flushall()
    session = "million"
    key = conn.session(session).key("conversation")
    chunk = 50_000
    for low in range(0, 1_000_000, chunk):
        await conn.client.rpush(
            key,
            *(
                f'{{"index":{i},"role":"{"user" if i % 2 else "assistant"}",'
                f'"content":"message {i} of a long conversation",'
                f'"timestamp":"2026-01-01T12:00:00"}}'
                for i in range(low, low + chunk)
            ),
        )
    await conn.client.set(key + ":n", 1_000_000)
    await conn.client.hset(conn.session(session).meta, mapping={"seq": 1, "created": 0})
    await conn.client.zadd(conn.keys.sessions, {session: 1})
    await conn.client.zadd(conn.keys.sessions, {"other": 2})
    app = MemdashApp(conn, session="other")
    async with app.run_test(size=SIZE, headless=True) as pilot:
        while app.feed.status != "connected":
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        history = app.query_one("#history")
        started = time.monotonic()
        app.post_message(SessionsPane.Selected(session))  # as if the user picked it
        while history.fetched == 0 and time.monotonic() - started < 10:
            await asyncio.sleep(0.001)
        read = time.monotonic() - started
        history.refresh()
        await asyncio.sleep(0)  # the repaint of the page is queued now…
        while history.render_line(0).text.strip().startswith("…loading"):  # …and has landed
            await asyncio.sleep(0.001)
        opened = time.monotonic() - started
        memory = rss_mb()
        fetched = history.fetched
    print(
        f"open 1,000,000 messages: last page read {read * 1000:.0f} ms and drawn "
        f"{opened * 1000:.0f} ms after selecting it, read {fetched:,} messages, RSS {memory:.1f} MB"
    )


async def amain(args: argparse.Namespace) -> None:
    async with bench_store() as conn:
        print(
            f"dashboard_load: headless MemdashApp {SIZE[0]}x{SIZE[1]}, {args.duration:.0f} s/rate"
        )
        if not args.no_open:
            await open_million(conn)  # first, on a quiet machine
        for rate in args.rates:
            await load(conn, rate, args.duration, args.writers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--rates",
        nargs="*",
        default=["sim:500", "2000", "10000", "20000", "30000", "max"],
        help="events/s, 'max', or sim:R for `memdash simulate` at R operations/s",
    )
    parser.add_argument("--writers", type=int, default=2, help="writer processes flat out")
    parser.add_argument("--no-open", action="store_true", help="skip the 1,000,000 messages")
    asyncio.run(amain(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
