"""`memdash rm` and `memdash prune` as a user runs them (subprocesses against a real
redis-server), and the demo's prune of its own namespace."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from store import Connection, MemoryKey, MemoryStore
from store.integrations.claude_code import TranscriptOffsets
from store.server import free_port
from tui.commands.demo import prune_demo
from tui.commands.sessions import duration

from .test_cli import env_for

MEMDASH = [sys.executable, "-m", "tui.cli"]
NS = "cli"
DAY = 86_400_000


def memdash(home: Path, url: str, *args: str, namespace: str = NS) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MEMDASH, *args, "--redis", url, "--namespace", namespace],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def write_sessions(url: str, ages_days: dict[str, float], namespace: str = NS, **ctx) -> None:
    """Sessions with a context each, their last activity ``ages_days`` before the server's now."""

    async def main() -> None:
        conn = Connection(url, namespace=namespace)
        try:
            store = MemoryStore(conn)
            for session in ages_days:
                await store.set(MemoryKey("session", session, "context"), {**ctx, "s": session})
            seconds, micros = await conn.client.time()
            now = int(seconds) * 1000 + int(micros) // 1000
            await conn.client.zadd(
                conn.keys.sessions, {s: now - int(age * DAY) for s, age in ages_days.items()}
            )
        finally:
            await conn.aclose()

    asyncio.run(main())


def registry(url: str, namespace: str = NS) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return client.zrange(f"{namespace}:sessions", 0, -1)


def session_keys(url: str, session: str, namespace: str = NS) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return client.keys(f"*{{{namespace}:{session}}}*")


def test_durations():
    assert duration("30d") == 30 * 86400
    assert duration("12h") == 12 * 3600
    assert duration("90m") == 90 * 60
    assert duration("45s") == 45
    assert duration("1h30m") == 5400
    assert duration(" 2W ") == 14 * 86400
    for bad in ("", "10", "d", "1.5h", "-1d", "0s", "1y", "1d 2h"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"duration|longer than 0"):
            duration(bad)


def test_rm_deletes_each_session_and_its_transcript_offsets(redis_url, tmp_path):
    transcript = tmp_path / "alice.jsonl"
    transcript.write_text("{}\n")
    write_sessions(redis_url, {"alice": 0, "bob": 0, "carol": 0}, transcript_path=str(transcript))
    offsets_dir = tmp_path / "home" / "memdash" / "transcript-offsets"
    TranscriptOffsets(offsets_dir, f"{redis_url}\0{NS}").set(transcript, 0)
    assert len(list(offsets_dir.iterdir())) == 1

    out = memdash(tmp_path / "home", redis_url, "rm", "alice", "nobody", "bob")
    assert out.returncode == 1, out.stderr  # one name had no session
    assert "no session nobody in namespace 'cli'" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("deleted alice: ") and "1 value" in lines[0]
    assert lines[0].endswith("1 offset file")
    assert lines[1].startswith("deleted bob: ")
    assert registry(redis_url) == ["carol"]
    assert session_keys(redis_url, "alice") == [] and session_keys(redis_url, "bob") == []
    assert list(offsets_dir.iterdir()) == []

    out = memdash(tmp_path / "home", redis_url, "rm", "carol")
    assert out.returncode == 0 and out.stdout.startswith("deleted carol: ")
    assert registry(redis_url) == []


def test_rm_and_prune_bad_input_and_an_unreachable_store(redis_url, tmp_path):
    home = tmp_path / "home"
    assert memdash(home, redis_url, "rm", "bad\x07id").returncode == 2
    assert memdash(home, redis_url, "rm").returncode == 2
    assert memdash(home, redis_url, "prune").returncode == 2  # --older-than is required
    out = memdash(home, redis_url, "prune", "--older-than", "soon")
    assert out.returncode == 2 and "not a duration" in out.stderr
    down = f"redis://127.0.0.1:{free_port()}"
    out = memdash(home, down, "rm", "alice")
    assert out.returncode == 1 and "cannot reach the store" in out.stderr
    out = memdash(home, down, "prune", "--older-than", "1d", "--yes")
    assert out.returncode == 1 and "cannot reach the store" in out.stderr


def test_prune_is_a_dry_run_until_yes(redis_url, tmp_path):
    write_sessions(redis_url, {"ancient": 90, "old": 31, "recent": 29, "now": 0})
    write_sessions(redis_url, {"ancient": 90}, namespace="elsewhere")
    home = tmp_path / "home"

    out = memdash(home, redis_url, "prune", "--older-than", "30d")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[2] for line in lines[:2]] == ["ancient", "old"]
    assert lines[0].startswith("would delete ancient  last activity ") and "(90d ago)" in lines[0]
    assert lines[2].startswith("2 sessions of namespace 'cli' inactive for more than 30d")
    assert lines[2].endswith("--yes to delete them")
    assert sorted(registry(redis_url)) == ["ancient", "now", "old", "recent"]  # nothing went

    out = memdash(home, redis_url, "prune", "--older-than", "30d", "--yes")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines[:2]] == ["ancient:", "old:"]
    assert lines[2].startswith("2 sessions deleted of namespace 'cli'")
    assert sorted(registry(redis_url)) == ["now", "recent"]
    assert session_keys(redis_url, "old") == []
    assert registry(redis_url, "elsewhere") == ["ancient"]  # another namespace: untouched

    out = memdash(home, redis_url, "prune", "--older-than", "1h", namespace="elsewhere")
    assert out.returncode == 0 and "1 session of namespace 'elsewhere'" in out.stdout
    out = memdash(home, redis_url, "prune", "--older-than", "100d")
    assert out.returncode == 0 and out.stdout.startswith("no sessions of namespace 'cli'")


def test_the_demo_keeps_its_last_20_sessions(redis_url):
    write_sessions(redis_url, {f"demo-{n:02}": 30 - n for n in range(25)}, namespace="demo")
    write_sessions(redis_url, {f"mine-{n:02}": 30 - n for n in range(25)}, namespace="memdash")
    assert prune_demo(redis_url) == 5
    assert registry(redis_url, "demo") == [f"demo-{n:02}" for n in range(5, 25)]
    assert session_keys(redis_url, "demo-00", "demo") == []
    assert len(registry(redis_url, "memdash")) == 25  # only the demo's own namespace
    assert prune_demo(redis_url) == 0
