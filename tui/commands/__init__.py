"""`memdash` subcommands, one module each.

Every module exposes ``register(commands)``, which adds its subparser and sets ``func``. Modules
import only the standard library at top level: `memdash hook` runs once per agent event, so
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse

COMMANDS = {
    "server": "server",
    "demo": "demo",
    "simulate": "simulate",
    "hook": "hook",
    "install-hooks": "install_hooks",
    "import": "import_",
    "export": "export",
    "status": "status",
    "note": "steer",
    "budget": "steer",
    "pause": "steer",
    "resume": "steer",
    "rm": "sessions",
    "prune": "sessions",
}
"""Command name -> module. The CLI imports only the module of the command being run (all of them
for help or the dashboard): a `memdash hook` must not pay for the others' imports."""

_VALUED = {"--redis", "--namespace", "--session"}  # top-level options that take a value


def command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv``, if any (the first word that is not an option)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUED:
            skip = True
        elif not token.startswith("-"):
            return token if token in COMMANDS else None
    return None


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--redis` and `--namespace` after the subcommand too (`memdash simulate --redis URL`).

    SUPPRESS keeps a value given before the subcommand from being reset to None.
    """
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the store (default: MEMDASH_REDIS_URL, else the embedded server)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        default=argparse.SUPPRESS,
        help="default: MEMDASH_NAMESPACE or memdash",
    )
