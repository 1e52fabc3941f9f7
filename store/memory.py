"""MemoryStore: scoped key/value memory with TTL, atomic in memory_set.lua and memory_delete.lua.

A value lives in the string ``NS:{NS:<user_id>}:mem:<scope>:<component>`` as
``'<version> <updated ms> <JSON>'``: one GET reads it, one SET (with EX) writes it and its TTL.
The version is the session seq of the write that produced it, so it never repeats, even across a
delete. The session is the key's ``user_id``.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import codec
from .connection import Connection, resolve
from .keys import MemoryKey, SessionKeys


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


def _split(raw: str) -> tuple[int, str]:
    version, _updated, text = raw.split(" ", 2)
    return int(version), text


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
        return None if raw is None else codec.decode(_split(raw)[1])

    async def get_entry(self, key: MemoryKey) -> MemoryEntry | None:
        """Value, version and seconds left, read together (for compare-and-set edits)."""
        name = self._layout(key).name
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.get(name)
            pipe.ttl(name)
            raw, ttl = await pipe.execute()
        if raw is None:
            return None
        version, text = _split(raw)
        return MemoryEntry(codec.decode(text), version, ttl if ttl > 0 else None)

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


class SessionMemory(MemoryStore):
    """The seed's Example 1: a user's session context, kept for an hour."""

    CONTEXT_TTL = 3600

    @staticmethod
    def context_key(user_id: str) -> MemoryKey:
        return MemoryKey(scope="session", user_id=user_id, component="context")

    async def save_user_context(self, user_id: str, context: dict[str, Any]) -> int:
        return await self.set(self.context_key(user_id), context, ttl=self.CONTEXT_TTL)

    async def load_user_context(self, user_id: str) -> dict[str, Any] | None:
        return await self.get(self.context_key(user_id))
