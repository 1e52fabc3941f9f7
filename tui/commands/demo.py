"""`memdash demo`: the embedded store, simulated agents and the dashboard, in one command.

The agents run in a child process (`memdash simulate`), so the dashboard's event loop only draws.
The child is stopped by its pid when the dashboard closes, and stops by itself should this
process die first: it watches its stdin, which only this process holds open.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .simulate import positive_float, positive_int

NAMESPACE = "demo"
DEFAULT_RATE = 20.0
DEFAULT_SESSIONS = 4
MAX_SESSIONS = 8
STOP_SECONDS = 10.0  # for the child to finish its operations in flight and report
KEEP_SESSIONS = 20  # the demo's own namespace keeps its most recent sessions, no more


def sessions_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_SESSIONS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SESSIONS} (a demo stays readable)")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="the dashboard on simulated agents: try memdash here",
        description="Start the embedded store (or reuse it), run simulated coding agents and "
        f"open the dashboard on them. The agents write into the namespace {NAMESPACE!r} only, "
        "so data of your own in other namespaces is never mixed with theirs. q quits and "
        f"stops the agents; their sessions stay (memdash --namespace {NAMESPACE} shows them).",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        default=DEFAULT_RATE,
        metavar="R",
        help=f"store operations per second, all agents together (default {DEFAULT_RATE:g})",
    )
    parser.add_argument(
        "--sessions",
        type=sessions_count,
        default=DEFAULT_SESSIONS,
        metavar="N",
        help=f"agents at work at once, 1 to {MAX_SESSIONS} (default {DEFAULT_SESSIONS})",
    )
    parser.add_argument("--seed", type=int, metavar="K", help="repeat a demo's sessions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from store import embedded
    from tui.app import MemdashApp

    url = getattr(args, "redis", None) or embedded.ensure_running()
    namespace = getattr(args, "namespace", None) or NAMESPACE
    log = embedded.data_dir() / "demo.log"
    if namespace == NAMESPACE:  # only the demo's own: a namespace given may hold real data
        prune_demo(url, namespace)
    with simulation(
        url, namespace, sessions=args.sessions, rate=args.rate, seed=args.seed, log=log
    ) as agents:
        MemdashApp(url, namespace=namespace).run()
    if agents.returncode not in (0, -signal.SIGTERM):
        print(
            f"memdash demo: the simulated agents stopped with exit code {agents.returncode}; "
            f"see {log}",
            file=sys.stderr,
        )
        return 1
    print(
        f"The demo's sessions stay in namespace {namespace!r}: "
        f"`memdash --namespace {namespace}` shows them again. "
        "`memdash server --stop` stops the embedded Redis."
    )
    return 0


def prune_demo(url: str, namespace: str = NAMESPACE, keep: int = KEEP_SESSIONS) -> int:
    """Delete all but the ``keep`` most recently active sessions of the demo's namespace (as
    `memdash rm` does), so demo after demo does not grow the store; how many went. A failure
    is said and the demo goes on (the dashboard shows the store's state anyway)."""
    import asyncio

    from redis.exceptions import RedisError

    from store import connect
    from store.sessions import Sessions

    async def main() -> int:
        conn = connect(url, namespace=namespace)
        try:
            return len(await Sessions(conn).keep_newest(keep))
        finally:
            await conn.aclose()

    try:
        return asyncio.run(main())
    except (RedisError, OSError, RuntimeError) as error:
        print(f"memdash demo: could not prune the old demo sessions: {error}", file=sys.stderr)
        return 0


@contextlib.contextmanager
def simulation(
    url: str,
    namespace: str,
    *,
    sessions: int = DEFAULT_SESSIONS,
    rate: float = DEFAULT_RATE,
    seed: int | None = None,
    log: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`memdash simulate` as a child process for the duration of the block, its output in
    ``log``; stopped (by pid) on the way out, whatever happens in the block."""
    command = [
        sys.executable,
        "-P",  # nothing from the user's current directory (a store/ of theirs) on sys.path
        "-m",
        "tui.cli",
        "simulate",
        "--namespace",
        namespace,
        "--sessions",
        str(sessions),
        "--rate",
        repr(rate),
        "--stop-on-eof",
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") if log is not None else contextlib.nullcontext() as output:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C and Ctrl-Z are the dashboard's
            env={**os.environ, "MEMDASH_REDIS_URL": url, "PYTHONPATH": _package_path()},
        )
    try:
        yield child
    finally:
        stop(child)


def stop(child: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> None:
    """EOF on the child's stdin asks it to finish; SIGTERM, then SIGKILL, if it does not."""
    if child.stdin is not None:
        with contextlib.suppress(OSError):
            child.stdin.close()
    for ask, wait in ((None, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
        if ask is not None and child.poll() is None:
            child.send_signal(ask)
        try:
            child.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _package_path() -> str:
    """PYTHONPATH for the child: where this memdash is (a source tree too), then the caller's.
    (The URL goes in the environment as well: in argv, ps would show its password.)"""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
