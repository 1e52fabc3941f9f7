"""DistributedMemory: state sync between agents over Redis pub/sub, under the namespace.

Pub/sub is at-most-once: a message published while a listener is reconnecting is gone. This is
for live state hand-offs between running agents; what must not be lost belongs in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import codec
from .connection import Connection, resolve
from .keys import check_part

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], Awaitable[None] | None]
MAX_BACKOFF = 2.0  # seconds between attempts to get a lost listener back


class Channels:
    """``publish``/``subscribe`` on channels under ``NS:sync:``, with one background listener.

    ``subscribe(channel, callback=fn)`` returns once Redis confirmed the subscription; ``fn``
    then gets ``{'channel': name, 'data': text}`` for each message, in order, from a listener
    task that resubscribes by itself after a lost connection. Other attributes fall through to
    the Connection, so ``self.redis.get(...)`` still works in subclasses.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._prefix = f"{conn.namespace}:sync:"
        self._callbacks: dict[str, Callback] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self.callback_errors = 0
        self.reconnects = 0

    def channel_name(self, channel: str) -> str:
        return self._prefix + check_part("channel", channel)

    async def publish(self, channel: str, data: str | bytes) -> int:
        """Publish ``data`` on ``channel``; returns how many listeners got it."""
        if not isinstance(data, str | bytes):
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        return await self._conn.client.publish(self.channel_name(channel), data)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        name = self.channel_name(channel)
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._callbacks[name] = callback
        confirmed = self._confirmed[name] = asyncio.Event()
        if self._pubsub is None:
            self._pubsub = self._conn.pubsub()
        await self._pubsub.subscribe(name)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name=f"memdash-sync:{name}")
        await confirmed.wait()

    async def unsubscribe(self, channel: str) -> None:
        name = self.channel_name(channel)
        self._callbacks.pop(name, None)
        self._confirmed.pop(name, None)
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(name)

    async def _listen(self) -> None:
        backoff = 0.05
        task = asyncio.current_task()
        while self._callbacks:
            try:
                assert self._pubsub is not None
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.05
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError  # a cancel swallowed by the read timeout
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("sync listener lost Redis (%s); resubscribing", error)
                while self._callbacks and not await self._resubscribe():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            if message is None:
                continue
            name = message["channel"]
            if message["type"] == "subscribe":
                event = self._confirmed.get(name)
                if event is not None:
                    event.set()
            elif message["type"] == "message" and name in self._callbacks:
                await self._deliver(self._callbacks[name], message)

    async def _resubscribe(self) -> bool:
        """A fresh connection subscribed to every channel we had; False while Redis is down."""
        old, self._pubsub = self._pubsub, self._conn.pubsub()
        if old is not None:
            try:
                await old.aclose()
            except Exception:  # the old connection is broken anyway
                log.debug("closing a broken pubsub connection failed", exc_info=True)
        try:
            await self._pubsub.subscribe(*self._callbacks)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return False
        self.reconnects += 1
        return True

    async def _deliver(self, callback: Callback, message: dict[str, Any]) -> None:
        try:
            result = callback({"channel": message["channel"], "data": message["data"]})
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.callback_errors += 1
            log.exception("sync callback for %s failed", message["channel"])

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(RedisConnectionError, OSError):
                await pubsub.aclose()
        self._callbacks.clear()
        self._confirmed.clear()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._conn, name)


class DistributedMemory:
    """Share state between agents: ``publish_state`` on a channel, ``subscribe_to_state`` to it."""

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        self.redis = Channels(resolve(redis, namespace))

    async def publish_state(self, channel: str, state: Any) -> int:
        """Publish ``state`` (JSON through store.codec, so datetimes survive)."""
        return await self.redis.publish(channel, codec.encode(state))

    async def subscribe_to_state(
        self, channel: str, callback: Callable[[Any], Awaitable[None] | None]
    ) -> None:
        """Call ``callback(state)`` for each state published on ``channel`` from now on."""

        async def on_message(message: dict[str, Any]) -> None:
            result = callback(codec.decode(message["data"]))
            if inspect.isawaitable(result):
                await result

        await self.redis.subscribe(channel, callback=on_message)

    async def close(self) -> None:
        await self.redis.close()

    async def __aenter__(self) -> DistributedMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
