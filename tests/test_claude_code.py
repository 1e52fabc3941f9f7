"""The Claude Code hook recorder against a real store: what each event writes, and what it must
not (duplicates, refusals, silent loss)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import ConversationMemory, MemoryStore, StatefulMemory, TokenBudgetTracker
from store.feed import read_sessions
from store.integrations.claude_code import (
    INITIAL,
    MAX_CONTENT_BYTES,
    MODELS,
    WORKFLOW,
    HookPayload,
    HookRecorder,
    MalformedHook,
    TranscriptOffsets,
    parse_payload,
)
from store.integrations.hook_relay import EVENTS
from store.integrations.transcript import fit, record_transcript
from store.memory import SessionMemory

FIXTURES = Path(__file__).parent / "fixtures" / "hooks"
TURN = json.loads((FIXTURES / "turn.json").read_text())
SESSION = TURN["session_id"]
MISSED = "hooks were missed or came out of order"


def plain(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "plain" / f"{name}.json").read_text())


def turn_steps(transcript: Path) -> Iterator[dict[str, Any]]:
    """The fixture turn as Claude Code plays it: append the step's transcript lines, then yield
    the hook payload (naming ``transcript``)."""
    transcript.touch()
    for step in TURN["steps"]:
        with transcript.open("a") as f:
            for line in step["lines"]:
                f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        yield {**step["hook"], "transcript_path": str(transcript)}


@pytest.fixture
def recorder(conn, isolated_env) -> HookRecorder:
    offsets = TranscriptOffsets(isolated_env / "offsets", f"{conn.url}\0{conn.namespace}")
    return HookRecorder(conn, offsets=offsets)


async def messages(conn, session: str) -> list[dict[str, Any]]:
    return await ConversationMemory(session, redis=conn).load()


async def transitions(conn, session: str) -> list[tuple[str, str, bool, str | None]]:
    workflow = StatefulMemory(session, transitions=WORKFLOW, initial=INITIAL, redis=conn)
    return [(t.from_state, t.to_state, t.forced, t.reason) for t in await workflow.history()][::-1]


def test_payloads_are_validated_with_clear_errors():
    for name, needle in [
        ("not_json.txt", "not JSON"),
        ("array.json", "JSON object"),
        ("no_session.json", "session_id"),
        ("control_chars_in_session.json", "control characters"),
        ("prompt_not_text.json", "prompt"),
        ("tool_name_missing.json", "tool_name"),
        ("empty.txt", "not JSON"),
    ]:
        with pytest.raises(MalformedHook, match=needle):
            parse_payload((FIXTURES / "malformed" / name).read_bytes())
    # Fields Claude Code adds later are kept, unknown events are plain HookPayloads.
    payload = parse_payload({**plain("pre_tool_use"), "permission_mode": "plan", "new_field": 1})
    assert payload.model_extra == {"permission_mode": "plan", "new_field": 1}
    future = {**plain("notification"), "hook_event_name": "SomethingNew"}
    assert type(parse_payload(future)) is HookPayload
    # Every event install-hooks registers has its own payload model.
    assert all(MODELS[event] is not HookPayload for event in EVENTS)


async def test_a_turn_is_recorded_once_from_the_transcript(conn, recorder, tmp_path):
    transcript = tmp_path / "session.jsonl"
    for payload in turn_steps(transcript):
        if payload["hook_event_name"] == "PreCompact":
            stored = await messages(conn, SESSION)  # what compaction is about to trim
        outcome = await recorder.record(payload)
        assert outcome.kind == "applied", outcome

    expected = TURN["expected"]
    uuids = [m["context"].get("uuid") for m in stored]
    assert len(set(filter(None, uuids))) == len(list(filter(None, uuids)))  # no line twice
    prompts = [m for m in stored if m["role"] == "user"]
    assert [m["content"] for m in prompts] == ["Run the tests and fix what fails."]
    assert [m["role"] for m in stored if m["context"].get("sidechain")] == ["assistant"]
    # The compaction: the stored context is trimmed to a note, with a marker for what went.
    conversation = ConversationMemory(SESSION, redis=conn)
    [compaction] = await messages(conn, SESSION)
    assert compaction["role"] == "system"
    assert compaction["content"] == "context compacted (trigger=manual): keep the test names"
    [marker] = await conversation.trims()
    assert (marker.reason, marker.count) == ("compact", len(stored))
    assert (await conversation.count()).total == len(stored) + 1 == expected["messages"]

    budget = await TokenBudgetTracker(SESSION, 10**9, redis=conn).status()
    assert (budget.used, budget.requests) == (expected["tokens"], expected["requests"])
    for field, total in expected["breakdown"].items():
        assert getattr(budget, field) == total

    assert await transitions(conn, SESSION) == [
        ("idle", "prompting", False, None),
        ("prompting", "tool", False, None),
        ("tool", "responding", False, None),
        ("responding", "tool", False, None),
        ("tool", "responding", False, None),
        ("responding", "idle", False, None),
        ("idle", "ended", False, None),
    ]
    context = await SessionMemory(conn).load_user_context(SESSION)
    assert context["cwd"] == "/home/bob/src/api"
    assert context["model"] == "claude-sonnet-4-5-20250929"
    assert (context["source"], context["permission_mode"]) == ("startup", "default")
    assert context["transcript_path"] == str(transcript)
    # The read stopped exactly at the end: the next hook reads nothing old again.
    assert recorder.offsets.get(transcript) == transcript.stat().st_size

    # Replaying every hook, and importing the transcript, adds nothing.
    for payload in turn_steps(tmp_path / "replay.jsonl"):
        await recorder.record({**payload, "transcript_path": str(transcript)})
    again = await record_transcript(conn, transcript)
    assert again.messages_added == 0 and again.usage_added == 0
    assert (await conversation.count()).total == expected["messages"]
    assert len(await conversation.trims()) == 1  # the compaction was not applied twice
    assert (await TokenBudgetTracker(SESSION, 10**9, redis=conn).status()).used == expected[
        "tokens"
    ]


async def test_the_workflow_pane_sees_prompts_and_tools_at_once(conn, recorder, tmp_path):
    steps = turn_steps(tmp_path / "session.jsonl")
    await recorder.record(next(steps))
    await recorder.record(next(steps))  # the prompt is not in the transcript yet
    view = (await read_sessions(conn, [SESSION]))[SESSION]
    assert view.workflow.state == "prompting"
    assert view.workflow.data == {
        "event": "UserPromptSubmit",
        "prompt": "Run the tests and fix what fails.",
    }
    await recorder.record(next(steps))
    view = (await read_sessions(conn, [SESSION]))[SESSION]
    assert view.workflow.data["tool"] == "Bash"
    assert view.workflow.data["tool_use_id"] == "toolu_h1"
    assert view.conversation.total == 3  # the prompt and the two lines before the tool call


async def test_missed_hooks_are_forced_with_a_reason_never_refused(conn, recorder):
    for name in ("session_start", "user_prompt_submit", "pre_tool_use", "stop"):
        assert (await recorder.record(plain(name))).kind == "applied"
    await recorder.record(plain("session_end"))
    await recorder.record(plain("session_end"))  # already ended: nothing more
    await recorder.record(plain("pre_tool_use"))  # a hook after the end
    await recorder.record(plain("session_start"))  # resumed while in "tool"
    assert await transitions(conn, "cc-plain") == [
        ("idle", "prompting", False, None),
        ("prompting", "tool", False, None),
        (
            "tool",
            "idle",
            True,
            "Stop arrived in state tool: hooks were missed or came out of order",
        ),
        ("idle", "ended", False, None),
        ("ended", "tool", True, f"PreToolUse arrived in state ended: {MISSED}"),
        ("tool", "idle", True, f"SessionStart (source=startup) arrived in state tool: {MISSED}"),
    ]


async def test_a_resumed_session_goes_from_ended_to_idle(conn, recorder):
    await recorder.record(plain("session_start"))
    started = (await SessionMemory(conn).load_user_context("cc-plain"))["started_at"]
    await recorder.record(plain("session_end"))
    await recorder.record({**plain("session_start"), "source": "resume"})
    assert (await transitions(conn, "cc-plain"))[-1] == ("ended", "idle", False, None)
    context = await SessionMemory(conn).load_user_context("cc-plain")
    # The session's start is kept (its first source and time); the resume is the last source.
    assert (context["source"], context["last_source"]) == ("startup", "resume")
    assert context["started_at"] == started


async def test_without_a_transcript_messages_come_from_the_payload_once(conn, recorder):
    names = ("user_prompt_submit", "pre_tool_use", "post_tool_use")
    for _ in range(2):  # the same deliveries twice (say, hooks installed in two settings files)
        for name in names:
            await recorder.record(plain(name))
    stored = await messages(conn, "cc-plain")
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "Say hi."),
        ("tool", 'Bash call: {"command": "echo hi"}'),
        ("tool", 'Bash result: {"stdout": "hi\\n", "stderr": ""}'),
    ]
    assert stored[1]["context"] == {
        "source": "claude-code-hook",
        "event": "PreToolUse",
        "tool_name": "Bash",
        "tool_use_id": "toolu_p1",
    }


async def test_a_huge_tool_output_is_cut_with_a_note_not_refused(conn, recorder):
    output = "x" * (3 * 1024 * 1024) + "THE END"
    payload = {**plain("post_tool_use"), "tool_response": {"stdout": output}}
    await recorder.record(payload)
    [message] = await messages(conn, "cc-plain")
    cut = message["context"]["truncated_bytes"]
    total = len(json.dumps({"stdout": output}).encode()) + len("Bash result: ")
    assert cut > 2 * 1024 * 1024
    assert f"memdash cut {cut:,} of {total:,} bytes" in message["content"]
    assert "THE END" not in message["content"]


def test_hook_messages_are_cut_by_the_transcript_rule():
    # One rule for content too big for a message, shared with the transcript reader.
    head, cut, total = fit("\x01" * MAX_CONTENT_BYTES, MAX_CONTENT_BYTES)
    assert total == MAX_CONTENT_BYTES and cut > 0
    assert len(json.dumps(head, ensure_ascii=False).encode()) <= MAX_CONTENT_BYTES
    assert f"memdash cut {cut:,} of {total:,} bytes" in head
    head, cut, _ = fit("é" * MAX_CONTENT_BYTES, MAX_CONTENT_BYTES)
    assert cut > 0 and head.startswith("éé")  # multi-byte characters are never split
    assert fit("a\udc80b", 100) == ("a?b", 0, 3)  # lone surrogates replaced, not refused


async def test_a_compaction_that_fails_trims_nothing(conn, recorder):
    for name in ("user_prompt_submit", "pre_tool_use", "pre_compact"):
        await recorder.record(plain(name))  # PreCompact, and no PostCompact: it failed
    conversation = ConversationMemory("cc-plain", redis=conn)
    assert [m["role"] for m in await conversation.load()] == ["user", "tool"]
    assert await conversation.trims() == []


async def test_postcompact_trims_to_a_note_with_a_compact_marker_once(conn, recorder):
    post = {**plain("pre_compact"), "hook_event_name": "PostCompact", "compact_summary": ""}
    for payload in map(plain, ("user_prompt_submit", "pre_tool_use", "pre_compact")):
        await recorder.record(payload)
    await recorder.record(post)
    await recorder.record(post)  # the compaction delivered twice
    conversation = ConversationMemory("cc-plain", redis=conn)
    [note] = await conversation.load()
    assert (note["role"], note["content"]) == ("system", "context compacted (trigger=auto)")
    [marker] = await conversation.trims()
    assert (marker.reason, marker.first, marker.last, marker.count) == ("compact", 0, 1, 2)
    await recorder.record(plain("user_prompt_submit"))  # the same prompt again: not re-added
    assert (await conversation.count()).total == 3


async def test_session_start_merges_into_an_edited_context(conn, recorder):
    memory = MemoryStore(conn)
    key = SessionMemory.context_key("cc-plain")
    await memory.set(key, {"note": "written by hand", "cwd": "/old"})
    await recorder.record(plain("session_start"))
    context = await memory.get(key)
    assert context["note"] == "written by hand"
    assert context["cwd"] == "/home/bob"
    assert await memory.ttl(key) is None


async def test_unknown_events_are_ignored_and_write_nothing(conn, recorder):
    outcome = await recorder.record({**plain("notification"), "hook_event_name": "SomethingNew"})
    assert outcome.kind == "ignored"
    assert await conn.client.keys("*") == []


async def test_malformed_and_store_down_are_outcomes_never_exceptions(
    conn, recorder, isolated_env, tmp_path
):
    outcome = await recorder.apply(b"{nope")
    assert outcome.kind == "malformed"
    assert await conn.client.keys("*") == []
    down = HookRecorder.open(f"unix://{tmp_path}/no-redis.sock", "test")
    try:
        outcome = await down.apply(json.dumps(plain("user_prompt_submit")))
    finally:
        await down.aclose()
    assert outcome.kind == "failed"
    assert outcome.status_line().startswith("error failed: store unavailable")
    log = (isolated_env / "memdash" / "hook.log").read_text()
    assert "malformed payload ignored" in log
    assert "store unavailable at unix://" in log


def test_offsets_start_over_when_the_transcript_was_replaced(tmp_path):
    offsets = TranscriptOffsets(tmp_path / "offsets", "redis://x\0ns")
    transcript = tmp_path / "t.jsonl"
    transcript.write_text('{"a": 1}\n{"b": 2}\n')
    offsets.set(transcript, 9)
    assert offsets.get(transcript) == 9
    assert TranscriptOffsets(tmp_path / "offsets", "redis://y\0ns").get(transcript) == 0
    transcript.write_text('{"c": 3}\n{"d": 4}\n')  # same length, other content
    assert offsets.get(transcript) == 0
    offsets.set(transcript, 18)
    transcript.write_text("")  # truncated
    assert offsets.get(transcript) == 0
    transcript.write_text('{"c": 3}\n{"d": 4}\n')
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(transcript.read_text())
    replacement.replace(transcript)  # rotated: another file under the same name
    assert offsets.get(transcript) == 0


async def test_a_transcript_not_written_yet_is_waited_for_not_replaced(conn, recorder, tmp_path):
    # Claude Code creates the file as the session goes: a prompt whose transcript does not exist
    # yet must not be stored from the payload, or it comes again from the file under its uuid.
    transcript = tmp_path / "later.jsonl"
    prompt = plain("user_prompt_submit")
    await recorder.record({**prompt, "transcript_path": str(transcript)})
    assert await messages(conn, "cc-plain") == []
    line = {
        "type": "user",
        "uuid": "u-1",
        "sessionId": "cc-plain",
        "timestamp": "2026-11-24T09:00:00Z",
        "message": {"role": "user", "content": prompt["prompt"]},
    }
    transcript.write_text(json.dumps(line) + "\n")
    await recorder.record({**plain("pre_tool_use"), "transcript_path": str(transcript)})
    assert [m["content"] for m in await messages(conn, "cc-plain")] == [prompt["prompt"]]
