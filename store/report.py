"""One-shot documents for scripts and CI: a session's export and the namespace's status.

Both are pydantic models with a ``format`` field (:data:`EXPORT_FORMAT`, :data:`STATUS_FORMAT`):
a script may rely on every field of a format version; fields are only ever added within one.
They are read with ``store.feed.read_sessions`` (one MULTI/EXEC per session, or per page of
sessions), using the components' feed sections where those read what a document needs, and
narrower or wider variants of them where not:

- an export reads every MemoryStore entry of the session (not only its context) and the newest
  ``messages`` messages in full (not previews), in the same transaction as everything else;
- a status reads only headline numbers (no context, messages, cache series or workflow
  definition), so 10,000 sessions cost a few round trips of small replies.

Times the store recorded (server milliseconds) are UTC datetimes, in JSON always
``2025-01-02T03:04:05.678Z``; a message's ``timestamp`` is kept as the agent gave it (a naive one
stays naive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, PlainSerializer

from . import codec
from .budget import WINDOW_MINUTES, BudgetSection, BudgetView
from .cache import CacheSection, CacheStats, CacheView
from .connection import Connection
from .conversation import ConversationSection, ConversationView, TrimMarker, decode_messages
from .feed import SessionView, read_sessions
from .keys import SessionKeys, check_part, split_memory_member
from .memory import CONTEXT, MemorySection, MemoryView, _split
from .workflow import Transition, WorkflowSection, WorkflowView

EXPORT_FORMAT = "memdash.export/1"
STATUS_FORMAT = "memdash.status/1"
DEFAULT_MESSAGES = 50
PAGE_SIZE = 500  # sessions per MULTI/EXEC in a status read
BURN_MINUTES = 5  # the burn rate's window, as on the dashboard
MAX_WINDOW = 2**53  # more messages than any list holds, within what LRANGE takes


def _iso_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Time = Annotated[datetime, PlainSerializer(_iso_ms, when_used="json")]
"""A time the store recorded: in JSON always ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (sorts as text)."""


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


async def server_ms(conn: Connection) -> int:
    """The server's clock (the one every stored time comes from), in ms."""
    seconds, micros = await conn.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


# -- the export document -------------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True)


class ContextEntry(_Doc):
    """One MemoryStore value of the session (the usage examples' context is scope ``session``,
    component ``context``)."""

    scope: str
    component: str
    value: Any
    version: int
    ttl: int | None  # seconds, as written; None: no expiry
    updated: Time
    expires_at: Time | None


class MinuteUsage(_Doc):
    minute: Time  # the minute's start, UTC
    tokens: int


class BudgetReport(_Doc):
    limit: int | None  # None: no limit stored yet
    used: int
    remaining: int | None
    used_pct: float | None  # used / limit * 100, rounded to 0.1
    rejected: int
    requests: int
    totals: dict[str, int]  # input_tokens, output_tokens, cache_*_input_tokens
    model: str | None  # the last one recorded
    burn_rate: float  # tokens per minute over the last BURN_MINUTES minutes
    per_minute: list[MinuteUsage]  # minutes of the last hour with usage, oldest first


class MessageReport(_Doc):
    index: int
    role: str
    content: str
    timestamp: datetime  # as the agent gave it
    context: dict[str, Any]
    tokens: int | None = None
    model: str | None = None


class TrimReport(_Doc):
    first: int
    last: int
    count: int
    reason: str
    seq: int
    at: Time


class ConversationReport(_Doc):
    total: int  # messages ever appended
    first: int  # the first retained number (all below were trimmed)
    retained: int
    messages: list[MessageReport]  # the newest, oldest first
    trims: list[TrimReport]  # oldest first


class CacheReport(_Doc):
    hits: int
    misses: int
    lookups: int
    hit_ratio: float | None  # None before the first lookup
    sets: int
    deletes: int
    evictions: int
    size: int
    max_size: int | None
    updated: Time | None


class TransitionReport(_Doc):
    from_state: str
    to_state: str
    actor: str
    forced: bool
    reason: str | None
    data: Any
    seq: int
    at: Time


class WorkflowReport(_Doc):
    state: str
    data: Any
    since: Time | None
    previous: str | None  # the state the latest transition left, if it led here
    next_states: list[str]
    initial: str
    transitions: dict[str, list[str]]  # the stored definition
    recent: list[TransitionReport]  # newest first


class SessionExport(_Doc):
    format: Literal["memdash.export/1"] = EXPORT_FORMAT
    generated_at: Time  # server time of the read
    namespace: str
    session: str
    seq: int  # the session's last event
    created: Time | None
    last_activity: Time | None
    context: list[ContextEntry]  # sorted by (scope, component)
    budget: BudgetReport | None
    conversation: ConversationReport | None
    cache: CacheReport | None
    workflow: WorkflowReport | None


# -- the status document -------------------------------------------------------------------


class SessionHeadline(_Doc):
    session: str
    last_activity: Time | None
    age_seconds: float | None  # since the last activity, by the server's clock
    seq: int
    state: str | None
    budget_used: int | None
    budget_limit: int | None
    budget_used_pct: float | None
    messages: int | None  # ever appended (trimmed ones included)
    retained: int | None
    cache_hit_ratio: float | None


class NamespaceStatus(_Doc):
    format: Literal["memdash.status/1"] = STATUS_FORMAT
    generated_at: Time  # server time; the local clock when the store is unreachable
    store: str  # the URL, password masked
    namespace: str
    reachable: bool
    error: str | None = None
    sessions_total: int = 0
    sessions: list[SessionHeadline] = []  # newest activity first; at most the limit asked


# -- feed sections for these reads ---------------------------------------------------------


@dataclass(slots=True)
class EntriesView(MemoryView):
    """A MemoryView plus every entry with its version and times."""

    entries: list[ContextEntry] = field(default_factory=list)


# The memory index and the values it names, at one instant: a script, because which keys to GET
# is only known once the index is read (they share the session's hash tag, so one slot).
_ENTRIES_LUA = files(__package__).joinpath("report_entries.lua").read_text()


class _EntriesSection(MemorySection):
    """MemorySection that reads every entry of the session (not only its context)."""

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.eval(_ENTRIES_LUA, 1, keys.memory_index, keys.prefix)
        return 1

    def build(self, results: Sequence[Any]) -> EntriesView | None:
        (flat,) = results
        if not flat:
            return None
        view = EntriesView()
        for member, raw in zip(flat[::2], flat[1::2], strict=True):
            scope, component = split_memory_member(member)
            view.keys.add((scope, component))
            if raw is None:  # expired (the index drops those over time)
                continue
            stored = _split(raw)
            value = codec.decode(stored.text)
            view.entries.append(
                ContextEntry(
                    scope=scope,
                    component=component,
                    value=value,
                    version=stored.version,
                    ttl=stored.ttl,
                    updated=_time(stored.updated),
                    expires_at=_time(stored.expires_at),
                )
            )
            if (scope, component) == CONTEXT:
                view.context, view.context_version = value, stored.version
                view.context_expires_at = stored.expires_at
        view.entries.sort(key=lambda entry: (entry.scope, entry.component))
        return view


@dataclass(slots=True)
class WindowView(ConversationView):
    """A ConversationView with the newest messages in full and every trim marker."""

    messages: list[dict[str, Any]] = field(default_factory=list)


class _WindowSection(ConversationSection):
    def __init__(self, last: int) -> None:
        self.last = last

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        name = keys.key("conversation")
        pipe.get(name + ":n")
        pipe.llen(name)
        if self.last:
            pipe.lrange(name, -self.last, -1)
        else:
            pipe.lrange(name, 1, 0)  # an empty range
        pipe.lrange(name + ":trims", 0, -1)
        return 4

    def build(self, results: Sequence[Any]) -> WindowView | None:
        total, length, items, trims = results
        if total is None:
            return None
        return WindowView(
            int(total) - length,
            int(total),
            trims=[TrimMarker(**pydantic_core.from_json(marker)) for marker in trims],
            messages=decode_messages(items),
        )


class _CountSection(ConversationSection):
    """Numbering only: a ConversationView without messages or trim markers."""

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        name = keys.key("conversation")
        pipe.get(name + ":n")
        pipe.llen(name)
        return 2

    def build(self, results: Sequence[Any]) -> ConversationView | None:
        total, length = results
        return super().build((total, length, [], []))


class _TotalsSection(CacheSection):
    """Totals only: a CacheView without its series."""

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.hgetall(keys.key("cache"))
        return 1

    def build(self, results: Any) -> CacheView | None:
        (totals,) = results
        return super().build((totals, []))


class _StateSection(WorkflowSection):
    """The current state only: a WorkflowView without data, definition or history."""

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.hmget(keys.key("wf"), "state", "since")
        return 1

    def build(self, results: Sequence[Any]) -> WorkflowView | None:
        ((state, since),) = results
        if state is None:
            return None
        return WorkflowView(state, None, int(since) if since is not None else None, {}, "")


def _headline_sections() -> list[Any]:
    return [BudgetSection(), _CountSection(), _TotalsSection(), _StateSection()]


# -- building the documents ----------------------------------------------------------------


def _pct(budget: BudgetView) -> float | None:
    """Used / limit in %, to 0.1 (100 with a zero limit, as the sessions pane shows it)."""
    if budget.limit is None:
        return None
    if budget.limit <= 0:
        return 100.0
    return round(100.0 * budget.used / budget.limit, 1)


def _hit_ratio(stats: CacheStats) -> float | None:
    return stats.hit_ratio if stats.lookups else None


def budget_report(budget: BudgetView, now_ms: int) -> BudgetReport:
    now_minute = now_ms // 60000
    window = range(now_minute - WINDOW_MINUTES + 1, now_minute + 1)
    return BudgetReport(
        limit=budget.limit,
        used=budget.used,
        remaining=budget.remaining,
        used_pct=_pct(budget),
        rejected=budget.rejected,
        requests=budget.requests,
        totals=dict(budget.totals),
        model=budget.model,
        burn_rate=budget.burn_rate(now_ms, BURN_MINUTES),
        per_minute=[
            MinuteUsage(minute=_time(minute * 60000), tokens=tokens)
            for minute, tokens in sorted(budget.minutes.items())
            if minute in window and tokens
        ],
    )


def conversation_report(window: WindowView) -> ConversationReport:
    return ConversationReport(
        total=window.total,
        first=window.first,
        retained=window.retained,
        messages=[MessageReport(**message) for message in window.messages],
        trims=[
            TrimReport(
                first=m.first, last=m.last, count=m.count, reason=m.reason, seq=m.seq, at=m.time
            )
            for m in window.trims
        ],
    )


def cache_report(cache: CacheView) -> CacheReport:
    stats = cache.stats
    return CacheReport(
        hits=stats.hits,
        misses=stats.misses,
        lookups=stats.lookups,
        hit_ratio=_hit_ratio(stats),
        sets=stats.sets,
        deletes=stats.deletes,
        evictions=stats.evictions,
        size=stats.size,
        max_size=stats.max_size,
        updated=_time(cache.updated),
    )


def _transition(move: Transition) -> TransitionReport:
    return TransitionReport(
        from_state=move.from_state,
        to_state=move.to_state,
        actor=move.actor,
        forced=move.forced,
        reason=move.reason,
        data=move.data,
        seq=move.seq,
        at=move.timestamp,
    )


def workflow_report(workflow: WorkflowView) -> WorkflowReport:
    recent = workflow.recent
    previous = None
    if recent and recent[0].to_state == workflow.state and recent[0].from_state != workflow.state:
        previous = recent[0].from_state  # as the workflow pane marks it
    return WorkflowReport(
        state=workflow.state,
        data=workflow.data,
        since=_time(workflow.since),
        previous=previous,
        next_states=list(workflow.next_states),
        initial=workflow.initial,
        transitions={state: list(targets) for state, targets in workflow.transitions.items()},
        recent=[_transition(move) for move in recent],
    )


def _exists(view: SessionView) -> bool:
    return view.seq > 0 or view.last_activity > 0


async def read_export(
    conn: Connection, session: str, *, messages: int = DEFAULT_MESSAGES
) -> SessionExport | None:
    """The session as one consistent document; None when the namespace has no such session."""
    check_part("session", session)
    if type(messages) is not int or messages < 0:
        raise ValueError(f"messages must be an int >= 0, not {messages!r}")
    sections = [
        _EntriesSection(),
        BudgetSection(),
        _WindowSection(min(messages, MAX_WINDOW)),
        CacheSection(),
        WorkflowSection(),
    ]
    now_ms = await server_ms(conn)
    view = (await read_sessions(conn, [session], sections))[session]
    if not _exists(view):
        return None
    memory = view.memory
    conversation = view.conversation
    return SessionExport(
        generated_at=_time(now_ms),
        namespace=conn.namespace,
        session=session,
        seq=view.seq,
        created=_time(view.created),
        last_activity=_time(view.last_activity or None),
        context=memory.entries if isinstance(memory, EntriesView) else [],
        budget=budget_report(view.budget, now_ms) if view.budget else None,
        conversation=(
            conversation_report(conversation) if isinstance(conversation, WindowView) else None
        ),
        cache=cache_report(view.cache) if view.cache else None,
        workflow=workflow_report(view.workflow) if view.workflow else None,
    )


def headline(view: SessionView, now_ms: int) -> SessionHeadline:
    budget, conversation, cache = view.budget, view.conversation, view.cache
    last = view.last_activity or None
    return SessionHeadline(
        session=view.session,
        last_activity=_time(last),
        age_seconds=None if last is None else max(now_ms - last, 0) / 1000,
        seq=view.seq,
        state=view.workflow.state if view.workflow else None,
        budget_used=budget.used if budget else None,
        budget_limit=budget.limit if budget else None,
        budget_used_pct=_pct(budget) if budget else None,
        messages=conversation.total if conversation else None,
        retained=conversation.retained if conversation else None,
        cache_hit_ratio=_hit_ratio(cache.stats) if cache else None,
    )


async def read_status(
    conn: Connection, *, limit: int | None = None, page_size: int = PAGE_SIZE
) -> NamespaceStatus:
    """Headline numbers of the ``limit`` most recently active sessions (all when None).

    The list of sessions is taken at one instant (with the total and the server time); their
    numbers are then read a page at a time, each page at one instant.
    """
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ValueError(f"limit must be an int >= 0 or None, not {limit!r}")
    registry = conn.keys.sessions
    async with conn.client.pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.zcard(registry)
        pipe.zrevrange(registry, 0, -1 if limit is None else limit - 1)
        (seconds, micros), total, listed = await pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    if limit == 0:
        listed = []
    sections = _headline_sections()
    views: list[SessionView] = []
    for start in range(0, len(listed), page_size):
        page = await read_sessions(conn, listed[start : start + page_size], sections)
        views.extend(view for view in page.values() if _exists(view))
    views.sort(key=lambda view: view.last_activity, reverse=True)
    return NamespaceStatus(
        generated_at=_time(now_ms),
        store=conn.display_url,
        namespace=conn.namespace,
        reachable=True,
        sessions_total=total,
        sessions=[headline(view, now_ms) for view in views],
    )
