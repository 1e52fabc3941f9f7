"""`memdash note`, `budget`, `pause` and `resume`, run as a user runs them: subprocesses."""

from __future__ import annotations

import subprocess

import pytest

from store import Notes, SessionControl, Steering, TokenBudgetTracker
from tests.test_cli import MEMDASH, env_for


def memdash(home, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEMDASH, *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env_for(home),
        timeout=30,
    )


async def test_note_is_stored_pending_and_read_once(conn, redis_url, isolated_env):
    done = memdash(isolated_env, "note", "s1", "run", "the", "[b]linter[/b]",
                   "--redis", redis_url, "--namespace", "test")  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "note 1 for s1: pending until its agent's next hook\n"
    piped = memdash(isolated_env, "note", "s1", "-", "--redis", redis_url, "--namespace", "test",
                    stdin="line one\nline two\n")  # fmt: skip
    assert piped.returncode == 0
    [first, second] = await Notes("s1", conn).pending()
    assert (first.text, second.text) == ("run the [b]linter[/b]", "line one\nline two\n")
    decision = await Steering("s1", conn).check("UserPromptSubmit")
    assert [n.id for n in decision.notes.notes] == [1, 2]


def test_bad_input_and_an_unreachable_store_are_told(redis_url, isolated_env):
    too_long = memdash(isolated_env, "note", "s1", "x" * 9000, "--redis", redis_url)
    assert too_long.returncode == 2 and "at most 8192 bytes" in too_long.stderr
    assert too_long.stdout == ""
    for limit in ("0", "-5", "lots", "1e30", "nan"):
        bad = memdash(isolated_env, "budget", "s1", limit, "--redis", redis_url)
        assert bad.returncode == 2 and "number of tokens" in bad.stderr, limit
    down = memdash(isolated_env, "pause", "s1", "--redis", "redis://127.0.0.1:1")
    assert down.returncode == 1 and "unreachable" in down.stderr


async def test_budget_binds_and_lifts(conn, redis_url, isolated_env):
    tracker = TokenBudgetTracker("s1", 1, redis=conn)
    await tracker.record_usage("r", 800, enforce_limit=False)
    bound = memdash(isolated_env, "budget", "s1", "700k", "--redis", redis_url,
                    "--namespace", "test")  # fmt: skip
    assert bound.stdout == "the budget of s1 binds its agent at 700,000 tokens; 800 used\n"
    status = await tracker.status()
    assert (status.limit, status.binding, status.spent) == (700_000, True, False)
    spent = memdash(isolated_env, "budget", "s1", "500", "--redis", redis_url,
                    "--namespace", "test")  # fmt: skip
    assert "(spent: the agent is held)" in spent.stdout
    assert (await Steering("s1", conn).check("PreToolUse", tool="Bash")).deny is not None
    lifted = memdash(isolated_env, "budget", "s1", "off", "--redis", redis_url,
                     "--namespace", "test")  # fmt: skip
    assert lifted.stdout == "the budget of s1 no longer binds its agent\n"
    assert (await Steering("s1", conn).check("PreToolUse", tool="Bash")).deny is None
    fresh = memdash(isolated_env, "budget", "new", "off", "--redis", redis_url,
                    "--namespace", "test")  # fmt: skip
    assert fresh.stdout == "new has no budget limit: nothing binds it\n"


@pytest.mark.parametrize("reason", [None, "reviewing"])
async def test_pause_and_resume(conn, redis_url, isolated_env, reason):
    extra = ["--reason", reason] if reason else []
    paused = memdash(isolated_env, "pause", "s1", *extra, "--redis", redis_url,
                     "--namespace", "test")  # fmt: skip
    assert paused.stdout == "s1 paused\n"
    assert memdash(isolated_env, "pause", "s1", "--redis", redis_url, "--namespace",
                   "test").stdout == "s1 was paused already\n"  # fmt: skip
    decision = await Steering("s1", conn).check("PreToolUse", tool="Bash")
    assert decision.deny == "paused by the operator" + (f": {reason}" if reason else "")
    resumed = memdash(isolated_env, "resume", "s1", "--redis", redis_url, "--namespace", "test")
    assert resumed.stdout == "s1 resumed\n"
    assert not (await SessionControl("s1", conn).status()).paused
