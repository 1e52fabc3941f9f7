"""`memdash note`, `memdash budget`, `memdash pause`, `memdash resume`: steer a running agent
from a shell, through the same ``store`` API as the dashboard's ``n``, ``l`` and ``P``.

- ``memdash note <session> TEXT…`` (``-`` reads the text from stdin): a note the agent reads
  with its next hook that can carry context (Claude Code: the next prompt, or after its next
  tool call), exactly once.
- ``memdash budget <session> N`` sets a token limit that binds the agent (once it is spent,
  its tools are refused and its prompts blocked); ``memdash budget <session> off`` lifts the
  binding (the limit stays, for the dashboard's gauge).
- ``memdash pause <session>`` denies every tool call of the agent ("paused by the operator")
  until ``memdash resume <session>``.

Each prints one line saying what it did; exit 1 when the store is unreachable, 2 for bad
arguments (a note over 8 KiB, a limit that is not a positive number).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import add_store_options

EXIT_FAILED = 1
EXIT_USAGE = 2
TIMEOUT = 10.0


def register(commands: argparse._SubParsersAction) -> None:
    note = commands.add_parser(
        "note",
        help="write a note the session's agent reads with its next hook",
        description="Write a note to a session's agent: it reads it with its next hook that can "
        "carry context (the next prompt, or after its next tool call), exactly once. "
        "At most 8 KiB; '-' reads the text from stdin.",
    )
    note.add_argument("session", help="the session id")
    note.add_argument("text", nargs="+", help="the note (words are joined with spaces)")
    add_store_options(note)
    note.set_defaults(func=run_note)

    budget = commands.add_parser(
        "budget",
        help="set a token limit that binds the session's agent, or lift it",
        description="Set the session's token limit and make it bind the agent (once spent, "
        "its tools are refused and prompts blocked until the limit is raised or the budget "
        "reset), or 'off' to lift the binding.",
    )
    budget.add_argument("session", help="the session id")
    budget.add_argument("limit", help="tokens (e.g. 700000 or 700k or 2m), or 'off'")
    add_store_options(budget)
    budget.set_defaults(func=run_budget)

    for name, verb in (("pause", "pause"), ("resume", "resume")):
        parser = commands.add_parser(
            name,
            help=f"{verb} the session's agent (its tool calls are denied while paused)",
            description="Pause a session's agent: every tool call is denied with 'paused by the "
            "operator' and new prompts are blocked, until `memdash resume`."
            if name == "pause"
            else "Let a paused session's agent go on.",
        )
        parser.add_argument("session", help="the session id")
        if name == "pause":
            parser.add_argument("--reason", help="said to the agent with every refusal")
        add_store_options(parser)
        parser.set_defaults(func=run_pause if name == "pause" else run_resume)


def _run(name: str, args: argparse.Namespace, work: Callable[[Any], Awaitable[str]]) -> int:
    from redis.exceptions import RedisError

    from store import connect

    async def main() -> str:
        conn = connect(getattr(args, "redis", None), namespace=getattr(args, "namespace", None))
        try:
            return await asyncio.wait_for(work(conn), TIMEOUT)
        finally:
            await conn.aclose()

    try:
        print(asyncio.run(main()))
    except ValueError as e:
        print(f"memdash {name}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (RedisError, OSError, TimeoutError) as e:
        print(f"memdash {name}: the store is unreachable ({e})", file=sys.stderr)
        return EXIT_FAILED
    return 0


def run_note(args: argparse.Namespace) -> int:
    from store import Notes

    text = sys.stdin.read() if args.text == ["-"] else " ".join(args.text)

    async def work(conn: Any) -> str:
        note_id = await Notes(args.session, conn).add(text, author="operator")
        return f"note {note_id} for {args.session}: pending until its agent's next hook"

    return _run("note", args, work)


def run_budget(args: argparse.Namespace) -> int:
    from store import TokenBudgetTracker
    from store.budget import parse_tokens

    lift = args.limit.strip().lower() == "off"
    if not lift:
        try:
            limit = parse_tokens(args.limit)
        except ValueError as e:
            print(f"memdash budget: {e}", file=sys.stderr)
            return EXIT_USAGE

    async def work(conn: Any) -> str:
        if lift:
            budget = TokenBudgetTracker(args.session, 1, redis=conn)
            try:
                await budget.set_limit(None, binding=False)
            except LookupError:
                return f"{args.session} has no budget limit: nothing binds it"
            return f"the budget of {args.session} no longer binds its agent"
        budget = TokenBudgetTracker(args.session, limit, redis=conn)
        await budget.set_limit(limit, binding=True)
        status = await budget.status()
        held = " (spent: the agent is held)" if status.spent else ""
        return (
            f"the budget of {args.session} binds its agent at {limit:,} tokens; "
            f"{status.used:,} used{held}"
        )

    return _run("budget", args, work)


def run_pause(args: argparse.Namespace) -> int:
    from store import SessionControl

    async def work(conn: Any) -> str:
        changed = await SessionControl(args.session, conn).pause(reason=args.reason)
        return f"{args.session} paused" if changed else f"{args.session} was paused already"

    return _run("pause", args, work)


def run_resume(args: argparse.Namespace) -> int:
    from store import SessionControl

    async def work(conn: Any) -> str:
        changed = await SessionControl(args.session, conn).resume()
        return f"{args.session} resumed" if changed else f"{args.session} was not paused"

    return _run("resume", args, work)
