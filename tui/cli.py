"""The ``memdash`` command: the dashboard by default, subcommands from ``tui.commands``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from . import __version__
from .commands import COMMANDS, command_in


def _dashboard(args: argparse.Namespace) -> int:
    from .app import MemdashApp

    MemdashApp(args.redis, namespace=args.namespace, session=args.session).run()
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that subcommand's module is imported and registered."""
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
    names = [command] if command in COMMANDS else list(COMMANDS)
    for module in dict.fromkeys(COMMANDS[name] for name in names):  # a module may register several
        import_module(f".commands.{module}", __package__).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_in(arguments))
    args = parser.parse_args(arguments)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`memdash status | head`): not a failure of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
