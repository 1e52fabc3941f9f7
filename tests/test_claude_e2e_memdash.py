"""memdash steering the real Claude Code client, end to end.

`memdash install-hooks` writes its hooks into a temp project; the real client (`claude -p`,
2.1.197) runs against the stand-in Messages API on loopback (tests/standin_api.py); the hooks
reach memdash's relay, which records into the private redis-server of the test session and
answers with what the operator decided. What the client then sends the API is the proof:

- a note written mid-session (by a tool call of the agent itself, so it lands between two
  hooks of a running turn) is in the very next request, once;
- a binding budget spent mid-turn makes the next tool call come back denied, with the reason;
- a session paused mid-turn runs no further tool, and a paused session's next prompt is
  blocked.

Skipped, with the install command as the reason, where the client is not installed.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Notes, SessionControl, TokenBudgetTracker
from store.integrations import hook_relay
from tests.claude_client import requires_claude, run_claude
from tests.standin_api import StandinAPI, Text, ToolUse
from tests.test_cli import MEMDASH

pytestmark = [pytest.mark.slow, requires_claude]

NAMESPACE = "test"


@pytest.fixture
def project(tmp_path: Path, redis_url: str, isolated_env: Path) -> Iterator[Path]:
    """A project with memdash's hooks installed (the default install), and every relay they
    start stopped at the end."""
    directory = tmp_path / "project"
    directory.mkdir()
    done = subprocess.run(
        [*MEMDASH, "install-hooks", "--redis", redis_url, "--namespace", NAMESPACE],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    yield directory
    with contextlib.suppress(Exception):
        hook_relay.stop_relay(redis_url, NAMESPACE)


def memdash_command(redis_url: str, *args: str) -> str:
    """A shell command the agent's Bash tool runs: memdash, against the test's store."""
    return shlex.join([*MEMDASH, *args, "--redis", redis_url, "--namespace", NAMESPACE])


def run(project: Path, api: StandinAPI, session: str, prompt: str = "go") -> dict:
    outcome = run_claude(project, prompt, session_id=session, api_url=api.url)
    assert outcome.output is not None, outcome.process.stderr
    return outcome.output


async def test_a_note_written_mid_session_reaches_the_next_request_once(conn, redis_url, project):
    session = str(uuid.uuid4())
    note = project / "note.txt"
    note.write_text("memdash-e2e: please also update the changelog")
    api = StandinAPI(
        [
            ToolUse("Bash", {"command": memdash_command(redis_url, "note", session, "-")
                             + f" < {shlex.quote(str(note))}"}),
            ToolUse("Bash", {"command": "echo second"}),
            Text("all done"),
        ]
    )  # fmt: skip
    with api:
        run(project, api, session)
    carrying = api.requests_with_text("please also update the changelog")
    main = api.main_requests()
    assert carrying, "the note never reached the model"
    assert carrying[0] is main[1], "the note was not in the request right after the tool call"
    # Once: later requests repeat the history (so they contain it too), but it was delivered
    # by one hook only, the PostToolUse that followed the call that wrote it.
    [stored] = await Notes(session, conn).list()
    assert stored.delivered is not None
    assert (stored.delivered.event, stored.delivered.tool) == ("PostToolUse", "Bash")
    reminders = [
        block
        for block in main[1].messages[-1]["content"]
        if isinstance(block, dict) and "please also update the changelog" in block.get("text", "")
    ]
    assert len(reminders) == 1


async def test_a_spent_binding_budget_denies_the_next_tool_call(conn, redis_url, project):
    session = str(uuid.uuid4())
    # Usage already recorded for the session (say, its earlier turns), not binding yet.
    await TokenBudgetTracker(session, 10**9, redis=conn).record_usage(
        "earlier", 5000, enforce_limit=False
    )
    marker = project / "second-tool-ran"
    api = StandinAPI(
        [
            ToolUse("Bash", {"command": memdash_command(redis_url, "budget", session, "1000")}),
            ToolUse("Bash", {"command": f"touch {shlex.quote(str(marker))}"}),
            Text("stopping"),
        ]
    )
    with api:
        run(project, api, session)
    first, second = api.tool_results()[:2]
    assert not first.is_error
    assert second.is_error
    assert f"token budget of {session} spent" in second.content
    assert "raise it in memdash" in second.content
    assert not marker.exists()
    status = await TokenBudgetTracker(session, 1, redis=conn).status()
    assert status.binding and status.used >= 5000  # usage still recorded past the limit


async def test_a_paused_session_runs_no_tool(conn, redis_url, project):
    session = str(uuid.uuid4())
    marker = project / "tool-ran-while-paused"
    api = StandinAPI(
        [
            ToolUse("Bash", {"command": memdash_command(redis_url, "pause", session)}),
            ToolUse("Bash", {"command": f"touch {shlex.quote(str(marker))}"}),
            Text("paused, stopping"),
        ]
    )
    with api:
        run(project, api, session)
    second = api.tool_results()[1]
    assert second.is_error and "paused by the operator" in second.content
    assert not marker.exists()
    assert (await SessionControl(session, conn).status()).paused
    # Still paused: the next prompt is blocked before the model sees it.
    again = StandinAPI([ToolUse("Bash", {"command": f"touch {shlex.quote(str(marker))}"})])
    with again:
        outcome = run_claude(project, "go on", session_id=session, api_url=again.url, resume=True)
    assert again.main_requests() == [], json.dumps(outcome.output)
    assert not marker.exists()
