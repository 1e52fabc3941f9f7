"""What every benchmark shares: a private redis-server (or a given URL) and a connection to it."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store import Connection
from store.server import RedisServer, free_port

NAMESPACE = "memdash-bench"
"""Benchmarks touch nothing outside this namespace (so --url may name a server in use)."""


@asynccontextmanager
async def bench_store(
    url: str | None = None, *, transport: str = "unix"
) -> AsyncIterator[Connection]:
    """A Connection in NAMESPACE: to ``url``, else to a private redis-server stopped at the end."""
    server = None
    if url is None:
        directory = Path(tempfile.mkdtemp(prefix="memdash-bench-"))
        server = RedisServer(directory=directory, port=free_port(), unixsocket=directory / "r.sock")
        server.start()
        url = server.url if transport == "unix" else f"redis://127.0.0.1:{server.port}/0"
    conn = Connection(url, namespace=NAMESPACE)
    try:
        yield conn
    finally:
        await conn.aclose()
        if server is not None:
            server.stop()


async def redis_version(conn: Connection) -> str:
    return (await conn.client.info("server"))["redis_version"]
