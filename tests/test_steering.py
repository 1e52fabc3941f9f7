"""Steering a live agent through the store: notes delivered exactly once (also under races),
binding budgets, pause, tool policies of the task workflow, waiting for a person; and the
recorder's answers to hook payloads of the shapes the real Claude Code 2.1.197 sends
(``../shared/claude-code-2.1.197/hook-payloads.jsonl``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import RedisError

from store import (
    ConversationMemory,
    Notes,
    SessionControl,
    StatefulMemory,
    Steering,
    TokenBudgetTracker,
)
from store.feed import Feed, read_sessions
from store.integrations.claude_code import WORKFLOW, HookRecorder, TranscriptOffsets
from store.notes import MAX_NOTE_BYTES, context_change_summary
from store.steering import TASK_INITIAL, TASK_POLICIES, TASK_TRANSITIONS, TASK_WORKFLOW
from tests.events import capture_events

REAL = Path(__file__).resolve().parents[2] / "shared" / "claude-code-2.1.197"
PAYLOADS = REAL / "hook-payloads.jsonl"
SESSION = "1d72dc28-3ec2-4a6e-9f31-599e3d4c6781"


def real_payloads() -> list[dict[str, Any]]:
    if not PAYLOADS.exists():
        pytest.skip(f"the real Claude Code payloads are not here ({PAYLOADS})")
    return [json.loads(line) for line in PAYLOADS.read_text().splitlines() if line.strip()]


def real(event: str, *, subagent: bool = False, **changes: Any) -> dict[str, Any]:
    """The first real payload of ``event`` (from a subagent's hooks or not), in session
    :data:`SESSION` (the capture has a second one) with ``changes``; the transcript path is
    dropped unless given (it names a file of the capture machine)."""
    for payload in real_payloads():
        if payload["hook_event_name"] == event and ("agent_id" in payload) == subagent:
            payload = {**payload, "session_id": SESSION, **changes}
            if "transcript_path" not in changes:
                payload.pop("transcript_path", None)
            return payload
    raise LookupError(event)


@pytest.fixture
def recorder(conn, isolated_env) -> HookRecorder:
    offsets = TranscriptOffsets(isolated_env / "offsets", f"{conn.url}\0{conn.namespace}")
    return HookRecorder(conn, offsets=offsets)


def context_of(output: dict[str, Any]) -> str | None:
    return output.get("hookSpecificOutput", {}).get("additionalContext")


# -- notes ------------------------------------------------------------------------------------


async def test_notes_are_delivered_once_in_order_and_announced(conn):
    notes = Notes("s", conn)
    async with capture_events(conn) as log:
        assert [await notes.add("first"), await notes.add("second")] == [1, 2]
        steering = Steering("s", conn)
        assert (await steering.check("PreToolUse", tool="Bash")).notes.notes == ()  # no context
        decision = await steering.check("PostToolUse", tool="Bash")
        again = await steering.check("PostToolUse", tool="Bash")
    assert [note.text for note in decision.notes.notes] == ["first", "second"]
    assert context_of(decision.hook_output()) == (
        "[memdash] Note from the operator (operator):\nfirst\n\n"
        "[memdash] Note from the operator (operator):\nsecond"
    )
    assert again.hook_output() == {}
    assert log.kinds() == ["notes.add", "notes.add", "notes.delivered"]
    assert log.events[2].payload == {"first": 1, "last": 2, "event": "PostToolUse", "tool": "Bash"}
    delivered = await notes.list()
    assert [(n.delivered.event, n.delivered.tool) for n in delivered] == [
        ("PostToolUse", "Bash")
    ] * 2
    assert delivered[0].delivered.describe() == "after Bash"


async def test_racing_hooks_never_deliver_a_note_twice(conn):
    notes = Notes("race", conn)
    for n in range(20):
        await notes.add(f"note {n}")
        steerings = [Steering("race", conn) for _ in range(8)]
        decisions = await asyncio.gather(*(s.check("PostToolUse", tool="Bash") for s in steerings))
        carried = [note.text for d in decisions for note in d.notes.notes]
        assert carried == [f"note {n}"]


async def test_a_delivery_that_never_reached_the_agent_is_released(conn):
    notes = Notes("s", conn)
    await notes.add("hold on")
    steering = Steering("s", conn)
    lost = await steering.check("UserPromptSubmit")
    assert await steering.release(lost)
    assert [n.text for n in await notes.pending()] == ["hold on"]
    delivered = await steering.check("PostToolUseFailure", tool="Bash")
    assert [n.text for n in delivered.notes.notes] == ["hold on"]
    assert not await steering.release(lost)  # a later delivery happened: it stays delivered
    assert await notes.pending() == []


async def test_bad_notes_write_nothing(conn):
    notes = Notes("s", conn)
    for text in ("", "   ", "x" * (MAX_NOTE_BYTES + 1), "a\udc80", 7):
        with pytest.raises(ValueError):
            await notes.add(text)  # type: ignore[arg-type]
    assert await conn.client.keys("*") == []
    assert await notes.add("é" * (MAX_NOTE_BYTES // 2)) == 1  # 8 KiB of UTF-8 fits


async def test_notes_are_placed_after_the_newest_message_and_kept_literally(conn):
    conversation = ConversationMemory("s", redis=conn)
    await conversation.add_message("user", "hello")
    await conversation.add_message("assistant", "hi")
    await Notes("s", conn).add("[b]not markup[/b]\x1b[31m")
    [note] = await Notes("s", conn).list()
    assert (note.after, note.text) == (1, "[b]not markup[/b]\x1b[31m")


def test_context_change_summary_is_short_and_bounded():
    before = {"task": "a", "owner": "bob", "limits": {"tokens": 10}}
    after = {"task": "b", "limits": {"tokens": 20}, "new": [1, 2]}
    assert context_change_summary(before, after) == (
        'changed task: "a" -> "b"\nremoved owner\nchanged limits.tokens: 10 -> 20\nset new = [1, 2]'
    )
    huge = context_change_summary({}, {f"k{n}": "v" * 200 for n in range(100)})
    assert len(huge) <= 1200 and huge.endswith("more changes")
    assert context_change_summary({"a": 1}, {"a": 1}) == "no change"


# -- holds and policies -----------------------------------------------------------------------


async def test_a_binding_spent_budget_holds_the_agent_until_raised_or_reset(conn):
    budget = TokenBudgetTracker("s", 1000, redis=conn)
    steering = Steering("s", conn)
    await budget.record_usage("r1", 1500, enforce_limit=False)  # recorded past the limit
    assert (await steering.check("PreToolUse", tool="Bash")).deny is None  # not binding yet
    await budget.set_limit(None, binding=True)
    denied = await steering.check("PreToolUse", tool="Bash")
    assert denied.hook_output() == {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": "token budget of s spent: 1,500 of 1,000; "
            "raise it in memdash",
        }
    }
    await Notes("s", conn).add("held")
    blocked = await steering.check("UserPromptSubmit")
    assert blocked.hook_output()["decision"] == "block"
    assert blocked.notes.notes == ()  # a blocked prompt carries no note: it stays pending
    await budget.set_limit(2000)  # raised: the binding stays, the agent goes on
    assert (await budget.status()).binding
    released = await steering.check("UserPromptSubmit")
    assert [n.text for n in released.notes.notes] == ["held"]
    await budget.set_limit(1000)
    assert (await steering.check("PreToolUse", tool="Bash")).deny is not None
    await budget.reset()  # reset keeps the limit and the binding, zeroes usage
    assert (await steering.check("PreToolUse", tool="Bash")).deny is None
    assert (await budget.status()).binding
    await budget.record_usage("r2", 5000, enforce_limit=False)
    await budget.set_limit(None, binding=False)  # lifted: nothing is refused
    assert (await steering.check("PreToolUse", tool="Bash")).deny is None


async def test_pause_denies_every_tool_and_blocks_prompts_until_resumed(conn):
    control = SessionControl("s", conn)
    steering = Steering("s", conn)
    async with capture_events(conn) as log:
        assert await control.pause(reason="checking the diff")
        assert not await control.pause()
        for tool in ("Bash", "Read", "mcp__x__y"):
            decision = await steering.check("PreToolUse", tool=tool)
            assert decision.deny == "paused by the operator: checking the diff"
        assert (await steering.check("UserPromptSubmit")).block is not None
        assert await control.resume()
        assert (await steering.check("PreToolUse", tool="Bash")).deny is None
    assert log.kinds() == ["control.pause", "control.pause"]
    status = await control.status()
    assert [(e.paused, e.reason) for e in status.log] == [
        (True, "checking the diff"),
        (False, None),
    ]


async def test_the_task_workflow_denies_by_state(conn):
    task = StatefulMemory(
        "s",
        transitions=TASK_TRANSITIONS,
        initial=TASK_INITIAL,
        policies=TASK_POLICIES,
        name=TASK_WORKFLOW,
        redis=conn,
    )
    activity = StatefulMemory("s", transitions=WORKFLOW, initial="idle", redis=conn)
    await activity.define()
    steering = Steering("s", conn)
    async with capture_events(conn) as log:
        await task.define()
        await task.transition("coding", actor="operator")
        assert (await steering.check("PreToolUse", tool="Edit")).deny is None
        await task.transition("review", actor="operator")
        denied = await steering.check("PreToolUse", tool="Edit")
        assert (await steering.check("PreToolUse", tool="Bash")).deny is None
    assert "review" in denied.deny and "Edit" in denied.deny
    assert log.kinds() == ["task.define", "task.transition", "task.transition"]
    # The two workflows are apart: the activity one did not move, the feed shows both.
    view = (await read_sessions(conn, ["s"]))["s"]
    assert (view.workflow.state, view.task.state) == ("idle", "review")
    assert view.task.policy == TASK_POLICIES["review"]


async def test_a_malformed_stored_policy_denies_nothing_but_holds_still_apply(conn):
    task = conn.session("s").key("wf.task")
    await conn.client.hset(task, mapping={"state": "x", "def": '{"transitions": 5}'})
    steering = Steering("s", conn)
    assert (await steering.check("PreToolUse", tool="Edit")).deny is None
    await SessionControl("s", conn).pause()
    assert (await steering.check("PreToolUse", tool="Edit")).deny == "paused by the operator"


async def test_invalid_policies_are_refused():
    from store.workflow import StatefulMemory as Machine

    for policies, needle in [
        ({"nowhere": {"deny": ["Edit"]}}, "not a state"),
        ({"a": {"deny": []}}, "at least 1"),
        ({"a": {"deny": ["Edit"], "extra": 1}}, "Extra inputs"),
        ({"a": {"deny": ["bad\x00name"]}}, "control characters"),
    ]:
        with pytest.raises(ValueError, match=needle):
            Machine("s", transitions={"a": []}, initial="a", policies=policies, redis="redis://x")


async def test_the_feed_follows_notes_pause_and_waiting(conn):
    async with Feed(conn) as feed:
        await Notes("s", conn).add("look at the failing test")
        await SessionControl("s", conn).pause()
        await SessionControl("s", conn).set_waiting("permission_prompt", "needs Bash")
        await Steering("s", conn).check("PostToolUse", tool="Bash")
        for _ in range(100):
            view = feed.sessions.get("s")
            control, notes = (view.control, view.notes) if view else (None, None)
            if control and control.waiting is None and notes and not notes.pending:
                break
            await asyncio.sleep(0.02)
        live = feed.sessions["s"]
    snapshot = (await read_sessions(conn, ["s"]))["s"]
    assert live.notes == snapshot.notes
    assert (live.control.paused, live.control.waiting) == (True, None)
    assert [e.paused for e in live.control.log] == [e.paused for e in snapshot.control.log]


# -- the recorder, with payloads of the real client's shapes ----------------------------------


async def test_notes_reach_the_agent_through_real_hook_shapes(conn, recorder):
    await Notes(SESSION, conn).add("please run the linter too")
    pre = await recorder.decide(real("PreToolUse"))
    assert pre.hook_output() == {}  # PreToolUse's context is not where notes go
    inside = await recorder.decide(real("PostToolUse", subagent=True))
    assert inside.hook_output() == {}  # a subagent's hook: the note is for the main agent
    post = await recorder.decide(real("PostToolUse"))
    assert "please run the linter too" in context_of(post.hook_output())
    assert (await recorder.decide(real("UserPromptSubmit"))).hook_output() == {}


async def test_notification_waits_for_a_person_until_the_next_tool(conn, recorder):
    control = SessionControl(SESSION, conn)
    await recorder.decide(
        {
            **real("Stop"),
            "hook_event_name": "Notification",
            "message": "Claude needs your permission to use Bash",
            "notification_type": "permission_prompt",
        }
    )
    waiting = (await control.status()).waiting
    assert (waiting.kind, waiting.message) == (
        "permission_prompt",
        "Claude needs your permission to use Bash",
    )
    await recorder.decide(
        {
            **real("Stop"),
            "hook_event_name": "Notification",
            "message": "signed in",
            "notification_type": "auth_success",
        }
    )
    assert (await control.status()).waiting == waiting  # not a call for a person
    await recorder.decide(real("PreToolUse"))
    assert (await control.status()).waiting is None
    await recorder.decide({**real("PreToolUse"), "hook_event_name": "PermissionRequest"})
    assert (await control.status()).waiting.kind == "permission_request"


async def test_real_event_shapes_move_the_activity_as_they_should(conn, recorder):
    activity = StatefulMemory(SESSION, transitions=WORKFLOW, initial="idle", redis=conn)
    conversation = ConversationMemory(SESSION, redis=conn)
    for name, subagent, expected in [
        ("SessionStart", False, "idle"),
        ("UserPromptSubmit", False, "prompting"),
        ("PreToolUse", False, "tool"),
        ("SubagentStart", True, "tool"),
        ("PreToolUse", True, "tool"),  # the subagent's hooks leave the parent in its tool
        ("PostToolUse", True, "tool"),
        ("SubagentStop", True, "tool"),
        ("PostToolUseFailure", False, "responding"),  # a failed tool: a move, not forced
        ("StopFailure", False, "failed"),
        ("UserPromptSubmit", False, "prompting"),
        ("PreCompact", False, "prompting"),
        ("PostCompact", False, "prompting"),
        ("Stop", False, "idle"),
        ("SessionEnd", False, "ended"),
        ("StopFailure", False, "ended"),  # -p mode: the API error after SessionEnd
    ]:
        outcome = await recorder.record(real(name, subagent=subagent))
        assert outcome.kind == "applied", (name, outcome)
        assert (await activity.load()).state == expected, name
        if name == "StopFailure" and expected == "failed":  # said in the conversation
            [said] = [m for m in await conversation.load() if m["role"] == "system"]
            assert said["content"].startswith("turn ended with an error: ")
    history = [t for t in await activity.history(100) if t.forced]
    assert history == []
    notes = [m["content"] for m in await conversation.load() if m["role"] == "system"]
    assert notes[-1].startswith("context compacted (trigger=manual)")  # PostCompact trimmed
    assert [m.reason for m in await conversation.trims()] == ["compact"]


async def test_session_start_gives_a_new_session_its_budget_and_task_workflow(
    conn, recorder, tmp_path
):
    options = {"budget": 5000}
    await recorder.record(real("SessionStart"), options=options)
    budget = await TokenBudgetTracker(SESSION, 1, redis=conn).status()
    assert (budget.limit, budget.binding) == (5000, True)
    task = await StatefulMemory.open(SESSION, name=TASK_WORKFLOW, redis=conn)
    assert task.current_state == TASK_INITIAL
    # The operator lifts the binding and steps the task; a resume keeps both.
    await TokenBudgetTracker(SESSION, 1, redis=conn).set_limit(None, binding=False)
    await task.transition("coding", actor="operator")
    await recorder.record(real("SessionStart", source="resume"), options=options)
    assert not (await TokenBudgetTracker(SESSION, 1, redis=conn).status()).binding
    assert (await task.load()).state == "coding"
    # A project's own workflow file.
    flow = tmp_path / "flow.json"
    flow.write_text(
        json.dumps(
            {
                "transitions": {"spec": ["build"], "build": ["spec"]},
                "initial": "spec",
                "policies": {"spec": {"deny": ["Bash"], "reason": "write the spec first"}},
            }
        )
    )
    await recorder.record(real("SessionStart", session_id="other"), options={"workflow": str(flow)})
    decision = await recorder.decide(real("PreToolUse", session_id="other"))
    assert decision.deny == "workflow state 'spec' denies Bash: write the spec first"


async def test_subagent_transcripts_are_read_live_and_tagged(conn, recorder, tmp_path):
    source = REAL / "transcripts"
    if not source.exists():
        pytest.skip("the real transcripts are not here")
    main = tmp_path / f"{SESSION}.jsonl"
    main.write_bytes((source / f"{SESSION}.jsonl").read_bytes())
    agent = real("PreToolUse", subagent=True)["agent_id"]
    sub = tmp_path / SESSION / "subagents" / f"agent-{agent}.jsonl"
    sub.parent.mkdir(parents=True)
    sub.write_bytes((source / SESSION / "subagents" / f"agent-{agent}.jsonl").read_bytes())
    await recorder.record(real("PreToolUse", subagent=True, transcript_path=str(main)))
    stored = await ConversationMemory(SESSION, redis=conn).load()
    tagged = [m for m in stored if m["context"].get("agent_id") == agent]
    assert tagged and all(m["context"]["sidechain"] for m in tagged)
    meta = [m for m in stored if m["context"].get("meta")]
    assert meta, "a line with isMeta true was read"
    # The subagent's requests count, but do not say how full the main context window is.
    budget = await TokenBudgetTracker(SESSION, 1, redis=conn).status()
    assert budget.context_tokens is not None and budget.used > 0


async def test_a_null_flag_line_is_read_with_its_usage(conn, tmp_path):
    from store.integrations.transcript import record_transcript

    line = {
        "type": "assistant",
        "uuid": "u1",
        "sessionId": "s",
        "isMeta": None,
        "isSidechain": None,
        "requestId": "req_1",
        "message": {
            "id": "msg_1",
            "role": "assistant",
            "model": "m",
            "content": "hi",
            "usage": {"input_tokens": 3, "output_tokens": 4},
        },
    }
    stray = {"message": {"id": "msg_2", "usage": {"input_tokens": 9, "output_tokens": 1}}}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(stray) + "\n")
    result = await record_transcript(conn, path)
    assert (result.messages_added, result.usage_added, result.usage_unattributed) == (1, 1, 1)
    assert (await TokenBudgetTracker("s", 1, redis=conn).status()).used == 7


async def test_decisions_fail_open_with_the_store_down(isolated_env):
    from store import Connection

    conn = Connection("redis://127.0.0.1:1", namespace="test")  # nothing listens there
    recorder = HookRecorder(conn)
    with pytest.raises((RedisError, OSError)):
        await recorder.decide(real("PreToolUse"))  # the relay turns this into {} (fail-open)
    outcome = await recorder.apply(real("PreToolUse"))
    assert outcome.kind == "failed"
    await conn.aclose()
