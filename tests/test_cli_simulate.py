"""`memdash simulate`, run as a user runs it: a subprocess against the private server."""

from __future__ import annotations

import signal
import subprocess

import pytest
import redis

from store import Connection
from store.feed import read_namespace
from tests.test_cli import MEMDASH, env_for


def simulate(home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEMDASH, "simulate", *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_it_writes_for_the_duration_and_prints_a_summary(redis_url, tmp_path):
    out = simulate(
        tmp_path,
        "--redis", redis_url, "--namespace", "sim",
        "--sessions", "2", "--rate", "100", "--duration", "1", "--seed", "6",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "2 sessions at 100 ops/s for 1 s" in lines[0] and "namespace sim" in lines[0]
    assert sum(line.startswith("started demo-") for line in lines) >= 2
    summary = lines.index(next(line for line in lines if line.startswith("summary: ")))
    assert "ops/s, target 100" in lines[summary]
    wrote = {line.split(maxsplit=1)[1]: int(line.split()[0].replace(",", "")) for line in
             lines[lines.index("wrote:") + 1 : lines.index("wrote:") + 9]}  # fmt: skip
    assert wrote["messages"] > 30 and wrote["usage records"] > 0
    assert any(line.startswith("cache: ") and "evictions" in line for line in lines)
    assert "errors: none" in lines and "seed: 6 (--seed 6 writes the same sessions again)" in lines
    conn = Connection(redis_url, namespace="sim")
    try:
        views = await read_namespace(conn)
    finally:
        await conn.aclose()
    assert sum(view.conversation.total for view in views.values()) == wrote["messages"]
    assert all(session.startswith("demo-") for session in views) and len(views) >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "0"], "argument --sessions: must be at least 1"),
        (["--sessions", "two"], "argument --sessions: 'two' is not a whole number"),
        (["--sessions", "5000"], "sessions: Input should be less than or equal to 1000"),
        (["--rate", "0"], "argument --rate: must be a number greater than 0"),
        (["--rate", "-3"], "argument --rate: must be a number greater than 0"),
        (["--rate", "nan"], "argument --rate: must be a number greater than 0"),
        (["--duration", "0"], "argument --duration: must be a number greater than 0"),
        (["--duration", "inf"], "argument --duration: must be a number greater than 0"),
        (["--namespace", "no spaces"], "namespace 'no spaces' must be"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(redis_url, tmp_path, args, message):
    out = simulate(tmp_path, "--redis", redis_url, "--duration", "5", *args)
    assert out.returncode == 2
    assert message in out.stderr
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0


def test_an_unreachable_store_exits_1_with_a_clear_message(tmp_path):
    out = simulate(tmp_path, "--redis", f"unix://{tmp_path}/nothing.sock", "--duration", "5")
    assert out.returncode == 1
    assert f"cannot reach the store at unix://{tmp_path}/nothing.sock" in out.stderr


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "EOF"])
def test_it_stops_cleanly_with_the_summary(redis_url, tmp_path, how):
    """Ctrl-C, a kill by pid, or (with --stop-on-eof, as `memdash demo` runs it) its stdin
    closing: each ends the run with the summary."""
    eof = how == "EOF"
    proc = subprocess.Popen(
        [*MEMDASH, "simulate", "--redis", redis_url, "--rate", "50"] + ["--stop-on-eof"] * eof,
        env=env_for(tmp_path),
        stdin=subprocess.PIPE if eof else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("seeded "):  # running: history written, pacing begins
                break
        if not eof:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)  # closes stdin
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "summary: " in out and "errors: none" in out
    assert err == ""
