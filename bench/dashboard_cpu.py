"""The real dashboard in a real pseudo-terminal: its own CPU share, next to a floor.

Requirements (the dashboard CPU issue): idle <= 1.5 x the floor; the demo's 4 agents at 20 ops/s
<= 5 % of a core; `memdash simulate` at 1,000 ops/s <= 30 % of a core.

    python bench/dashboard_cpu.py [--seconds 20] [--warmup 5] [--cases idle demo sim200 ...]

Each case starts the real ``memdash`` (``python -m tui.cli``, the real Linux driver writing real
escape sequences) in a pseudo-terminal of 200x50, with a thread draining the terminal so the app
never blocks on its output, lets it settle for ``--warmup`` seconds and reads the app's own
utime + stime from ``/proc/<pid>/stat`` (children excluded) over ``--seconds``. The floor is a
minimal Textual app of the same size that redraws one clock label once a second, measured the
same way in the same run. Writers (``memdash simulate``) are separate processes and not counted.

Cases: ``empty`` (an empty namespace), ``idle`` (4 sessions of history, nothing happening), ``demo`` (``memdash simulate
--sessions 4 --rate 20``: what ``memdash demo`` runs), ``sim200`` and ``sim1000`` (20 sessions at
200 and 1,000 ops/s, the realistic mix), ``10k`` (10,000 sessions, nothing happening).
Also printed: the events/s that reached the store (from the sessions' seq) and the bytes/s the
app wrote to its terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store import Connection, MemoryKey, MemoryStore
from store.server import RedisServer, free_port

COLUMNS, LINES = 200, 50
NAMESPACE = "memdash-cpu"
TICKS = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent

FLOOR_APP = """
import time
from textual.app import App, ComposeResult
from textual.widgets import Static

class Floor(App):
    def compose(self) -> ComposeResult:
        yield Static(id="clock")

    def on_mount(self) -> None:
        self.tick()
        self.set_interval(1, self.tick)

    def tick(self) -> None:
        self.query_one("#clock", Static).update(time.strftime("%H:%M:%S"))

Floor().run()
"""


@dataclass
class Case:
    name: str
    label: str
    writer: tuple[int, float] | None = None  # simulate --sessions N --rate R while measured
    prefill: str = "small"  # small: 4 sessions of history; 10k: 10,000 sessions; none
    limit: str = ""  # the requirement, as printed
    check: str = ""  # "floor" (<= 1.5 x floor) or a percentage of a core


CASES = {
    "empty": Case("empty", "idle, empty namespace", None, "none", "<= 1.5 x floor", "floor"),
    "idle": Case("idle", "idle (4 sessions)", None, "small", "<= 1.5 x floor", "floor"),
    "demo": Case("demo", "demo: 4 agents, 20 ops/s", (4, 20), "none", "<= 5 %", "5"),
    "sim200": Case("sim200", "simulate 200 ops/s", (20, 200), "none", "-", ""),
    "sim1000": Case("sim1000", "simulate 1,000 ops/s", (20, 1000), "none", "<= 30 %", "30"),
    "10k": Case("10k", "10,000 sessions, idle", None, "10k", "<= 1.5 x floor", "floor"),
}


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (every thread, no children), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


class Terminal:
    """A process in a pseudo-terminal of COLUMNS x LINES whose output is drained (and
    counted) by a thread."""

    def __init__(self, command: Sequence[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        env.pop("TEXTUAL", None)  # no devtools
        self.process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.master = master
        self.bytes = 0
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self.master, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.bytes += len(data)

    def stop(self, quit_key: bytes | None = b"q") -> None:
        if quit_key is not None and self.process.poll() is None:
            try:
                os.write(self.master, quit_key)
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(2)
        os.close(self.master)


@dataclass
class Sample:
    cpu: float  # fraction of one core
    out: float  # bytes/s written to the terminal
    events: float  # events/s into the namespace while measured
    ops: float = 0.0  # the writer's store operations per second (its own summary)


def seq_total(client: redis.Redis, conn: Connection) -> int:
    """Every session's seq, added up: the events the namespace has had."""
    sessions = client.zrange(conn.keys.sessions, 0, -1)
    pipe = client.pipeline(transaction=False)
    for session in sessions:
        pipe.hget(conn.session(session.decode()).meta, "seq")
    return sum(int(seq or 0) for seq in pipe.execute())


def measure(
    command: Sequence[str],
    env: dict[str, str],
    warmup: float,
    seconds: float,
    counter: tuple[redis.Redis, Connection] | None = None,
    quit_key: bytes | None = b"q",
) -> Sample:
    term = Terminal(command, env)
    try:
        time.sleep(warmup)
        if term.process.poll() is not None:
            raise RuntimeError(f"{command} exited with {term.process.returncode}")
        events0 = seq_total(*counter) if counter else 0
        cpu0, out0, t0 = cpu_seconds(term.pid), term.bytes, time.monotonic()
        time.sleep(seconds)
        cpu1, out1, t1 = cpu_seconds(term.pid), term.bytes, time.monotonic()
        events1 = seq_total(*counter) if counter else 0
    finally:
        term.stop(quit_key)
    elapsed = t1 - t0
    return Sample((cpu1 - cpu0) / elapsed, (out1 - out0) / elapsed, (events1 - events0) / elapsed)


async def fill(url: str, sessions: int) -> None:
    """``sessions`` sessions with a context each, pipelined (the real memory_set script)."""
    conn = Connection(url, namespace=NAMESPACE)
    store = MemoryStore(conn)
    try:
        await store.set(MemoryKey("session", "s00000", "context"), {"n": 0})  # loads the script
        sha = conn._clients.script("memory_set").sha
        registry = conn.keys.sessions
        for low in range(0, sessions, 1000):
            async with conn.client.pipeline(transaction=False) as pipe:
                for n in range(low, min(low + 1000, sessions)):
                    layout = store._layout(MemoryKey("session", f"s{n:05d}", "context"))
                    keys = layout.session
                    pipe.evalsha(sha, 3, keys.meta, registry, layout.name, keys.session,
                                 keys.header, f'{{"n":{n}}}', layout.event_head, "")  # fmt: skip
                await pipe.execute()
    finally:
        await conn.aclose()


def simulate(sessions: int, rate: float, duration: float | None, env: dict[str, str]) -> list[str]:
    command = [sys.executable, "-m", "tui.cli", "simulate", "--namespace", NAMESPACE,
               "--sessions", str(sessions), "--rate", str(rate), "--seed", "1"]  # fmt: skip
    if duration is not None:
        command += ["--duration", str(duration)]
    return command


def run_case(case: Case, url: str, env: dict[str, str], warmup: float, seconds: float) -> Sample:
    client = redis.Redis.from_url(url)
    client.flushall()
    conn = Connection(url, namespace=NAMESPACE)
    if case.prefill == "small":
        subprocess.run(simulate(4, 400, 3, env), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                       check=True)  # fmt: skip
    elif case.prefill == "10k":
        asyncio.run(fill(url, 10_000))
    writer = log = None
    if case.writer is not None:
        sessions, rate = case.writer
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below, once read)
        writer = subprocess.Popen(
            simulate(sessions, rate, None, env), env=env, cwd=ROOT, stdout=log
        )
        time.sleep(1.0)  # its seeded history is written before the dashboard opens
    try:
        app = [sys.executable, "-m", "tui.cli", "--redis", url, "--namespace", NAMESPACE]
        sample = measure(app, env, warmup, seconds, (client, conn))
    finally:
        if writer is not None:
            writer.send_signal(signal.SIGINT)
            try:
                writer.wait(10)
            except subprocess.TimeoutExpired:
                writer.kill()
        client.close()
    if log is not None:  # "summary: 8,713 operations in 12.7 s (684.4 ops/s, target 1000), …"
        log.seek(0)
        found = re.search(r"\(([\d.,]+) ops/s, target", log.read())
        sample.ops = float(found.group(1).replace(",", "")) if found else 0.0
        log.close()
    return sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per case")
    parser.add_argument("--warmup", type=float, default=5.0, help="before measuring")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians printed")
    parser.add_argument("--no-floor", action="store_true")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="memdash-cpu-"))
    server = RedisServer(directory=directory, port=free_port(), unixsocket=directory / "r.sock")
    server.start()
    env = {**os.environ, "MEMDASH_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}
    try:
        load = os.getloadavg()[0]
        print(
            f"dashboard_cpu: memdash in a {COLUMNS}x{LINES} pty, {args.seconds:g} s per case "
            f"after {args.warmup:g} s, {os.cpu_count()} CPUs, load {load:.2f}, "
            f"{args.repeat} run(s), medians"
        )
        floor = None
        if not args.no_floor:
            floor_app = [sys.executable, "-c", textwrap.dedent(FLOOR_APP)]
            floors = [
                measure(floor_app, env, args.warmup, args.seconds, None, b"\x03")
                for _ in range(args.repeat)
            ]
            floor = statistics.median(s.cpu for s in floors)
            out = statistics.median(s.out for s in floors)
            print(f"  {'floor (clock label, 1 Hz)':<28} CPU {floor:6.1%}  out {out:9,.0f} B/s")
        for name in args.cases:
            case = CASES[name]
            samples = [
                run_case(case, server.url, env, args.warmup, args.seconds)
                for _ in range(args.repeat)
            ]
            cpu = statistics.median(s.cpu for s in samples)
            out = statistics.median(s.out for s in samples)
            events = statistics.median(s.events for s in samples)
            ops = statistics.median(s.ops for s in samples)
            writer = f"writer {ops:5,.0f} ops/s" if case.writer else ""
            verdict = ""
            if case.check == "floor" and floor is not None:
                ratio = cpu / floor if floor > 0 else float("inf")
                verdict = f"{ratio:4.1f} x floor  {'ok' if ratio <= 1.5 else 'OVER'}"
            elif case.check:
                verdict = "ok" if cpu * 100 <= float(case.check) else "OVER"
            runs = " ".join(f"{s.cpu:.1%}" for s in samples) if args.repeat > 1 else ""
            print(
                f"  {case.label:<28} CPU {cpu:6.1%}  out {out:9,.0f} B/s  events {events:7,.0f}/s"
                f"  {writer:<17} need {case.limit:<15} {verdict}  {runs}"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
