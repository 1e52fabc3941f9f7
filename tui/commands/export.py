"""`memdash export <session>`: one session as a document (``memdash.export/1``), for scripts.

Text (the default) is a short readable summary; ``--format json`` is the whole document on
stdout, indented, ASCII only (every other character escaped, so agent content cannot reach the
terminal as control codes, and parses back exactly). An unknown session or an unreachable store
prints a message on stderr, nothing on stdout, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from . import add_store_options

EXIT_FAILED = 1
EXIT_USAGE = 2
CONNECT_TIMEOUT = 10.0  # seconds to reach the store before giving up
CONTENT_CHARS = 100  # of each message's content in the text format
VALUE_CHARS = 80  # of each context value in the text format


def count(text: str) -> int:
    """argparse type: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="print one session (context, budget, history, cache, workflow)",
        description="Print one session: its context entries, budget, the newest messages, "
        "cache statistics and workflow. --format json prints the memdash.export/1 document.",
    )
    parser.add_argument("session", help="the session id")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="default: text")
    parser.add_argument(
        "--messages",
        type=count,
        metavar="N",
        default=50,
        help="the newest N messages of the conversation (default: 50)",
    )
    add_store_options(parser)
    parser.set_defaults(func=run)


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"memdash export: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisError

    import store
    from store.keys import check_part

    try:
        check_part("session", args.session)
        conn = store.connect(
            getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
        )
    except ValueError as error:
        return fail(str(error), EXIT_USAGE)
    try:
        document = asyncio.run(_read(conn, args.session, args.messages))
    except (RedisError, OSError, TimeoutError) as error:
        return fail(f"cannot read the store at {conn.display_url}: {error}")
    if document is None:
        return fail(f"no session {args.session!r} in namespace {conn.namespace!r}")
    data = document.model_dump(mode="json")
    print(json.dumps(data, indent=2) if args.format == "json" else render(data))
    return 0


async def _read(conn: Any, session: str, messages: int) -> Any:
    from store.report import read_export

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await conn.client.ping()
        return await read_export(conn, session, messages=messages)
    finally:
        await conn.aclose()


# -- the text format -----------------------------------------------------------------------


def _when(iso: str | None) -> str:
    """'2025-01-02 03:04:05Z' from the document's ISO time (seconds are enough to read)."""
    if iso is None:
        return "-"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if iso.endswith("Z") else "")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(doc: dict[str, Any]) -> str:
    """The document as a compact summary; untrusted text shown literally, on one line each."""
    from tui.text import clean

    lines = [
        f"session {clean(doc['session'])}  namespace {doc['namespace']}  seq {doc['seq']}",
        f"  created {_when(doc['created'])}  last activity {_when(doc['last_activity'])}",
    ]
    context = doc["context"]
    lines.append(f"context: {len(context)} entr{'y' if len(context) == 1 else 'ies'}")
    for entry in context:
        ttl = f"ttl {entry['ttl']}s" if entry["ttl"] is not None else "no ttl"
        lines.append(
            f"  {clean(entry['scope'], 40)}/{clean(entry['component'], 40)}  v{entry['version']}"
            f"  {ttl}  updated {_when(entry['updated'])}  "
            f"{clean(_json(entry['value']), VALUE_CHARS)}"
        )
    lines.extend(_budget(doc["budget"]))
    lines.extend(_conversation(doc["conversation"], clean))
    lines.extend(_cache(doc["cache"]))
    lines.extend(_workflow(doc["workflow"], clean))
    return "\n".join(lines)


def _budget(budget: dict[str, Any] | None) -> list[str]:
    if budget is None:
        return ["budget: none"]
    limit = budget["limit"]
    used = f"{budget['used']:,}"
    if limit is not None:
        used += f" / {limit:,} ({budget['used_pct']}%), {budget['remaining']:,} remaining"
    totals = "  ".join(f"{name} {value:,}" for name, value in budget["totals"].items())
    return [
        f"budget: {used}, {budget['requests']} requests, {budget['rejected']} rejected, "
        f"{budget['burn_rate']:.1f} tokens/min",
        f"  {totals}",
    ]


def _conversation(conversation: dict[str, Any] | None, clean: Any) -> list[str]:
    if conversation is None:
        return ["conversation: none"]
    messages = conversation["messages"]
    lines = [
        f"conversation: {conversation['total']} messages, {conversation['retained']} retained "
        f"(from #{conversation['first']}); the last {len(messages)}:"
    ]
    trims = conversation["trims"]
    if trims:
        latest = trims[-1]
        lines.append(
            f"  -- trimmed {len(trims)} times; the latest removed #{latest['first']}-"
            f"#{latest['last']} ({latest['count']}, {latest['reason']}) at {_when(latest['at'])}"
        )
    for message in messages:
        lines.append(
            f"  #{message['index']} {clean(message['role'], 9):<9} "
            f"{_when(message['timestamp'])}  {clean(message['content'], CONTENT_CHARS)}"
        )
    return lines


def _cache(cache: dict[str, Any] | None) -> list[str]:
    if cache is None:
        return ["cache: none"]
    ratio = "-" if cache["hit_ratio"] is None else f"{100 * cache['hit_ratio']:.1f}%"
    size = f"{cache['size']}" + (f"/{cache['max_size']}" if cache["max_size"] else "")
    return [
        f"cache: {cache['hits']} hits, {cache['misses']} misses, ratio {ratio}, "
        f"{cache['evictions']} evictions, size {size}"
    ]


def _workflow(workflow: dict[str, Any] | None, clean: Any) -> list[str]:
    if workflow is None:
        return ["workflow: none"]
    previous = workflow["previous"]
    upcoming = ", ".join(clean(state, 40) for state in workflow["next_states"]) or "(none)"
    lines = [
        f"workflow: {clean(workflow['state'], 40)} since {_when(workflow['since'])}"
        + (f", previous {clean(previous, 40)}" if previous is not None else "")
        + f"; next: {upcoming}"
    ]
    for move in workflow["recent"]:
        how = f"forced: {clean(move['reason'] or '', 60)}" if move["forced"] else "moved"
        lines.append(
            f"  {_when(move['at'])}  {clean(move['from_state'], 40)} -> "
            f"{clean(move['to_state'], 40)}  {clean(move['actor'], 40)} {how}"
        )
    return lines
