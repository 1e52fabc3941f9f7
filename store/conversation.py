"""ConversationMemory: a session's message history that can grow to millions of messages.

Messages are numbered: message n is the n-th message ever appended to the session (0-based).
Trimming removes the oldest messages but never renumbers the rest, so a number names the same
message for as long as it is kept, and a dashboard can say exactly what went.

Layout (all under the session's hash tag, see ``SessionKeys.key``):

- ``<prefix>conversation``: LIST of message JSON, oldest first. Each item is
  ``{"index":n,"role":…,"content":…,"timestamp":iso,"context":{…}[,"tokens":t][,"model":m]}``
  (``context`` in :mod:`store.codec`'s tagged JSON; ``timestamp`` a plain ISO 8601 string).
  Appends are RPUSH (O(1)); trims are LTRIM of the head (O(removed)); reads are LRANGE windows.
- ``<prefix>conversation:n``: STRING, how many messages were ever appended. The first retained
  number is that minus the list's length.
- ``<prefix>conversation:trims``: LIST of trim markers ``{"count","first","last","reason","seq",
  "ts"}``, newest last, capped at :data:`MAX_TRIM_MARKERS`.
- ``<prefix>conversation:ids``: HASH message id -> number, for
  :meth:`ConversationMemory.append_unique`; kept when messages are trimmed, so replaying a
  transcript never brings them back.

Every write is one script (``conversation_append.lua``, ``conversation_trim.lua``) that also
publishes ``conversation.append`` / ``conversation.trim``. A window is read with one LRANGE at the
position this instance last saw numbering at; since every item carries its number, a stale guess
shows, and then one script (``conversation_page.lua``) reads window and numbering together.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

import pydantic_core
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from . import codec
from .connection import Connection, resolve
from .keys import SessionKeys, check_part

MAX_MESSAGE_BYTES = 256 * 1024
"""Largest stored message (UTF-8 JSON, context included); bigger ones are refused, not cut."""

MAX_TRIM_MARKERS = 1000
"""Trim markers kept per conversation (_conversation.lua holds the same number)."""

_MAX_LIST = 2**53  # beyond any list's length, within what LRANGE and Lua's numbers take

APPEND_MANY_CHUNK = 1000
"""Most ids one command of ``conversation_append_many.lua`` takes (Lua's unpack is bounded)."""

PREVIEW_CHARS = 200
"""How much of a message's content its ``conversation.append`` event carries."""

RECENT_MESSAGES = 10
"""Newest messages (as previews) and trim markers a :class:`ConversationView` holds."""

Role = Literal["user", "assistant", "system", "tool"]


class ConversationMessage(BaseModel):
    """What :meth:`ConversationMemory.append` accepts.

    Unknown keys are refused (a misspelt ``contnet`` must not vanish silently); anything else
    worth keeping goes in ``context``. ``tokens`` and ``model`` are optional, for the dashboard.
    A naive ``timestamp`` stays naive and an aware one keeps its UTC offset: it reads back equal
    to what was given (the default is now, in UTC).
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    role: Role
    content: str
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tokens: Annotated[int, Field(ge=0)] | None = None
    model: Annotated[str, Field(max_length=256)] | None = None


class ConversationSpan(NamedTuple):
    """Which message numbers exist: ``first`` retained, ``total`` ever appended."""

    first: int
    total: int

    @property
    def retained(self) -> int:
        return self.total - self.first


class TrimMarker(NamedTuple):
    """Messages ``first``…``last`` (``count`` of them) were removed by one trim."""

    first: int
    last: int
    count: int
    reason: Literal["auto", "manual", "compact"]  # compact: the agent summarised its context
    seq: int
    ts: int  # server time, ms since the epoch

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)


def _check_count(field: str, value: object, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{field} must be an int >= {minimum}, not {value!r}")
    return value


def encode_message(message: Any) -> tuple[dict[str, Any], str, str]:
    """Validate ``message``; return it as stored (without index), its JSON, its event head.

    Raises ValueError (pydantic's ValidationError is one) for a bad or oversized message.
    An ``index`` key is ignored: the store assigns numbers, and a message read back from
    :meth:`ConversationMemory.page` may be appended elsewhere as it is.
    """
    if type(message) is dict and "index" in message:
        message = {k: v for k, v in message.items() if k != "index"}
    valid = ConversationMessage.model_validate(message)
    stored: dict[str, Any] = {
        "role": valid.role,
        "content": valid.content,
        "timestamp": valid.timestamp.isoformat(),
        "context": valid.context,
    }
    head: dict[str, Any] = {
        "role": valid.role,
        "preview": valid.content[:PREVIEW_CHARS],
        "length": len(valid.content),
        "timestamp": stored["timestamp"],
    }
    if valid.tokens is not None:
        stored["tokens"] = head["tokens"] = valid.tokens
    if valid.model is not None:
        stored["model"] = head["model"] = valid.model
    try:
        if valid.context:
            text = codec.encode(stored, limit=MAX_MESSAGE_BYTES)
        else:  # nothing in it that needs codec's tags: plain JSON is the same text, sooner
            text = pydantic_core.to_json(stored).decode()
    except (TypeError, ValueError) as e:  # e.g. "value['context']['x']: cannot store a …"
        raise ValueError(str(e).replace("value", "message", 1)) from None
    if len(text) > MAX_MESSAGE_BYTES // 4 and len(text.encode()) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"message is {len(text.encode())} bytes as JSON; the limit is {MAX_MESSAGE_BYTES}"
        )
    if valid.context:  # keep what the store keeps (tuples come back as lists…)
        stored["context"] = codec.decode(text)["context"]
    stored["timestamp"] = valid.timestamp
    return stored, text, pydantic_core.to_json(head).decode()[:-1]


def decode_messages(items: list[str]) -> list[dict[str, Any]]:
    """Messages from stored items (JSON objects that carry their ``index``), in one parse."""
    if not items:
        return []
    text = "[" + ",".join(items) + "]"
    messages = pydantic_core.from_json(text, cache_strings="keys")
    tagged = "$" in text  # only a context can hold codec tags, and only if a "$" is there
    for message in messages:
        message["timestamp"] = datetime.fromisoformat(message["timestamp"])
        if tagged and message["context"]:
            message["context"] = codec.untag(message["context"])
    return messages


def _index_of(item: str) -> int:
    """The number a stored item starts with: '{"index":<n>,…'."""
    return int(item[9 : item.index(",", 9)])


class ConversationMemory:
    """One session's conversation in Redis, with ``history`` as this instance's local mirror.

    ``history`` holds what :meth:`load` read plus what this instance appended since, ordered by
    message number and trimmed like the store; other writers' messages appear on the next
    :meth:`load`. With ``max_messages`` every append that goes over the cap removes the oldest
    messages in the same atomic call, and says so (event and trim marker).
    """

    def __init__(
        self,
        session_id: str,
        *,
        max_messages: int | None = None,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.session_id = check_part("session_id", session_id)
        if max_messages is not None:
            _check_count("max_messages", max_messages, 1)
        self.max_messages = max_messages
        self.redis: Connection = resolve(redis, namespace)
        self._session = self.redis.session(session_id)
        self._list = self._session.key("conversation")
        self._cap: tuple[int | str] = ("",) if max_messages is None else (max_messages,)
        # The first retained number as last seen: page() reads with a plain LRANGE while it
        # holds, and checks it against the numbers the items carry.
        self._first: int | None = None
        self.history: list[dict[str, Any]] = []

    @property
    def namespace(self) -> str:
        return self.redis.namespace

    async def append(self, message: dict[str, Any] | ConversationMessage) -> int:
        """Store one message (see :class:`ConversationMessage`); returns its number.

        A bad or oversized message raises ValueError and writes nothing.
        """
        index, _ = await self._append(message, ())
        return index

    async def append_unique(
        self, message: dict[str, Any] | ConversationMessage, message_id: str
    ) -> int | None:
        """Store one message unless one with ``message_id`` was stored before (even if since
        trimmed); returns its number, or None when it was already there and nothing was written.

        Importers and hooks replay the same transcript lines: this makes them idempotent.
        """
        if not isinstance(message_id, str) or not message_id or len(message_id) > 256:
            raise ValueError("message_id must be a non-empty string of at most 256 characters")
        index, stored = await self._append(message, (message_id,))
        return index if stored else None

    async def append_unique_many(
        self, messages: Sequence[tuple[dict[str, Any] | ConversationMessage, str]]
    ) -> list[int | None]:
        """:meth:`append_unique` for several ``(message, message_id)`` pairs, in ONE script call
        (``conversation_append_many.lua``): each message is skipped when one with its id was
        stored before or earlier in the same call, else numbered and stored, with its own
        ``conversation.append`` event, in the order given, exactly as a run of append_unique
        calls would (the whole call is atomic). Returns each message's number, or None for the
        skipped ones.

        Every message and id is checked first: one bad message raises ValueError and nothing
        is written. Not for a conversation with ``max_messages`` (ValueError): its trims
        interleave with the appends, so it appends one message at a time.
        """
        if self.max_messages is not None:
            raise ValueError(
                "append_unique_many takes no cap: with max_messages, use append_unique"
            )
        encoded: list[tuple[dict[str, Any], str, str, str]] = []
        for message, message_id in messages:
            if not isinstance(message_id, str) or not message_id or len(message_id) > 256:
                raise ValueError("message_id must be a non-empty string of at most 256 characters")
            stored, text, head = encode_message(message)
            encoded.append((stored, text, head, message_id))
        if not encoded:
            return []
        args: list[object] = [APPEND_MANY_CHUNK]
        for _, text, head, message_id in encoded:
            args += (text[1:], head, message_id)  # the script takes it without its "{"
        first, *numbers = await self.redis.run(
            "conversation_append_many", self._session, self.append_many_keys(self._session), args
        )
        out: list[int | None] = []
        for (stored, *_), number in zip(encoded, numbers, strict=True):
            if number < 0:
                out.append(None)
                continue
            out.append(number)
            self._remember({"index": number, **stored})
        if first is not None:
            self._first = first
            history = self.history
            if history and history[0]["index"] < first:
                self._forget_before(first)
        return out

    @staticmethod
    def append_many_keys(session: SessionKeys) -> tuple[str, str, str]:
        """The KEYS[3..5] of ``conversation_append_many.lua`` for ``session``."""
        name = session.key("conversation")
        return (name, name + ":n", name + ":ids")

    def _remember(self, item: dict[str, Any]) -> None:
        """Put an item this instance appended into ``history``, in number order."""
        index = item["index"]
        history = self.history
        if not history or history[-1]["index"] < index:
            history.append(item)
        else:
            at = bisect_left(history, index, key=_index)
            if at < len(history) and history[at]["index"] == index:
                history[at] = item
            else:
                history.insert(at, item)

    async def _append(
        self, message: dict[str, Any] | ConversationMessage, unique: tuple[str, ...]
    ) -> tuple[int, bool]:
        stored, text, head = encode_message(message)
        index, first, written = await self.redis.run(
            "conversation_append", self._session, (self._list,), (text, head, *self._cap, *unique)
        )
        if not written:
            return index, False
        self._first = first
        item = {"index": index, **stored}
        history = self.history
        if not history or history[-1]["index"] < index:
            history.append(item)
        else:  # a concurrent append of this instance finished first, or a load() saw this one
            at = bisect_left(history, index, key=_index)
            if at < len(history) and history[at]["index"] == index:
                history[at] = item
            else:
                history.insert(at, item)
        if history[0]["index"] < first:
            self._forget_before(first)
        return index, True

    async def add_message(
        self, role: str, content: str, context: dict[str, Any] | None = None
    ) -> int:
        return await self.append({"role": role, "content": content, "context": context or {}})

    async def trim_old_messages(
        self, keep: int, *, reason: Literal["manual", "compact"] = "manual"
    ) -> int:
        """Keep only the newest ``keep`` messages; returns how many were removed.

        A trim that removes something publishes ``conversation.trim`` and leaves a marker with
        ``reason`` ("compact": the agent replaced its context with a summary).
        """
        _check_count("keep", keep)
        if reason not in ("manual", "compact"):
            raise ValueError(f"reason must be 'manual' or 'compact', not {reason!r}")
        removed, first = await self.redis.run(
            "conversation_trim", self._session, (self._list,), (keep, reason)
        )
        self._first = first
        self._forget_before(first)
        return removed

    async def get_context_summary(self) -> str:
        """The last 10 messages of ``history``, one ``role: content[:100]`` line each."""
        return "\n".join(f"{msg['role']}: {msg['content'][:100]}" for msg in self.history[-10:])

    async def load(self, last: int | None = None) -> list[dict[str, Any]]:
        """Replace ``history`` with the stored messages: all retained, or the newest ``last``.

        Without ``last`` the whole retained conversation is read at once (one LRANGE); for long
        ones pass a bound (or set ``max_messages``) and read older windows with :meth:`page`.
        """
        if last is not None:
            _check_count("last", last)
        if last == 0:
            items = []
        else:
            items = await self.redis.client.lrange(self._list, -min(last or 0, _MAX_LIST), -1)
        history = decode_messages(items)
        if history:
            if last is None:
                self._first = history[0]["index"]
            newest = history[-1]["index"]  # own appends that landed after the read stay
            history += [m for m in self.history if m["index"] > newest]
        self.history = history
        return history

    async def page(self, start: int, count: int) -> list[dict[str, Any]]:
        """Retained messages numbered ``start`` … ``start + count - 1``, each with its ``index``.

        Reads only that window: one LRANGE, or when this instance's idea of the numbering is
        missing or stale (a trim since, or an empty window), one script that reads it afresh.
        Numbers that were trimmed or not yet written are simply absent.
        """
        _check_count("start", start)
        _check_count("count", count)
        if count == 0:
            return []
        first = self._first
        if first is not None and first <= start < first + _MAX_LIST:
            at = start - first
            items = await self.redis.client.lrange(self._list, at, min(at + count - 1, _MAX_LIST))
            if items and _index_of(items[0]) == start:
                return decode_messages(items)
        first, _total, items = await self.redis.run(
            "conversation_page", self._session, (self._list,), (start, count)
        )
        self._first = first
        return decode_messages(items)

    async def count(self) -> ConversationSpan:
        """First retained message number and how many were ever appended, read together."""
        first, total, _ = await self.redis.run(
            "conversation_page", self._session, (self._list,), (0, 0)
        )
        self._first = first
        return ConversationSpan(first, total)

    async def trims(self) -> list[TrimMarker]:
        """The trim markers, oldest first (the newest :data:`MAX_TRIM_MARKERS`)."""
        raw = await self.redis.client.lrange(self._list + ":trims", 0, -1)
        return [TrimMarker(**pydantic_core.from_json(item)) for item in raw]

    def _forget_before(self, first: int) -> None:
        history = self.history
        if history and history[0]["index"] < first:
            del history[: bisect_left(history, first, key=_index)]


def _index(message: dict[str, Any]) -> int:
    return message["index"]


def preview(message: dict[str, Any]) -> dict[str, Any]:
    """A message as its ``conversation.append`` event describes it (what a feed view holds)."""
    content = message["content"]
    short = {
        "index": message["index"],
        "role": message["role"],
        "preview": content[:PREVIEW_CHARS],
        "length": len(content),
        "timestamp": message["timestamp"],
    }
    for optional in ("tokens", "model"):
        if optional in message:
            short[optional] = message[optional]
    return short


@dataclass(slots=True)
class ConversationView:
    """The conversation part of a session's feed view: its numbering and its newest lines.

    Older messages are read with :meth:`ConversationMemory.page` as the dashboard scrolls;
    ``first`` messages (all numbered below ``first``) were trimmed.
    """

    first: int = 0
    total: int = 0
    recent: list[dict[str, Any]] = field(default_factory=list)  # previews, oldest first
    trims: list[TrimMarker] = field(default_factory=list)  # the newest, oldest first

    @property
    def retained(self) -> int:
        return self.total - self.first


class ConversationSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`ConversationView`."""

    name = "conversation"
    kinds = ("conversation.",)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        name = keys.key("conversation")
        pipe.get(name + ":n")
        pipe.llen(name)
        pipe.lrange(name, -RECENT_MESSAGES, -1)
        pipe.lrange(name + ":trims", -RECENT_MESSAGES, -1)
        return 4

    def build(self, results: Sequence[Any]) -> ConversationView | None:
        total, length, items, trims = results
        if total is None:
            return None
        return ConversationView(
            int(total) - length,
            int(total),
            [preview(message) for message in decode_messages(items)],
            [TrimMarker(**pydantic_core.from_json(marker)) for marker in trims],
        )

    def apply(self, view: Any, event: Any) -> bool:
        """Follow appends and trims; anything unexpected (a number out of turn, a malformed
        payload, a kind this version does not know) asks for a re-read."""
        payload = event.payload
        conversation: ConversationView | None = view.conversation
        try:
            if event.kind == "conversation.append":
                index = payload["index"]
                if conversation is None:
                    conversation = ConversationView()
                if type(index) is not int or index != conversation.total:
                    return False
                short = {key: payload[key] for key in _PREVIEW_KEYS if key in payload}
                short["timestamp"] = datetime.fromisoformat(payload["timestamp"])
                conversation.recent.append(short)
                del conversation.recent[:-RECENT_MESSAGES]
                conversation.total = index + 1
                view.conversation = conversation
                return True
            if event.kind == "conversation.trim" and conversation is not None:
                marker = TrimMarker(
                    payload["first"],
                    payload["last"],
                    payload["count"],
                    payload["reason"],
                    event.seq,
                    event.ts,
                )
                if (
                    not all(type(n) is int for n in (marker.first, marker.last, marker.count))
                    or marker.first != conversation.first
                    or marker.last >= conversation.total
                ):
                    return False
                conversation.first = marker.last + 1
                conversation.trims.append(marker)
                del conversation.trims[:-RECENT_MESSAGES]
                conversation.recent = [m for m in conversation.recent if m["index"] > marker.last]
                return True
        except (KeyError, TypeError, ValueError):
            pass
        return False


_PREVIEW_KEYS = ("index", "role", "preview", "length", "timestamp", "tokens", "model")
