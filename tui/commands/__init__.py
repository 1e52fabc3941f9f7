"""`memdash` subcommands, one module each.

Every module exposes ``register(commands)``, which adds its subparser and sets ``func``. Modules
import only the standard library at top level: `memdash hook` runs once per agent event, so
each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse

NAMES = ("server",)


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
