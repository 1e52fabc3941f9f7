"""Claude Code transcripts (``~/.claude/projects/<project>/<session>.jsonl``) into the store.

Claude Code appends one JSON object per line. The lines recorded here are ``user`` and
``assistant`` entries (``uuid``, ``parentUuid``, ``isSidechain``, ``sessionId``, ``requestId``,
``timestamp``, ``cwd``, ``message: {id, role, model, content, usage}``); every other type
(``summary``, ``system``, ``file-history-snapshot``, ``progress``…) is readable but not
conversation, and is counted as ``ignored``.

How a line becomes store data (all through the public store API):

- **One line, one message**, stored with :meth:`ConversationMemory.append_unique` under the
  line's ``uuid``. Claude Code writes one assistant response as several lines (one per content
  block, all with the same ``message.id``); keeping them as separate messages means a replay, or
  a read that stopped in the middle of a response, can never lose or double a block.
  ``context.message_id`` ties the parts of one response together.
- **Roles:** ``assistant`` lines are ``assistant``; a ``user`` line whose blocks are all
  ``tool_result`` is ``tool``; any other ``user`` line is ``user``.
  Blocks become text: ``text`` as is, ``thinking`` as ``[thinking] …``, ``tool_use`` as
  ``[tool_use Name] {input JSON}``, images and other non-text blocks as ``[image]`` etc.; a
  failed tool result starts ``[error]``.
- **Sidechains** (``isSidechain: true``: subagent work, in the session file or in
  ``<session>/subagents/agent-*.jsonl``) are recorded into the parent session (their
  ``sessionId``), marked ``context.sidechain = True`` (and ``context.agent_id``): their tokens
  were spent by that session, and the dashboard can tell them apart.
- **Huge content** is cut to fit :data:`store.conversation.MAX_MESSAGE_BYTES`, with a visible
  note in the text and ``context.cut_bytes`` / ``context.original_bytes``: never refused, never
  cut silently.
- **Token usage**, once per API request: request id ``f"{message.id}:{requestId}"``, tokens the
  sum of ``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens`` and
  ``cache_read_input_tokens`` (as ccusage counts them), the four kept as the breakdown, with the
  model. The lines of one response repeat the usage (the earlier ones may be partial while it
  streams), so the field-wise maximum over the response's lines is recorded. It is recorded with
  ``enforce_limit=False`` (it was already spent) and only when the response's first line read in
  this call was new to the store: the budget remembers request ids for 24 hours only, the
  conversation remembers message ids for good, so importing the same transcript again next week
  still counts nothing twice. The response's total also rides on its first line's message as
  ``tokens`` (a copy of the response in another file, e.g. a subagent's, carries it too; the
  budget counts it once). Responses of the ``<synthetic>`` model and empty usages are not
  requests.
- **Session context** (``MemoryKey("session", <id>, "context")``, what the dashboard shows and
  edits): written only when the session has none yet, as ``{"agent": "claude-code", "cwd",
  "transcript_path", "model", "git_branch", "version"}``; a context written by a hook or by hand
  is never overwritten. Without expiry: a transcript is history.

Malformed lines (not JSON, not an object, a ``user``/``assistant`` entry of the wrong shape, no
session) are skipped and counted. Only complete lines (ending in a newline) are read; the
returned offset is just past the last one, so a caller that saves it reads on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from store.budget import COUNTS, MAX_MODEL_LENGTH, MAX_TOKENS, check_request_id
from store.conversation import MAX_MESSAGE_BYTES, PREVIEW_CHARS
from store.keys import SessionKeys, check_part
from store.memory import MemoryStore, SessionMemory, VersionConflictError

if TYPE_CHECKING:
    from store.connection import Connection

AGENT = "claude-code"
SOURCE = "claude-code-transcript"
"""``context.source`` of every message read from a transcript (the hooks' say ``…-hook``)."""
SESSION_TOKEN_LIMIT = 1_000_000_000
"""Limit stored with a session's budget when a transcript creates it. Claude Code counts cache
reads, so a long session runs to tens of millions of tokens; usage is recorded past the limit
anyway. An operator's ``set_limit`` (e.g. ``l`` in the dashboard) replaces it."""
BATCH_LINES = 1000
BATCH_BYTES = 8 * 1024 * 1024
"""Lines (or bytes of them) parsed before they are recorded, whichever comes first; a batch
ends only between two responses, so a response's usage is read whole. A batch is written in
two round trips (its messages, then its responses' usage), so memory stays bounded whatever
the file's size."""
READ_BYTES = 1024 * 1024
"""The file is read in chunks of this many bytes."""
TICK_LINES = 32
"""Lines parsed between two looks at the batch being written (see record_transcript)."""
SYNTHETIC_MODEL = "<synthetic>"
MAX_CONTENT_BYTES = MAX_MESSAGE_BYTES - 16 * 1024
"""Most bytes (as JSON) of a message's content; the rest is room for its context and fields."""


_Count = Annotated[int, Field(ge=0, le=10**12)]
_Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]


@dataclass
class TranscriptResult:
    """What one :func:`record_transcript` call read and wrote."""

    offset: int
    """Byte offset just past the last complete line read: where the next call starts."""
    sessions: set[str] = field(default_factory=set)
    """Session ids seen in user/assistant lines."""
    messages_added: int = 0
    duplicates: int = 0
    """Messages already in the store (by line uuid), skipped."""
    usage_added: int = 0
    """Token-usage records newly recorded (one per API request)."""
    malformed: int = 0
    """Lines skipped as unreadable."""
    ignored: int = 0
    """Readable lines not recorded: not conversation (summary, system, snapshots, progress…)."""
    truncated: int = 0
    """Messages whose content was cut to fit the store (each says so in its text)."""
    lines: int = 0
    """Complete lines read (blank ones included)."""
    usage_unattributed: int = 0
    """Lines that carry token usage but are no user/assistant entry memdash can record (no
    ``type``/``uuid``): ccusage counts such usage; memdash reports how many it could not."""


class _Usage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    input_tokens: _Count | None = None
    output_tokens: _Count | None = None
    cache_creation_input_tokens: _Count | None = None
    cache_read_input_tokens: _Count | None = None

    def counts(self) -> tuple[int, int, int, int]:
        return (
            self.input_tokens or 0,
            self.output_tokens or 0,
            self.cache_creation_input_tokens or 0,
            self.cache_read_input_tokens or 0,
        )


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: _Id | None = None
    role: str | None = None
    model: str | None = None
    content: str | list[dict[str, Any]] = ""
    usage: _Usage | None = None


class _Line(BaseModel):
    """A user or assistant entry of a transcript, as much of it as is recorded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["user", "assistant"]
    uuid: _Id
    parentUuid: str | None = None
    # Optional flags: real transcripts write `"isMeta": null`; null means not set.
    isSidechain: bool | None = False
    isMeta: bool | None = False
    sessionId: _Id | None = None
    requestId: _Id | None = None
    agentId: str | None = None
    timestamp: datetime | None = None
    cwd: str | None = None
    gitBranch: str | None = None
    version: str | None = None
    message: _Message


@dataclass
class _Entry:
    """A parsed line, ready to record."""

    line: _Line
    session: str
    request: str | None  # usage key, for assistant lines with usage
    deferred: bool = False  # of a response that may still grow: its usage waits


@dataclass
class _Request:
    """One API response's usage: the field-wise maximum over its lines in a batch."""

    counts: tuple[int, int, int, int]
    model: str | None
    timestamp: datetime | None
    first_uuid: str

    @property
    def tokens(self) -> int:
        return sum(self.counts)


async def record_transcript(
    conn: Connection,
    path: os.PathLike[str] | str,
    *,
    offset: int = 0,
    session_id: str | None = None,
    save_context: bool = True,
    progress: Callable[[int], object] | None = None,
    complete: bool = True,
) -> TranscriptResult:
    """Record the transcript's complete lines from byte ``offset`` on; idempotent.

    A file now shorter than ``offset`` (replaced or truncated) is read from 0. ``session_id``
    puts every line in that session (default: each line's ``sessionId``). ``save_context=False``
    skips the session-context write (for a hook that keeps the context itself); otherwise it is
    one compare-and-set per session, which does nothing if a context exists. ``progress`` is
    called with the offset reached after each batch of lines (for a progress bar).

    ``complete=False`` says the agent may still be writing (a hook in mid-turn): the lines of a
    response the file ends with are recorded, but its usage is left for a later call (the
    returned offset is before the response), since it is only final with its last line. A call
    from that offset counts it; the turn's ``Stop`` reads with the default.

    Raises OSError when the file cannot be read and the store's errors (redis.RedisError) when
    it is unreachable; what a line holds never raises (see the module docstring).
    """
    if session_id is not None:
        session_id = check_part("session_id", session_id)
    source = os.fspath(path)
    result = TranscriptResult(offset=offset)
    contexts: dict[str, dict[str, Any]] = {}
    with open(source, "rb") as file:
        if offset < 0 or os.fstat(file.fileno()).st_size < offset:
            offset = 0
        file.seek(offset)
        result.offset = offset
        # Reading from where an earlier read stopped short of a response: that response's first
        # line is stored already, but its usage was left for now.
        recorder = _Recorder(conn, result, resuming=offset > 0)

        async def write(batch: list[_Entry], done: int) -> None:
            await recorder.record(batch)
            if progress is not None:
                progress(done)

        # A batch is written while the next one is parsed: the store works while Python reads.
        # Batches go out one after the other (a batch waits for the one before), and the parse
        # pauses every TICK_LINES lines to let the loop send and read for the batch in flight.
        writing: asyncio.Task[None] | None = None
        try:
            for batch, done in _batches(file, result, session_id, complete):
                if batch is None:
                    if writing is not None and not writing.done():
                        await asyncio.sleep(0)
                    continue
                for entry in batch:
                    _remember_context(contexts, entry, source)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write(batch, done))
                await asyncio.sleep(0)  # let it send
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
    if save_context and contexts:
        memory = MemoryStore(conn)
        for session, context in contexts.items():
            # Only if absent: a context already there (a hook's, an operator's) wins.
            with contextlib.suppress(VersionConflictError):
                await memory.set(SessionMemory.context_key(session), context, expected_version=0)
    return result


def _lines(file: Any) -> Iterator[bytes]:
    """The file's complete lines (each ending in a newline), read in large chunks; a last line
    without its newline is still being written: the next call reads it whole."""
    rest = b""
    while chunk := file.read(READ_BYTES):
        lines = chunk.split(b"\n")
        if rest:
            lines[0] = rest + lines[0]
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"


def _batches(
    file: Any, result: TranscriptResult, session_id: str | None, complete: bool
) -> Iterator[tuple[list[_Entry] | None, int]]:
    """Parsed entries of the complete lines, in batches that end between two responses, each
    with the offset just past the lines it accounts for (what a progress bar may call done);
    every TICK_LINES lines a ``None`` batch (a moment for the caller to do something else).

    Unless ``complete``, a response the file ends with is held back (``result.offset`` stays
    before its first line): more of its lines, with fuller usage, may still come.
    """
    batch: list[_Entry] = []
    size = 0
    previous_response: str | None = None
    trailing: tuple[int, int, int] | None = None  # the last response: batch index, offset, lines
    for raw in _lines(file):
        starts = result.offset
        result.offset += len(raw)
        result.lines += 1
        if not result.lines % TICK_LINES:
            yield None, starts
        entry = _parse(raw, result, session_id)
        if entry is None:
            trailing = None  # another line follows the response: it is finished
            continue
        response = entry.line.message.id if entry.line.type == "assistant" else None
        full = len(batch) >= BATCH_LINES or size >= BATCH_BYTES
        if full and (response is None or response != previous_response):
            yield batch, starts
            batch, size = [], 0
        if response is None:
            trailing = None
        elif response != previous_response:
            trailing = (len(batch), starts, result.lines - 1)
        batch.append(entry)
        size += len(raw)
        previous_response = response
    if not complete and trailing is not None:
        # Its lines are recorded now (the dashboard shows them), its usage when it is whole:
        # the offset stays before it, and the next read, starting at its first line, counts it.
        index, result.offset, result.lines = trailing
        for entry in batch[index:]:
            entry.deferred = True
    if batch:
        yield batch, result.offset


def _parse(raw: bytes, result: TranscriptResult, session_id: str | None) -> _Entry | None:
    text = raw.strip()
    if not text:
        return None
    try:
        data = _loads(text)
    except ValueError:  # not JSON, or not UTF-8
        result.malformed += 1
        return None
    if not isinstance(data, dict):
        result.malformed += 1
        return None
    if data.get("type") not in ("user", "assistant"):
        if _has_usage(data):
            result.usage_unattributed += 1
        result.ignored += 1
        return None
    try:
        line = _Line.model_validate(data)
    except ValidationError:
        if _has_usage(data):
            result.usage_unattributed += 1
        result.malformed += 1
        return None
    session = session_id or line.sessionId
    if session is None:
        result.malformed += 1
        return None
    result.sessions.add(session)
    request = None
    message = line.message
    if line.type == "assistant" and message.usage is not None and message.model != SYNTHETIC_MODEL:
        request = f"{message.id or 'line-' + line.uuid}:{line.requestId or '-'}"
    return _Entry(line, session, request)


def _loads(text: bytes) -> Any:
    """``json.loads(text)``, sooner: pydantic_core's parser (~3x faster) takes all but a few of
    what json.loads takes, with the same result; those few (a byte-order mark, surrogates
    encoded in UTF-8 or escaped alone) go to json.loads, so what is read is exactly as before."""
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        return json.loads(text)


def _has_usage(data: dict[str, Any]) -> bool:
    message = data.get("message")
    return isinstance(message, dict) and isinstance(message.get("usage"), dict)


def _remember_context(contexts: dict[str, dict[str, Any]], entry: _Entry, source: str) -> None:
    """What the session's context would say: from its main (not sidechain) lines."""
    line = entry.line
    if line.isSidechain:
        return
    context = contexts.get(entry.session)
    if context is None:
        context = contexts[entry.session] = {"agent": AGENT, "transcript_path": source}
    for key, value in (
        ("cwd", line.cwd),
        ("git_branch", line.gitBranch),
        ("version", line.version),
    ):
        if value and key not in context:
            context[key] = value
    model = line.message.model
    if line.type == "assistant" and model and model != SYNTHETIC_MODEL:
        context["model"] = model  # the latest


class _Recorder:
    """Writes batches of entries with the scripts of ConversationMemory.append_unique and
    TokenBudgetTracker.record_usage, pipelined: a batch's messages in one round trip (each its
    own atomic, id-deduplicated append, in order), then the usage of the responses whose first
    line was new to the store in a second one."""

    def __init__(self, conn: Connection, result: TranscriptResult, *, resuming: bool) -> None:
        self.conn = conn
        self.result = result
        self._resuming = resuming  # the first entry read may be a response left open before
        self._resumed: str | None = None

    async def record(self, batch: list[_Entry]) -> None:
        requests = _requests(batch)
        appends: list[tuple[SessionKeys, tuple[str], tuple[bytes, bytes, str, str]]] = []
        planned: list[tuple[_Entry, _Request | None, bool]] = []
        for entry in batch:
            if self._resuming:
                self._resuming = False
                self._resumed = entry.request
            request = requests.get(entry.request) if entry.request else None
            first = request is not None and request.first_uuid == entry.line.uuid
            counted = first and not entry.deferred and request is not None and request.tokens
            message = _message(entry.line, request.tokens if counted and request else None)
            try:
                text, head = _encode(message)
            except ValueError:  # the store would refuse what we made of the line
                self.result.malformed += 1
                continue
            keys = self.conn.session(entry.session)
            appends.append((keys, (keys.key("conversation"),), (text, head, "", entry.line.uuid)))
            planned.append((entry, request if counted else None, "cut_bytes" in message["context"]))
        replies = await self.conn.run_many("conversation_append", appends)
        debits: list[tuple[SessionKeys, tuple[()], list[object]]] = []
        for (entry, request, cut), reply in zip(planned, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            _index, _first, written = reply
            if not written:  # a message with this id is stored already: nothing was written
                self.result.duplicates += 1
                if request is not None and entry.request == self._resumed:
                    debits.append(_debit(self.conn, entry, request))  # the response left open
                continue
            self.result.messages_added += 1
            if cut:
                self.result.truncated += 1
            if request is not None:
                debits.append(_debit(self.conn, entry, request))
        for reply in await self.conn.run_many("budget_debit", debits):
            if isinstance(reply, Exception):
                raise reply
            if reply[0]:  # 0: the request id was counted already (within 24 h)
                self.result.usage_added += 1


def _debit(
    conn: Connection, entry: _Entry, request: _Request
) -> tuple[SessionKeys, tuple[()], list[object]]:
    """The budget_debit call of ``TokenBudgetTracker(session).record_usage(...,
    enforce_limit=False)`` for a response's usage (same checks, same arguments)."""
    model = request.model
    if model is not None:
        try:
            check_part("model", model)
        except ValueError:
            model = None
        if model is not None and len(model) > MAX_MODEL_LENGTH:
            model = None
    assert entry.request is not None
    request_id = check_request_id(entry.request[:256])
    tokens = request.tokens
    if tokens > MAX_TOKENS:
        raise ValueError(f"tokens must be between 0 and {MAX_TOKENS}, not {tokens}")
    args: list[object] = [request_id, tokens, SESSION_TOKEN_LIMIT, "record", 1]
    if entry.line.isSidechain:
        args += ("sidechain", 1)
    if request.timestamp is not None:
        args += ("at", round(request.timestamp.timestamp() * 1000))
    for name, count in zip(COUNTS, request.counts, strict=True):
        args += (name, count)
    if model is not None:
        args += ("model", model)
    return conn.session(entry.session), (), args


def _encode(message: dict[str, Any]) -> tuple[bytes, bytes]:
    """What ``ConversationMemory.append`` sends for one of :func:`_message`'s messages: the
    stored JSON (without its index) and the event's head, as ``encode_message`` makes them
    (plain JSON values only, so codec's tagging changes nothing). ValueError when too big."""
    content = message["content"]
    timestamp = message.get("timestamp") or datetime.now(UTC)
    stamp = timestamp.isoformat()
    stored: dict[str, Any] = {
        "role": message["role"],
        "content": content,
        "timestamp": stamp,
        "context": message["context"],
    }
    head: dict[str, Any] = {
        "role": message["role"],
        "preview": content[:PREVIEW_CHARS],
        "length": len(content),
        "timestamp": stamp,
    }
    for name in ("tokens", "model"):
        if name in message:
            stored[name] = head[name] = message[name]
    text = pydantic_core.to_json(stored)
    if len(text) > MAX_MESSAGE_BYTES:
        raise ValueError(f"message is {len(text)} bytes as JSON; the limit is {MAX_MESSAGE_BYTES}")
    return text, pydantic_core.to_json(head)[:-1]


def _requests(batch: list[_Entry]) -> dict[str, _Request]:
    requests: dict[str, _Request] = {}
    for entry in batch:
        if entry.request is None:
            continue
        message = entry.line.message
        assert message.usage is not None
        counts = message.usage.counts()
        known = requests.get(entry.request)
        if known is None:
            requests[entry.request] = _Request(
                counts, message.model, entry.line.timestamp, entry.line.uuid
            )
        else:
            known.counts = _max_counts(known.counts, counts)
            known.model = known.model or message.model
    return requests


def _max_counts(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _message(line: _Line, tokens: int | None) -> dict[str, Any]:
    """The ConversationMessage dict for one line."""
    message = line.message
    context: dict[str, Any] = {"source": SOURCE, "uuid": line.uuid}
    if line.parentUuid:
        context["parent_uuid"] = line.parentUuid
    if line.isSidechain:
        context["sidechain"] = True
        if line.agentId:
            context["agent_id"] = line.agentId
    if line.isMeta:
        context["meta"] = True
    if message.id:
        context["message_id"] = message.id
    if line.requestId:
        context["request_id"] = line.requestId
    content, role = _render(line, context)
    content, cut, total = fit(content, MAX_CONTENT_BYTES)
    if cut:
        context["cut_bytes"] = cut
        context["original_bytes"] = total
    out: dict[str, Any] = {"role": role, "content": content, "context": context}
    if line.timestamp is not None:
        out["timestamp"] = line.timestamp
    if tokens:
        out["tokens"] = tokens
    if line.type == "assistant" and message.model and len(message.model) <= 256:
        out["model"] = message.model
    return out


def _role(line: _Line) -> str:
    """assistant; tool for a user line of tool results only; else user."""
    if line.type == "assistant":
        return "assistant"
    content = line.message.content
    tools_only = isinstance(content, list) and content
    if tools_only and all(block.get("type") == "tool_result" for block in content):
        return "tool"
    return "user"


def _render(line: _Line, context: dict[str, Any]) -> tuple[str, str]:
    """(content, role) of a line; notes block types and tool ids in ``context``."""
    content = line.message.content
    role = _role(line)
    if isinstance(content, str):
        return content, role
    parts: list[str] = []
    kinds: list[str] = []
    tool_uses: list[dict[str, str]] = []
    results: list[str] = []
    for block in content:
        kind = block.get("type")
        kind = kind if isinstance(kind, str) else "unknown"
        kinds.append(kind)
        if kind == "text":
            parts.append(_text(block.get("text")))
        elif kind == "thinking":
            parts.append("[thinking] " + _text(block.get("thinking")))
        elif kind == "redacted_thinking":
            parts.append("[redacted thinking]")
        elif kind == "tool_use":
            name = _text(block.get("name")) or "?"
            tool_uses.append({"id": _text(block.get("id")), "name": name})
            parts.append(f"[tool_use {name}] " + _json(block.get("input")))
        elif kind == "tool_result":
            results.append(_text(block.get("tool_use_id")))
            text = _result_text(block.get("content"))
            if block.get("is_error") is True:
                context["is_error"] = True
                text = "[error] " + text
            parts.append(text)
        else:
            parts.append(f"[{kind}]")
    if kinds:
        context["blocks"] = kinds
    if tool_uses:
        context["tool_uses"] = tool_uses
    if results:
        context["tool_use_ids"] = results
    return "\n\n".join(parts), role


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _result_text(content: object) -> str:
    """A tool result's content: a string, or a list of text/image blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else _json(content)
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(_text(block.get("text")))
        elif isinstance(block, dict):
            parts.append(f"[{_text(block.get('type')) or 'block'}]")
        else:
            parts.append(_json(block))
    return "\n".join(parts)


def _json_size(text: str) -> int:
    """Bytes ``text`` takes inside the store's JSON (escapes included)."""
    return len(pydantic_core.to_json(text)) - 2


def valid_text(text: str) -> str:
    """Lone surrogates (JSON may carry them) cannot be stored as UTF-8: they become ``?``."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode()
    return text


def fit(content: str, limit: int) -> tuple[str, int, int]:
    """``content`` cut to at most ``limit`` bytes as JSON, with a note saying what was cut.

    Returns (content, bytes cut, bytes it had), counted in UTF-8; when nothing was cut the
    content is returned as it was.
    """
    content = valid_text(content)
    if len(content) * 6 <= limit:  # even with every character escaped it fits
        return content, 0, len(content.encode())
    raw = content.encode()
    if _json_size(content) <= limit:
        return content, 0, len(raw)
    target = max(limit - 200, 0)  # room for the note
    keep = target
    while True:
        head = raw[:keep].decode("utf-8", "ignore")
        size = _json_size(head)
        if size <= target:
            break
        keep = min(keep - 1, keep * target // size)  # escapes make it longer: shrink in step
    cut = len(raw) - len(head.encode())
    note = (
        f"\n[… memdash cut {cut:,} of {len(raw):,} bytes here: "
        f"a stored message holds at most {MAX_MESSAGE_BYTES // 1024} KiB]"
    )
    return head + note, cut, len(raw)
