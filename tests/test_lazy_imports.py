"""The hook path stays lean: what a Claude Code hook imports, it pays for on every tool call.

``memdash hook`` is a thin client (the standard library only) that hands the payload to the hook
relay; textual (the dashboard), redis-py and pydantic (the store) and asyncio load only in the
relay or the dashboard, through imports kept inside functions or behind ``store``'s lazy
``__getattr__``. One careless top-level import would silently put them back on every hook call.

tests/test_cli.py checks ``memdash hook --help`` with ``-X importtime``, which does not see
modules loaded by ``importlib.import_module`` (as ``store.__getattr__`` does). These tests look
at ``sys.modules`` itself, in a fresh interpreter, after importing each entry point, after
``--help``, and after a real hook call handed to a stand-in relay (the code that runs, not only
the code that is imported).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from store.integrations import hook_relay

ROOT = Path(__file__).resolve().parents[1]
HEAVY = frozenset({"asyncio", "pydantic", "redis", "textual"})

# Runs ``body`` in a fresh interpreter, then writes the top-level packages it loaded to the file
# named by argv[1] (not stdout: ``memdash hook`` points fd 1 and 2 at /dev/null while it runs).
PROBE = """
import json, sys
out = sys.argv[1]
try:
{body}
finally:
    with open(out, "w") as f:
        json.dump(sorted({{name.partition(".")[0] for name in sys.modules}}), f)
"""


def env_without_memdash_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMDASH_")}


def loaded_after(
    tmp_path: Path, *lines: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[set[str], subprocess.CompletedProcess[bytes]]:
    """The top-level packages in ``sys.modules`` after running ``lines`` in a fresh process."""
    out = tmp_path / "modules.json"
    body = "\n".join(f"    {line}" for line in lines)
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body), str(out)],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=env if env is not None else env_without_memdash_settings(),
        timeout=60,
    )
    assert out.exists(), done.stderr.decode()
    return set(json.loads(out.read_text())), done


def run_cli(*argv: str) -> list[str]:
    """Lines that run ``memdash *argv`` as ``python -m tui.cli`` does, exit status ignored."""
    return [
        "import runpy",
        f"sys.argv = ['memdash', {', '.join(map(repr, argv))}]",
        "try:",
        "    runpy.run_module('tui.cli', run_name='__main__', alter_sys=True)",
        "except SystemExit:",
        "    pass",
    ]


@pytest.mark.parametrize(
    "module", ["tui.commands.hook", "store.integrations.hook_relay", "tui.cli"]
)
def test_importing_a_hook_entry_point_loads_no_heavy_package(tmp_path, module):
    loaded, done = loaded_after(tmp_path, f"import {module}")
    assert done.returncode == 0, done.stderr.decode()
    assert module.partition(".")[0] in loaded  # the probe saw the import
    assert not loaded & HEAVY


def test_memdash_hook_help_loads_no_heavy_package(tmp_path):
    loaded, done = loaded_after(tmp_path, *run_cli("hook", "--help"))
    assert done.stdout.startswith(b"usage: memdash hook")
    assert not loaded & HEAVY


def test_a_hook_call_handed_to_the_relay_loads_no_heavy_package(tmp_path, isolated_env):
    """The client side at run time: ``memdash hook`` reads the payload, finds the relay's
    socket, hands the payload over and prints the answer; a stand-in relay answers."""
    namespace = "lazy-imports"
    paths = hook_relay.RelayPaths(None, namespace)
    paths.ensure_directory()
    answer = {"decision": "block", "reason": "stand-in relay"}
    received: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(paths.socket))
        server.listen(1)
        server.settimeout(30)

        def relay() -> None:
            conn, _ = server.accept()
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                received.append(data)
                conn.sendall(b"ok stand-in\n" + json.dumps(answer).encode() + b"\n")

        thread = threading.Thread(target=relay, daemon=True)
        thread.start()
        payload = json.dumps({"hook_event_name": "Stop", "session_id": "s1"}).encode()
        loaded, done = loaded_after(
            tmp_path,
            *run_cli("hook", "--namespace", namespace),
            stdin=payload,
            env={**env_without_memdash_settings(), "XDG_DATA_HOME": str(isolated_env)},
        )
        thread.join(timeout=30)
    paths.socket.unlink(missing_ok=True)
    header, _, sent = received[0].partition(b"\n")
    assert json.loads(header)["op"] == "apply" and sent == payload
    assert json.loads(done.stdout) == answer  # the relay's answer, printed for Claude Code
    assert "tui" in loaded and not loaded & HEAVY
