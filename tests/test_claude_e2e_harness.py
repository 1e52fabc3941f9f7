"""The end-to-end harness itself, proven against the real Claude Code client with plain hooks
written here (not memdash's), so a failure in a memdash end-to-end test can be blamed on
memdash and not on the harness.

Each test starts the stand-in API (tests/standin_api.py) on loopback, writes hooks into a
temp project's ``.claude/settings.local.json``, runs ``claude -p`` once or twice
(tests/claude_client.py) and checks what the client sent back: hook context in the next request,
a denied tool's error result, the tool's effect (or its absence) on disk. Without the client
they are skipped, with the install command as the reason.
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.claude_client import (
    MISSING,
    ClaudeRun,
    claude_bin,  # noqa: F401  (a fixture)
    find_claude,
    missing_reason,
    run_claude,
    write_settings,
)
from tests.standin_api import COMPACT_MARK, StandinAPI, Text, ToolUse

# A command hook: logs its payload (plus the session variables the client sets for hooks under
# "$env") and prints the output it was written with.
HOOK = """\
import json, os, sys
payload = json.load(sys.stdin)
payload["$env"] = {{k: os.environ.get(k) for k in ("CLAUDE_CODE_SESSION_ID", "CLAUDE_PROJECT_DIR")}}
with open({log!r}, "a") as f:
    f.write(json.dumps(payload) + "\\n")
sys.stdout.write({output!r})
"""


@dataclass
class Project:
    """A temp project dir and the hooks the test wrote into it; ``log`` collects the payloads
    the command hooks received."""

    dir: Path
    log: Path
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def command_hook(self, event: str, output: dict[str, Any] | None) -> None:
        """A command hook for ``event`` that logs its payload and prints ``output``."""
        number = sum(len(matchers) for matchers in self.hooks.values())
        script = self.dir.parent / f"hook-{number}-{event}.py"
        script.write_text(
            HOOK.format(log=str(self.log), output=json.dumps(output) if output else "")
        )
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
        self._add(event, {"type": "command", "command": command})

    def http_hook(self, event: str, url: str) -> None:
        self._add(event, {"type": "http", "url": url, "timeout": 10})

    def _add(self, event: str, hook: dict[str, Any]) -> None:
        self.hooks.setdefault(event, []).append({"matcher": "*", "hooks": [hook]})
        write_settings(self.dir, {"hooks": self.hooks})

    def payloads(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, api: StandinAPI, prompt: str, *, resume: bool = False) -> ClaudeRun:
        run = run_claude(
            self.dir, prompt, session_id=self.session_id, api_url=api.url, resume=resume, timeout=60
        )
        assert run.process.returncode == 0, (run.process.stdout, run.process.stderr)
        assert run.output is not None and not run.output.get("is_error"), run.output
        return run


@pytest.fixture
def project(tmp_path: Path, claude_bin: Path) -> Project:  # noqa: F811
    directory = tmp_path / "project"
    directory.mkdir()
    return Project(directory, tmp_path / "hook-payloads.jsonl")


@dataclass
class HookServer:
    """A loopback HTTP server standing in for an HTTP hook endpoint: it records each POSTed
    payload by path and answers with the JSON set for that path."""

    answers: dict[str, dict[str, Any]]
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hook_server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hook_server.received.append((self.path, json.loads(body or b"{}")))
                answer = json.dumps(hook_server.answers.get(self.path, {})).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self, path: str) -> list[str]:
        return [p["hook_event_name"] for got, p in self.received if got == path]


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer({})
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    thread.join()
    server.server.server_close()


@pytest.fixture
def api() -> Iterator[StandinAPI]:
    with StandinAPI() as server:
        yield server


def context_output(event: str, text: str) -> dict[str, Any]:
    return {"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}


def deny_output(reason: str) -> dict[str, Any]:
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": reason,
        }
    }


def user_message_with(messages: list[dict[str, Any]], s: str) -> dict[str, Any]:
    """The first user message whose content holds ``s``."""
    return messages[_index_of_user_message_with(messages, s)]


def message_after(messages: list[dict[str, Any]], s: str) -> dict[str, Any]:
    """The message after the first user message whose content holds ``s``."""
    return messages[_index_of_user_message_with(messages, s) + 1]


def _index_of_user_message_with(messages: list[dict[str, Any]], s: str) -> int:
    for i, message in enumerate(messages):
        if message.get("role") == "user" and s in json.dumps(message.get("content")):
            return i
    raise AssertionError(f"no user message holds {s!r}")


@dataclass(frozen=True)
class AnyStr:
    """Equal to any string ending with ``ending`` (for comparing whole messages)."""

    ending: str

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith(self.ending)

    def __repr__(self) -> str:
        return f"<any str ending {self.ending!r}>"


def test_skip_reason_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing client must show up as a skip that says how to install it."""
    assert "npm install @anthropic-ai/claude-code@2.1.197" in MISSING
    assert ".ci/run" in MISSING
    monkeypatch.setenv("MEMDASH_CLAUDE_BIN", "/nonexistent/claude")
    assert find_claude() is None
    assert "MEMDASH_CLAUDE_BIN=/nonexistent/claude" in missing_reason()
    assert MISSING in missing_reason()


def post(api: StandinAPI, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        api.url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in raw.decode().strip().split("\n\n"):
        event, data = chunk.split("\n")
        events.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


MAIN = {"model": "m", "max_tokens": 100, "stream": True, "tools": [{"name": "Bash"}]}


def test_standin_streams_a_scripted_tool_call_as_the_real_api(api: StandinAPI) -> None:
    """The SSE shape the client parses: message_start with usage and a msg_ id, then the block
    in deltas (tool input in pieces), message_delta with stop_reason and usage, message_stop."""
    api.script = [ToolUse("Bash", {"command": "echo hi"}, id="toolu_1")]
    body = {**MAIN, "messages": [{"role": "user", "content": "hi"}]}

    status, headers, raw = post(api, "/v1/messages?beta=true", body)

    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    events = sse_events(raw)
    assert [e for e, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == event for event, data in events)
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert start["usage"]["input_tokens"] > 0
    assert events[2][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {},
    }
    partial = "".join(data["delta"]["partial_json"] for event, data in events[3:6])
    assert json.loads(partial) == {"command": "echo hi"}
    assert events[7][1]["delta"]["stop_reason"] == "tool_use"
    assert events[7][1]["usage"]["output_tokens"] > 0
    assert api.main_requests()[0].body == body


def test_standin_answers_side_and_compaction_requests_without_using_the_script(
    api: StandinAPI,
) -> None:
    """Only model turns take scripted replies: a side call (no tools, not streamed), a
    compaction and the other endpoints leave the script alone; an exhausted script says
    done_text."""
    api.script = [Text("scripted")]
    side = {
        "model": "claude-haiku-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "title?"}],
    }
    compact = {
        **MAIN,
        "messages": [{"role": "user", "content": [{"type": "text", "text": COMPACT_MARK}]}],
    }

    status, _, raw = post(api, "/v1/messages", side)
    assert status == 200
    assert json.loads(raw)["content"] == [{"type": "text", "text": api.side_text}]
    status, _, raw = post(api, "/v1/messages", compact)
    assert "<summary>" in "".join(
        d["delta"].get("text", "") for e, d in sse_events(raw) if e == "content_block_delta"
    )
    assert post(api, "/v1/messages/count_tokens", side)[0] == 200
    assert post(api, "/v1/nowhere", {})[0] == 404
    assert api.script == [Text("scripted")]

    for expected in ("scripted", api.done_text):
        _, _, raw = post(api, "/v1/messages", {**MAIN, "messages": []})
        deltas = [d["delta"]["text"] for e, d in sse_events(raw) if e == "content_block_delta"]
        assert "".join(deltas) == expected
    assert [r.kind for r in api.requests] == ["side", "compact", "other", "other", "main", "main"]


@pytest.mark.slow
def test_user_prompt_submit_context_reaches_the_request(project: Project, api: StandinAPI) -> None:
    """A UserPromptSubmit hook's additionalContext is in the very request that answers the
    prompt; the session id given with --session-id is the one the client and hooks use."""
    project.command_hook("UserPromptSubmit", context_output("UserPromptSubmit", "MARKER-1"))
    api.script = [Text("hello back")]

    run = project.run(api, "say hello")

    assert run.result == "hello back"
    assert run.output is not None and run.output["session_id"] == project.session_id
    [request] = api.main_requests()
    assert request.headers["x-claude-code-session-id"] == project.session_id
    assert api.requests_with_text("MARKER-1") == [request]
    # The context is a mid-conversation system message right after the prompt's user message.
    assert message_after(request.messages, "say hello") == {
        "role": "system",
        "content": AnyStr(ending="\n\nUserPromptSubmit hook additional context: MARKER-1"),
    }
    [payload] = [p for p in project.payloads() if p["hook_event_name"] == "UserPromptSubmit"]
    assert payload["prompt"] == "say hello"
    assert payload["session_id"] == project.session_id
    assert payload["$env"] == {
        "CLAUDE_CODE_SESSION_ID": project.session_id,
        "CLAUDE_PROJECT_DIR": str(project.dir),
    }


@pytest.mark.slow
def test_pre_tool_use_deny_becomes_an_error_result_and_the_command_does_not_run(
    project: Project, api: StandinAPI
) -> None:
    """A PreToolUse deny wins over --allowedTools: the command never runs and the model is
    told the hook's reason as an error tool result."""
    project.command_hook("PreToolUse", deny_output("REASON-2: not on this project"))
    api.script = [
        ToolUse("Bash", {"command": "touch made-by-bash", "description": "Make a file"}),
        Text("I was stopped."),
    ]

    run = project.run(api, "make a file")

    assert run.result == "I was stopped."
    [result] = api.tool_results()
    assert result.is_error
    assert "REASON-2: not on this project" in result.content
    assert not (project.dir / "made-by-bash").exists()
    [payload] = [p for p in project.payloads() if p["hook_event_name"] == "PreToolUse"]
    assert payload["tool_name"] == "Bash"
    assert payload["tool_input"]["command"] == "touch made-by-bash"


@pytest.mark.slow
def test_post_tool_use_context_reaches_the_request_after_the_tool_call(
    project: Project, api: StandinAPI
) -> None:
    """The scripted tool call really runs, and a PostToolUse hook's additionalContext arrives
    with its result in the next request (not before)."""
    project.command_hook("PostToolUse", context_output("PostToolUse", "MARKER-3"))
    api.script = [
        ToolUse("Bash", {"command": "echo ran > ran.txt && echo out", "description": "Run"}),
        Text("It ran."),
    ]

    run = project.run(api, "run it")

    assert run.result == "It ran."
    assert (project.dir / "ran.txt").read_text() == "ran\n"
    _first, second = api.main_requests()
    assert api.requests_with_text("MARKER-3") == [second]
    [result] = api.tool_results()
    assert not result.is_error
    assert result.content == "out"
    # The context rides in the tool result's user message, as a <system-reminder> text block.
    message = user_message_with(second.messages, "MARKER-3")
    assert any(b.get("type") == "tool_result" for b in message["content"])
    [block] = [b for b in message["content"] if "MARKER-3" in b.get("text", "")]
    assert block["text"].startswith("<system-reminder>")


@pytest.mark.slow
def test_http_hooks_add_context_and_deny(
    project: Project, api: StandinAPI, hook_server: HookServer
) -> None:
    """``type: http`` hooks get the same payload by POST and their JSON answer works as a
    command hook's stdout (no ``allowedHttpHookUrls`` needed)."""
    hook_server.answers = {
        "/prompt": context_output("UserPromptSubmit", "MARKER-4"),
        "/pre": deny_output("REASON-5 from http"),
    }
    project.http_hook("UserPromptSubmit", hook_server.url + "/prompt")
    project.http_hook("PreToolUse", hook_server.url + "/pre")
    api.script = [
        ToolUse("Bash", {"command": "touch made-by-http", "description": "Make a file"}),
        Text("Stopped by http."),
    ]

    run = project.run(api, "try http hooks")

    assert run.result == "Stopped by http."
    assert hook_server.events("/prompt") == ["UserPromptSubmit"]
    assert hook_server.events("/pre") == ["PreToolUse"]
    [(_, prompt_payload), (_, pre_payload)] = hook_server.received
    assert prompt_payload["prompt"] == "try http hooks"
    assert prompt_payload["session_id"] == project.session_id
    assert pre_payload["tool_input"]["command"] == "touch made-by-http"
    first, _second = api.main_requests()
    assert first in api.requests_with_text("MARKER-4")
    [result] = api.tool_results()
    assert result.is_error
    assert "REASON-5 from http" in result.content
    assert not (project.dir / "made-by-http").exists()


@pytest.mark.slow
def test_resume_continues_the_same_session(project: Project, api: StandinAPI) -> None:
    """run_claude(resume=True) continues the session: the whole history goes to the model."""
    api.script = [Text("first answer"), Text("second answer")]

    project.run(api, "first prompt")
    run = project.run(api, "second prompt", resume=True)

    assert run.result == "second answer"
    assert run.output is not None and run.output["session_id"] == project.session_id
    last = api.main_requests()[-1]
    assert last.contains("first prompt") and last.contains("first answer")
    assert last.contains("second prompt")


@pytest.mark.slow
def test_compaction_does_not_use_the_script(project: Project, api: StandinAPI) -> None:
    """``/compact`` asks the model for a summary with a main-turn-shaped request; the stand-in
    answers it itself, so scripts need not reckon with compactions."""
    # A compaction needs more than one exchange ("Not enough messages to compact." otherwise).
    api.script = [
        ToolUse("Bash", {"command": "echo x", "description": "Print x"}),
        Text("before"),
        Text("after"),
    ]

    project.run(api, "first prompt")
    project.run(api, "/compact", resume=True)
    run = project.run(api, "next prompt", resume=True)

    assert run.result == "after"
    kinds = [r.kind for r in api.requests if r.kind != "other"]
    assert kinds == ["main", "main", "compact", "main"]
    assert api.main_requests()[-1].contains(api.compact_summary)
