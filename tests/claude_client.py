"""Run the real Claude Code client (``claude -p``) against a stand-in API, isolated from the
machine's own Claude Code set-up.

Why: end-to-end tests must exercise the client users run, not our idea of it; but they must
never read or write the developer's ``~/.claude``, reach the internet, or pass when the client
is absent. So the client is located explicitly (``MEMDASH_CLAUDE_BIN``, then
``<repo>/node_modules/.bin/claude`` as ``.ci/run`` installs it, then ``claude`` on PATH), a test
that needs it is skipped with the install command when it is missing, and every run gets its
own ``HOME`` and ``CLAUDE_CONFIG_DIR`` next to the project dir, an environment stripped of the
caller's ``ANTHROPIC_*``/``CLAUDE*`` settings, and ``ANTHROPIC_BASE_URL`` on loopback.

Tools run without prompts: 2.1.197 refuses ``--permission-mode bypassPermissions`` as root
("--dangerously-skip-permissions cannot be used with root/sudo privileges") unless
``IS_SANDBOX=1`` is set, so :func:`run_claude` passes ``--allowedTools`` instead (default
``Bash``), which works for any user and leaves PreToolUse hooks in charge of the decision (the
hooks then see ``permission_mode: "default"``, as in a normal session). A PreToolUse hook's
``deny`` still wins over ``--allowedTools``.

Hooks, as 2.1.197 runs them from ``<project>/.claude/settings.local.json``:

- Command hooks get the payload on stdin and, in their environment, ``CLAUDE_CODE_SESSION_ID``
  (the session id), ``CLAUDE_PROJECT_DIR``, ``CLAUDECODE=1``, ``CLAUDE_CODE_ENTRYPOINT=sdk-cli``,
  ``AI_AGENT=claude-code_2-1-197_harness``, ``CLAUDE_CONFIG_DIR`` (inherited), plus
  ``CLAUDE_ENV_FILE`` on SessionStart and ``CLAUDE_EFFORT`` on tool and Stop hooks.
- ``{"type": "http", "url": …, "timeout": S}`` hooks are POSTed the same payload (``User-Agent:
  axios/1.15.2``, no session header) and their JSON answer is read like a command hook's stdout.
  They need no ``allowedHttpHookUrls``; when that setting is present and does not match the URL,
  the hook is skipped silently (the run still succeeds). UserPromptSubmit, PreToolUse,
  PostToolUse, Stop and SessionEnd http hooks fire in ``-p`` mode; a SessionStart http hook does
  not (a SessionStart command hook does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

CLIENT_VERSION = "2.1.197"
REPO = Path(__file__).resolve().parent.parent
MISSING = (
    "the real Claude Code client is not installed: "
    f"npm install @anthropic-ai/claude-code@{CLIENT_VERSION} (.ci/run does it)"
)


def find_claude() -> Path | None:
    """The ``claude`` executable to test against, or None. ``MEMDASH_CLAUDE_BIN``, when set,
    is the only candidate (a wrong path must not quietly fall back to another client)."""
    chosen = os.environ.get("MEMDASH_CLAUDE_BIN")
    if chosen:
        path = Path(chosen)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    local = REPO / "node_modules" / ".bin" / "claude"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    on_path = shutil.which("claude")
    return Path(on_path) if on_path else None


def missing_reason() -> str:
    chosen = os.environ.get("MEMDASH_CLAUDE_BIN")
    if chosen:
        return f"MEMDASH_CLAUDE_BIN={chosen} is not an executable file; {MISSING}"
    return MISSING


#: For a test or module that needs the client but not the fixture.
requires_claude = pytest.mark.skipif(find_claude() is None, reason=missing_reason())


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The client's path; the test is SKIPPED (never passed) when there is none."""
    path = find_claude()
    if path is None:
        pytest.skip(missing_reason())
    return path


class ClaudeRun(NamedTuple):
    """One ``claude -p`` run: its parsed ``--output-format json`` result (None if stdout was
    not JSON, e.g. the client refused its arguments) and the process."""

    output: dict[str, Any] | None
    process: subprocess.CompletedProcess[str]

    @property
    def result(self) -> str:
        return str((self.output or {}).get("result", ""))


def client_env(
    project_dir: Path, api_url: str, env_extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The client's environment: the caller's minus anything that could point it at a real
    account or config, plus a private HOME/CLAUDE_CONFIG_DIR beside ``project_dir`` and the
    stand-in's URL. No telemetry, update checks or other non-essential traffic."""
    home = project_dir.parent / f"{project_dir.name}-home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE", "MEMDASH_CLAUDE"))
    }
    env.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(home / ".claude"),
        ANTHROPIC_BASE_URL=api_url,
        ANTHROPIC_API_KEY="test-key",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
    )
    env.update(env_extra or {})
    return env


def run_claude(
    project_dir: Path,
    prompt: str,
    *,
    session_id: str,
    api_url: str,
    env_extra: Mapping[str, str] | None = None,
    resume: bool = False,
    timeout: float = 120,
    allowed_tools: Sequence[str] = ("Bash",),
    args: Sequence[str] = (),
    claude: Path | None = None,
) -> ClaudeRun:
    """Run ``claude -p prompt --output-format json`` in ``project_dir`` against ``api_url``:
    a new session with id ``session_id``, or (``resume=True``) a continuation of it. Hooks come
    from ``project_dir/.claude/settings*.json``, written by the caller."""
    binary = claude or find_claude()
    if binary is None:
        pytest.skip(missing_reason())
    env = client_env(project_dir, api_url, env_extra)
    Path(env["CLAUDE_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "json",
        *(["--resume", session_id] if resume else ["--session-id", session_id]),
        *(["--allowedTools", ",".join(allowed_tools)] if allowed_tools else []),
        *args,
    ]
    process = subprocess.run(
        command,
        cwd=project_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        output = json.loads(process.stdout)
    except ValueError:
        output = None
    return ClaudeRun(output if isinstance(output, dict) else None, process)


def write_settings(project_dir: Path, settings: Mapping[str, Any]) -> Path:
    """Write ``project_dir/.claude/settings.local.json`` (where the hooks go)."""
    path = project_dir / ".claude" / "settings.local.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2))
    return path
