"""Which Redis, in which namespace, and a client that works on whatever event loop calls it.

Resolution order: an explicit URL, then ``MEMDASH_REDIS_URL``, then the embedded server
(see ``store.embedded``). The namespace comes from the argument, then ``MEMDASH_NAMESPACE``,
then ``memdash``; every key and channel of namespace NS starts with ``NS:``.
"""

from __future__ import annotations

import asyncio
import math
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from . import embedded
from .keys import NamespaceKeys, SessionKeys, check_namespace, check_part
from .scripts import source

URL_ENV = "MEMDASH_REDIS_URL"
NAMESPACE_ENV = "MEMDASH_NAMESPACE"
DEFAULT_NAMESPACE = "memdash"
SCHEMES = ("redis", "rediss", "unix")
MAX_CONNECTIONS = 64  # per process and event loop; more concurrent calls queue for one


def resolve_namespace(namespace: str | None = None) -> str:
    return check_namespace(namespace or os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE)


def check_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise ValueError(
            f"Redis URL {mask_url(url)!r} must start with redis://, rediss:// or unix://"
        )
    return url


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for display and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _Clients:
    """One redis.asyncio client per event loop: a client's sockets belong to the loop that opened
    them, and an app, a test and ``asyncio.run`` may each bring their own loop."""

    def __init__(self, url: str | None, fixed: aioredis.Redis | None = None) -> None:
        self._url = url
        self.fixed = fixed
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._subscribers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._scripts: dict[str, AsyncScript] = {}

    @property
    def url(self) -> str:
        """The resolved URL; resolving the embedded default starts or attaches to its server."""
        if self._url is None:
            self._url = os.environ.get(URL_ENV) or embedded.ensure_running()
        return check_url(self._url)

    def client(self) -> aioredis.Redis:
        if self.fixed is not None:
            return self.fixed
        loop = _running_loop()
        client = self._by_loop.get(loop)
        if client is None:
            # A burst of concurrent calls waits for a free connection instead of failing.
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=30
            )
            client = aioredis.Redis(connection_pool=pool)
            self._by_loop[loop] = client
        return client

    def subscriber(self) -> aioredis.Redis:
        """A client for pub/sub only, speaking RESP2: redis-py 8 defaults to RESP3, whose push
        messages cost ~30 % more per message to receive (a debug log line formats every one),
        and a dashboard receives tens of thousands a second. Pub/sub holds its own connection
        anyway, so it gains nothing from the shared pool."""
        if self.fixed is not None:
            return self.fixed
        loop = _running_loop()
        client = self._subscribers.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.url, decode_responses=True, protocol=2)
            self._subscribers[loop] = client
        return client

    def script(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            # The registered client only lends its encoder; calls pass the current loop's client.
            script = AsyncScript(_ENCODER_ONLY, source(name))
            self._scripts[name] = script
        return script

    async def aclose(self) -> None:
        """Close this loop's client; clients of other loops can only be closed on their loop,
        and those of loops already closed are dropped."""
        if self.fixed is not None:
            await self.fixed.aclose()
            return
        loop = asyncio.get_running_loop()
        for clients in (self._by_loop, self._subscribers):
            for other in [other for other in clients if other.is_closed()]:
                del clients[other]
        for clients in (self._by_loop, self._subscribers):
            client = clients.pop(loop, None)
            if client is not None:
                await client.aclose()


def _pack(args: Sequence[Any]) -> bytes:
    """Arguments as RESP bulk strings (str as UTF-8, int in decimal, bytes as they are)."""
    parts: list[bytes] = []
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        elif kind is str:
            arg = arg.encode()
            append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        elif kind is int:
            arg = b"%d" % arg
            append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        elif kind is Packed:
            append(arg.data)
        else:
            raise TypeError(f"a script argument is str, bytes or int, not {kind.__name__}")
    return b"".join(parts)


class Packed:
    """Arguments already in RESP (``pack(...)`` of them): ``count`` of them in ``data``. An
    item of :meth:`Connection.run_many`'s arguments, for a caller that builds many at once."""

    __slots__ = ("count", "data")

    def __init__(self, count: int, data: bytes) -> None:
        self.count = count
        self.data = data


def pack(*args: bytes) -> bytes:
    """Byte strings as RESP bulk strings (see :class:`Packed`)."""
    return b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args])


async def _pipelined(
    client: aioredis.Redis, count: int, packed: Callable[[], bytes], retry: bool = True
) -> list[Any]:
    """Send ``packed()`` (``count`` commands) on one connection of ``client``'s pool and read
    the ``count`` replies (an error reply as its exception instance); a connection lost before
    any reply was read is retried once."""
    pool = client.connection_pool
    connection = await pool.get_connection()
    replies: list[Any] = []
    try:
        await connection.send_packed_command(packed())
        # One deadline for the replies (redis-py would arm one per reply, which costs more than
        # reading it): the connection's socket timeout, if any.
        async with asyncio.timeout(connection.socket_timeout or None):
            for _ in range(count):
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except ResponseError as error:
                    replies.append(error)
        return replies
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError):
        await connection.disconnect(nowait=True)
        if replies or not retry:
            raise
    except BaseException:  # cancelled mid-read: the replies left unread go with it
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
    return await _pipelined(client, count, packed, retry=False)


def _running_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("memdash's Redis client is used from async code only") from None


# register_script needs a client for its encoder only; this one never connects.
_ENCODER_ONLY = aioredis.Redis(decode_responses=True)


class Connection:
    """A namespace on a Redis server.

    Attribute access falls through to the redis.asyncio client of the running loop, so
    ``await conn.get("k")`` works like redis-py; memdash's own calls go through :meth:`run`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        client: aioredis.Redis | None = None,
        _clients: _Clients | None = None,
    ) -> None:
        if url is not None:
            check_url(url)
        self.namespace = resolve_namespace(namespace)
        self.keys = NamespaceKeys(self.namespace)
        self._clients = _clients or _Clients(url, client)

    @property
    def url(self) -> str:
        if self._clients.fixed is not None:
            kwargs = self._clients.fixed.connection_pool.connection_kwargs
            if "path" in kwargs:
                return f"unix://{kwargs['path']}"
            return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        return self._clients.url

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    @property
    def client(self) -> aioredis.Redis:
        return self._clients.client()

    def pubsub(self) -> aioredis.client.PubSub:
        """A PubSub on this loop's subscriber client (see ``_Clients.subscriber``)."""
        return self._clients.subscriber().pubsub()

    def with_namespace(self, namespace: str | None) -> Connection:
        """The same server (and clients) under another namespace."""
        if namespace is None or namespace == self.namespace:
            return self
        return Connection(namespace=namespace, _clients=self._clients)

    def session(self, session: str) -> SessionKeys:
        return self.keys.session(session)

    async def run(
        self, script: str, session: SessionKeys, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run ``store/<script>.lua`` for one session: one EVALSHA, one round trip.

        Prepends the event contract's keys and arguments (see ``_event.lua``).
        """
        lua = self._clients.script(script)
        client = self._clients.client()
        n = 2 + len(keys)
        try:
            return await client.evalsha(
                lua.sha,
                n,
                session.meta,
                self.keys.sessions,
                *keys,
                session.session,
                session.header,
                *args,
            )
        except NoScriptError:  # a restarted or different server: load it and go again
            lua.sha = await client.script_load(lua.script)
            return await client.evalsha(
                lua.sha,
                n,
                session.meta,
                self.keys.sessions,
                *keys,
                session.session,
                session.header,
                *args,
            )

    async def run_many(
        self,
        script: str,
        calls: Sequence[tuple[SessionKeys, Sequence[str], Sequence[Any]]],
    ) -> list[Any]:
        """Run ``store/<script>.lua`` once per ``(session, keys, args)`` call, pipelined.

        All the calls go out together on one connection and their replies are read together:
        one round trip however many there are (no MULTI: each call is its own atomic script, as
        with :meth:`run`, and they run in the order given). Returns each call's reply, or its
        error reply as an exception instance (nothing is raised for one); a connection lost
        before any reply was read is retried once, as redis-py retries. Calls refused with
        NOSCRIPT (a restarted or different server) are sent again, in their order, once the
        script is loaded. Arguments are str, bytes, int or :class:`Packed` (several at once);
        keys are str or :class:`Packed`.
        """
        if not calls:
            return []
        lua = self._clients.script(script)
        client = self._clients.client()
        sessions = self.keys.sessions.encode()

        def packed(indices: Sequence[int]) -> bytes:
            sha = lua.sha.encode()
            parts: list[bytes] = []
            heads: dict[tuple[str, tuple[str, ...], int], bytes] = {}  # same session and keys
            for i in indices:
                session, keys, args = calls[i]
                keys = tuple(keys)
                count = sum(arg.count - 1 for arg in args if type(arg) is Packed) + len(args)
                head = heads.get((session.session, keys, count))
                if head is None:
                    numkeys = 2 + sum(key.count if type(key) is Packed else 1 for key in keys)
                    fixed = [b"EVALSHA", sha, b"%d" % numkeys, session.meta, sessions]
                    fixed += (*keys, session.session, session.header)
                    head = b"*%d\r\n" % (len(fixed) - len(keys) + numkeys - 2 + count)
                    head += _pack(fixed)
                    heads[(session.session, keys, count)] = head
                parts += (head, _pack(args))
            return b"".join(parts)

        async def send(indices: Sequence[int]) -> list[Any]:
            return await _pipelined(client, len(indices), lambda: packed(indices))

        replies = await send(range(len(calls)))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            lua.sha = await client.script_load(lua.script)
            for i, reply in zip(missing, await send(missing), strict=True):
                replies[i] = reply
        return replies

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Plain commands (e.g. ``("HMGET", key, *fields)``), pipelined as :meth:`run_many`
        sends its calls: one round trip, replies (or error replies as exception instances) in
        order, a lost connection retried once. Arguments are str, bytes or int."""
        if not commands:
            return []

        def packed() -> bytes:
            return b"".join(b"*%d\r\n%b" % (len(command), _pack(command)) for command in commands)

        return await _pipelined(self._clients.client(), len(commands), packed)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._clients.client(), name)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        url = self._clients._url
        shown = mask_url(url) if url else f"<{URL_ENV} or embedded>"
        return f"Connection({shown!r}, namespace={self.namespace!r})"


class SessionBound:
    """A component of one session (notes, control, steering): the validated session id, the
    resolved connection, and ``_keys``, the keys its scripts take (from :meth:`keys_of`)."""

    def __init__(
        self,
        session_id: str,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        self.session_id = check_part("session_id", session_id)
        self.redis: Connection = resolve(redis, namespace)
        self._session = self.redis.session(session_id)
        self._keys = self.keys_of(self._session)

    @staticmethod
    def keys_of(session: SessionKeys) -> tuple[str, ...]:
        """The session's keys this component's scripts take, in their KEYS order."""
        return ()


def connect(url: str | None = None, *, namespace: str | None = None) -> Connection:
    """A connection to ``url`` (or ``MEMDASH_REDIS_URL``, or the embedded server)."""
    return Connection(url, namespace=namespace)


_defaults: dict[tuple[str | None, str], Connection] = {}


def resolve(redis: Connection | aioredis.Redis | str | None, namespace: str | None) -> Connection:
    """What every ``redis=None`` parameter in ``store`` means: the default connection."""
    if isinstance(redis, Connection):
        return redis.with_namespace(namespace)
    if isinstance(redis, aioredis.Redis):
        return Connection(namespace=namespace, client=redis)
    if isinstance(redis, str):
        return Connection(redis, namespace=namespace)
    if redis is not None:
        raise TypeError(
            "redis must be a store.Connection, a redis.asyncio.Redis or a URL, "
            f"not {type(redis).__name__}"
        )
    key = (os.environ.get(URL_ENV), resolve_namespace(namespace))
    conn = _defaults.get(key)
    if conn is None:
        conn = _defaults[key] = Connection(key[0], namespace=key[1])
    return conn
