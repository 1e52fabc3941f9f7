"""`memdash hook` and `memdash install-hooks` run as Claude Code runs them: subprocesses.

A hook must print nothing and exit 0 whatever happens. Relays the hooks start are stopped by
pid at the end of each test (``relays`` fixture).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import ConversationMemory, StatefulMemory, TokenBudgetTracker
from store.integrations import hook_relay
from store.integrations.claude_code import INITIAL, WORKFLOW
from store.server import pid_alive
from tests.test_claude_code import FIXTURES, SESSION, TURN, plain, turn_steps
from tests.test_cli import MEMDASH, env_for


class Relays:
    """Runs `memdash hook` and stops every relay it may have started, by pid."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = env_for(home)
        self.env["MEMDASH_HOOK_RELAY_IDLE"] = "60"
        self.stores: set[tuple[str | None, str]] = set()

    def hook(self, payload: Any, *options: str, namespace: str = "test", url: str) -> None:
        """One hook call; asserts what every call must do: nothing printed, exit 0."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.stores.add((url, namespace))
        done = subprocess.run(
            [*MEMDASH, "hook", "--redis", url, "--namespace", namespace, *options],
            input=data,
            capture_output=True,
            env=self.env,
            timeout=30,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")

    def barrier(self, url: str, namespace: str = "test") -> int:
        """Wait until the relay applied everything sent before (it applies in order); its pid."""
        pid = hook_relay.running_pid(url, namespace)
        assert pid is not None
        return pid

    def stop_all(self) -> None:
        for url, namespace in self.stores:
            paths = hook_relay.RelayPaths(url, namespace)
            with contextlib.suppress(FileNotFoundError, ValueError):
                pid = int(paths.pid.read_text())
                hook_relay.stop_relay(url, namespace)
                with contextlib.suppress(ProcessLookupError):
                    if pid_alive(pid):
                        os.kill(pid, signal.SIGKILL)
            # A long tmp path puts the relay's files in /tmp/memdash-<uid>: leave none there.
            paths.lock.unlink(missing_ok=True)


@pytest.fixture
def relays(isolated_env: Path) -> Iterator[Relays]:
    runner = Relays(isolated_env)
    try:
        yield runner
    finally:
        runner.stop_all()


def log_text(home: Path) -> str:
    path = home / "memdash" / "hook.log"
    return path.read_text() if path.exists() else ""


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def test_a_turn_through_the_relay(conn, redis_url, relays, tmp_path):
    for payload in turn_steps(tmp_path / "session.jsonl"):
        relays.hook(payload, url=redis_url)
    pid = relays.barrier(redis_url)

    conversation = ConversationMemory(SESSION, redis=conn)
    assert (await conversation.count()).total == TURN["expected"]["messages"]
    assert [m.reason for m in await conversation.trims()] == ["compact"]
    budget = await TokenBudgetTracker(SESSION, 10**9, redis=conn).status()
    assert budget.used == TURN["expected"]["tokens"]
    workflow = StatefulMemory(SESSION, transitions=WORKFLOW, initial=INITIAL, redis=conn)
    assert (await workflow.load()).state == "ended"
    assert not any(t.forced for t in await workflow.history())  # applied in order

    stopped = subprocess.run(
        [*MEMDASH, "hook", "--redis", redis_url, "--namespace", "test", "--stop-relay"],
        capture_output=True,
        text=True,
        env=relays.env,
        timeout=30,
    )
    assert stopped.stdout == f"stopped the hook relay (pid {pid})\n"
    assert wait_until(lambda: not pid_alive(pid))
    paths = hook_relay.RelayPaths(redis_url, "test")
    assert not paths.socket.exists() and not paths.pid.exists()


async def test_big_payloads_reach_the_relay_whole(conn, redis_url, relays):
    # A socket read returns what is buffered: a payload of more than a few hundred kB arrives
    # in pieces, and every piece must be read before the JSON is parsed.
    sizes = (150_000, 1_000_000, 4_000_000)
    for n, size in enumerate(sizes):
        output = "y" * size + "THE END"
        payload = {**plain("post_tool_use"), "tool_use_id": f"toolu_big{n}"}
        relays.hook({**payload, "tool_response": {"stdout": output}}, url=redis_url)
    relays.barrier(redis_url)
    stored = await ConversationMemory("cc-plain", redis=conn).load()
    assert [m["context"]["tool_use_id"] for m in stored] == [
        "toolu_big0",
        "toolu_big1",
        "toolu_big2",
    ]
    assert "THE END" in stored[0]["content"]  # fits a message whole
    assert all(m["context"]["truncated_bytes"] > 0 for m in stored[1:])  # cut, with a note
    assert "not JSON" not in log_text(relays.home)


async def test_direct_applies_in_process_without_a_relay(conn, redis_url, relays):
    for name in ("session_start", "user_prompt_submit", "pre_tool_use"):
        relays.hook(plain(name), "--direct", url=redis_url)
    assert hook_relay.running_pid(redis_url, "test") is None
    stored = await ConversationMemory("cc-plain", redis=conn).load()
    assert [m["role"] for m in stored] == ["user", "tool"]
    workflow = StatefulMemory("cc-plain", transitions=WORKFLOW, initial=INITIAL, redis=conn)
    assert (await workflow.load()).state == "tool"


@pytest.mark.parametrize("mode", [(), ("--direct",)], ids=["relay", "direct"])
def test_store_down_costs_a_log_line_not_an_error(relays, isolated_env, tmp_path, mode):
    down = f"unix://{tmp_path}/nobody-listens.sock"
    relays.hook(plain("user_prompt_submit"), *mode, url=down)
    if not mode:
        relays.barrier(down)
    assert f"store unavailable at {down}, payload dropped" in log_text(isolated_env)


async def test_malformed_payloads_are_logged_and_write_nothing(
    conn, redis_url, relays, isolated_env
):
    files = sorted((FIXTURES / "malformed").iterdir())
    for file in files:
        relays.hook(file.read_bytes(), url=redis_url)
    relays.hook(b" " * (hook_relay.MAX_PAYLOAD_BYTES + 1), url=redis_url)
    relays.hook(file.read_bytes(), "--direct", url=redis_url)
    relays.barrier(redis_url)
    log = log_text(isolated_env)
    assert log.count("malformed payload ignored") == len(files) + 1
    assert f"payload over {hook_relay.MAX_PAYLOAD_BYTES} bytes dropped" in log
    assert await conn.client.keys("*") == []


async def test_concurrent_first_calls_start_one_relay_and_lose_nothing(
    conn, redis_url, relays, isolated_env
):
    relays.stores.add((redis_url, "test"))
    calls = [
        subprocess.Popen(
            [*MEMDASH, "hook", "--redis", redis_url, "--namespace", "test"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=relays.env,
        )
        for _ in range(6)
    ]
    for n, call in enumerate(calls):
        payload = {**plain("pre_tool_use"), "session_id": f"racer-{n}"}
        out, err = call.communicate(json.dumps(payload).encode(), timeout=30)
        assert (call.returncode, out, err) == (0, b"", b"")
    relays.barrier(redis_url)
    for n in range(6):
        assert len(await ConversationMemory(f"racer-{n}", redis=conn).load()) == 1
    assert wait_until(lambda: log_text(isolated_env).count("relay started") == 1)


def test_an_idle_relay_exits_by_itself(redis_url, relays):
    relays.env["MEMDASH_HOOK_RELAY_IDLE"] = "0.3"
    relays.hook(plain("session_end"), url=redis_url)
    paths = hook_relay.RelayPaths(redis_url, "test")
    pid = int(paths.pid.read_text())  # written before the relay answered
    assert wait_until(lambda: not pid_alive(pid))
    assert not paths.socket.exists()


def test_stop_relay_when_none_runs(redis_url, relays):
    done = subprocess.run(
        [*MEMDASH, "hook", "--redis", redis_url, "--stop-relay"],
        capture_output=True,
        text=True,
        env=relays.env,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, "no hook relay is running\n")


# --- install-hooks ------------------------------------------------------------------------------


def install(home: Path, cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = env_for(home / "xdg")
    env["HOME"] = str(home)
    return subprocess.run(
        [*MEMDASH, "install-hooks", *options],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )


def our_command(settings: dict[str, Any], event: str) -> list[str]:
    commands = [hook.get("command", "") for g in settings["hooks"][event] for hook in g["hooks"]]
    return [c for c in commands if c.endswith(" hook") or " hook --" in c]


def our_http(settings: dict[str, Any], event: str) -> list[str]:
    return [
        hook["url"]
        for group in settings["hooks"][event]
        for hook in group["hooks"]
        if hook.get("type") == "http"
    ]


def test_install_hooks_print_shows_every_event_and_writes_nothing(tmp_path):
    done = install(tmp_path, tmp_path, "--print", "--namespace", "work")
    assert done.returncode == 0, done.stderr
    hooks = json.loads(done.stdout)["hooks"]
    assert list(hooks) == list(hook_relay.EVENTS)
    assert set(hook_relay.EVENTS) >= {
        "SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
        "PreCompact", "PostCompact", "Stop", "StopFailure", "SubagentStart", "SubagentStop",
        "Notification", "PermissionRequest", "SessionEnd",
    }  # fmt: skip
    assert hooks["PreToolUse"][0]["matcher"] == "*"
    assert "matcher" not in hooks["Stop"][0]
    port = hook_relay.default_port(None, "work")
    for event in hook_relay.HTTP_EVENTS:
        assert hooks[event][0]["hooks"] == [
            {"type": "http", "url": f"http://127.0.0.1:{port}/hook", "timeout": 2}
        ]
    for event in ("SessionStart", "Stop"):
        [hook] = hooks[event][0]["hooks"]
        assert hook["type"] == "command"
        assert hook["command"].endswith(f" hook --namespace work --http-port {port}")
        assert os.path.isabs(hook["command"].split()[0])
    assert not (tmp_path / ".claude").exists()


def test_install_hooks_command_hooks_budget_and_workflow(tmp_path):
    done = install(tmp_path, tmp_path, "--print", "--command-hooks")
    hooks = json.loads(done.stdout)["hooks"]
    assert list(hooks) == list(hook_relay.EVENTS)
    assert all(h[0]["hooks"][0]["command"].endswith(" hook") for h in hooks.values())

    flow = tmp_path / "flow.json"
    flow.write_text("{}")
    done = install(tmp_path, tmp_path, "--print", "--port", "24123", "--budget", "5000",
                   "--workflow", "flow.json")  # fmt: skip
    hooks = json.loads(done.stdout)["hooks"]
    [start] = hooks["SessionStart"][0]["hooks"]
    assert start["command"].endswith(f" hook --http-port 24123 --budget 5000 --workflow {flow}")
    assert hooks["Stop"][0]["hooks"][0]["command"].endswith(" hook --http-port 24123")
    assert hooks["PreToolUse"][0]["hooks"][0]["url"] == "http://127.0.0.1:24123/hook"

    assert install(tmp_path, tmp_path, "--print", "--workflow", "missing.json").returncode == 2
    assert install(tmp_path, tmp_path, "--print", "--budget", "0").returncode == 2


def test_install_hooks_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = install(tmp_path, tmp_path, "--port", str(port))
        assert done.returncode == 2 and "in use" in done.stderr
        assert not (tmp_path / ".claude").exists()


def test_install_hooks_replaces_an_older_command_install(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    assert install(tmp_path, project, "--command-hooks").returncode == 0
    path = project / ".claude" / "settings.local.json"
    old = json.loads(path.read_text())
    old["hooks"]["PreToolUse"][0]["hooks"].append({"type": "command", "command": "echo mine"})
    path.write_text(json.dumps(old))

    done = install(tmp_path, project)
    assert done.returncode == 0, done.stderr
    assert "replaced older memdash hooks for SessionStart, UserPromptSubmit, PreToolUse" in (
        done.stdout
    )
    settings = json.loads(path.read_text())
    for event in hook_relay.HTTP_EVENTS:
        assert len(our_http(settings, event)) == 1
        assert our_command(settings, event) == []
    assert settings["hooks"]["PreToolUse"][0]["hooks"] == [
        {"type": "command", "command": "echo mine"}
    ]
    for event in hook_relay.COMMAND_EVENTS:
        [command] = our_command(settings, event)
        assert "--http-port" in command
    again = install(tmp_path, project)
    assert "already installed" in again.stdout and "replaced" not in again.stdout
    # and back: the HTTP hooks go
    assert install(tmp_path, project, "--command-hooks").returncode == 0
    settings = json.loads(path.read_text())
    assert all(our_http(settings, event) == [] for event in hook_relay.EVENTS)
    assert all(len(our_command(settings, event)) == 1 for event in hook_relay.EVENTS)


def test_install_hooks_merges_backs_up_and_is_idempotent(tmp_path):
    project = tmp_path / "project"
    settings_file = project / ".claude" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    original = {
        "model": "opus",
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "echo guard"}]}
            ],
            "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}],
        },
    }
    settings_file.write_text(json.dumps(original))

    done = install(tmp_path, project, "--project")
    assert done.returncode == 0, done.stderr
    settings = json.loads(settings_file.read_text())
    assert settings["model"] == "opus"
    assert settings["hooks"]["Notification"][0] == original["hooks"]["Notification"][0]
    assert settings["hooks"]["PreToolUse"][0] == original["hooks"]["PreToolUse"][0]
    for event in ("SessionStart", "Stop"):
        assert len(our_command(settings, event)) == 1
    for event in ("PreToolUse", "Notification", "SessionEnd"):
        assert len(our_http(settings, event)) == 1
    [backup] = list(settings_file.parent.glob("settings.json.*.bak"))
    assert json.loads(backup.read_text()) == original
    assert str(backup) in done.stdout

    again = install(tmp_path, project, "--project")
    assert again.returncode == 0
    assert "already installed" in again.stdout
    assert json.loads(settings_file.read_text()) == settings
    assert len(list(settings_file.parent.glob("*.bak"))) == 1


@pytest.mark.parametrize(
    "content", ["{not json", '["a list"]', '{"hooks": []}', '{"hooks": {"Stop": {}}}']
)
def test_install_hooks_refuses_what_it_cannot_merge(tmp_path, content):
    settings_file = tmp_path / ".claude" / "settings.json"
    settings_file.parent.mkdir()
    settings_file.write_text(content)
    done = install(tmp_path, tmp_path, "--project")
    assert done.returncode == 2
    assert "nothing was written" in done.stderr
    assert settings_file.read_text() == content
    assert list(settings_file.parent.iterdir()) == [settings_file]


def test_install_hooks_user_and_local_targets(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    assert install(tmp_path, project, "--user").returncode == 0
    user_settings = json.loads((tmp_path / ".claude" / "settings.json").read_text())
    assert len(our_http(user_settings, "UserPromptSubmit")) == 1
    # The default is the project's uncommitted settings: the command is this machine's path.
    assert install(tmp_path, project).returncode == 0
    assert (project / ".claude" / "settings.local.json").exists()
    assert not (project / ".claude" / "settings.json").exists()
    assert "already installed" in install(tmp_path, project, "--local").stdout


def test_install_hooks_updates_a_symlinked_settings_file_where_it_points(tmp_path):
    dotfiles = tmp_path / "dotfiles" / "claude-settings.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"model": "opus"}')
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(dotfiles)
    done = install(tmp_path, tmp_path, "--user")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == dotfiles
    settings = json.loads(dotfiles.read_text())
    assert settings["model"] == "opus" and len(our_command(settings, "Stop")) == 1
    [backup] = list(dotfiles.parent.glob("*.bak"))
    assert json.loads(backup.read_text()) == {"model": "opus"}


def test_install_hooks_warns_when_the_url_carries_a_password(tmp_path):
    done = install(tmp_path, tmp_path, "--redis", "redis://:s3cret@127.0.0.1:1/0")
    assert done.returncode == 0
    assert "password" in done.stderr and "MEMDASH_REDIS_URL" in done.stderr
    quiet = install(tmp_path, tmp_path, "--redis", "redis://127.0.0.1:1/0")
    assert quiet.stderr == ""
