"""`memdash install-hooks`: add `memdash hook` to Claude Code's settings for every event it records.

Merges into the settings file without touching anything else in it: an event whose hooks
already run the same command is left alone (so a second install changes nothing), other hooks
stay as they were, a timestamped backup is written before any change, and the new file replaces
the old one atomically. A file that is not a JSON object (or whose ``hooks`` is not shaped as
Claude Code reads it) is refused with exit status 2 and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from store.integrations.hook_relay import EVENTS

from . import add_store_options

TOOL_EVENTS = ("PreToolUse", "PostToolUse")
"""Events whose entries take a tool ``matcher``; the others match everything without one."""
EXIT_REFUSED = 2


class Refused(Exception):
    """The settings file cannot be merged into safely."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install-hooks",
        help="add `memdash hook` to Claude Code's settings.json",
        description="Add `memdash hook` for "
        + ", ".join(EVENTS)
        + " to Claude Code's settings, keeping every hook already there (backup first; "
        "running it again changes nothing). --redis/--namespace are written into the command.",
    )
    add_store_options(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--project",
        action="store_true",
        help="./.claude/settings.json of the current directory (usually committed: the command "
        "names this machine's memdash by absolute path)",
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="./.claude/settings.local.json, the project's settings that are not committed "
        "(the default)",
    )
    where.add_argument("--user", action="store_true", help="~/.claude/settings.json")
    where.add_argument(
        "--print", action="store_true", help="print the hook entries as JSON; write nothing"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    command = hook_command(getattr(args, "redis", None), getattr(args, "namespace", None))
    if args.print:
        print(json.dumps({"hooks": entries(command)}, indent=2))
        return 0
    path = settings_path(user=args.user, project=args.project)
    redis = getattr(args, "redis", None)
    if redis and _has_password(redis):
        print(
            f"warning: {path} now holds the store's password; prefer leaving --redis out and "
            "setting MEMDASH_REDIS_URL in the environment Claude Code runs in",
            file=sys.stderr,
        )
    try:
        added, backup, others = install(path, command)
    except Refused as e:
        print(f"memdash install-hooks: {e}; nothing was written", file=sys.stderr)
        return EXIT_REFUSED
    for event, other in others:
        print(f"note: {event} already runs another memdash hook ({other}); remove it if stale")
    if not added:
        print(f"memdash hooks already installed in {path}; nothing changed")
        return 0
    print(f"added `{command}` for {', '.join(added)} to {path}")
    if backup is not None:
        print(f"previous settings saved as {backup}")
    return 0


def settings_path(*, user: bool = False, project: bool = False) -> Path:
    if user:
        return Path.home() / ".claude" / "settings.json"
    return Path.cwd() / ".claude" / ("settings.json" if project else "settings.local.json")


def _has_password(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def memdash_executable() -> list[str]:
    """The running memdash, by absolute path, so the hook works without an activated venv."""
    import shutil

    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("memdash") and argv0.is_file() and os.access(argv0, os.X_OK):
        return [os.path.abspath(argv0)]
    beside = Path(sys.executable).parent / "memdash"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("memdash")
    if found:
        return [os.path.abspath(found)]
    # e.g. `python -m tui.cli` from a source tree; -P: not the hook's cwd on sys.path
    return [sys.executable, "-P", "-m", "tui.cli"]


def hook_command(redis: str | None = None, namespace: str | None = None) -> str:
    words = [*memdash_executable(), "hook"]
    if redis:
        words += ["--redis", redis]
    if namespace:
        words += ["--namespace", namespace]
    return shlex.join(words)


def entries(command: str) -> dict[str, list[dict[str, Any]]]:
    """Claude Code's ``hooks`` block for ``command`` on every event memdash records."""
    hook = {"type": "command", "command": command}
    return {
        event: [{"matcher": "*", "hooks": [hook]} if event in TOOL_EVENTS else {"hooks": [hook]}]
        for event in EVENTS
    }


def _commands(groups: list[Any]) -> list[str]:
    return [
        hook.get("command")
        for group in groups
        if isinstance(group, dict) and isinstance(group.get("hooks"), list)
        for hook in group["hooks"]
        if isinstance(hook, dict) and isinstance(hook.get("command"), str)
    ]


def _is_memdash_hook(command: str) -> bool:
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return "hook" in words and any(
        Path(w).name == "memdash" or w == "tui.cli" for w in words[: words.index("hook")]
    )


def merge(
    settings: dict[str, Any], command: str
) -> tuple[dict[str, Any], list[str], list[tuple[str, str]]]:
    """``settings`` with our entries added where ``command`` is not there yet; the events added
    to; and other memdash hook commands found (an older install, another venv)."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise Refused('"hooks" is not a JSON object')
    merged = dict(hooks)
    added: list[str] = []
    others: list[tuple[str, str]] = []
    for event, ours in entries(command).items():
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise Refused(f'"hooks.{event}" is not a list')
        present = _commands(groups)
        if command in present:
            continue
        others += [(event, c) for c in present if _is_memdash_hook(c)]
        merged[event] = [*groups, *ours]
        added.append(event)
    return {**settings, "hooks": merged}, added, others


def install(path: Path, command: str) -> tuple[list[str], Path | None, list[tuple[str, str]]]:
    """Merge our hooks into the settings file at ``path``; returns the events added, the backup
    written (None when the file is new or unchanged) and other memdash hooks found.

    A symlinked settings file (dotfiles) is updated where it points, and stays a link."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as e:
        raise Refused(f"cannot read {path}: {e}") from None
    settings: Any = {}
    if text is not None and text.strip():
        try:
            settings = json.loads(text)
        except ValueError as e:
            raise Refused(f"{path} is not valid JSON ({e})") from None
    if not isinstance(settings, dict):
        raise Refused(f"{path} does not hold a JSON object")
    merged, added, others = merge(settings, command)
    if not added:
        return [], None, others
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None if text is None else _back_up(path, text)
    _write_atomically(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    return added, backup, others


def _back_up(path: Path, text: str) -> Path:
    """A new ``<name>.<time>.bak`` beside ``path`` holding ``text``; created exclusively, so
    nothing already there (a file, a dangling symlink) is written through or over."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mode = path.stat().st_mode & 0o777
    for n in range(1, 1000):
        backup = path.with_name(f"{path.name}.{stamp}{'' if n == 1 else f'-{n}'}.bak")
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return backup
    raise Refused(f"could not name a backup of {path}")


def _write_atomically(path: Path, text: str) -> None:
    import tempfile

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
