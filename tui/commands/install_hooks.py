"""`memdash install-hooks`: add memdash's hooks to Claude Code's settings for every event it
records.

By default every event is an HTTP hook (Claude Code POSTs the payload to the hook relay on
``127.0.0.1:<port>`` and reads the answer from the response: no process per hook), except
SessionStart and Stop, which run `memdash hook --http-port <port>`: SessionStart because an HTTP
SessionStart hook does not fire in ``claude -p``, and both because a command hook starts the
relay when it is not running (after a reboot, a crash, or at the first session), so a relay
that went away comes back at the latest at the end of the turn. ``--command-hooks`` installs
`memdash hook` for every event instead (each hook then costs a process start).

The port (``--port``; by default one derived from the store, namespace and user, see
:func:`store.integrations.hook_relay.default_port`) is checked free, or already served by this
store's relay, at install time.

Merges into the settings file without touching anything else in it: an event whose hooks
already hold the same hook is left alone (so a second install changes nothing), other hooks stay
as they were, memdash hooks of an older install for the same store (and memdash HTTP hooks on
another port) are replaced, and said so; a timestamped backup is written before any change, and
the new file replaces the old one atomically. A file that is not a JSON object (or whose
``hooks`` is not shaped as Claude Code reads it) is refused with exit status 2 and nothing is
written.
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
from urllib.parse import urlsplit

from store.integrations.hook_relay import COMMAND_EVENTS, EVENTS, HTTP_PATH, HTTP_TIMEOUT

from . import add_store_options

TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest")
"""Events whose entries take a tool ``matcher``; the others match everything without one."""
EXIT_REFUSED = 2
PORT_TRIES = 50


class Refused(Exception):
    """The settings file cannot be merged into safely (or the port cannot be served)."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install-hooks",
        help="add memdash's hooks to Claude Code's settings.json",
        description="Add memdash's hooks for "
        + ", ".join(EVENTS)
        + " to Claude Code's settings, keeping every hook already there (backup first; "
        "running it again changes nothing): HTTP hooks answered by the hook relay on "
        "127.0.0.1, and `memdash hook` for "
        + " and ".join(COMMAND_EVENTS)
        + ". --redis/--namespace are written into the command.",
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
    parser.add_argument(
        "--command-hooks",
        action="store_true",
        help="`memdash hook` (a process per hook, ~0.1 s each) for every event, no HTTP hooks",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="the relay's HTTP port on 127.0.0.1 (default: one derived from the store, "
        "namespace and user, in 24000-31999)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        metavar="TOKENS",
        help="give every new session a binding budget of this many tokens",
    )
    parser.add_argument(
        "--workflow",
        metavar="FILE",
        help="give every new session the task workflow defined in FILE",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from store.integrations import hook_relay

    redis = getattr(args, "redis", None)
    namespace = getattr(args, "namespace", None)
    if args.budget is not None and args.budget <= 0:
        print("memdash install-hooks: --budget takes a positive number of tokens", file=sys.stderr)
        return EXIT_REFUSED
    workflow = None
    if args.workflow:
        workflow = os.path.abspath(os.path.expanduser(args.workflow))
        if not os.path.isfile(workflow):
            print(f"memdash install-hooks: no workflow file {workflow}", file=sys.stderr)
            return EXIT_REFUSED
    port = None
    if not args.command_hooks:
        try:
            port = choose_port(*hook_relay.resolve_settings(redis, namespace), args.port)
        except Refused as e:
            print(f"memdash install-hooks: {e}; nothing was written", file=sys.stderr)
            return EXIT_REFUSED
    elif args.port is not None:
        print(
            "memdash install-hooks: --port is for HTTP hooks, not --command-hooks", file=sys.stderr
        )
        return EXIT_REFUSED
    hooks = entries(
        hook_command(redis, namespace, http_port=port, budget=args.budget, workflow=workflow),
        port=port,
        plain=hook_command(redis, namespace),
    )
    if args.print:
        print(json.dumps({"hooks": hooks}, indent=2))
        return 0
    path = settings_path(user=args.user, project=args.project)
    if redis and _has_password(redis):
        print(
            f"warning: {path} now holds the store's password; prefer leaving --redis out and "
            "setting MEMDASH_REDIS_URL in the environment Claude Code runs in",
            file=sys.stderr,
        )
    try:
        result = install(path, hooks, target=(redis, namespace))
    except Refused as e:
        print(f"memdash install-hooks: {e}; nothing was written", file=sys.stderr)
        return EXIT_REFUSED
    added, backup, replaced, others = result
    for event, other in others:
        print(f"note: {event} already runs another memdash hook ({other}); remove it if stale")
    if replaced:
        print(f"replaced older memdash hooks for {', '.join(replaced)}")
    if not added:
        print(f"memdash hooks already installed in {path}; nothing changed")
        return 0
    if port is None:
        print(f"added `{hook_command(redis, namespace)}` for {', '.join(added)} to {path}")
    else:
        http = [e for e in added if e not in COMMAND_EVENTS]
        command = [e for e in added if e in COMMAND_EVENTS]
        if http:
            print(f"added HTTP hooks to {hook_relay.hook_url(port)} for {', '.join(http)}")
        if command:
            print(
                f"added `{hooks[command[0]][0]['hooks'][0]['command']}` for "
                f"{', '.join(command)} (they start the relay)"
            )
        print(f"in {path}")
    if backup is not None:
        print(f"previous settings saved as {backup}")
    return 0


def choose_port(url: str | None, namespace: str, wanted: int | None) -> int:
    """``wanted``, or the default port (or the next free one after it): free on 127.0.0.1, or
    served already by this store's relay. :class:`Refused` when ``wanted`` is taken."""
    from store.integrations import hook_relay

    status = hook_relay.relay_status(url, namespace)
    ours = set(status[1]) if status else set()
    if wanted is not None:
        if not 0 < wanted < 65536:
            raise Refused(f"{wanted} is not a TCP port")
        if wanted not in ours and not hook_relay.port_free(wanted):
            raise Refused(f"127.0.0.1:{wanted} is in use by another program")
        return wanted
    first = hook_relay.default_port(url, namespace)
    span = hook_relay.PORT_SPAN
    for n in range(PORT_TRIES):
        port = hook_relay.PORT_BASE + (first - hook_relay.PORT_BASE + n) % span
        if port in ours or hook_relay.port_free(port):
            return port
    raise Refused(f"no free port from {first} on (give one with --port)")


def settings_path(*, user: bool = False, project: bool = False) -> Path:
    if user:
        return Path.home() / ".claude" / "settings.json"
    return Path.cwd() / ".claude" / ("settings.json" if project else "settings.local.json")


def _has_password(url: str) -> bool:
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


def hook_command(
    redis: str | None = None,
    namespace: str | None = None,
    *,
    http_port: int | None = None,
    budget: int | None = None,
    workflow: str | None = None,
) -> str:
    words = [*memdash_executable(), "hook"]
    if redis:
        words += ["--redis", redis]
    if namespace:
        words += ["--namespace", namespace]
    if http_port is not None:
        words += ["--http-port", str(http_port)]
    if budget is not None:
        words += ["--budget", str(budget)]
    if workflow is not None:
        words += ["--workflow", workflow]
    return shlex.join(words)


def entries(
    command: str, *, port: int | None = None, plain: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Claude Code's ``hooks`` block: with ``port``, HTTP hooks to the relay there and
    ``command`` for :data:`COMMAND_EVENTS`; without, ``command`` for every event. ``plain``
    (the command without session options) is what Stop runs: --budget and --workflow are for
    new sessions, which SessionStart announces."""
    from store.integrations.hook_relay import hook_url

    def group(event: str, hook: dict[str, Any]) -> dict[str, Any]:
        return {"matcher": "*", "hooks": [hook]} if event in TOOL_EVENTS else {"hooks": [hook]}

    if port is None:
        return {event: [group(event, {"type": "command", "command": command})] for event in EVENTS}
    http = {"type": "http", "url": hook_url(port), "timeout": HTTP_TIMEOUT}
    stop = command if plain is None else _with_port(plain, port)
    commands = {"SessionStart": command, "Stop": stop}
    return {
        event: [
            group(
                event,
                {"type": "command", "command": commands[event]} if event in commands else http,
            )
        ]
        for event in EVENTS
    }


def _with_port(command: str, port: int) -> str:
    return shlex.join([*shlex.split(command), "--http-port", str(port)])


def _words(command: str) -> list[str] | None:
    try:
        return shlex.split(command)
    except ValueError:
        return None


def _is_memdash_hook(command: str) -> bool:
    words = _words(command)
    if words is None or "hook" not in words:
        return False
    return any(Path(w).name == "memdash" or w == "tui.cli" for w in words[: words.index("hook")])


def _target(words: list[str]) -> tuple[str | None, str | None]:
    """The --redis and --namespace a hook command names (None: not given)."""
    found: dict[str, str | None] = {"--redis": None, "--namespace": None}
    for n, word in enumerate(words):
        name, equals, value = word.partition("=")
        if name in found:
            found[name] = value if equals else (words[n + 1] if n + 1 < len(words) else None)
    return found["--redis"], found["--namespace"]


def _is_memdash_http(hook: dict[str, Any]) -> bool:
    """An HTTP hook memdash installed: POST to /hook on a loopback port."""
    try:
        parts = urlsplit(str(hook.get("url", "")))
        return (
            hook.get("type") == "http"
            and parts.scheme == "http"
            and parts.hostname in ("127.0.0.1", "localhost", "::1")
            and parts.port is not None
            and (parts.path == HTTP_PATH or parts.path.startswith(HTTP_PATH + "/"))
        )
    except ValueError:
        return False


def _same(hook: Any, ours: dict[str, Any]) -> bool:
    if not isinstance(hook, dict):
        return False
    if ours["type"] == "http":
        return hook.get("type") == "http" and all(
            hook.get(k) == ours[k] for k in ("url", "timeout")
        )
    return hook.get("type", "command") == "command" and hook.get("command") == ours["command"]


def merge(
    settings: dict[str, Any],
    hooks_wanted: dict[str, list[dict[str, Any]]],
    target: tuple[str | None, str | None] = (None, None),
) -> tuple[dict[str, Any], list[str], list[str], list[tuple[str, str]]]:
    """``settings`` with our entries added where they are not there yet; the events added to;
    the events where an older memdash hook was replaced (a memdash command for the same store,
    ``target`` being the --redis/--namespace written; a memdash HTTP hook); and other memdash
    hook commands found and kept (another store, another venv)."""
    hooks = settings.get("hooks", {})
    if not isinstance(hooks, dict):
        raise Refused('"hooks" is not a JSON object')
    merged = dict(hooks)
    added: list[str] = []
    replaced: list[str] = []
    others: list[tuple[str, str]] = []
    for event, ours in hooks_wanted.items():
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise Refused(f'"hooks.{event}" is not a list')
        wanted = ours[0]["hooks"][0]
        present = [
            hook
            for group in groups
            if isinstance(group, dict) and isinstance(group.get("hooks"), list)
            for hook in group["hooks"]
        ]
        if any(_same(hook, wanted) for hook in present):
            continue
        kept_groups: list[Any] = []
        dropped = False
        for group in groups:
            if not (isinstance(group, dict) and isinstance(group.get("hooks"), list)):
                kept_groups.append(group)
                continue
            kept = []
            for hook in group["hooks"]:
                if _stale(hook, target):
                    dropped = True
                    continue
                command = hook.get("command") if isinstance(hook, dict) else None
                if isinstance(command, str) and _is_memdash_hook(command):
                    others.append((event, command))
                kept.append(hook)
            if kept:
                kept_groups.append({**group, "hooks": kept})
            elif not group["hooks"]:
                kept_groups.append(group)
        merged[event] = [*kept_groups, *ours]
        added.append(event)
        if dropped:
            replaced.append(event)
    return {**settings, "hooks": merged}, added, replaced, others


def _stale(hook: Any, target: tuple[str | None, str | None]) -> bool:
    """An older memdash hook this install replaces."""
    if not isinstance(hook, dict):
        return False
    if _is_memdash_http(hook):
        return True
    command = hook.get("command")
    if hook.get("type", "command") != "command" or not isinstance(command, str):
        return False
    words = _words(command)
    return words is not None and _is_memdash_hook(command) and _target(words) == target


def install(
    path: Path,
    hooks_wanted: dict[str, list[dict[str, Any]]],
    target: tuple[str | None, str | None] = (None, None),
) -> tuple[list[str], Path | None, list[str], list[tuple[str, str]]]:
    """Merge our hooks into the settings file at ``path``; returns the events added, the backup
    written (None when the file is new or unchanged), the events where an older memdash hook was
    replaced and other memdash hooks found.

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
    merged, added, replaced, others = merge(settings, hooks_wanted, target)
    if not added:
        return [], None, [], others
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None if text is None else _back_up(path, text)
    _write_atomically(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
    return added, backup, replaced, others


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
