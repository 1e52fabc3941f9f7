"""`memdash rm` and `memdash prune`: delete whole sessions.

- ``memdash rm <session>…`` deletes each named session at once (naming it is the confirmation,
  as with rm(1)): every key, its registry entry, one ``session.delete`` event that makes every
  dashboard drop the row, and the transcript offset files of its transcript and its subagents'.
  A name with no session is said on stderr and the others are still deleted.
- ``memdash prune --older-than DURATION`` lists the sessions whose last activity (the registry's
  server-time score) is older than DURATION; ``--yes`` deletes them, page by page, with the same
  atomic delete (a session active again since it was listed stays). With ``--yes`` it also drops
  transcript offset files whose transcript is gone or that were not written for 30 days.

Exit status: 0; 1 for an unreachable store, or (rm) a name with no session; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from . import add_store_options
from .export import CONNECT_TIMEOUT, EXIT_FAILED, EXIT_USAGE

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
SESSION_CHARS = 80  # of a session id in a line of output


def duration(text: str) -> int:
    """argparse type: ``30d``, ``12h``, ``90m``, ``45s``, ``2w``, ``1h30m`` as seconds (> 0)."""
    cleaned = text.strip().lower()
    if not _DURATION.fullmatch(cleaned):
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a number and a unit s, m, h, d or w: 30d, 12h, 90m)"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0: {text!r}")
    return seconds


def register(commands: argparse._SubParsersAction) -> None:
    rm = commands.add_parser(
        "rm",
        help="delete sessions: every key, at once",
        description="Delete each named session at once: every key of it, its place in the "
        "session registry, and its transcript offset files; dashboards drop the row. One "
        "atomic step per session.",
    )
    rm.add_argument("sessions", nargs="+", metavar="session", help="a session id")
    add_store_options(rm)
    rm.set_defaults(func=run_rm)

    prune = commands.add_parser(
        "prune",
        help="delete the sessions inactive for longer than a duration (a dry run without --yes)",
        description="List the sessions whose last activity is older than DURATION; with --yes, "
        "delete them (each in one atomic step, as `memdash rm`) and drop transcript offset "
        "files whose transcript is gone or that were not written for 30 days.",
    )
    prune.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="e.g. 30d, 12h, 90m, 45s, 1h30m",
    )
    prune.add_argument("--yes", action="store_true", help="delete (default: only list)")
    add_store_options(prune)
    prune.set_defaults(func=run_prune)


def _store(name: str, args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    """Connect, check the store answers, run ``work(conn)``; exit 1 when it does not answer."""
    from redis.exceptions import RedisError

    import store

    try:
        conn = store.connect(
            getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
        )
    except ValueError as error:
        print(f"memdash {name}: {error}", file=sys.stderr)
        return EXIT_USAGE

    async def main() -> int:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await conn.client.ping()
            return await work(conn)
        finally:
            await conn.aclose()

    try:
        return asyncio.run(main())
    except (RedisError, OSError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        print(f"memdash {name}: cannot reach the store at {conn.display_url}: {reason}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED


def _name(session: str) -> str:
    from tui.text import clean

    return clean(session, SESSION_CHARS)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _went(deletion: Any) -> str:
    return (
        f"deleted {_name(deletion.session)}: {_plural(deletion.keys, 'key')} "
        f"({_plural(deletion.memory, 'value')}, {_plural(deletion.messages, 'message')})"
    )


def _drop_offsets(transcripts: list[str], *, stale: bool = False) -> int:
    from store.integrations.claude_code import TranscriptOffsets

    if not transcripts and not stale:
        return 0
    directory = TranscriptOffsets.default_directory()
    return len(TranscriptOffsets.prune(directory, transcripts=transcripts, stale=stale))


def run_rm(args: argparse.Namespace) -> int:
    from store.keys import check_part

    try:
        for session in args.sessions:
            check_part("session", session)
    except ValueError as error:
        print(f"memdash rm: {error}", file=sys.stderr)
        return EXIT_USAGE
    sessions = list(dict.fromkeys(args.sessions))

    async def work(conn: Any) -> int:
        from store.sessions import Sessions

        registry = Sessions(conn)
        status = 0
        for session in sessions:
            deletion = await registry.delete(session)
            if deletion.outcome == "missing":
                print(
                    f"memdash rm: no session {_name(session)} in namespace {conn.namespace!r}",
                    file=sys.stderr,
                )
                status = EXIT_FAILED
                continue
            line = _went(deletion)
            if deletion.transcript_path:
                line += ", " + _plural(_drop_offsets([deletion.transcript_path]), "offset file")
            print(line, flush=True)
        return status

    return _store("rm", args, work)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _age(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def run_prune(args: argparse.Namespace) -> int:
    async def work(conn: Any) -> int:
        from store.sessions import Sessions

        registry = Sessions(conn)
        now = await registry.now_ms()
        cutoff = now - args.older_than * 1000
        scope = (
            f"of namespace {conn.namespace!r} inactive for more than {_age(args.older_than)} "
            f"(last activity before {_when(cutoff)})"
        )
        if not args.yes:
            listed = 0
            async for page in registry.older_than(cutoff):
                for session, last in page:
                    listed += 1
                    print(
                        f"would delete {_name(session)}  last activity {_when(last)} "
                        f"({_age((now - last) / 1000)} ago)",
                        flush=True,
                    )
            from store.integrations.claude_code import TranscriptOffsets

            stale = TranscriptOffsets.prune(
                TranscriptOffsets.default_directory(), stale=True, dry_run=True
            )
            if listed:
                print(f"{_plural(listed, 'session')} {scope}; --yes to delete them")
            else:
                print(f"no sessions {scope}")
            if stale:
                print(f"--yes also drops {_plural(len(stale), 'stale transcript offset file')}")
            return 0
        deleted = kept = 0
        transcripts: list[str] = []
        async for page in registry.prune(cutoff):
            for deletion in page:
                if deletion.outcome == "deleted":
                    deleted += 1
                    print(_went(deletion), flush=True)
                    if deletion.transcript_path:
                        transcripts.append(deletion.transcript_path)
                elif deletion.outcome == "active":
                    kept += 1
                    print(f"kept {_name(deletion.session)}: active since it was listed")
        offsets = _drop_offsets(transcripts, stale=True)
        summary = f"{_plural(deleted, 'session')} deleted {scope}"
        if kept:
            summary += f"; {kept:,} kept (active again)"
        print(f"{summary}; {_plural(offsets, 'transcript offset file')} dropped")
        return 0

    return _store("prune", args, work)
