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
import functools
import json
import os
import re
from collections import deque
from collections.abc import Callable, Container, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from store.budget import (
    COUNTS,
    MAX_MODEL_LENGTH,
    MAX_TOKENS,
    REQUEST_ID_TTL,
    WINDOW_MINUTES,
    check_request_id,
    request_key,
)
from store.connection import Packed
from store.conversation import (
    APPEND_MANY_CHUNK,
    MAX_MESSAGE_BYTES,
    PREVIEW_CHARS,
    ConversationMemory,
)
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
BATCH_BYTES = 4 * 1024 * 1024
"""Lines (or bytes of them) parsed before they are recorded, whichever comes first; a batch
ends only between two responses, so a response's usage is read whole. A batch is written in
two round trips (its messages, then its responses' usage), so memory stays bounded whatever
the file's size."""
READ_BYTES = 1024 * 1024
"""The file is read in chunks of this many bytes."""
WRITES_AHEAD = 64
WRITES_AHEAD_BYTES = 8 * 1024 * 1024
"""Batches (and bytes of them) read ahead of the store, at most: memory stays bounded. What
waits when the store is free goes out together."""
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


class _LineModel(BaseModel):
    """A user or assistant entry of a transcript, as much of it as is recorded: what a line
    must be to be recorded (the definition; :func:`_fast_line` takes the common shapes of it
    without pydantic)."""

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


class _Line(NamedTuple):
    """A validated user or assistant line, flattened (``message.*`` as ``message_id``,
    ``model``, ``content``, ``counts``); ``clean``: its strings came from pydantic_core's
    parser, so they hold no lone surrogates."""

    type: str
    uuid: str
    parent_uuid: str | None
    sidechain: bool
    meta: bool
    session_id: str | None
    request_id: str | None
    agent_id: str | None
    timestamp: datetime | None
    cwd: str | None
    git_branch: str | None
    version: str | None
    message_id: str | None
    model: str | None
    content: str | list[dict[str, Any]]
    counts: tuple[int, int, int, int] | None
    clean: bool

    @classmethod
    def of(cls, line: _LineModel, clean: bool) -> _Line:
        message = line.message
        return cls(
            line.type,
            line.uuid,
            line.parentUuid,
            bool(line.isSidechain),
            bool(line.isMeta),
            line.sessionId,
            line.requestId,
            line.agentId,
            line.timestamp,
            line.cwd,
            line.gitBranch,
            line.version,
            message.id,
            message.model,
            message.content,
            None if message.usage is None else message.usage.counts(),
            clean,
        )


_control = re.compile(r"[\x00-\x1f\x7f-\x9f]").search
_utc_stamp = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
).fullmatch
_MAX_COUNT = 10**12
_STR_OR_NONE = frozenset((str, type(None)))
_BOOL_OR_NONE = frozenset((bool, type(None)))


def _fast_line(data: dict[str, Any], kind: str) -> _Line | None:
    """``_LineModel.model_validate(data)`` for the shapes Claude Code writes, without pydantic:
    the line when every field is of the one plain form that validates to itself (strings,
    ``true``/``false``/``null``, in-range integers, a ``…Z`` timestamp); None when anything is
    of another form, and then pydantic decides (it takes more: "1" for true, 5.0 for 5…), so
    what is accepted or refused is exactly what the model accepts or refuses."""
    get = data.get
    uuid = get("uuid")
    if type(uuid) is not str or not 0 < len(uuid) <= 256:
        return None
    ids = uuid  # every _Id, for one look for control characters
    session = get("sessionId")
    if session is not None:
        if type(session) is not str or not 0 < len(session) <= 256:
            return None
        ids += session
    request = get("requestId")
    if request is not None:
        if type(request) is not str or not 0 < len(request) <= 256:
            return None
        ids += request
    parent = get("parentUuid")
    agent = get("agentId")
    cwd = get("cwd")
    branch = get("gitBranch")
    version = get("version")
    sidechain = get("isSidechain")
    meta = get("isMeta")
    if (
        type(parent) not in _STR_OR_NONE
        or type(agent) not in _STR_OR_NONE
        or type(cwd) not in _STR_OR_NONE
        or type(branch) not in _STR_OR_NONE
        or type(version) not in _STR_OR_NONE
        or type(sidechain) not in _BOOL_OR_NONE
        or type(meta) not in _BOOL_OR_NONE
    ):
        return None
    stamp = get("timestamp")
    timestamp = None
    if stamp is not None:
        if type(stamp) is not str or not _utc_stamp(stamp):
            return None
        try:
            timestamp = datetime.fromisoformat(stamp)
        except ValueError:  # e.g. February 30th: pydantic says what that is
            return None
    message = get("message")
    if type(message) is not dict:
        return None
    get = message.get
    message_id = get("id")
    if message_id is not None:
        if type(message_id) is not str or not 0 < len(message_id) <= 256:
            return None
        ids += message_id
    if _control(ids):
        return None
    model = get("model")
    if type(get("role")) not in _STR_OR_NONE or type(model) not in _STR_OR_NONE:
        return None
    content = get("content", "")
    if type(content) is not str:
        if type(content) is not list:
            return None
        for block in content:
            if type(block) is not dict:
                return None
    usage = get("usage")
    counts = None
    if usage is not None:
        if type(usage) is not dict:
            return None
        counts = (
            usage.get("input_tokens"),
            usage.get("output_tokens"),
            usage.get("cache_creation_input_tokens"),
            usage.get("cache_read_input_tokens"),
        )
        if None in counts:  # (None is null or absent: 0; False, 0.0, "" are not None)
            counts = tuple(0 if value is None else value for value in counts)  # type: ignore[assignment]
        for value in counts:
            if type(value) is not int or not 0 <= value <= _MAX_COUNT:
                return None  # False, 5.0, "5"…: pydantic decides
    return _Line(
        kind,
        uuid,
        parent,
        sidechain is True,
        meta is True,
        session,
        request,
        agent,
        timestamp,
        cwd,
        branch,
        version,
        message_id,
        model,
        content,
        counts,
        True,
    )


@dataclass(slots=True)
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
    writer = _Writer(conn)
    try:
        result = await _read_file(
            conn, writer, path, offset, session_id, save_context, progress, complete
        )
        await writer.drain()
    finally:
        await writer.cancel()
    return result


async def record_transcripts(
    conn: Connection,
    paths: Iterable[os.PathLike[str] | str],
    *,
    session_id: str | None = None,
    progress: Callable[[Any, int], object] | None = None,
    done: Callable[[Any, TranscriptResult], object] | None = None,
    failed: Callable[[Any, OSError], object] | None = None,
    ahead_bytes: int | None = None,
) -> None:
    """:func:`record_transcript` (from offset 0, complete) of each path in turn, with the
    writes of one file going on while the next is read: the same store writes in the same
    order (a file's after the one's before it), without waiting for the store between files.

    ``progress(path, offset)`` after each batch of a file is written; ``done(path, result)``
    once all of a file is written (its result is final then); ``failed(path, error)`` when a
    file cannot be read (OSError; its lines read before the error may be written), and the
    next one is read (without ``failed``, the OSError is raised). The store's errors raise.
    ``ahead_bytes``: how many bytes read may wait for the store (default WRITES_AHEAD_BYTES;
    less where several processes import at once).
    """
    if session_id is not None:
        session_id = check_part("session_id", session_id)
    writer = _Writer(conn, ahead_bytes)
    try:
        for path in paths:
            try:
                result = await _read_file(
                    conn,
                    writer,
                    path,
                    0,
                    session_id,
                    True,
                    None if progress is None else functools.partial(progress, path),
                    True,
                )
            except OSError as error:
                if failed is None:
                    raise
                failed(path, error)
                continue
            if done is not None:
                await writer.call(functools.partial(_call, done, path, result))
        await writer.drain()
    finally:
        await writer.cancel()


async def _call(function: Callable[..., object], *args: Any) -> None:
    function(*args)


class _Writer:
    """The store writes of the batches read, in the order they were read, made while the
    caller reads on. What is waiting when the store is free goes out together (several batches,
    of several files): their appends in one round trip, then their usage in a second one, so
    the store is never kept waiting for a round trip per batch. At most WRITES_AHEAD batches
    wait (memory stays bounded); then the caller waits for the store."""

    def __init__(self, conn: Connection, ahead_bytes: int | None = None) -> None:
        self.conn = conn
        self._ahead_bytes = WRITES_AHEAD_BYTES if ahead_bytes is None else ahead_bytes
        # batches (a _Recorder, its batch, then a callback or None) and callbacks (a
        # coroutine function) waiting their turn
        self._queue: deque[tuple[Any, ...]] = deque()
        self._batches = 0  # batches queued or being written
        self._bytes = 0  # and the bytes they were read from
        self._task: asyncio.Task[None] | None = None
        self._written = asyncio.Event()  # set after each round of writes

    async def batch(
        self,
        recorder: _Recorder,
        batch: list[_Entry],
        then: Callable[[], object] | None,
        size: int,
    ) -> None:
        """Queue a batch (of ``size`` bytes read); ``then()`` once it is written."""
        while self._batches >= WRITES_AHEAD or self._bytes >= self._ahead_bytes:
            self._written.clear()
            self._start()
            await self._wait()
        self._queue.append((recorder, batch, then, size))
        self._batches += 1
        self._bytes += size
        self._start()
        await asyncio.sleep(0)  # let it send

    async def call(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Queue ``await function()``, for after the writes queued before it."""
        self._queue.append((function,))
        self._start()

    async def pause(self) -> None:
        """A moment for the writes in flight to send or read."""
        if self._task is not None:
            await asyncio.sleep(0)

    async def drain(self) -> None:
        while self._task is not None:
            await self._wait()

    async def cancel(self) -> None:
        task, self._task = self._task, None
        self._queue.clear()
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _start(self) -> None:
        if self._task is None and self._queue:
            self._task = asyncio.create_task(self._run())

    async def _wait(self) -> None:
        task = self._task
        if task is None:
            return
        waiter = asyncio.ensure_future(self._written.wait())
        try:
            await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            self._task = None
            task.result()  # its error raises here
            self._start()

    async def _run(self) -> None:
        queue = self._queue
        while queue:
            # what waits (up to half the bytes allowed): its batches written together, then the
            # callbacks, in order (a callback comes after the batches queued before it, and
            # maybe after later ones)
            group = []
            size = 0
            while queue and size < self._ahead_bytes // 2:
                item = queue.popleft()
                group.append(item)
                if len(item) == 4:
                    size += item[3]
            batches = [item for item in group if len(item) == 4]
            # the reader may queue as much again while these are written
            self._batches -= len(batches)
            self._bytes -= sum(item[3] for item in batches)
            self._written.set()
            if batches:
                await self._write(batches)
            for item in group:
                if len(item) == 1:
                    await item[0]()
                elif item[2] is not None:
                    item[2]()
            self._written.set()
        self._task = None

    async def _write(self, batches: list[tuple[Any, ...]]) -> None:
        conn = self.conn
        checked = [(item[0], item[1]) for item in batches if item[0].check]
        known: dict[int, set[str]] = {}
        if checked:
            commands: list[tuple[Any, ...]] = []
            reading = []
            for recorder, batch in checked:
                asks, uuids_of = recorder.known_commands(batch)
                reading.append((id(batch), len(asks), uuids_of))
                commands += asks
            replies = await conn.call_many(commands)
            at = 0
            for key, count, uuids_of in reading:
                known[key] = _Recorder.known(uuids_of, replies[at : at + count])
                at += count
        appends: list[_Call] = []
        plans = []
        for recorder, batch, *_ in batches:
            calls, plan = recorder.plan(batch, known.get(id(batch), ()))
            plans.append((recorder, plan, len(calls)))
            appends += calls
        replies = await conn.run_many("conversation_append_many", appends)
        debits: list[_Call] = []
        counts = []
        at = 0
        for recorder, plan, count in plans:
            calls = recorder.settle(plan, replies[at : at + count])
            at += count
            counts.append((recorder, len(calls)))
            debits += calls
        replies = await conn.run_many("budget_debit_many", debits)
        at = 0
        for recorder, count in counts:
            recorder.count(replies[at : at + count])
            at += count


async def _read_file(
    conn: Connection,
    writer: _Writer,
    path: os.PathLike[str] | str,
    offset: int,
    session_id: str | None,
    save_context: bool,
    progress: Callable[[int], object] | None,
    complete: bool,
) -> TranscriptResult:
    """Read one transcript and hand its writes to ``writer`` (the last of them writes the
    sessions' contexts); the result is final once they are done."""
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
        read = offset  # bytes handed to the writer so far

        # A batch is written while the next ones are parsed: the store works while Python
        # reads. Batches are written in order, and the parse pauses every TICK_LINES lines to
        # let the loop send and read for the writes in flight.
        for batch, done in _batches(file, result, session_id, complete):
            if batch is None:
                await writer.pause()
                continue
            for entry in batch:
                _remember_context(contexts, entry, source)
            then = None if progress is None else functools.partial(progress, done)
            await writer.batch(recorder, batch, then, done - read)
            read = done
    if save_context and contexts:
        await writer.call(functools.partial(_save_contexts, conn, contexts))
    return result


async def _save_contexts(conn: Connection, contexts: dict[str, dict[str, Any]]) -> None:
    memory = MemoryStore(conn)
    for session, context in contexts.items():
        # Only if absent: a context already there (a hook's, an operator's) wins.
        with contextlib.suppress(VersionConflictError):
            await memory.set(SessionMemory.context_key(session), context, expected_version=0)


def _lines(file: Any) -> Iterator[bytes]:
    """The file's complete lines (each ended by a newline, given without it), read in large
    chunks; a last line without its newline is still being written: the next call reads it
    whole."""
    rest = b""
    while chunk := file.read(READ_BYTES):
        lines = chunk.split(b"\n")
        if rest:
            lines[0] = rest + lines[0]
        rest = lines.pop()
        yield from lines


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
        result.offset += len(raw) + 1
        result.lines += 1
        if not result.lines % TICK_LINES:
            yield None, starts
        entry = _parse(raw, result, session_id)
        if entry is None:
            trailing = None  # another line follows the response: it is finished
            continue
        response = entry.line.message_id if entry.line.type == "assistant" else None
        full = len(batch) >= BATCH_LINES or size >= BATCH_BYTES
        if full and (response is None or response != previous_response):
            yield batch, starts
            batch, size = [], 0
        if response is None:
            trailing = None
        elif response != previous_response:
            trailing = (len(batch), starts, result.lines - 1)
        batch.append(entry)
        size += len(raw) + 1
        previous_response = response
    if not complete and trailing is not None:
        # Its lines are recorded now (the dashboard shows them), its usage when it is whole:
        # the offset stays before it, and the next read, starting at its first line, counts it.
        index, result.offset, result.lines = trailing
        for entry in batch[index:]:
            entry.deferred = True
    if batch:
        yield batch, result.offset


_SPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() strips


def _parse(raw: bytes, result: TranscriptResult, session_id: str | None) -> _Entry | None:
    """One line (without its newline) as an entry, or None (counted in ``result``)."""
    if raw and raw[0] not in _SPACE and raw[-1] not in _SPACE:
        text = raw
    else:
        text = raw.strip()
        if not text:
            return None
    # json.loads(text), sooner: pydantic_core's parser (~3x faster) takes all but a few of what
    # json.loads takes, with the same result; those few (a byte-order mark, surrogates encoded
    # in UTF-8 or escaped alone) go to json.loads, so what is read is exactly as before.
    clean = True
    try:
        data = pydantic_core.from_json(text, cache_strings="keys")
    except ValueError:
        clean = False
        try:
            data = json.loads(text)
        except ValueError:  # not JSON, or not UTF-8
            result.malformed += 1
            return None
    if type(data) is not dict:
        result.malformed += 1
        return None
    kind = data.get("type")
    if kind != "user" and kind != "assistant":
        if _has_usage(data):
            result.usage_unattributed += 1
        result.ignored += 1
        return None
    line = _fast_line(data, kind) if clean else None
    if line is None:
        try:
            line = _Line.of(_LineModel.model_validate(data), clean)
        except ValidationError:
            if _has_usage(data):
                result.usage_unattributed += 1
            result.malformed += 1
            return None
    session = session_id or line.session_id
    if session is None:
        result.malformed += 1
        return None
    result.sessions.add(session)
    request = None
    if kind == "assistant" and line.counts is not None and line.model != SYNTHETIC_MODEL:
        request = f"{line.message_id or 'line-' + line.uuid}:{line.request_id or '-'}"
    return _Entry(line, session, request)


def _has_usage(data: dict[str, Any]) -> bool:
    message = data.get("message")
    return isinstance(message, dict) and isinstance(message.get("usage"), dict)


def _remember_context(contexts: dict[str, dict[str, Any]], entry: _Entry, source: str) -> None:
    """What the session's context would say: from its main (not sidechain) lines."""
    line = entry.line
    if line.sidechain:
        return
    context = contexts.get(entry.session)
    if context is None:
        context = contexts[entry.session] = {"agent": AGENT, "transcript_path": source}
    for key, value in (
        ("cwd", line.cwd),
        ("git_branch", line.git_branch),
        ("version", line.version),
    ):
        if value and key not in context:
            context[key] = value
    model = line.model
    if line.type == "assistant" and model and model != SYNTHETIC_MODEL:
        context["model"] = model  # the latest


_KNOWN, _SENT = 0, 1


def _ids_key(conn: Connection, session: str) -> str:
    return conn.session(session).key("conversation") + ":ids"


_Call = tuple[SessionKeys, Sequence[str], Sequence[object]]


class _Recorder:
    """Writes one file's batches of entries as ConversationMemory.append_unique_many and
    TokenBudgetTracker.record_usage_many would: a batch's messages in one
    conversation_append_many call per session (each message its own id-deduplicated append
    and event, in order), then the usage of the responses whose first line was new to the store
    in one budget_debit_many call per session. The calls are made by :class:`_Writer`, which
    sends those of several batches together: :meth:`plan` makes a batch's appends,
    :meth:`settle` reads their replies and makes its debits, :meth:`count` reads theirs.

    A batch after one that met messages stored already first asks which of its ids are stored
    (:meth:`check`, one HMGET per session): a transcript imported again is then read without
    building or sending most of its messages."""

    def __init__(self, conn: Connection, result: TranscriptResult, *, resuming: bool) -> None:
        self.conn = conn
        self.result = result
        self._resuming = resuming  # the first entry read may be a response left open before
        self._resumed: str | None = None
        self.check = False  # ask which ids are stored before building a batch's messages

    def known_commands(self, batch: list[_Entry]) -> tuple[list[tuple[Any, ...]], Any]:
        """The HMGETs that say which of the batch's ids are stored, and what :meth:`known`
        needs to read their replies."""
        by_session: dict[str, list[str]] = {}
        for entry in batch:
            by_session.setdefault(entry.session, []).append(entry.line.uuid)
        conn = self.conn
        commands = [
            ("HMGET", _ids_key(conn, session), *uuids) for session, uuids in by_session.items()
        ]
        return commands, list(by_session.values())

    @staticmethod
    def known(uuids_of: list[list[str]], replies: Sequence[Any]) -> set[str]:
        known: set[str] = set()
        for uuids, numbers in zip(uuids_of, replies, strict=True):
            if isinstance(numbers, Exception):
                raise numbers
            known.update(uuid for uuid, number in zip(uuids, numbers, strict=True) if number)
        return known

    def plan(self, batch: list[_Entry], known: Container[str]) -> tuple[list[_Call], Any]:
        """The batch's conversation_append_many calls, and what :meth:`settle` needs."""
        result = self.result
        requests = _requests(batch)
        # session -> conversation_append_many's arguments after the first: (message JSON, event
        # head, id) of each message, in RESP
        frames_of: dict[str, list[bytes]] = {}
        planned: list[tuple[_Entry, _Request | None, bool, int]] = []
        for entry in batch:
            if self._resuming:
                self._resuming = False
                self._resumed = entry.request
            request = requests.get(entry.request) if entry.request else None
            line = entry.line
            first = request is not None and request.first_uuid == line.uuid
            counted = first and not entry.deferred and request is not None and request.tokens
            if line.uuid in known:
                planned.append((entry, request if counted else None, False, _KNOWN))
                continue
            message = _message(line, request.tokens if counted and request else None)
            try:
                text, head = _encode(message, brace=False)
            except ValueError:  # the store would refuse what we made of the line
                result.malformed += 1
                continue
            frames = frames_of.get(entry.session)
            if frames is None:
                frames = frames_of[entry.session] = []
            uuid = line.uuid.encode()
            frames.append(
                b"$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                % (len(text), text, len(head), head, len(uuid), uuid)
            )
            cut = "cut_bytes" in message["context"]
            planned.append((entry, request if counted else None, cut, _SENT))
        calls: list[_Call] = []
        for session, frames in frames_of.items():
            keys = self.conn.session(session)
            calls.append(
                (
                    keys,
                    ConversationMemory.append_many_keys(keys),
                    (APPEND_MANY_CHUNK, Packed(3 * len(frames), b"".join(frames))),
                )
            )
        return calls, (list(frames_of), planned, result.duplicates)

    def settle(self, plan: Any, replies: Sequence[Any]) -> list[_Call]:
        """Count what the appends did; the budget_debit_many calls of the usage to record."""
        sessions, planned, duplicates = plan
        result = self.result
        numbers: dict[str, Iterator[int]] = {}
        for session, reply in zip(sessions, replies, strict=True):
            if isinstance(reply, Exception):
                raise reply
            numbers[session] = iter(reply[1:])
        debits: dict[str, tuple[list[bytes], list[object]]] = {}  # session -> keys, requests
        for entry, request, cut, how in planned:
            if how is _KNOWN or next(numbers[entry.session]) < 0:
                # a message with this id is stored already: nothing was written
                result.duplicates += 1
                if request is not None and entry.request == self._resumed:
                    _debit(self.conn, debits, entry, request)  # the response left open
                continue
            result.messages_added += 1
            if cut:
                result.truncated += 1
            if request is not None:
                _debit(self.conn, debits, entry, request)
        self.check = result.duplicates > duplicates
        calls: list[_Call] = []
        for session, (keys, flat) in debits.items():
            session_keys = self.conn.session(session)
            budget = session_keys.key("budget")
            calls.append(
                (
                    session_keys,
                    (budget, budget + ":minutes", Packed(len(keys), b"".join(keys))),
                    (SESSION_TOKEN_LIMIT, REQUEST_ID_TTL, WINDOW_MINUTES, to_json(flat)),
                )
            )
        return calls

    def count(self, replies: Sequence[Any]) -> None:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            # 0: the request id was counted already (within 24 h)
            self.result.usage_added += sum(reply[0::3])


_models: dict[str, str | None] = {}


def _valid_model(model: str) -> str | None:
    """The model as record_usage's breakdown takes it, or None (it is left out)."""
    valid = _models.get(model, "")
    if valid == "":
        try:
            check_part("model", model)
            valid = model if len(model) <= MAX_MODEL_LENGTH else None
        except ValueError:
            valid = None
        if len(_models) < 1024:
            _models[model] = valid
    return valid


def _debit(
    conn: Connection,
    debits: dict[str, tuple[list[bytes], list[object]]],
    entry: _Entry,
    request: _Request,
) -> None:
    """Add a response's usage to its session's budget_debit_many call: what
    ``TokenBudgetTracker(session, SESSION_TOKEN_LIMIT).record_usage_many`` sends for it (the
    same checks, the same arguments as ``record_usage(..., enforce_limit=False)``): the
    request's key (in RESP) and its values."""
    model = request.model
    if model is not None:
        model = _valid_model(model)
    assert entry.request is not None
    request_id = check_request_id(entry.request[:256])
    tokens = request.tokens
    if tokens > MAX_TOKENS:
        raise ValueError(f"tokens must be between 0 and {MAX_TOKENS}, not {tokens}")
    call = debits.get(entry.session)
    if call is None:
        call = debits[entry.session] = ([], [])
    keys, flat = call
    key = request_key(conn.session(entry.session).key("budget"), request_id).encode()
    keys.append(b"$%d\r\n%b\r\n" % (len(key), key))
    counts = request.counts
    at = request.timestamp
    sidechain = entry.line.sidechain
    flat += (
        10
        + (2 if sidechain else 0)
        + (2 if at is not None else 0)
        + (2 if model is not None else 0),
        request_id,
        tokens,
    )
    if sidechain:
        flat += ("sidechain", 1)
    if at is not None:
        flat += ("at", round(at.timestamp() * 1000))
    flat += (
        COUNTS[0],
        counts[0],
        COUNTS[1],
        counts[1],
        COUNTS[2],
        counts[2],
        COUNTS[3],
        counts[3],
    )
    if model is not None:
        flat += ("model", model)


def _encode(message: dict[str, Any], *, brace: bool = True) -> tuple[bytes, bytes]:
    """What ``ConversationMemory.append`` sends for one of :func:`_message`'s messages: the
    stored JSON (without its index) and the event's head, as ``encode_message`` makes them
    (plain JSON values only, so codec's tagging changes nothing; the same text as
    ``pydantic_core.to_json`` of the dicts, put together from its parts). ValueError when too
    big."""
    content = message["content"]
    timestamp = message.get("timestamp") or datetime.now(UTC)
    stamp = timestamp.isoformat().encode()  # ASCII digits and signs: nothing to escape
    role = _ROLES[message["role"]]
    stored_role = role if brace else role[1:]  # (conversation_append_many takes it without)
    extra = b""
    if "tokens" in message:
        extra = b',"tokens":%d' % message["tokens"]
    if "model" in message:
        extra += b',"model":' + to_json(message["model"])
    text = b"".join(
        (
            stored_role,
            b',"content":',
            to_json(content),
            b',"timestamp":"',
            stamp,
            b'","context":',
            to_json(message["context"]),
            extra,
            b"}",
        )
    )
    if len(text) + (not brace) > MAX_MESSAGE_BYTES:
        size = len(text) + (not brace)
        raise ValueError(f"message is {size} bytes as JSON; the limit is {MAX_MESSAGE_BYTES}")
    head = b"".join(
        (
            role,
            b',"preview":',
            to_json(content[:PREVIEW_CHARS]),
            b',"length":%d,"timestamp":"' % len(content),
            stamp,
            b'"',
            extra,
        )
    )
    return text, head


to_json = pydantic_core.to_json
_ROLES = {role: b'{"role":"' + role.encode() + b'"' for role in ("user", "assistant", "tool")}


def _requests(batch: list[_Entry]) -> dict[str, _Request]:
    requests: dict[str, _Request] = {}
    for entry in batch:
        if entry.request is None:
            continue
        line = entry.line
        counts = line.counts
        assert counts is not None
        known = requests.get(entry.request)
        if known is None:
            requests[entry.request] = _Request(counts, line.model, line.timestamp, line.uuid)
        else:
            known.counts = _max_counts(known.counts, counts)
            known.model = known.model or line.model
    return requests


def _max_counts(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> tuple[int, int, int, int]:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _message(line: _Line, tokens: int | None) -> dict[str, Any]:
    """The ConversationMessage dict for one line."""
    context: dict[str, Any] = {"source": SOURCE, "uuid": line.uuid}
    if line.parent_uuid:
        context["parent_uuid"] = line.parent_uuid
    if line.sidechain:
        context["sidechain"] = True
        if line.agent_id:
            context["agent_id"] = line.agent_id
    if line.meta:
        context["meta"] = True
    if line.message_id:
        context["message_id"] = line.message_id
    if line.request_id:
        context["request_id"] = line.request_id
    content, role = _render(line, context)
    content, cut, total = fit(content, MAX_CONTENT_BYTES, clean=line.clean)
    if cut:
        context["cut_bytes"] = cut
        context["original_bytes"] = total
    out: dict[str, Any] = {"role": role, "content": content, "context": context}
    if line.timestamp is not None:
        out["timestamp"] = line.timestamp
    if tokens:
        out["tokens"] = tokens
    model = line.model
    if line.type == "assistant" and model and len(model) <= 256:
        out["model"] = model
    return out


def _role(line: _Line) -> str:
    """assistant; tool for a user line of tool results only; else user."""
    if line.type == "assistant":
        return "assistant"
    content = line.content
    tools_only = isinstance(content, list) and content
    if tools_only and all(block.get("type") == "tool_result" for block in content):
        return "tool"
    return "user"


def _render(line: _Line, context: dict[str, Any]) -> tuple[str, str]:
    """(content, role) of a line; notes block types and tool ids in ``context``."""
    content = line.content
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


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _json(value: object) -> str:
    """``json.dumps(value, ensure_ascii=False, default=str)``."""
    return _ENCODER.encode(value)


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


_ESCAPED = bytes(range(0x20)) + b'"\\\x7f'
"""Bytes JSON may write longer (DEL too, to be safe); deleting them from a text
(bytes.translate) counts them."""


def fit(content: str, limit: int, *, clean: bool = False) -> tuple[str, int, int]:
    """``content`` cut to at most ``limit`` bytes as JSON, with a note saying what was cut.

    Returns (content, bytes cut, bytes it had), counted in UTF-8; when nothing was cut the
    content is returned as it was. ``clean``: it holds no lone surrogates (the caller knows).
    """
    if len(content) * 6 <= limit:  # even with every character escaped it fits
        if content.isascii():
            return content, 0, len(content)
        if not clean:
            content = valid_text(content)
        return content, 0, len(content.encode())
    if not clean:
        content = valid_text(content)
    raw = content.encode()
    if len(raw) <= limit:
        # JSON writes a byte as at most 6 (\u00XX, control characters) and '"' and '\' as 2;
        # the rest as it is: a bound that needs no second copy of a long text
        special = len(raw) - len(raw.translate(None, _ESCAPED))
        if len(raw) + 5 * special <= limit or _json_size(content) <= limit:
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
