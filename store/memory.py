"""MemoryStore: scoped key/value memory with TTL, atomic in memory_set.lua and memory_delete.lua.

A value lives in the string ``NS:{NS:<user_id>}:mem:<scope>:<component>`` as
``'<version> <updated ms> <ttl s or -> <JSON>'``: one GET reads it, one SET (with EX) writes it
and its TTL.
The version is the session seq of the write that produced it, so it never repeats, even across a
delete. The session is the key's ``user_id``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import codec
from .connection import Connection, resolve
from .keys import MemoryKey, SessionKeys, split_memory_member

CONTEXT = ("session", "context")
"""(scope, component) of a session's context, as usage example 1 stores it
(tests/test_seed_example1.py)."""


class VersionConflictError(Exception):
    """A compare-and-set found another version than the one the caller read."""

    def __init__(self, key: MemoryKey, expected: int, actual: int) -> None:
        super().__init__(
            f"{key.scope}/{key.user_id}/{key.component}: expected version {expected}, "
            f"found {actual}"
        )
        self.key, self.expected, self.actual = key, expected, actual


class MemoryEntry(NamedTuple):
    value: Any
    version: int
    ttl: int | None


def check_ttl(ttl: object) -> int | None:
    if ttl is None:
        return None
    if type(ttl) is not int or ttl <= 0:
        raise ValueError(f"ttl must be a positive int of seconds or None, not {ttl!r}")
    return ttl


class _Layout(NamedTuple):
    """Everything a call needs to name one MemoryKey in Redis, computed once per key."""

    session: SessionKeys
    name: str
    event_head: str  # '{"scope":…,"component":…' (memory_set.lua completes it)


class _Stored(NamedTuple):
    version: int
    updated: int  # server ms
    ttl: int | None  # as written
    text: str  # the value's JSON

    @property
    def expires_at(self) -> int | None:
        return None if self.ttl is None else self.updated + self.ttl * 1000


def _split(raw: str) -> _Stored:
    version, updated, ttl, text = raw.split(" ", 3)
    return _Stored(int(version), int(updated), None if ttl == "-" else int(ttl), text)


class MemoryStore:
    """Scoped key/value memory; every write is one atomic script that also publishes an event."""

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        self.redis: Connection = resolve(redis, namespace)
        self._layouts: dict[MemoryKey, _Layout] = {}

    @property
    def namespace(self) -> str:
        return self.redis.namespace

    def _layout(self, key: MemoryKey) -> _Layout:
        layout = self._layouts.get(key) if isinstance(key, MemoryKey) else None
        if layout is None:
            if not isinstance(key, MemoryKey):
                raise TypeError(f"key must be a MemoryKey, not {type(key).__name__}")
            if len(self._layouts) >= 4096:  # a bounded memo: key names are on the hot path
                self._layouts.clear()
            session = self.redis.session(key.user_id)
            head = '{"scope":' + json.dumps(key.scope) + ',"component":' + json.dumps(key.component)
            layout = _Layout(session, session.memory(key.scope, key.component), head)
            self._layouts[key] = layout
        return layout

    async def get(self, key: MemoryKey) -> Any:
        """The stored value, or None when the key is absent or expired."""
        raw = await self.redis.client.get(self._layout(key).name)
        return None if raw is None else codec.decode(_split(raw).text)

    async def get_entry(self, key: MemoryKey) -> MemoryEntry | None:
        """Value, version and seconds left, read together (for compare-and-set edits)."""
        name = self._layout(key).name
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.get(name)
            pipe.ttl(name)
            raw, ttl = await pipe.execute()
        if raw is None:
            return None
        stored = _split(raw)
        return MemoryEntry(codec.decode(stored.text), stored.version, ttl if ttl > 0 else None)

    async def set(
        self,
        key: MemoryKey,
        value: Any,
        ttl: int | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Store ``value`` (replacing any TTL with ``ttl``); returns the new version.

        With ``expected_version`` the write happens only if the stored version still is that
        (0: only if absent); otherwise :class:`VersionConflictError` and nothing is written.
        """
        layout = self._layout(key)
        ttl = check_ttl(ttl)
        if expected_version is not None and (
            type(expected_version) is not int or expected_version < 0
        ):
            raise ValueError(f"expected_version must be an int >= 0, not {expected_version!r}")
        text = codec.encode(value)
        args = (text, layout.event_head, "" if ttl is None else ttl)
        if expected_version is not None:
            args += (expected_version,)
        try:
            return await self.redis.run("memory_set", layout.session, (layout.name,), args)
        except ResponseError as e:
            if str(e).startswith("CONFLICT "):
                actual = int(str(e).split()[1])
                raise VersionConflictError(key, expected_version or 0, actual) from None
            raise

    async def delete(self, key: MemoryKey) -> bool:
        """Remove the value; True when there was one."""
        layout = self._layout(key)
        seq = await self.redis.run(
            "memory_delete", layout.session, (layout.name,), (layout.event_head + "}",)
        )
        return bool(seq)

    async def ttl(self, key: MemoryKey) -> int | None:
        """Seconds left before the value expires; None when it has no expiry or is absent."""
        left = await self.redis.client.ttl(self._layout(key).name)
        return left if left >= 0 else None


@dataclass(slots=True)
class MemoryView:
    """The MemoryStore part of a session's view: its context and the names of its other keys."""

    context: Any = None
    context_version: int | None = None
    context_expires_at: int | None = None  # server ms (None: no expiry)
    keys: set[tuple[str, str]] = field(default_factory=set)  # (scope, component), context too


class MemorySection:
    """Feed section: the session's context value and its list of memory keys."""

    name = "memory"
    kinds = ("memory.",)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.get(keys.memory(*CONTEXT))
        pipe.smembers(keys.memory_index)
        return 2

    def build(self, results: Sequence[Any]) -> MemoryView | None:
        raw, members = results
        if raw is None and not members:
            return None
        view = MemoryView(keys={split_memory_member(m) for m in members})
        if raw is not None:
            stored = _split(raw)
            view.context = codec.decode(stored.text)
            view.context_version = stored.version
            view.context_expires_at = stored.expires_at
        return view

    def apply(self, view: Any, event: Any) -> bool:
        payload = event.payload
        name = (payload.get("scope"), payload.get("component"))
        if not all(isinstance(part, str) for part in name):
            return False
        memory = view.memory
        if memory is None:
            memory = view.memory = MemoryView()
        if event.kind == "memory.delete":
            memory.keys.discard(name)
            if name == CONTEXT:
                memory.context = memory.context_version = memory.context_expires_at = None
            if not memory.keys:
                view.memory = None  # as a fresh snapshot would have it
            return True
        memory.keys.add(name)
        if name != CONTEXT:
            return True
        if "value" not in payload:
            return False  # a large value: read it
        ttl = payload.get("ttl")
        memory.context = codec.untag(payload["value"])
        memory.context_version = payload.get("version")
        memory.context_expires_at = None if ttl is None else event.ts + ttl * 1000
        return True


class SessionMemory(MemoryStore):
    """Usage example 1 (tests/test_seed_example1.py): a user's session context, kept for an hour."""

    CONTEXT_TTL = 3600

    @staticmethod
    def context_key(user_id: str) -> MemoryKey:
        scope, component = CONTEXT
        return MemoryKey(scope=scope, user_id=user_id, component=component)

    async def save_user_context(self, user_id: str, context: dict[str, Any]) -> int:
        return await self.set(self.context_key(user_id), context, ttl=self.CONTEXT_TTL)

    async def load_user_context(self, user_id: str) -> dict[str, Any] | None:
        return await self.get(self.context_key(user_id))
