"""A private redis-server for the whole test session; every test starts from an empty one.

Nothing here touches 127.0.0.1:6379: the server gets a free port and a unix socket in a temp
dir, and is stopped by its pid at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from store import Connection
from store.server import RedisServer, free_port

SHARED_PORT = 6379


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    directory = tmp_path_factory.mktemp("redis")
    for _ in range(5):
        port = free_port()
        assert port != SHARED_PORT
        server = RedisServer(directory=directory, port=port, unixsocket=directory / "redis.sock")
        try:
            server.start()
            break
        except (RuntimeError, TimeoutError):  # lost the race for the port: try another
            server.stop()
    else:
        raise RuntimeError("could not start a private redis-server")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    yield redis_server.url


@pytest.fixture
async def conn(redis_url: str) -> AsyncIterator[Connection]:
    connection = Connection(redis_url, namespace="test")
    yield connection
    await connection.aclose()


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No memdash settings from the caller's environment; a private user data dir."""
    monkeypatch.delenv("MEMDASH_REDIS_URL", raising=False)
    monkeypatch.delenv("MEMDASH_NAMESPACE", raising=False)
    data = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data
