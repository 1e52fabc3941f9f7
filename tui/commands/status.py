"""`memdash status`: the store, the namespace and its sessions' headline numbers, for scripts.

Text (the default) is an aligned table of the ``--limit`` (default 100) most recently active
sessions; ``--format json`` prints the ``memdash.status/1`` document with every session unless
``--limit`` is given (indented, ASCII only). When the store cannot be reached: a message on
stderr and exit 1; nothing on stdout in text mode, and in JSON mode a document with
``"reachable": false`` and the error, so a script can tell "down" from "empty".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from . import add_store_options
from .export import CONNECT_TIMEOUT, EXIT_FAILED, EXIT_USAGE, count

TEXT_LIMIT = 100  # sessions in the text table unless --limit says otherwise
SESSION_CELLS = 32
STATE_CELLS = 16


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "status",
        help="print the store, the namespace and its sessions' headline numbers",
        description="Print whether the store is reachable and the namespace's sessions (newest "
        "activity first): workflow state, budget used, messages, cache hit ratio, age. "
        "--format json prints the memdash.status/1 document.",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="default: text")
    parser.add_argument(
        "--limit",
        type=count,
        metavar="N",
        help=f"the N most recently active sessions (default: {TEXT_LIMIT} in text, all in json)",
    )
    add_store_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    import store
    from store.report import NamespaceStatus

    try:
        conn = store.connect(
            getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
        )
    except ValueError as error:
        print(f"memdash status: {error}", file=sys.stderr)
        return EXIT_USAGE
    limit = args.limit
    if limit is None and args.format == "text":
        limit = TEXT_LIMIT
    try:
        status = asyncio.run(_read(conn, limit))
    except (RedisError, OSError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        print(
            f"memdash status: cannot reach the store at {conn.display_url}: {reason}",
            file=sys.stderr,
        )
        status = NamespaceStatus(
            generated_at=datetime.now(UTC),
            store=conn.display_url,
            namespace=conn.namespace,
            reachable=False,
            error=reason,
        )
    data = status.model_dump(mode="json")
    if args.format == "json":
        print(json.dumps(data, indent=2))
    elif status.reachable:
        print(render(data))
    return 0 if status.reachable else EXIT_FAILED


async def _read(conn: Any, limit: int | None) -> Any:
    from store.report import read_status

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await conn.client.ping()
        return await read_status(conn, limit=limit)
    finally:
        await conn.aclose()


# -- the text format -----------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _row(session: dict[str, Any], fit: Any, clean: Any) -> list[str]:
    used, limit = session["budget_used"], session["budget_limit"]
    budget = "-" if used is None else f"{used:,}" + (f"/{limit:,}" if limit is not None else "")
    pct = session["budget_used_pct"]
    last = session["last_activity"]
    return [
        fit(clean(session["session"], SESSION_CELLS + 8), SESSION_CELLS),
        fit(clean(session["state"] or "-", STATE_CELLS + 8), STATE_CELLS),
        "-" if pct is None else f"{pct:.1f}%",
        budget,
        "-" if session["messages"] is None else str(session["messages"]),
        _ratio(session["cache_hit_ratio"]),
        "-" if last is None else last[:19].replace("T", " ") + "Z",
        _age(session["age_seconds"]),
    ]


HEADER = ["session", "state", "budget", "used", "messages", "hits", "last activity", "age"]
RIGHT = {2, 3, 4, 5, 7}  # numeric columns, right-aligned


def render(doc: dict[str, Any]) -> str:
    """A header line and an aligned table; untrusted text literal and cropped."""
    from rich.cells import cell_len

    from tui.text import clean, fit

    sessions = doc["sessions"]
    total = doc["sessions_total"]
    head = f"store {doc['store']}  namespace {doc['namespace']}  reachable  "
    head += f"{total} session{'' if total == 1 else 's'}"
    if len(sessions) < total:
        head += f" (the {len(sessions)} most recently active shown)"
    if not sessions:
        return head
    rows = [HEADER, *(_row(session, fit, clean) for session in sessions)]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [head, ""]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - cell_len(cell))
            cells.append(pad + cell if i in RIGHT else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
