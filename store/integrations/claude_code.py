"""Claude Code hooks into the store: the payload models and the recorder that maps each hook event
onto the public ``store`` API.

Claude Code runs a hook command with a JSON payload on stdin (``session_id``,
``transcript_path``, ``cwd``, ``hook_event_name`` and per-event fields). The session id is Claude
Code's ``session_id``.

**Messages come from the transcript.** Claude Code writes every prompt, assistant block and tool
result to the transcript JSONL, and ``memdash import`` records those lines (by line ``uuid``,
with their token usage, see :mod:`store.integrations.transcript`). If hooks also recorded the
prompt and the tool calls from their payloads, every one of them would be stored twice (once
under a hook id, once under the line's uuid). So every hook first records the transcript's new
lines, from the byte offset the previous hook of that session reached
(:class:`TranscriptOffsets`): messages appear as the session goes, each once, with their usage,
and importing the same transcript later adds nothing. A line Claude Code writes after the hook
ran (a tool's result is written after PostToolUse) is picked up by the next hook, at the latest
by Stop; mid-turn, the usage of the response the file ends with waits until a read sees it whole
(see ``record_transcript(complete=False)``). Only when the payload names no transcript, or it
cannot be read (a file not written yet is not that: it will be), do UserPromptSubmit and
Pre/PostToolUse store a message built from the payload (ids ``hook:prompt:<hash>``,
``hook:<tool_use_id>:pre`` / ``:post``), so nothing is lost then either.

What each event records besides:

- ``SessionStart`` (``source``, ``model``): the session's context (``session/context`` memory,
  no TTL: it lasts as long as the session's other keys) gets ``agent``, ``cwd``, ``model``,
  ``source``, ``transcript_path``, ``permission_mode`` and ``started_at`` merged into what is
  there (compare-and-set, so a dashboard edit is not lost); workflow ``idle`` (a new session:
  defined; a resume: ``ended -> idle``).
- ``UserPromptSubmit``: workflow ``prompting`` (the move's data has the prompt's first
  :data:`PREVIEW_CHARS` characters, so the dashboard shows it at once).
- ``PreToolUse``: ``tool`` (data: tool name, tool use id, input preview); ``PostToolUse`` (and
  ``PostToolUseFailure`` of newer Claude Code): ``responding``, the model goes on with the result.
- ``Stop``: ``idle``; its transcript read also writes the session context if none exists.
- ``PreCompact`` (``trigger``, ``custom_instructions``): the agent is about to replace its
  context with a summary, so the stored conversation is trimmed to a ``system`` message
  "context compacted (trigger=…)", with a trim marker (reason ``compact``) for what went.
- ``SessionEnd`` (``reason``): ``ended``. Other events are accepted and ignored.

Workflow (:data:`WORKFLOW`): idle -> prompting -> tool <-> responding -> idle, ended from
anywhere, idle again on a resume. Hooks can be missed (a denied tool has no PostToolUse, a
killed session no SessionEnd): a move the definition does not allow is recorded with
``force_state`` and a reason naming the event and the state it found, never refused; a move to
the state the session is already in records nothing.

Text over :data:`MAX_CONTENT_BYTES` (a hook message) is cut, with a note at the end and
``context.truncated_bytes`` saying how many bytes went; never refused, never silently lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from store.budget import TokenBudgetTracker
from store.connection import Connection, mask_url
from store.control import SessionControl
from store.conversation import ConversationMemory
from store.keys import check_part
from store.memory import MemoryStore, SessionMemory, VersionConflictError
from store.steering import Decision, Steering
from store.steering import task_workflow as steering_task_workflow
from store.workflow import DefinitionMismatchError, InvalidTransitionError, StatefulMemory

from .transcript import TranscriptResult, fit, valid_text

ACTOR = "claude-code"
SOURCE = "claude-code-hook"
"""``context.source`` of every message a hook records."""

WORKFLOW: dict[str, list[str]] = {
    "idle": ["prompting", "ended"],
    "prompting": ["tool", "responding", "idle", "failed", "ended"],
    "tool": ["tool", "responding", "failed", "ended"],
    "responding": ["tool", "idle", "failed", "ended"],
    "failed": ["prompting", "idle", "ended"],
    "ended": ["idle"],
}
INITIAL = "idle"

PREVIEW_CHARS = 200
"""How much of a prompt or tool input a workflow move carries."""

MAX_CONTENT_BYTES = 192 * 1024
"""Most bytes of a message's content as JSON; the rest of the 256 KiB a message may have is
left for its context."""

_EVENT_STATE = {
    "UserPromptSubmit": "prompting",
    "PreToolUse": "tool",
    "PostToolUse": "responding",
    "PostToolUseFailure": "responding",
    "Stop": "idle",
    "StopFailure": "failed",
    "SessionEnd": "ended",
}

WAITING_NOTIFICATIONS = frozenset({"permission_prompt", "idle_prompt", "elicitation_dialog"})
"""Notification types that mean the agent waits for a person (others, e.g. ``auth_success``,
do not); a Notification without a type counts as waiting (older clients send none)."""
MAX_SUMMARY_CHARS = 4000
"""Most of a compaction's summary kept in the conversation's compaction note."""


STEERED_EVENTS = frozenset(
    {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure"}
)
"""Events whose answer can steer the agent (carry notes, refuse a tool or a prompt)."""


class MalformedHook(ValueError):
    """The payload is not a Claude Code hook payload memdash can record; nothing was written."""


class HookPayload(BaseModel):
    """Fields every hook event has. Unknown fields are kept: Claude Code adds some over time."""

    model_config = ConfigDict(extra="allow")

    session_id: str
    hook_event_name: str
    transcript_path: str | None = None
    cwd: str | None = None

    @field_validator("session_id")
    @classmethod
    def _session(cls, value: str) -> str:
        return check_part("session_id", value)


class SessionStart(HookPayload):
    source: str | None = None
    model: Any = None  # a model id; kept as text whatever its shape


class UserPromptSubmit(HookPayload):
    prompt: str


class PreToolUse(HookPayload):
    tool_name: str
    tool_input: Any = None
    tool_use_id: str | None = None


class PostToolUse(PreToolUse):
    tool_response: Any = None


class PostToolUseFailure(PreToolUse):
    error: Any = None


class Stop(HookPayload):
    stop_hook_active: bool | None = None


class StopFailure(HookPayload):
    """The turn ended with an API error (in ``-p`` mode it may arrive after SessionEnd)."""

    error: Any = None


class PreCompact(HookPayload):
    trigger: str | None = None
    custom_instructions: str | None = None


class PostCompact(HookPayload):
    """The compaction succeeded (PreCompact fires before one that may still fail)."""

    trigger: str | None = None
    compact_summary: str | None = None


class SubagentStart(HookPayload):
    agent_id: str
    agent_type: str | None = None


class SubagentStop(SubagentStart):
    agent_transcript_path: str | None = None


class Notification(HookPayload):
    message: str = ""
    notification_type: str | None = None


class PermissionRequest(HookPayload):
    tool_name: str
    tool_input: Any = None


class SessionEnd(HookPayload):
    reason: str | None = None


MODELS: dict[str, type[HookPayload]] = {
    "SessionStart": SessionStart,
    "UserPromptSubmit": UserPromptSubmit,
    "PreToolUse": PreToolUse,
    "PostToolUse": PostToolUse,
    "PostToolUseFailure": PostToolUseFailure,
    "Stop": Stop,
    "StopFailure": StopFailure,
    "PreCompact": PreCompact,
    "PostCompact": PostCompact,
    "SubagentStart": SubagentStart,
    "SubagentStop": SubagentStop,
    "Notification": Notification,
    "PermissionRequest": PermissionRequest,
    "SessionEnd": SessionEnd,
}


def parse_payload(raw: bytes | str | dict[str, Any]) -> HookPayload:
    """The payload as its event's model; :class:`MalformedHook` says what is wrong."""
    if isinstance(raw, bytes | str):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise MalformedHook(f"payload is not JSON: {e}") from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise MalformedHook(f"payload must be a JSON object, not {type(data).__name__}")
    event = data.get("hook_event_name")
    model = MODELS.get(event, HookPayload) if isinstance(event, str) else HookPayload
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'payload'}: {err['msg']}" for err in e.errors()
        )
        raise MalformedHook(f"{event or 'hook'} payload: {problems}") from None


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _digest(*parts: object) -> str:
    return hashlib.sha1("\0".join(map(str, parts)).encode("utf-8", "replace")).hexdigest()[:20]


def _size(path: str | None) -> int:
    """Bytes in the transcript now (-1: none): what makes a prompt's id unique in its session."""
    if not path:
        return -1
    try:
        return os.stat(os.path.expanduser(path)).st_size
    except OSError:
        return -1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying one payload did (for the relay's status line and its counters)."""

    kind: Literal["applied", "ignored", "malformed", "failed"]
    detail: str

    def status_line(self) -> str:
        return ("ok " if self.kind in ("applied", "ignored") else "error ") + (
            f"{self.kind}: {self.detail}"
        )


class TranscriptOffsets:
    """How far the transcript of each (store, namespace, path) was read, between hook calls.

    One small JSON file per transcript in ``directory``: the offset, the file's identity (device
    and inode) and a hash of the 64 bytes before the offset. Any mismatch (the file was
    rotated, truncated or rewritten) reads from 0 again; that is always correct, since
    ``record_transcript`` de-duplicates by message id: the offset only saves re-reading.
    """

    def __init__(self, directory: Path, store_key: str) -> None:
        self.directory = directory
        self.store_key = store_key

    def _file(self, path: Path) -> Path:
        return self.directory / f"{_digest(self.store_key, path)}.json"

    @staticmethod
    def _tail(path: Path, offset: int) -> str:
        with open(path, "rb") as f:
            f.seek(max(offset - 64, 0))
            return hashlib.sha1(f.read(min(offset, 64))).hexdigest()

    def get(self, path: Path) -> int:
        try:
            saved = json.loads(self._file(path).read_text())
            info = path.stat()
            offset = saved["offset"]
            if (
                type(offset) is not int
                or not 0 < offset <= info.st_size
                or [info.st_dev, info.st_ino] != saved["file"]
                or self._tail(path, offset) != saved["tail"]
            ):
                return 0
            return offset
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def set(self, path: Path, offset: int) -> None:
        info = path.stat()
        record = {
            "path": str(path),
            "offset": offset,
            "file": [info.st_dev, info.st_ino],
            "tail": self._tail(path, offset),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._file(path)
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record))
        os.replace(temporary, target)

    STALE_SECONDS = 30 * 86400
    """An offset file not written for this long is dropped by :meth:`prune` (``memdash
    prune``): its transcript is done with, and reading it again from 0 is always correct."""

    @staticmethod
    def default_directory() -> Path:
        """Where the hooks keep them: ``<user data dir>/transcript-offsets``."""
        from store import embedded

        return embedded.data_dir() / "transcript-offsets"

    @classmethod
    def prune(
        cls,
        directory: Path,
        *,
        transcripts: Iterable[str] = (),
        stale: bool = False,
        now: float | None = None,
        dry_run: bool = False,
    ) -> list[Path]:
        """Drop the offset files of ``transcripts`` (of any store: another store merely reads
        the transcript again) and of their subagents' transcripts (``<transcript without
        .jsonl>/subagents/…``); with ``stale``, also those whose transcript no longer exists,
        that cannot be read, or that were not written for :attr:`STALE_SECONDS`. One pass over
        the directory, at the caller's request only: the hooks never pay for it. Returns the
        files dropped (with ``dry_run``: that would be)."""
        exact: set[str] = set()
        trees: list[str] = []
        for transcript in transcripts:
            path = os.path.normpath(os.path.expanduser(transcript))
            exact.add(path)
            trees.append(os.path.join(os.path.splitext(path)[0], "subagents") + os.sep)
        if now is None:
            import time

            now = time.time()
        dropped: list[Path] = []
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return dropped
        for entry in entries:
            if not entry.name.endswith((".json", ".tmp")):
                continue
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue  # gone meanwhile
            if entry.name.endswith(".tmp"):  # a hook's write in progress, or one it abandoned
                drop = stale and age > 60
            else:
                try:
                    path = os.path.normpath(json.loads(Path(entry.path).read_text())["path"])
                except (OSError, ValueError, KeyError, TypeError):
                    drop = stale  # unreadable: of no use to a hook
                else:
                    gone = stale and (age > cls.STALE_SECONDS or not os.path.exists(path))
                    drop = gone or path in exact or path.startswith(tuple(trees))
            if drop:
                dropped.append(Path(entry.path))
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return dropped


class HookRecorder:
    """Applies hook payloads to one store and namespace through the public ``store`` API."""

    def __init__(
        self,
        conn: Connection,
        *,
        offsets: TranscriptOffsets | None = None,
        ensure_embedded: bool = False,
    ) -> None:
        self.conn = conn
        self.offsets = offsets
        self._ensure_embedded = ensure_embedded
        self._memory = MemoryStore(conn)
        self._facts: dict[tuple[str, str], str] = {}  # (session, field) -> last value written

    @classmethod
    def open(cls, url: str | None, namespace: str) -> HookRecorder:
        """A recorder on its own client with short timeouts and no retries: a store that is down
        must cost each hook a log line, not seconds. ``url`` None: the embedded server (started
        on demand, and again if it went away)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        from store import embedded

        resolved = url
        if resolved is None:
            try:
                resolved = embedded.ensure_running()
            except Exception as e:  # a store that will not start is a store that is down
                from .hook_relay import log

                log(f"cannot start the embedded server: {e!r}", component="record")
                resolved = embedded.url()
        client = aioredis.Redis.from_url(
            resolved,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            retry=Retry(NoBackoff(), 0),
        )
        conn = Connection(namespace=namespace, client=client)
        offsets = TranscriptOffsets(
            embedded.data_dir() / "transcript-offsets", f"{resolved}\0{namespace}"
        )
        return cls(conn, offsets=offsets, ensure_embedded=url is None)

    @property
    def display_url(self) -> str:
        return mask_url(self.conn.url)

    async def aclose(self) -> None:
        await self.conn.aclose()

    async def apply(
        self,
        raw: bytes | str | dict[str, Any],
        *,
        received_at: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """:meth:`record`, but never raises: failures are logged to ``hook.log`` and counted."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        from .hook_relay import log

        try:
            return await self.record(raw, received_at=received_at, options=options)
        except MalformedHook as e:
            log(f"malformed payload ignored: {e}", component="record")
            return Outcome("malformed", str(e))
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            log(
                f"store unavailable at {self.display_url}, payload dropped: {e}", component="record"
            )
            if self._ensure_embedded:
                await self._restart_embedded()
            return Outcome("failed", f"store unavailable: {e}")
        except Exception as e:
            log(f"payload not recorded: {type(e).__name__}: {e}", component="record")
            return Outcome("failed", f"{type(e).__name__}: {e}")

    async def decide(self, raw: bytes | str | dict[str, Any] | HookPayload) -> Decision:
        """What the hook should answer Claude Code (notes to carry, a tool or prompt refused),
        from one store script (:class:`store.steering.Steering`); notes it carries are marked
        delivered. Raises :class:`MalformedHook` or store errors: the caller answers ``{}``
        then (fail-open) and, if it cannot pass the answer on, calls :meth:`release`."""
        payload = raw if isinstance(raw, HookPayload) else parse_payload(raw)
        event = payload.hook_event_name
        if isinstance(payload, Notification | PermissionRequest):
            await self._waiting(payload)  # here, in arrival order with the checks that clear it
            return Decision(event)
        if event not in STEERED_EVENTS:
            return Decision(event)
        tool = getattr(payload, "tool_name", None)
        subagent = (payload.model_extra or {}).get("agent_id") is not None
        # A subagent's hooks answer the subagent: notes are for the main agent, and are kept.
        deliver: Literal["always", "unless_held", ""] | None = "" if subagent else None
        return await Steering(payload.session_id, self.conn).check(
            event, tool=tool, deliver=deliver
        )

    async def _waiting(self, payload: Notification | PermissionRequest) -> None:
        """The agent waits for a person: a permission prompt, an idle prompt (the next prompt
        or tool hook clears it, in :meth:`decide`)."""
        if _agent_id(payload) is not None and isinstance(payload, Notification):
            return
        control = SessionControl(payload.session_id, self.conn)
        if isinstance(payload, PermissionRequest):
            preview = valid_text(_as_text(payload.tool_input)[:PREVIEW_CHARS])
            await control.set_waiting(
                "permission_request",
                f"asks to use {payload.tool_name[:PREVIEW_CHARS]}: {preview}",
                payload.tool_name,
            )
        elif (
            payload.notification_type is None or payload.notification_type in WAITING_NOTIFICATIONS
        ):
            kind = payload.notification_type or "notification"
            await control.set_waiting(kind, valid_text(payload.message) or kind)

    async def release(self, payload: HookPayload, decision: Decision) -> None:
        """The answer carrying ``decision`` never reached Claude Code: its notes are pending
        again (the next hook that can carry them does)."""
        if decision.notes:
            await Steering(payload.session_id, self.conn).release(decision)

    async def _restart_embedded(self) -> None:
        import asyncio

        from store import embedded

        with contextlib.suppress(Exception):
            await asyncio.to_thread(embedded.ensure_running)

    async def record(
        self,
        raw: bytes | str | dict[str, Any],
        *,
        received_at: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Record one payload; raises :class:`MalformedHook` (nothing written) or store errors.

        ``options`` are the hook command's (``budget``: a binding token limit for a new
        session; ``workflow``: a file defining the session's task workflow), read at
        SessionStart."""
        payload = parse_payload(raw)
        at = datetime.fromtimestamp(received_at, UTC) if received_at else datetime.now(UTC)
        event = payload.hook_event_name
        if type(payload) is HookPayload:
            return Outcome("ignored", f"{event} {payload.session_id}")
        subagent = _agent_id(payload)
        if isinstance(payload, SessionStart):
            await self._save_context(payload, at)
            await self._session_options(payload, options or {})
        else:
            await self._follow_facts(payload)
        synced = await self._sync(payload)
        if subagent is not None:
            await self._sync_subagent(payload, subagent)
        if isinstance(payload, PostCompact):
            await self._compacted(payload, at)
        elif isinstance(payload, StopFailure):
            await self._failed(payload, at)
        if (
            synced is None
            and subagent is None
            and isinstance(payload, UserPromptSubmit | PreToolUse)
        ):
            await self._from_payload(payload, at)  # no transcript to take the messages from
        if isinstance(payload, SessionStart):
            await self._session_start(payload)
        elif event in _EVENT_STATE and subagent is None:
            # A subagent's hooks never move the parent's activity: it stays in its Task tool.
            await self._enter(payload, self._move_data(payload))
        detail = f"{event} {payload.session_id}"
        return Outcome("applied", detail if synced is None else f"{detail}: {synced}")

    async def _session_options(self, payload: SessionStart, options: Mapping[str, Any]) -> None:
        """A new session gets the install's binding budget and task workflow; a resumed one
        keeps what it has (an operator may have lifted the binding or stepped the workflow)."""
        budget = options.get("budget")
        if type(budget) is int and budget > 0:
            decided = await self.conn.client.hexists(
                self.conn.session(payload.session_id).key("budget"), "binding"
            )
            if not decided:  # bound or lifted before: an operator's call, kept
                tracker = TokenBudgetTracker(payload.session_id, budget, redis=self.conn)
                await tracker.set_limit(budget, binding=True)
        task = task_workflow(payload.session_id, self.conn, options.get("workflow"))
        if await task.definition() is None:
            await task.define(actor=ACTOR)

    async def _follow_facts(self, payload: HookPayload) -> None:
        """``permission_mode`` (and ``model``) come from the events that carry them: the
        session's context follows when they change (one read per change, remembered here)."""
        extra = payload.model_extra or {}
        mode = extra.get("permission_mode")
        if not isinstance(mode, str) or _agent_id(payload) is not None:
            return
        key = (payload.session_id, "permission_mode")
        if self._facts.get(key) == mode:
            return
        await self._merge_context(payload.session_id, {"permission_mode": mode[:64]})
        self._remember_fact(key, mode)

    def _remember_fact(self, key: tuple[str, str], value: str) -> None:
        if len(self._facts) >= 4096:
            self._facts.clear()
        self._facts[key] = value

    async def _sync_subagent(self, payload: HookPayload, agent_id: str) -> None:
        """A subagent's transcript, read live: its own file (``<session>/subagents/agent-<id>
        .jsonl`` beside the session's, or SubagentStop's ``agent_transcript_path``). Its lines
        are sidechain messages of the parent session, tagged with the subagent's id."""
        named = getattr(payload, "agent_transcript_path", None)
        if named:
            path = Path(os.path.expanduser(named))
        elif payload.transcript_path and _safe_id(agent_id):
            main = Path(os.path.expanduser(payload.transcript_path))
            path = main.with_suffix("") / "subagents" / f"agent-{agent_id}.jsonl"
        else:
            return
        with contextlib.suppress(OSError):  # not written yet (SubagentStart), or gone
            await self._read_on(
                path, payload.session_id, save_context=False,
                complete=isinstance(payload, SubagentStop),
            )  # fmt: skip

    async def _failed(self, payload: StopFailure, at: datetime) -> None:
        """The turn ended with an API error: said in the conversation, as Claude Code says it."""
        error = valid_text(_as_text(payload.error))[: PREVIEW_CHARS * 5] or "unknown error"
        message_id = "hook:stopfailure:" + _digest(error, _size(payload.transcript_path))
        await self._append(
            payload, "system", f"turn ended with an error: {error}", {}, message_id, at
        )

    @staticmethod
    def _move_data(payload: HookPayload) -> dict[str, Any]:
        """What the workflow move carries: the event and a preview of what it was about."""
        data: dict[str, Any] = {"event": payload.hook_event_name}
        if isinstance(payload, UserPromptSubmit):
            data["prompt"] = valid_text(payload.prompt[:PREVIEW_CHARS])
        elif isinstance(payload, PreToolUse):
            data["tool"] = payload.tool_name[:PREVIEW_CHARS]
            if payload.tool_use_id:
                data["tool_use_id"] = payload.tool_use_id[:PREVIEW_CHARS]
            if type(payload) is PreToolUse:
                data["input"] = valid_text(_as_text(payload.tool_input)[:PREVIEW_CHARS])
        elif isinstance(payload, SessionEnd) and payload.reason:
            data["reason"] = payload.reason[:PREVIEW_CHARS]
        elif isinstance(payload, StopFailure) and payload.error is not None:
            data["error"] = valid_text(_as_text(payload.error)[:PREVIEW_CHARS])
        if isinstance(payload, PostToolUseFailure) and payload.error is not None:
            data["error"] = valid_text(_as_text(payload.error)[:PREVIEW_CHARS])
        return data

    async def _compacted(self, payload: PostCompact, at: datetime) -> None:
        """The agent replaced its context with a summary (PostCompact fires only when the
        compaction succeeded): the stored conversation follows, trimmed to a note saying so
        (with the summary), with a trim marker (reason ``compact``) for what went. The
        transcript on disk keeps every line; ``memdash import`` does not bring trimmed messages
        back (their ids are kept)."""
        trigger = payload.trigger or "unknown"
        text = f"context compacted (trigger={trigger})"
        if payload.compact_summary:
            summary = payload.compact_summary
            if len(summary) > MAX_SUMMARY_CHARS:
                summary = summary[: MAX_SUMMARY_CHARS - 1] + "…"
            text += f": {summary}"
        message_id = "hook:compact:" + _digest(trigger, _size(payload.transcript_path))
        note = await self._append(payload, "system", text, {"trigger": trigger}, message_id, at)
        if note is not None:  # the same compaction delivered again trims nothing more
            conversation = ConversationMemory(payload.session_id, redis=self.conn)
            await conversation.trim_old_messages(1, reason="compact")

    async def _from_payload(self, payload: UserPromptSubmit | PreToolUse, at: datetime) -> None:
        if isinstance(payload, UserPromptSubmit):
            message_id = "hook:prompt:" + _digest(payload.prompt, _size(payload.transcript_path))
            await self._append(payload, "user", payload.prompt, {}, message_id, at)
        else:
            await self._tool(payload, at)

    async def _tool(self, payload: PreToolUse, at: datetime) -> None:
        if isinstance(payload, PostToolUse):
            phase, text = "post", f"{payload.tool_name} result: {_as_text(payload.tool_response)}"
        elif isinstance(payload, PostToolUseFailure):
            phase, text = "post", f"{payload.tool_name} failed: {_as_text(payload.error)}"
        else:
            phase, text = "pre", f"{payload.tool_name} call: {_as_text(payload.tool_input)}"
        use_id = payload.tool_use_id
        if not use_id:  # older Claude Code: the call's name, input and moment identify it
            use_id = "tool:" + _digest(
                payload.tool_name, _as_text(payload.tool_input), _size(payload.transcript_path)
            )
        message_id = f"hook:{use_id}:{phase}"
        if len(message_id) > 256:
            message_id = f"hook:{_digest(use_id)}:{phase}"
        extra = {"tool_name": payload.tool_name[:200], "tool_use_id": payload.tool_use_id}
        await self._append(payload, "tool", text, extra, message_id, at)

    async def _append(
        self,
        payload: HookPayload,
        role: str,
        text: str,
        extra: dict[str, Any],
        message_id: str,
        at: datetime,
    ) -> int | None:
        """The message's number, None when it was stored before."""
        content, cut, _ = fit(text, MAX_CONTENT_BYTES)
        context: dict[str, Any] = {"source": SOURCE, "event": payload.hook_event_name, **extra}
        if cut:
            context["truncated_bytes"] = cut
        conversation = ConversationMemory(payload.session_id, redis=self.conn)
        message = {"role": role, "content": content, "context": context, "timestamp": at}
        return await conversation.append_unique(message, message_id)

    def _workflow(self, session: str) -> StatefulMemory:
        return StatefulMemory(session, transitions=WORKFLOW, initial=INITIAL, redis=self.conn)

    async def _enter(self, payload: HookPayload, data: dict[str, Any]) -> None:
        """Move the session's workflow to the event's state: allowed, or forced with a reason."""
        target = _EVENT_STATE[payload.hook_event_name]
        workflow = self._workflow(payload.session_id)
        try:
            try:
                await workflow.transition(target, data, actor=ACTOR)
            except DefinitionMismatchError:  # an older memdash's definition: ours replaces it
                await workflow.define(actor=ACTOR)
                await workflow.transition(target, data, actor=ACTOR)
        except InvalidTransitionError as e:
            if e.current == "ended" and target == "failed":
                return  # -p mode: the API error arrives after SessionEnd; the session ended
            if e.current != target:
                await workflow.force_state(target, _why(payload, e.current), actor=ACTOR)

    async def _session_start(self, payload: SessionStart) -> None:
        """Idle: a new session's workflow is defined, an ended one resumes, any other state
        (a missed Stop or SessionEnd, or ``source=compact`` mid-turn) is forced there."""
        workflow = self._workflow(payload.session_id)
        try:
            status = await workflow.load()
        except DefinitionMismatchError:
            await workflow.define(actor=ACTOR)
            status = await workflow.load()
        if status.since is None:
            await workflow.define(actor=ACTOR)  # a new session: idle, announced
        elif status.state == "ended":
            data = {"event": payload.hook_event_name, "source": payload.source}
            try:
                await workflow.transition(INITIAL, data, actor=ACTOR)
            except InvalidTransitionError as e:
                if e.current != INITIAL:
                    await workflow.force_state(INITIAL, _why(payload, e.current), actor=ACTOR)
        elif status.state != INITIAL:
            await workflow.force_state(INITIAL, _why(payload, status.state), actor=ACTOR)

    async def _save_context(self, payload: SessionStart, at: datetime) -> None:
        """Merge the session's facts into its context: one compare-and-set write."""
        facts = {
            "agent": ACTOR,
            "cwd": payload.cwd,
            "model": None if payload.model is None else _as_text(payload.model)[:256],
            "source": payload.source,
            "transcript_path": payload.transcript_path,
            "permission_mode": (payload.model_extra or {}).get("permission_mode"),
            "started_at": at,
        }
        facts = {name: value for name, value in facts.items() if value is not None}
        # Kept from the session's start: a resume or a compaction does not restart it.
        first = {"started_at": facts.pop("started_at"), "source": facts.pop("source", None)}
        if payload.source is not None:
            facts["last_source"] = payload.source
        await self._merge_context(payload.session_id, facts, first)
        if isinstance(facts.get("permission_mode"), str):
            self._remember_fact((payload.session_id, "permission_mode"), facts["permission_mode"])

    async def _merge_context(
        self, session: str, facts: Mapping[str, Any], first: Mapping[str, Any] | None = None
    ) -> None:
        """Merge ``facts`` (and ``first``, where the context has none yet) into the session's
        context: compare-and-set, so a dashboard edit in between is not lost."""
        key = SessionMemory.context_key(session)
        for _ in range(3):
            entry = await self._memory.get_entry(key)
            current = entry.value if entry is not None and isinstance(entry.value, dict) else {}
            version = 0 if entry is None else entry.version
            ttl = None if entry is None else entry.ttl
            kept = {k: v for k, v in (first or {}).items() if v is not None and k not in current}
            merged = {**current, **kept, **facts}
            if entry is not None and merged == current:
                return
            try:
                await self._memory.set(key, merged, ttl, expected_version=version)
                return
            except VersionConflictError:
                continue
        raise RuntimeError("the session's context kept changing under the hook; not saved")

    async def _sync(self, payload: HookPayload) -> str | None:
        """Record the transcript's new lines (from where the last hook left it); a summary, or
        None when the payload names no readable transcript."""
        if not payload.transcript_path:
            return None
        try:
            result = await self._read_on(
                Path(os.path.expanduser(payload.transcript_path)),
                payload.session_id,
                # SessionStart keeps the context itself; Stop fills it if that was missed.
                save_context=isinstance(payload, Stop),
                # Mid-turn, the response being written is left for the next hook (its usage
                # is final only with its last line); at Stop and SessionEnd the turn is over.
                complete=isinstance(payload, Stop | SessionEnd),
            )
        except FileNotFoundError:
            # Claude Code writes the file as the session goes: no lines yet, not no transcript
            # (messages from the payload now would come again from the file later).
            return "transcript not written yet"
        except OSError:
            return None
        return (
            f"transcript +{result.messages_added} messages, +{result.usage_added} usage, "
            f"{result.duplicates} duplicates, {result.malformed} malformed"
        )

    async def _read_on(
        self, path: Path, session: str, *, save_context: bool, complete: bool
    ) -> TranscriptResult:
        """Record a transcript's lines from where the last hook left it, and remember where
        this read stopped. Raises OSError when the file cannot be read."""
        from store.integrations.transcript import record_transcript

        offset = 0 if self.offsets is None else self.offsets.get(path)
        result = await record_transcript(
            self.conn,
            path,
            offset=offset,
            session_id=session,
            save_context=save_context,
            complete=complete,
        )
        if self.offsets is not None:
            with contextlib.suppress(OSError):
                self.offsets.set(path, result.offset)
        return result


def _agent_id(payload: HookPayload) -> str | None:
    """The subagent whose hook this is (None: the session's own agent)."""
    agent = getattr(payload, "agent_id", None) or (payload.model_extra or {}).get("agent_id")
    return agent if isinstance(agent, str) and agent else None


def _safe_id(agent_id: str) -> bool:
    """An id usable in a file name (no path separators, no '..')."""
    return 0 < len(agent_id) <= 128 and "/" not in agent_id and ".." not in agent_id


def load_workflow_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A project's task workflow: a JSON file ``{"transitions": {state: [next…]}, "initial":
    state, "policies": {state: {"deny": [tool patterns], "reason": …}}}`` (validated when used;
    ValueError says what is wrong)."""
    try:
        data = json.loads(Path(os.path.expanduser(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read the workflow file {path}: {e}") from None
    if not isinstance(data, dict) or "transitions" not in data or "initial" not in data:
        raise ValueError(f"{path} must hold a JSON object with transitions and initial")
    return data


def task_workflow(
    session: str, conn: Connection, workflow_file: str | None = None
) -> StatefulMemory:
    """The session's task workflow: the project's (``workflow_file``: the hook command's
    ``--workflow``, or ``MEMDASH_WORKFLOW`` in its environment) or the default planning →
    coding → testing → review → done."""
    definition = load_workflow_file(workflow_file) if workflow_file else None
    return steering_task_workflow(session, conn, definition=definition)


def _why(payload: HookPayload, found: str | None) -> str:
    source = getattr(payload, "source", None)
    event = payload.hook_event_name + (f" (source={source})" if source else "")
    return f"{event} arrived in state {found}: hooks were missed or came out of order"
