r"""A scripted stand-in for the Anthropic Messages API on loopback, for driving the real Claude
Code client (``claude -p``) in end-to-end tests.

Why: the hooks memdash installs only prove themselves inside the real client, whose payloads,
timing and use of hook output change between releases. Pointing the client's
``ANTHROPIC_BASE_URL`` at this server lets a test decide every model turn (text, or a tool call
the client then really executes) and inspect every request the client makes, offline and in
well under a second per turn.

What Claude Code 2.1.197 sends (seen by experiment, ``claude -p … --output-format json`` with
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``; also without it, and with ``--resume``,
``--continue``, ``/compact``, a subagent, WebFetch and a Bash call):

- ``HEAD /`` once at start-up (a connectivity probe; answered 200, empty).
- ``POST /v1/messages?beta=true`` for every model turn, always ``"stream": true``, with headers
  ``x-api-key``, ``anthropic-version: 2023-06-01``, ``anthropic-beta: claude-code-20250219,…``,
  ``x-app: cli``, ``User-Agent: claude-cli/2.1.197 (external, sdk-cli)`` and
  ``X-Claude-Code-Session-Id: <session id>``. The body has ``model`` (``claude-opus-4-8`` by
  default), ``max_tokens: 64000``, ``thinking: {"type": "adaptive"}``, ``context_management``,
  ``output_config: {"effort": "high"}``, ``metadata.user_id`` (a JSON string holding
  ``session_id``), ``system`` (a list of text blocks: a billing header line, then the prompt),
  ``tools`` (24 of them: Agent, Bash, Edit, Read, Write, …) and ``messages``. ``messages`` may
  hold ``{"role": "system", "content": "…"}`` entries (agent types and skills listings, beta
  ``mid-conversation-system``), besides user and assistant ones.
- A subagent's turns are the same kind of request (21 tools; the billing header in ``system``
  carries ``cc_is_subagent=true``); they are model turns, so they take the next scripted reply.
- ``/compact`` sends the same shape as a main turn (same model, tools and system), whose last user
  message ends with a text block beginning "CRITICAL: Respond with TEXT ONLY" and holding "Your
  task is to create a detailed summary of the conversation so far"; whatever text comes back
  becomes the summary. Recognised here as ``kind == "compact"`` and answered with a canned
  ``<analysis>``/``<summary>`` reply, so a compaction does not eat the script.
- No side requests were seen in ``-p`` mode: no count_tokens, no model list, no small-model
  ("haiku") call for titles or summaries, no non-streaming call, not even for a Bash call without
  a ``description`` or a command that needs prefix analysis. Should a later client make one, it
  is recognised (no ``tools``, or not streaming) as ``kind == "side"`` and answered with
  ``side_text`` without consuming the script; ``/v1/messages/count_tokens`` and ``GET
  /v1/models`` are answered too, anything else gets the API's JSON 404.
- WebFetch first asks claude.ai whether the domain is safe; offline that fails and the tool
  result is the error "Unable to verify if domain … is safe to fetch" (no request reaches here).

How hook output reaches the model (what :meth:`StandinAPI.requests_with_text` finds; command
and ``type: http`` hooks alike):

- UserPromptSubmit ``additionalContext``: in the ``{"role": "system", "content": "…"}`` message
  that follows the prompt's user message, as the line ``UserPromptSubmit hook additional
  context: <text>``. On a session's first turn that system message also holds the agent-types
  and skills listings, and the context is appended after them (``"\n\n"``-joined); on later
  turns it is a system message of its own. The prompt's user message itself is unchanged (a
  ``<system-reminder>`` with the current date, then the prompt).
- SessionStart ``additionalContext``: the start of that same first system message,
  ``SessionStart hook additional context: <text>\n\n…``.
- PostToolUse ``additionalContext``: in the user message carrying the ``tool_result``, a text
  block after it: ``{"type": "text", "text": "<system-reminder>\nPostToolUse:Bash hook
  additional context: <text>\n</system-reminder>"}``.
- PreToolUse ``permissionDecision: "deny"`` (it wins over ``--allowedTools``): the tool does not
  run and the result is ``{"type": "tool_result", "content": "<permissionDecisionReason>",
  "is_error": true, …}``; the run's JSON lists it under ``permission_denials``.

The stream follows the real API's SSE: ``message_start`` (``msg_…`` id, ``usage`` with
``input_tokens`` ≈ request size / 4), ``ping``, per block ``content_block_start`` /
``content_block_delta`` (``text_delta`` or ``input_json_delta``, a tool's input arriving in
pieces) / ``content_block_stop``, then ``message_delta`` (``stop_reason`` ``end_turn`` or
``tool_use``, ``usage.output_tokens``) and ``message_stop``, chunked, with a ``request-id``
response header.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self

#: Text in the client's compaction request (its last user message), and nowhere else.
COMPACT_MARK = "Your task is to create a detailed summary of the conversation so far"

Kind = Literal["main", "compact", "side", "other"]


@dataclass(frozen=True)
class Text:
    """A scripted assistant text block."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """A scripted tool call; the client runs it (subject to hooks and permissions) and sends the
    result back in its next request."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: "toolu_" + uuid.uuid4().hex[:24])


@dataclass(frozen=True)
class ApiError:
    """A scripted API failure: the HTTP status and the API's JSON error body. The client retries
    429 and 5xx; a 400 ends the turn (``StopFailure`` instead of ``Stop``)."""

    status: int = 400
    type: str = "invalid_request_error"
    message: str = "scripted error"


Block = Text | ToolUse
#: One scripted answer: a block, several blocks in one assistant message, or an error.
Reply = Block | Sequence[Block] | ApiError


@dataclass(frozen=True)
class Request:
    """One request as the client sent it, in arrival order."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, the raw text if it was not JSON, None if empty
    kind: Kind
    reply: Reply | None = None  # what the stand-in answered, for messages requests

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    def contains(self, s: str) -> bool:
        """True when ``s`` occurs in any string of the request's messages or system prompt."""
        if not isinstance(self.body, dict):
            return False
        return any(s in t for t in _strings([self.body.get("system"), self.body.get("messages")]))


@dataclass(frozen=True)
class ToolResult:
    """A ``tool_result`` block the client sent back; ``content`` is its text, joined."""

    tool_use_id: str
    is_error: bool
    content: str
    raw: dict[str, Any]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def classify(method: str, path: str, body: Any) -> Kind:
    """Which sort of request this is: a model turn (``main``, including a subagent's), the
    client's compaction call, a side call (no tools, or not streaming: small-model titles,
    summaries, quota checks), or something other than a messages request."""
    if method != "POST" or path.split("?", 1)[0] != "/v1/messages" or not isinstance(body, dict):
        return "other"
    if not body.get("stream") or not body.get("tools"):
        return "side"
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is not None and COMPACT_MARK in _text_of(last_user.get("content")):
        return "compact"
    return "main"


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class StandinAPI:
    """The server: ``with StandinAPI([ToolUse("Bash", {...}), Text("done")]) as api:`` then run
    the client with ``ANTHROPIC_BASE_URL=api.url``. Each main request takes the next reply of
    ``script``; when it runs out the answer is ``Text(done_text)``."""

    def __init__(
        self,
        script: Sequence[Reply] = (),
        *,
        done_text: str = "Done.",
        side_text: str = "Stand-in side answer.",
        compact_summary: str = "The stand-in's summary of the conversation so far.",
    ) -> None:
        self.script: list[Reply] = list(script)
        self.done_text = done_text
        self.side_text = side_text
        self.compact_summary = compact_summary
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- what the client sent ----

    def main_requests(self) -> list[Request]:
        """The model-turn requests (the main conversation and any subagent's), in order."""
        with self._lock:
            return [r for r in self.requests if r.kind == "main"]

    def requests_with_text(self, s: str) -> list[Request]:
        """The main requests in whose messages or system prompt ``s`` occurs."""
        return [r for r in self.main_requests() if r.contains(s)]

    def tool_results(self) -> list[ToolResult]:
        """Every ``tool_result`` block the client sent, once each (later requests repeat the
        history), in the order they first appeared."""
        seen: dict[str, ToolResult] = {}
        for request in self.main_requests():
            for message in request.messages:
                content = message.get("content")
                if message.get("role") != "user" or not isinstance(content, list):
                    continue
                for block in content:
                    if not isinstance(block, dict) or block.get("type") != "tool_result":
                        continue
                    tool_use_id = str(block.get("tool_use_id"))
                    if tool_use_id not in seen:
                        seen[tool_use_id] = ToolResult(
                            tool_use_id=tool_use_id,
                            is_error=bool(block.get("is_error")),
                            content=_text_of(block.get("content")),
                            raw=block,
                        )
        return list(seen.values())

    # ---- answering ----

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> Request:
        kind = classify(method, path, body)
        reply: Reply | None = None
        with self._lock:
            if kind == "main":
                reply = self.script.pop(0) if self.script else Text(self.done_text)
            elif kind == "compact":
                reply = Text(
                    "<analysis>Stand-in.</analysis>\n<summary>"
                    + self.compact_summary
                    + "</summary>"
                )
            elif kind == "side":
                reply = Text(self.side_text)
            request = Request(method, path, headers, body, kind, reply)
            self.requests.append(request)
        return request


def _handler(api: StandinAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams, as the real API

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the record is api.requests

        def _body(self) -> Any:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                raw = b""
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    raw += self.rfile.read(size)
                    self.rfile.readline()
                self.rfile.readline()
            else:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _handle(self, method: str) -> None:
            body = self._body() if method == "POST" else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = api._record(method, self.path, headers, body)
            # The client may give up on an answer (aborted, timed out): nothing to do then.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(request)

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _json(self, status: int, data: Any) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _answer(self, request: Request) -> None:
            route = request.path.split("?", 1)[0]
            body = request.body if isinstance(request.body, dict) else {}
            if request.reply is not None:
                self._reply(request.reply, body)
            elif route == "/" and request.method in ("HEAD", "GET"):
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
            elif route == "/v1/messages/count_tokens" and request.method == "POST":
                self._json(200, {"input_tokens": _input_tokens(body)})
            elif route == "/v1/models" and request.method == "GET":
                models = [{"type": "model", "id": m, "display_name": m} for m in _MODELS]
                self._json(
                    200,
                    {
                        "data": models,
                        "has_more": False,
                        "first_id": _MODELS[0],
                        "last_id": _MODELS[-1],
                    },
                )
            else:
                self._json(
                    404,
                    {
                        "type": "error",
                        "error": {"type": "not_found_error", "message": f"no {route} here"},
                    },
                )

        def _reply(self, reply: Reply, body: dict[str, Any]) -> None:
            if isinstance(reply, ApiError):
                self._json(
                    reply.status,
                    {"type": "error", "error": {"type": reply.type, "message": reply.message}},
                )
                return
            blocks: list[Block] = [reply] if isinstance(reply, Text | ToolUse) else list(reply)
            stop = "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn"
            message_id = "msg_" + uuid.uuid4().hex[:24]
            model = str(body.get("model") or _MODELS[0])
            usage = {
                "input_tokens": _input_tokens(body),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": _output_tokens(blocks),
            }
            if not body.get("stream"):
                self._json(
                    200,
                    {
                        "id": message_id,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [_final(b) for b in blocks],
                        "stop_reason": stop,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                )
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("request-id", "req_" + uuid.uuid4().hex[:24])
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self._chunk(
                _sse(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": message_id,
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": {**usage, "output_tokens": 1},
                        },
                    },
                )
            )
            self._chunk(_sse("ping", {"type": "ping"}))
            for index, block in enumerate(blocks):
                for event, data in _block_events(index, block):
                    self._chunk(_sse(event, data))
            self._chunk(
                _sse(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": usage["output_tokens"]},
                    },
                )
            )
            self._chunk(_sse("message_stop", {"type": "message_stop"}))
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


_MODELS = ["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5"]


def _input_tokens(body: dict[str, Any]) -> int:
    size = len(json.dumps([body.get("system"), body.get("messages"), body.get("tools")]))
    return max(1, size // 4)


def _output_tokens(blocks: Sequence[Block]) -> int:
    size = sum(len(b.text) if isinstance(b, Text) else len(json.dumps(b.input)) for b in blocks)
    return max(1, size // 4)


def _final(block: Block) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}


def _block_events(index: int, block: Block) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of one content block, as the real API streams them: an empty block, its
    content in deltas, the stop."""
    if isinstance(block, Text):
        start: dict[str, Any] = {"type": "text", "text": ""}
        half = len(block.text) // 2
        deltas = [{"type": "text_delta", "text": p} for p in (block.text[:half], block.text[half:])]
    else:
        start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
        text = json.dumps(block.input)
        half = len(text) // 2
        deltas = [
            {"type": "input_json_delta", "partial_json": p} for p in ("", text[:half], text[half:])
        ]
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": start},
    )
    for delta in deltas:
        if delta.get("text") != "":
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
    yield "content_block_stop", {"type": "content_block_stop", "index": index}
