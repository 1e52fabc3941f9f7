"""Sessions: delete a whole session (every key, its registry entry, one event), and prune a
namespace by last activity.

A delete is one script (``session_delete.lua``) over every key of the session, all declared in
KEYS: the fixed keys of each component, the values the memory index names, and what a SCAN of
the session's key prefix finds besides (named workflows ``wf.<name>``, the per-request markers
``budget:req:<id>``, anything a later component adds). In the same atomic step it leaves the
registry ``NS:sessions`` and publishes ``session.delete`` (``{keys, memory, messages}``: how
many keys, memory values and retained messages went) with the session's next seq; a Feed drops
the session on it.

Races. The script refuses, changing nothing, when the memory index names a value the caller did
not declare (written since the index was read), and names them; the delete goes again with them.
A writer whose script runs after the delete starts the session again from nothing: its
``begin()`` takes seq 1 and registers it anew, and a Feed shows a new session (no tombstone:
a still-running agent that is deleted comes back as the new session it is). What the SCAN cannot
see is a key created between the SCAN and the script: a request marker (it expires within 24 h
by itself, and only makes that one request id count as a duplicate until then) or a named
workflow other than ``task`` started in that instant.

The SCAN is incremental (``COUNT`` keys per call, the server is never blocked) and matches the
session's exact prefix, so only the session's keys come back; its cost is a walk over the
store's keyspace per session deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from . import codec
from .connection import Connection, resolve
from .keys import SessionKeys, check_part, memory_member
from .steering import TASK_WORKFLOW
from .workflow import workflow_key

DELETE_EVENT = "session.delete"
SCAN_COUNT = 2000  # keys the server examines per SCAN call
PAGE = 200  # sessions per registry page (ZRANGEBYSCORE … LIMIT)
RETRIES = 8  # memory values written under a delete, again and again, before giving up

_WORKFLOW_PARTS = ("", ":graph", ":history")
COMPONENT_KEYS: tuple[str, ...] = (
    "budget",
    "budget:minutes",
    "conversation",
    "conversation:n",
    "conversation:trims",
    "conversation:ids",
    "cache",
    "cache:series",
    *(workflow_key(name) + part for name in (None, TASK_WORKFLOW) for part in _WORKFLOW_PARTS),
    "notes",
    "notes:state",
    "notes:delivered",
    "control",
    "control:log",
)
"""Every fixed key of a session besides ``meta`` and the memory index ``mem``
(see the README's key layout)."""

_GLOB = str.maketrans({c: "\\" + c for c in "\\*?[]"})

Outcome = Literal["deleted", "missing", "active"]


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a delete did to one session.

    ``missing``: there was no such session. ``active``: it was active after the time the caller
    allowed (a prune), and stayed. ``deleted``: gone, with ``keys`` keys (``memory`` of them
    memory values) and ``messages`` retained messages, announced as event ``seq``;
    ``transcript_path`` is the one its context named, if any (read just before).
    """

    session: str
    outcome: Outcome
    seq: int = 0
    keys: int = 0
    memory: int = 0
    messages: int = 0
    transcript_path: str | None = None


def _glob(text: str) -> str:
    return text.translate(_GLOB)


class Sessions:
    """The sessions of a namespace, as wholes: list by last activity, delete, prune."""

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        self.redis: Connection = resolve(redis, namespace)

    async def now_ms(self) -> int:
        """The server's time in ms: the clock of the registry's scores."""
        seconds, micros = await self.redis.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def delete(self, session: str, *, active_before: int | None = None) -> Deletion:
        """Delete every key of ``session``, leave the registry and announce it, atomically.

        With ``active_before`` (server ms), only if its last activity is not later than that:
        a session that became active since it was chosen is kept (outcome ``active``).
        """
        check_part("session", session)
        keys = self.redis.session(session)
        transcript, found = await self._scan(keys)
        memory = {k for k in found if k.startswith(keys.prefix + "mem:")}
        others = dict.fromkeys([*(keys.key(name) for name in COMPONENT_KEYS), *found])
        for _ in range(RETRIES):
            for key in memory:
                others.pop(key, None)
            reply = await self.redis.run(
                "session_delete",
                keys,
                (keys.memory_index, *memory, *others),
                ("" if active_before is None else int(active_before), len(memory)),
            )
            if reply == 0:
                return Deletion(session, "missing")
            if reply[0] == -1:  # values written since the index was read: declare them too
                memory.update(keys.prefix + member for member in reply[1:])
                continue
            if reply[0] == -2:
                return Deletion(session, "active")
            seq, removed, values, messages = (int(n) for n in reply)
            return Deletion(session, "deleted", seq, removed, values, messages, transcript)
        raise RuntimeError(f"memory values of session {session!r} kept appearing; not deleted")

    async def _scan(self, keys: SessionKeys) -> tuple[str | None, set[str]]:
        """The transcript path the session's context names, and every key of the session:
        the memory index's values and whatever a SCAN of the session's prefix finds."""
        context = keys.prefix + memory_member("session", "context")
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.get(context)
            pipe.smembers(keys.memory_index)
            raw, members = await pipe.execute()
        found = {keys.prefix + member for member in members}
        cursor: Any = 0
        pattern = _glob(keys.prefix) + "*"
        while True:
            cursor, batch = await self.redis.client.scan(cursor, match=pattern, count=SCAN_COUNT)
            found.update(batch)
            if int(cursor) == 0:
                break
        found.discard(keys.meta)
        found.discard(keys.memory_index)
        return _transcript_path(raw), found

    async def delete_many(
        self, sessions: Iterable[str], *, active_before: int | None = None
    ) -> list[Deletion]:
        """:meth:`delete` each, in order."""
        return [await self.delete(s, active_before=active_before) for s in sessions]

    async def older_than(self, cutoff_ms: int, *, page: int = PAGE) -> AsyncIterator[list[Any]]:
        """Pages of ``(session, last activity ms)`` whose last activity is at or before
        ``cutoff_ms``, oldest first, read page by page (never the whole registry at once)."""
        offset = 0
        while True:
            rows = await self.redis.client.zrangebyscore(
                self.redis.keys.sessions, "-inf", cutoff_ms, offset, page, withscores=True
            )
            if rows:
                yield [(session, int(score)) for session, score in rows]
            if len(rows) < page:
                return
            offset += page

    async def prune(self, cutoff_ms: int, *, page: int = PAGE) -> AsyncIterator[list[Deletion]]:
        """Delete, page by page, every session whose last activity is at or before
        ``cutoff_ms``; one that became active meanwhile stays. Yields each page's deletions."""
        previous: list[str] | None = None
        while True:
            rows = await self.redis.client.zrangebyscore(
                self.redis.keys.sessions, "-inf", cutoff_ms, 0, page
            )
            if not rows or rows == previous:  # nothing left, or nothing could go
                return
            previous = rows
            yield await self.delete_many(rows, active_before=cutoff_ms)

    async def keep_newest(self, keep: int, *, page: int = PAGE) -> list[Deletion]:
        """Delete all but the ``keep`` most recently active sessions (oldest first), each only
        if it has not been active since it was listed."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, not {keep!r}")
        deleted: list[Deletion] = []
        registry = self.redis.keys.sessions
        while True:
            excess = await self.redis.client.zcard(registry) - keep
            if excess <= 0:
                return deleted
            rows = await self.redis.client.zrange(
                registry, 0, min(excess, page) - 1, withscores=True
            )
            done = [await self.delete(s, active_before=int(score)) for s, score in rows]
            deleted += [d for d in done if d.outcome == "deleted"]
            if not any(d.outcome != "active" for d in done):
                return deleted  # every one of them became active: leave the rest be


def _transcript_path(raw: str | None) -> str | None:
    """``transcript_path`` of a stored context value (``<version> <updated> <ttl> <JSON>``)."""
    if raw is None:
        return None
    try:
        value = codec.decode(raw.split(" ", 3)[3])
    except (IndexError, ValueError):
        return None
    path = value.get("transcript_path") if isinstance(value, dict) else None
    return path if isinstance(path, str) and path else None
