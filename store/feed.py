"""Feed: a gap-free, self-healing live view of a namespace, for the dashboard.

Redis pub/sub is at-most-once, so the events alone cannot be trusted. The protocol:

1. subscribe to the namespace's event channel (and wait for Redis to confirm);
2. read a snapshot of every session (registry newest first, in pages; each page in one
   MULTI/EXEC so a session's parts and its seq are read at one instant);
3. apply only events newer than each session's snapshot seq, in seq order. A gap in a session's
   seq re-reads that session; a lost connection reconnects with capped backoff and re-reads
   everything; a malformed or unknown event is counted in ``dropped`` and skipped.

Each component module contributes a *section*: which keys it reads into a SessionView and how its
events update one in place (see ``Section``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .budget import BudgetSection, BudgetView
from .cache import CacheSection, CacheView
from .connection import Connection, resolve
from .control import ControlSection, ControlView
from .conversation import ConversationSection, ConversationView
from .events import ChangeEvent, MalformedEvent, parse_event
from .keys import SessionKeys
from .memory import MemorySection, MemoryView
from .notes import NotesSection, NotesView
from .workflow import WorkflowSection, WorkflowView

log = logging.getLogger(__name__)

Status = Literal["connecting", "connected", "reconnecting", "resynced"]
RESYNC = "resync"
DELETED = "session.delete"  # the session is gone (store.sessions): its view is dropped
MAX_BACKOFF = 2.0
SLICE = 0.004
"""Seconds of events handled before the feed lets the rest of the loop run. Buffered pub/sub
messages are read without suspending, so a steady stream would otherwise hold the loop (and a
dashboard's key presses) for as long as the stream lasts."""


@dataclass(slots=True)
class SessionView:
    """Everything the dashboard shows of one session, as of event ``seq``.

    Each component's part is filled by its Section (attribute = ``Section.name``); None until
    the session has used that component.
    """

    session: str
    seq: int = 0
    last_activity: int = 0  # server ms of the latest event
    created: int | None = None
    memory: MemoryView | None = None
    budget: BudgetView | None = None
    conversation: ConversationView | None = None
    cache: CacheView | None = None
    workflow: WorkflowView | None = None
    task: WorkflowView | None = None  # the task workflow an operator steps (store.steering)
    notes: NotesView | None = None
    control: ControlView | None = None

    @property
    def context(self) -> Any:
        """The value at MemoryKey("session", <session>, "context"), as usage example 1 stores it
        (tests/test_seed_example1.py)."""
        return self.memory.context if self.memory else None

    @property
    def context_version(self) -> int | None:
        return self.memory.context_version if self.memory else None


class Section(Protocol):
    """One component's share of a SessionView."""

    name: str
    kinds: tuple[str, ...]  # event kind prefixes it handles, e.g. ("memory.",)

    def queue_reads(self, pipe: aioredis.client.Pipeline, keys: SessionKeys) -> int:
        """Add this section's read commands to ``pipe``; return how many were added."""

    def build(self, results: Sequence[Any]) -> Any:
        """The section's view from those commands' results (None: nothing stored)."""

    def apply(self, view: SessionView, event: ChangeEvent) -> bool:
        """Update ``view`` from ``event`` in place; False when the payload is not enough and
        the session must be re-read."""


@dataclass(frozen=True, slots=True)
class Change:
    """One applied change; ``kind == "resync"`` when a session (or ``"*"``: all) was re-read."""

    session: str
    kind: str
    seq: int


def _sections() -> list[Section]:
    return [
        MemorySection(),
        BudgetSection(),
        ConversationSection(),
        CacheSection(),
        WorkflowSection(),
        WorkflowSection("task"),
        NotesSection(),
        ControlSection(),
    ]


async def read_sessions(
    conn: Connection, sessions: Sequence[str], sections: Sequence[Section] | None = None
) -> dict[str, SessionView]:
    """Snapshot of ``sessions``, read in one MULTI/EXEC (one consistent instant)."""
    sections = list(sections) if sections is not None else _sections()
    if not sessions:
        return {}
    async with conn.client.pipeline(transaction=True) as pipe:
        counts: list[list[int]] = []
        for session in sessions:
            keys = conn.session(session)
            pipe.hmget(keys.meta, "seq", "created")
            pipe.zscore(conn.keys.sessions, session)
            counts.append([section.queue_reads(pipe, keys) for section in sections])
        results = await pipe.execute()
    views: dict[str, SessionView] = {}
    at = 0
    for session, section_counts in zip(sessions, counts, strict=True):
        (seq, created), last = results[at], results[at + 1]
        at += 2
        view = SessionView(
            session,
            int(seq or 0),
            int(last or 0),
            int(created) if created is not None else None,
        )
        for section, count in zip(sections, section_counts, strict=True):
            try:
                built = section.build(results[at : at + count])
            except (ValueError, TypeError, KeyError, IndexError) as error:
                # Data written by something else: show the rest of the session, not crash.
                log.warning("unreadable %s of session %r: %s", section.name, session, error)
                built = None
            at += count
            if built is not None:
                setattr(view, section.name, built)
        views[session] = view
    return views


async def read_namespace(
    conn: Connection, *, page_size: int = 500, sections: Sequence[Section] | None = None
) -> dict[str, SessionView]:
    """Every session of the namespace, newest first, read page by page."""
    sections = list(sections) if sections is not None else _sections()
    views: dict[str, SessionView] = {}
    start = 0
    while True:
        page = await conn.client.zrevrange(conn.keys.sessions, start, start + page_size - 1)
        read = await read_sessions(conn, page, sections)
        views.update((s, v) for s, v in read.items() if _exists(v))  # deleted since listed
        if len(page) < page_size:
            return views
        start += page_size


def _exists(view: SessionView) -> bool:
    """False for the view ``read_sessions`` gives of a session that has no keys (deleted)."""
    return view.seq > 0 or view.last_activity > 0


class Feed:
    """A live, always-current ``sessions`` dict, and an async iterator of applied changes."""

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
        page_size: int = 500,
        queue_size: int = 10_000,
        on_change: Callable[[Change], None] | None = None,
        on_status: Callable[[], None] | None = None,
    ) -> None:
        """``on_change``, when given, is called with each change as it is applied (instead of
        queueing it for ``async for``): cheaper per event for a consumer that only takes note.
        ``on_status``, when given, is called when ``status``, ``last_error`` or ``dropped``
        change, so a consumer can show them without looking every so often."""
        self.redis = resolve(redis, namespace)
        self._on_change = on_change
        self._on_status = on_status
        self.sessions: dict[str, SessionView] = {}
        self.status: Status = "connecting"
        self.dropped = 0  # malformed, foreign or unknown events
        self.applied = 0
        self.gaps = 0  # sessions re-read because their seq skipped
        self.reconnects = 0
        self.coalesced = 0  # changes not queued because nobody was reading them
        self.last_error: str | None = None
        self._sections = _sections()
        self._by_kind: dict[str, Section] = {}
        self._page_size = page_size
        self._changes: asyncio.Queue[Change] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start following the namespace in the background (returns at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memdash-feed")

    async def ready(self) -> None:
        """Wait until the first snapshot is in ``sessions``."""
        await self._ready.wait()

    async def wait_closed(self) -> None:
        """Until the feed stops: after :meth:`close`, or on a failure it could not recover from
        (raised here). Cancelling the waiter leaves the feed running."""
        task = self._task
        if task is None:
            return
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Feed:
        self.start()
        await self.ready()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Change]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Change]:
        while True:
            yield await self._changes.get()

    # -- the protocol ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.05
        connected_before = False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await self._subscribe(pubsub)
                self.sessions = await read_namespace(
                    self.redis, page_size=self._page_size, sections=self._sections
                )
                self.status = "resynced" if connected_before else "connected"
                self._status_changed()
                connected_before = True
                backoff = 0.05
                self._ready.set()
                self._emit(Change("*", RESYNC, 0))
                await self._follow(pubsub)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                self.last_error = str(error)
                self.status = "reconnecting"
                self._status_changed()
                self.reconnects += 1
                log.warning("feed lost Redis (%s); reconnecting in %.2fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _subscribe(self, pubsub: aioredis.client.PubSub) -> None:
        """Subscribe and wait for Redis to confirm, so no event after this point is missed."""
        await pubsub.subscribe(self.redis.keys.events)
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is not None and message["type"] == "subscribe":
                return

    async def _follow(self, pubsub: aioredis.client.PubSub) -> None:
        task = asyncio.current_task()
        clock = time.monotonic
        slice_ends = clock() + SLICE
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if task is not None and task.cancelling():
                # get_message's read timeout can swallow a cancellation that lands as it
                # expires (asyncio.timeout on 3.11): honour it here, or close() waits forever.
                raise asyncio.CancelledError
            if message is not None and message["type"] == "message":
                await self._handle(message["data"])
            if clock() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = clock() + SLICE

    async def _handle(self, data: str | bytes) -> None:
        try:
            event = parse_event(data)
        except MalformedEvent:
            self._drop()
            return
        if event.namespace != self.redis.namespace:
            self._drop()
            return
        view = self.sessions.get(event.session)
        if event.kind == DELETED:
            await self._deleted(view, event)
            return
        if view is None:
            if event.seq != 1:  # a session we have not seen from its start: read it
                await self._resync(event.session)
                return
            view = self.sessions[event.session] = SessionView(event.session, created=event.ts)
        if event.seq <= view.seq:
            return  # already part of the snapshot
        if event.seq != view.seq + 1:
            self.gaps += 1
            await self._resync(event.session)
            return
        view.seq = event.seq
        view.last_activity = event.ts
        section = self._section_for(event.kind)
        if section is None:
            self._drop()  # a kind this version does not know: skip it, keep the order
        elif not section.apply(view, event):
            await self._resync(event.session)
            return
        self.applied += 1
        self._emit(Change(event.session, event.kind, event.seq))

    def _section_for(self, kind: str) -> Section | None:
        section = self._by_kind.get(kind)
        if section is None:
            for candidate in self._sections:
                if kind.startswith(candidate.kinds):
                    section = self._by_kind[kind] = candidate
                    break
        return section

    async def _deleted(self, view: SessionView | None, event: ChangeEvent) -> None:
        """Drop the session's view. A view created at or after the delete may be the session
        started again by a writer (the snapshot was read after both): the store decides."""
        if view is None:
            return
        if view.created is not None and view.created >= event.ts:
            await self._resync(event.session)
            return
        del self.sessions[event.session]
        self.applied += 1
        self._emit(Change(event.session, DELETED, event.seq))

    async def _resync(self, session: str) -> None:
        views = await read_sessions(self.redis, [session], self._sections)
        if not _exists(views[session]):  # deleted: no ghost row
            if self.sessions.pop(session, None) is not None:
                self._emit(Change(session, DELETED, 0))  # seq 0: found gone by a re-read
            return
        self.sessions[session] = views[session]
        self._emit(Change(session, RESYNC, views[session].seq))

    def _drop(self) -> None:
        self.dropped += 1
        self._status_changed()

    def _status_changed(self) -> None:
        if self._on_status is not None:
            try:
                self._on_status()
            except Exception:  # a consumer's bug must not stop the feed
                log.exception("feed on_status callback failed")

    def _emit(self, change: Change) -> None:
        if self._on_change is not None:
            try:
                self._on_change(change)
            except Exception:  # a consumer's bug must not stop the feed
                log.exception("feed on_change callback failed on %s", change)
            return
        try:
            self._changes.put_nowait(change)
        except asyncio.QueueFull:
            # Nobody is keeping up with the notifications; sessions stay current regardless.
            self.coalesced += self._changes.qsize()
            while not self._changes.empty():
                self._changes.get_nowait()
            self._changes.put_nowait(Change("*", RESYNC, 0))
