"""The memdash command, run as a user runs it: a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import embedded
from store.server import ping_unix

MEMDASH = [sys.executable, "-m", "tui.cli"]


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMDASH_")}
    env["XDG_DATA_HOME"] = str(home)
    return env


def test_the_literal_version_is_the_installed_one():
    # tui.__version__ is a literal (importlib.metadata costs every hook call ~30 ms) that
    # pyproject.toml reads at build time: the two cannot drift apart.
    from importlib.metadata import version

    import tui

    assert tui.__version__ == version("memdash")


def test_only_the_command_being_run_is_imported():
    from tui.commands import command_in

    assert command_in(["hook"]) == "hook"
    assert command_in(["--redis", "unix:///x", "--namespace", "status", "import", "p"]) == "import"
    assert command_in(["--session", "s1"]) is None  # the dashboard
    assert command_in(["no-such-command"]) is None  # argparse lists the real ones
    out = subprocess.run(
        [*MEMDASH, "hook", "--help"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )  # fmt: skip
    assert out.stdout.startswith("usage: memdash hook")
    # (importtime does not list modules loaded by importlib.import_module, only their imports)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()}
    assert "argparse" in imported
    assert not imported & {"asyncio", "redis", "pydantic", "textual"}


def test_version():
    out = subprocess.run([*MEMDASH, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("memdash ")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_server_runs_in_foreground_prints_its_url_and_stops(isolated_env, stop_signal):
    proc = subprocess.Popen(
        [*MEMDASH, "server"], env=env_for(isolated_env), stdout=subprocess.PIPE, text=True
    )
    try:
        first = proc.stdout.readline()
        socket = isolated_env / "memdash" / "redis.sock"
        assert f"unix://{socket}" in first
        assert ping_unix(socket)
        # A second `memdash server` attaches to the running one instead of starting another.
        second = subprocess.run(
            [*MEMDASH, "server"],
            env=env_for(isolated_env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "already running" in second.stdout
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=30) == 0
        assert not ping_unix(socket)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_server_stop_stops_a_daemon_started_by_a_library_call(isolated_env):
    embedded.ensure_running()
    pid = embedded.running_pid()
    try:
        out = subprocess.run(
            [*MEMDASH, "server", "--stop"],
            env=env_for(isolated_env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "stopped" in out.stdout
        deadline = time.monotonic() + 5
        while embedded.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not embedded.is_running()
        out = subprocess.run(
            [*MEMDASH, "server", "--stop"],
            env=env_for(isolated_env),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "no embedded server" in out.stdout
    finally:
        if pid and embedded.is_running():
            os.kill(pid, signal.SIGKILL)
