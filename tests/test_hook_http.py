"""Claude Code's HTTP hooks, answered by the hook relay on 127.0.0.1, and the answers of
command hooks.

The relay is started the way `memdash hook --http-port P` starts it (a SessionStart command
hook, a real process, a private data dir); the hooks are POSTed the way Claude Code does, one
new connection each. Relays are stopped by pid at the end of each test (``relays`` fixture).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import ConversationMemory, StatefulMemory, TokenBudgetTracker
from store.control import SessionControl
from store.integrations import hook_relay
from store.integrations.claude_code import INITIAL, WORKFLOW
from store.notes import Notes
from store.server import free_port, pid_alive
from store.steering import Decision
from tests.test_claude_code import SESSION, TURN, turn_steps
from tests.test_cli import MEMDASH
from tests.test_cli_hook import Relays, log_text, wait_until

REAL = Path("/work/shared/claude-code-2.1.197")
if not REAL.exists():  # the repository's copy, when there is one
    REAL = Path(__file__).parent / "fixtures" / "claude-code-2.1.197"
PAYLOADS = REAL / "hook-payloads.jsonl"
NS = "test"


@pytest.fixture
def relays(isolated_env: Path) -> Iterator[Relays]:
    runner = Relays(isolated_env)
    try:
        yield runner
    finally:
        runner.stop_all()


def post(port: int, payload: Any, timeout: float = 5.0) -> tuple[int, Any]:
    """One hook as Claude Code sends it: a new connection, POST, JSON answer."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/hook", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


def command_hook(relays: Relays, payload: Any, url: str, *options: str) -> bytes:
    """`memdash hook` as a command hook: exit 0, nothing on stderr; returns its stdout."""
    relays.stores.add((url, NS))
    done = subprocess.run(
        [*MEMDASH, "hook", "--redis", url, "--namespace", NS, *options],
        input=json.dumps(payload).encode(),
        capture_output=True,
        env=relays.env,
        timeout=30,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    return done.stdout


def start(relays: Relays, url: str, session: str = "s1", **extra: Any) -> int:
    """A relay serving HTTP, started by a SessionStart command hook; its port."""
    port = free_port()
    start_payload = {"session_id": session, "hook_event_name": "SessionStart", **extra}
    assert command_hook(relays, start_payload, url, "--http-port", str(port)) == b""
    relays.barrier(url)
    return port


def event(name: str, session: str = "s1", **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "hook_event_name": name, **fields}


def pre(tool: str = "Bash", session: str = "s1") -> dict[str, Any]:
    return event("PreToolUse", session, tool_name=tool, tool_input={}, tool_use_id=f"t-{tool}")


def post_tool(session: str = "s1") -> dict[str, Any]:
    return event("PostToolUse", session, tool_name="Bash", tool_input={}, tool_response="ok")


def prompt(session: str = "s1") -> dict[str, Any]:
    return event("UserPromptSubmit", session, prompt="go on")


def context_of(answer: dict[str, Any]) -> str | None:
    return answer.get("hookSpecificOutput", {}).get("additionalContext")


@pytest.mark.slow
async def test_every_real_event_shape_is_answered_and_recorded(conn, redis_url, relays, tmp_path):
    lines = [json.loads(line) for line in PAYLOADS.read_text().splitlines() if line.strip()]
    session = lines[0]["session_id"]
    transcripts = tmp_path / "transcripts"
    shutil.copytree(REAL / "transcripts", transcripts)
    main = transcripts / f"{session}.jsonl"
    port = start(relays, redis_url, session, transcript_path=str(main), source="startup")
    for payload in lines:
        payload = {**payload, "transcript_path": str(main)}
        if "agent_transcript_path" in payload:
            [agent] = transcripts.glob("*/subagents/agent-*.jsonl")
            payload["agent_transcript_path"] = str(agent)
        status, answer = post(port, payload)
        assert status == 200 and isinstance(answer, dict), (payload["hook_event_name"], answer)
        assert answer == {}  # nothing to steer
    relays.barrier(redis_url)
    log = log_text(relays.home)
    assert "malformed" not in log and "not recorded" not in log and "failed" not in log, log
    assert f"applied {len(lines) + 1}" not in log  # (the relay still runs: no exit line yet)
    stored = await ConversationMemory(session, redis=conn).count()
    assert stored.total > 0
    workflow = StatefulMemory(session, transitions=WORKFLOW, initial=INITIAL, redis=conn)
    assert len(await workflow.history()) > 5


async def test_a_note_is_carried_once_by_the_next_hook_that_can_carry_it(conn, redis_url, relays):
    port = start(relays, redis_url)
    notes = Notes("s1", conn)
    await notes.add("look at the tests first")
    assert post(port, pre()) == (200, {})  # a PreToolUse carries no notes
    status, answer = post(port, post_tool())
    assert status == 200 and "look at the tests first" in context_of(answer)
    assert answer["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    assert post(port, post_tool()) == (200, {})  # once
    await notes.add("and the docs")
    status, answer = post(port, prompt())
    assert "and the docs" in context_of(answer)
    assert await notes.pending() == []


async def test_two_racing_hooks_cannot_both_carry_a_note(conn, redis_url, relays):
    port = start(relays, redis_url)
    notes = Notes("s1", conn)
    for round_ in range(5):
        await notes.add(f"note {round_}")
        answers: list[Any] = []
        barrier = threading.Barrier(2)

        def fire(
            payload: dict[str, Any], answers: list[Any] = answers, barrier: Any = barrier
        ) -> None:
            barrier.wait()
            answers.append(post(port, payload))

        threads = [threading.Thread(target=fire, args=(p,)) for p in (post_tool(), prompt())]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        carried = [a for status, a in answers if status == 200 and context_of(a)]
        assert len(carried) == 1, answers
        assert f"note {round_}" in context_of(carried[0])


async def test_spent_binding_budget_and_pause_refuse(conn, redis_url, relays):
    port = start(relays, redis_url)
    tracker = TokenBudgetTracker("s1", 1000, redis=conn)
    await tracker.set_limit(1000, binding=True)
    await tracker.record_usage("req-1", 1500, enforce_limit=False)
    status, answer = post(port, pre())
    assert status == 200
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "token budget of s1 spent" in answer["hookSpecificOutput"]["permissionDecisionReason"]
    status, answer = post(port, prompt())
    assert answer["decision"] == "block" and "spent" in answer["reason"]
    await tracker.set_limit(10_000)  # raised: released
    assert post(port, pre()) == (200, {})
    assert post(port, prompt()) == (200, {})

    control = SessionControl("s1", conn)
    await control.pause(reason="lunch")
    for tool in ("Bash", "Read", "Edit"):
        status, answer = post(port, pre(tool))
        assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"
        assert "paused" in answer["hookSpecificOutput"]["permissionDecisionReason"]
    await control.resume()
    assert post(port, pre()) == (200, {})


@pytest.mark.slow
def test_store_down_every_hook_answers_empty_fast(relays, tmp_path):
    down = f"unix://{tmp_path}/nobody-listens.sock"
    port = free_port()
    assert command_hook(relays, event("SessionStart"), down, "--http-port", str(port)) == b""
    relays.barrier(down)
    for payload in (pre(), post_tool(), prompt(), event("Stop"), event("SessionEnd")):
        began = time.monotonic()
        assert post(port, payload) == (200, {})
        assert time.monotonic() - began < 0.5
    assert command_hook(relays, event("Stop"), down, "--http-port", str(port)) == b""
    relays.barrier(down)
    assert "decision failed, answered {}" in log_text(relays.home)


def test_bad_requests_are_refused_and_the_relay_survives(redis_url, relays):
    port = start(relays, redis_url)

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    too_big = hook_relay.MAX_PAYLOAD_BYTES + 1
    head = f"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: {too_big}\r\n\r\n".encode()
    assert raw(head + b"{").startswith(b"HTTP/1.1 413 ")
    assert post(port, b"not json")[0] == 400
    assert post(port, b'["a list"]')[0] == 400
    assert post(port, {"hook_event_name": "Stop"})[0] == 400  # no session id
    assert raw(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(b"POST /hook HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw(b"POST /hook HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 411 ")
    assert raw(b"GET /hook HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert raw(
        b"POST /elsewhere HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    ).startswith(b"HTTP/1.1 404 ")
    # web pages cannot post hooks (a browser sends Origin; a rebound domain its own Host)
    body = json.dumps(pre()).encode()
    for header in (b"Origin: https://example.com", b"Host: evil.example:80"):
        request = b"POST /hook HTTP/1.1\r\n" + header + b"\r\nContent-Length: "
        request += str(len(body)).encode() + b"\r\n\r\n" + body
        assert raw(request).startswith(b"HTTP/1.1 403 ")
    # chunked, and two requests on one kept-alive connection
    body = json.dumps(pre()).encode()
    chunked = (
        b"POST /hook/PreToolUse HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    closing = (
        b"POST /hook HTTP/1.1\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    replies = raw(chunked + closing)
    assert replies.count(b"HTTP/1.1 200 OK") == 2 and replies.endswith(b"{}")
    assert post(port, pre()) == (200, {})  # still serving
    assert hook_relay.running_pid(redis_url, NS) is not None


def test_the_relay_listens_on_loopback_127_0_0_1_only(redis_url, relays):
    port = start(relays, redis_url)
    status = hook_relay.relay_status(redis_url, NS)
    assert status is not None and status[1] == [port]
    for family, host in ((socket.AF_INET, "127.0.0.2"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((host, port))
    listening = Path("/proc/net/tcp")
    if listening.exists():  # Linux: the one listening socket on the port is 127.0.0.1's
        rows = [line.split() for line in listening.read_text().splitlines()[1:]]
        local = [r[1] for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port]
        assert local == [f"0100007F:{port:04X}"]


async def test_command_hooks_print_the_answer_and_nothing_else(conn, redis_url, relays, tmp_path):
    start_payload = event("SessionStart", "s2", source="resume")
    assert command_hook(relays, start_payload, redis_url) == b""  # nothing to say
    await Notes("s2", conn).add("the build is red")
    out = command_hook(relays, start_payload, redis_url)
    answer = json.loads(out)
    assert out.endswith(b"}\n") and out.count(b"\n") == 1
    assert answer["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "the build is red" in answer["hookSpecificOutput"]["additionalContext"]
    assert command_hook(relays, start_payload, redis_url) == b""  # delivered once
    assert command_hook(relays, event("Stop", "s2"), redis_url) == b""
    await SessionControl("s2", conn).pause()
    denied = json.loads(command_hook(relays, pre(session="s2"), redis_url))
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"
    denied = json.loads(command_hook(relays, pre(session="s2"), redis_url, "--direct"))
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"


async def test_budget_and_workflow_options_reach_the_recorder(conn, redis_url, relays, tmp_path):
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"transitions": {"a": ["b"], "b": []}, "initial": "a"}))
    command_hook(relays, event("SessionStart", "s3"), redis_url, "--budget", "5000",
                 "--workflow", str(flow))  # fmt: skip
    relays.barrier(redis_url)
    status = await TokenBudgetTracker("s3", 1, redis=conn).status()
    assert (status.limit, status.binding) == (5000, True)
    task = await StatefulMemory.open("s3", name="task", redis=conn)
    assert (await task.load()).state == "a"
    # MEMDASH_WORKFLOW in the hook's environment (Claude Code's settings "env") does the same;
    # the hook reads it, not the relay, whose environment is its starter's.
    relays.env["MEMDASH_WORKFLOW"] = str(flow)
    try:
        command_hook(relays, event("SessionStart", "s4"), redis_url)
    finally:
        del relays.env["MEMDASH_WORKFLOW"]
    relays.barrier(redis_url)
    task = await StatefulMemory.open("s4", name="task", redis=conn)
    assert (await task.load()).state == "a"


async def test_a_late_decision_is_answered_empty_and_its_notes_released(monkeypatch):
    """In-process: a decision slower than DECIDE_TIMEOUT answers {} and, when it arrives, is
    released; decisions stay in arrival order."""
    monkeypatch.setattr(hook_relay, "DECIDE_TIMEOUT", 0.05)
    released: list[str] = []
    order: list[str] = []

    class SlowRecorder:
        async def decide(self, payload: Any) -> Decision:
            order.append(payload.hook_event_name)
            await asyncio.sleep(0.2 if payload.hook_event_name == "PostToolUse" else 0)
            from store.notes import Handed, Note

            note = Note(1, "note", "operator", 0, -1, "hi", None)
            return Decision(payload.hook_event_name, notes=Handed(1, 1, (note,)))

        async def release(self, payload: Any, decision: Decision) -> None:
            released.append(payload.hook_event_name)

    relay = hook_relay.Relay(None, None, None, NS, [])  # type: ignore[arg-type]
    relay.recorder = SlowRecorder()
    worker = asyncio.ensure_future(relay._decide_loop())
    try:
        slow, fast = await asyncio.gather(
            relay.decide(json.dumps(post_tool()).encode()),
            relay.decide(json.dumps(prompt()).encode()),
        )
        assert slow[2] == {}  # too late: answered as if memdash were absent
        assert fast[2] == {}  # it waited behind the slow one (arrival order): too late too
        await asyncio.sleep(0.4)
        assert order == ["PostToolUse", "UserPromptSubmit"]
        assert sorted(released) == ["PostToolUse", "UserPromptSubmit"]
    finally:
        worker.cancel()


@pytest.mark.slow
async def test_a_relay_killed_mid_session_comes_back_and_loses_no_message(
    conn, redis_url, relays, tmp_path
):
    transcript = tmp_path / "session.jsonl"
    steps = turn_steps(transcript)
    port = free_port()
    http = ("--http-port", str(port))
    assert command_hook(relays, next(steps), redis_url, *http) == b""  # SessionStart
    assert post(port, next(steps)) == (200, {})  # UserPromptSubmit
    assert post(port, next(steps)) == (200, {})  # PreToolUse
    pid = relays.barrier(redis_url)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not pid_alive(pid))
    for _ in range(3):  # PostToolUse, PreToolUse, PostToolUse: refused at once, agent goes on
        began = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            post(port, next(steps))
        assert time.monotonic() - began < 0.5
    assert command_hook(relays, next(steps), redis_url, *http) == b""  # Stop: starts a relay
    new_pid = relays.barrier(redis_url)
    assert new_pid != pid
    for payload in steps:  # PreCompact, SessionEnd (and any later step)
        assert post(port, payload) == (200, {})
    relays.barrier(redis_url)

    conversation = ConversationMemory(SESSION, redis=conn)
    assert (await conversation.count()).total == TURN["expected"]["messages"]
    budget = await TokenBudgetTracker(SESSION, 10**9, redis=conn).status()
    assert budget.used == TURN["expected"]["tokens"]
    workflow = StatefulMemory(SESSION, transitions=WORKFLOW, initial=INITIAL, redis=conn)
    assert (await workflow.load()).state == "ended"
    forced = [t for t in await workflow.history() if t.forced]
    assert len(forced) == 1 and "Stop arrived in state tool" in (forced[0].reason or "")


@pytest.mark.slow
def test_a_relay_serving_http_stays_up_while_a_session_is_open(redis_url, relays):
    relays.env["MEMDASH_HOOK_RELAY_IDLE"] = "0.3"
    port = start(relays, redis_url)
    pid = relays.barrier(redis_url)
    time.sleep(1.0)
    assert pid_alive(pid)  # idle, but s1 has not ended
    assert post(port, event("SessionEnd")) == (200, {})
    assert wait_until(lambda: not pid_alive(pid), 5)
    with pytest.raises(ConnectionRefusedError):
        post(port, pre())


class SlowNotes:
    """A recorder whose decisions take ``delay`` and carry one note; it logs releases."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.released: list[str] = []

    async def decide(self, payload: Any) -> Decision:
        from store.notes import Handed, Note

        await asyncio.sleep(self.delay)
        note = Note(1, "note", "operator", 0, -1, "hi", None)
        return Decision(payload.hook_event_name, notes=Handed(1, 1, (note,)))

    async def release(self, payload: Any, decision: Decision) -> None:
        self.released.append(payload.hook_event_name)


async def test_a_command_hook_that_gave_up_waiting_releases_its_notes(tmp_path):
    """In-process: the client's ack timeout passes before the answer is written; the relay
    finds it gone and puts the notes back."""
    recorder = SlowNotes(0.3)
    relay = hook_relay.Relay(None, None, None, NS, [])  # type: ignore[arg-type]
    relay.recorder = recorder
    worker = asyncio.ensure_future(relay._decide_loop())
    path = tmp_path / "relay.sock"
    server = await asyncio.start_unix_server(relay.on_unix, str(path))
    try:
        header = {"op": "apply", "at": time.time()}
        payload = json.dumps(event("SessionStart")).encode()
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(
                hook_relay._exchange, path, header, payload, time.monotonic() + 0.1
            )
        await asyncio.sleep(0.5)
        assert recorder.released == ["SessionStart"]
        recorder.delay = 0
        reply = await asyncio.to_thread(
            hook_relay._exchange, path, header, payload, time.monotonic() + 2
        )
        status, output = hook_relay.parse_reply(reply)
        assert status == "ok decided SessionStart" and "hi" in context_of(output)
        assert recorder.released == ["SessionStart"]  # this one reached the client
    finally:
        server.close()
        worker.cancel()


def test_a_crash_of_the_serving_loop_restarts_it(redis_url, isolated_env, monkeypatch):
    """In this process (main thread, its own loop): the first run of the serving loop fails;
    the relay logs it and serves again."""
    original = hook_relay.Relay.listen_http
    calls = []

    async def failing_once(self: Any, port: int) -> None:
        calls.append(port)
        if len(calls) == 1:
            raise RuntimeError("boom")
        await original(self, port)

    monkeypatch.setattr(hook_relay.Relay, "listen_http", failing_once)
    port = free_port()
    answers: list[Any] = []

    def client() -> None:
        assert wait_until(lambda: hook_relay.running_pid(redis_url, NS) is not None)
        answers.append(post(port, pre()))
        hook_relay.control("stop", redis_url, NS)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert (
            hook_relay.main(["--redis", redis_url, "--namespace", NS, "--http-port", str(port)])
            == 0
        )
    finally:
        thread.join(30)
    assert answers == [(200, {})]
    assert calls == [port, port]
    log = log_text(isolated_env)
    assert "relay crashed, serving again" in log and "RuntimeError: boom" in log
    hook_relay.RelayPaths(redis_url, NS).lock.unlink(missing_ok=True)
