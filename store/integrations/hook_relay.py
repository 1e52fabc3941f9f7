"""The hook relay: one long-lived process per (store URL, namespace) that applies Claude Code
hook payloads, so that `memdash hook` itself stays a thin client.

Why: a process that imports redis-py and pydantic costs ~160 ms before it does anything, and a
hook must not slow the agent down. `memdash hook` therefore imports only the standard library
(this module's top level), hands the raw payload to the relay over a unix socket and waits at
most :data:`ACK_TIMEOUT` for the relay to say it was applied. The relay imports ``store`` once,
keeps its Redis connection, applies payloads one at a time in the order their connections
arrived (PreToolUse before PostToolUse), and exits after :data:`IDLE_ENV` seconds without work.

Files (see :func:`relay_paths`): ``<name>.sock``, ``<name>.pid`` and ``<name>.lock`` in
``<user data dir>/hook-relay/`` (``/tmp/memdash-<uid>/`` when that path is too long for a unix
socket), ``<name>`` a short hash of the store URL and namespace. The relay holds the lock for its
whole life, so when concurrent hooks each start one, one wins and the others exit.

Wire format (client -> relay): one JSON header line ``{"op": "apply", "redis": url|null,
"namespace": ns, "cwd": dir, "at": epoch_seconds}`` (or ``{"op": "ping"|"stop"}``), then the raw
payload bytes until the client shuts its side down. Relay -> client: one status line, ``ok …``
or ``error <kind>: …``.

Errors never reach the agent: they go to ``hook.log`` in the user data dir (rotated at
:data:`LOG_MAX_BYTES`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

EVENTS = (
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Stop",
    "PreCompact",
    "SessionEnd",
)
"""The Claude Code hook events `memdash install-hooks` registers (here, in the standard-library
module, so install-hooks can read them without importing the recorder)."""

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""Largest hook payload accepted; a bigger one is logged and dropped (never half-applied)."""

ACK_TIMEOUT = 0.5
"""Seconds a hook waits for the relay to say the payload was applied; it exits 0 either way
(a payload already sent is still applied later)."""

START_TIMEOUT = 0.7
"""Seconds a hook waits for a relay it started to listen, before giving up (and logging)."""

IDLE_ENV = "MEMDASH_HOOK_RELAY_IDLE"
IDLE_SECONDS = 600.0
"""The relay exits after this long without a payload (``MEMDASH_HOOK_RELAY_IDLE`` overrides)."""

LOG_NAME = "hook.log"
LOG_MAX_BYTES = 1024 * 1024
LOG_LINE_CHARS = 2000
MAX_PENDING = 256
"""Requests the relay holds at most while one is being applied (a hung store); more are closed
unanswered and logged, so a stuck relay cannot run out of file descriptors or memory."""

READ_TIMEOUT = 10.0
"""Seconds the relay waits for a connected client to finish sending."""

_UNIX_PATH_MAX = 100  # AF_UNIX allows 107 bytes on Linux, 103 on macOS: keep a margin


def data_dir() -> Path:
    """The user data dir (``store.embedded.data_dir``'s, without importing ``store``)."""
    import platformdirs

    return platformdirs.user_data_path("memdash", appauthor=False)


URL_ENV = "MEMDASH_REDIS_URL"  # store.connection.URL_ENV, without importing it


def resolve_settings(redis: str | None, namespace: str | None) -> tuple[str | None, str]:
    """The store URL (None: the embedded server) and namespace, resolved like ``store.connect``
    resolves them but without importing it."""
    url = redis or os.environ.get(URL_ENV) or None
    return url, namespace or os.environ.get("MEMDASH_NAMESPACE") or "memdash"


class RelayPaths:
    """Where the relay for one (store URL, namespace) listens and keeps its pid and lock."""

    def __init__(self, url: str | None, namespace: str) -> None:
        base = data_dir()
        name = hashlib.sha1(f"{url or ''}\0{namespace}".encode()).hexdigest()[:12]
        directory = base / "hook-relay"
        if len(str(directory / f"{name}.sock").encode()) > _UNIX_PATH_MAX:
            # Same store and namespace but another data dir must still get another relay.
            name = hashlib.sha1(f"{base}\0{name}".encode()).hexdigest()[:12]
            directory = Path(f"/tmp/memdash-{os.getuid()}")
        self.directory = directory
        self.socket = directory / f"{name}.sock"
        self.pid = directory / f"{name}.pid"
        self.lock = directory / f"{name}.lock"

    def check_private(self) -> None:
        """Raise PermissionError unless the directory is this user's own (and close it to
        others): in the ``/tmp`` fallback another user could otherwise make it first and
        listen in our place. FileNotFoundError when it does not exist yet."""
        info = self.directory.lstat()
        if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
            raise PermissionError(f"{self.directory} is not a directory owned by this user")
        if info.st_mode & 0o077:
            os.chmod(self.directory, 0o700)

    def ensure_directory(self) -> None:
        """Create the directory, private to the user (others must not feed us payloads)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.check_private()


def log(message: str, *, component: str = "hook") -> None:
    """Append one line to ``hook.log``; never raises (logging must not hurt the agent either)."""
    try:
        directory = data_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LOG_NAME
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > LOG_MAX_BYTES:
                os.replace(path, directory / f"{LOG_NAME}.1")
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = message.replace("\n", "\\n")[:LOG_LINE_CHARS]
        line = f"{stamp} {component}[{os.getpid()}] {text}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except Exception:  # nowhere left to report to
        pass


# --- the client side (standard library only: this runs in every hook call) ----------------------


class RelayUnavailable(Exception):
    """No relay could be reached (or started) within the time budget."""


def _exchange(path: Path, header: dict[str, Any], payload: bytes, deadline: float) -> str:
    """Send one request and return the relay's status line.

    ConnectionRefused/FileNotFound: no relay listens. TimeoutError: it got the request (fully
    sent) but did not answer in time.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(header).encode() + b"\n" + payload)
            sock.shutdown(socket.SHUT_WR)
        except TimeoutError:  # not (wholly) sent: nothing will be applied
            raise RelayUnavailable("timed out handing the payload to the relay") from None
        reply = b""
        while not reply.endswith(b"\n"):
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    if not reply:
        raise ConnectionResetError("the relay closed the connection without an answer")
    return reply.decode("utf-8", "replace").strip()


def _no_listener(error: OSError) -> bool:
    return isinstance(error, FileNotFoundError | ConnectionRefusedError) or error.errno in (
        errno.ENOENT,
        errno.ECONNREFUSED,
    )


def start_relay(url: str | None, namespace: str) -> None:
    """Start a detached relay for (url, namespace); it exits by itself if another one runs."""
    import subprocess

    paths = RelayPaths(url, namespace)
    paths.ensure_directory()
    # -P: nothing from the current directory on sys.path. The URL goes in the environment, not
    # argv, where `ps` would show its password.
    command = [sys.executable, "-P", "-m", __name__, "--namespace", namespace]
    env = {k: v for k, v in os.environ.items() if k != URL_ENV}
    if url is not None:
        env[URL_ENV] = url
    # The relay must find this package even when memdash runs from a source tree.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    directory = data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOG_NAME, "ab") as stderr:  # tracebacks of a crash land in the log
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd="/",
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def deliver(
    payload: bytes,
    url: str | None,
    namespace: str,
    *,
    ack_timeout: float = ACK_TIMEOUT,
    start_timeout: float = START_TIMEOUT,
) -> str | None:
    """Hand ``payload`` to the relay (starting one if none listens) and return its status line,
    or None when it was sent but not acknowledged within ``ack_timeout`` (it is applied later).

    Raises :class:`RelayUnavailable` when nothing could be delivered.
    """
    paths = RelayPaths(url, namespace)
    try:
        paths.check_private()
    except FileNotFoundError:
        pass  # no relay yet: start_relay makes the directory
    except OSError as e:
        raise RelayUnavailable(str(e)) from None
    header = {"op": "apply", "redis": url, "namespace": namespace, "cwd": os.getcwd()}
    header["at"] = time.time()
    started = False
    start_deadline = time.monotonic() + start_timeout
    resets = 0
    while True:
        try:
            return _exchange(paths.socket, header, payload, time.monotonic() + ack_timeout)
        except TimeoutError:
            return None
        except ConnectionResetError:
            # A relay that was exiting (idle) dropped the connection unanswered: nothing was
            # applied, so sending again is safe.
            resets += 1
            if resets > 2:
                raise RelayUnavailable("the relay keeps dropping connections") from None
        except OSError as e:
            if not _no_listener(e):
                raise RelayUnavailable(f"cannot reach the relay at {paths.socket}: {e}") from e
            if not started:
                start_relay(url, namespace)
                started = True
            elif time.monotonic() >= start_deadline:
                raise RelayUnavailable(
                    f"no relay listening at {paths.socket} after {start_timeout} s"
                ) from None
            time.sleep(0.01)


def control(op: str, url: str | None, namespace: str, timeout: float = 2.0) -> str | None:
    """Send ``ping`` or ``stop`` to the relay for (url, namespace); None when none listens."""
    paths = RelayPaths(url, namespace)
    try:
        return _exchange(paths.socket, {"op": op}, b"", time.monotonic() + timeout)
    except OSError:
        return None


def running_pid(url: str | None, namespace: str) -> int | None:
    """The pid of the relay for (url, namespace) if one answers."""
    reply = control("ping", url, namespace)
    if reply is None or not reply.startswith("pong "):
        return None
    return int(reply.split()[1])


def stop_relay(url: str | None, namespace: str, timeout: float = 5.0) -> int | None:
    """Stop the relay for (url, namespace); returns its pid, None when none was running.

    Asks it over its socket (it finishes what it queued), and if it is still alive at the
    deadline, sends SIGTERM to the pid in its pid file.
    """
    from store.server import pid_alive as _alive  # here: the hook's own path stays lean

    pid = running_pid(url, namespace)
    if pid is None:
        return None
    control("stop", url, namespace)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pid


# --- the relay ---------------------------------------------------------------------------------


def _idle_seconds() -> float:
    try:
        return max(float(os.environ.get(IDLE_ENV, IDLE_SECONDS)), 0.1)
    except ValueError:
        return IDLE_SECONDS


def _bind(paths: RelayPaths) -> tuple[socket.socket, int] | None:
    """Take the lock and the socket, or None when another relay holds them.

    The socket is bound before ``store`` is imported, so a hook that started us can connect
    at once; its request waits in the backlog until we serve.
    """
    paths.ensure_directory()
    lock = os.open(paths.lock, os.O_CREAT | os.O_RDWR, 0o600)
    deadline = time.monotonic() + 2.0  # a relay exiting after its idle time lets go soon
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if _answers(paths.socket) or time.monotonic() >= deadline:
                os.close(lock)
                return None
            time.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()  # a stale one: its relay is gone, or we would not hold the lock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(paths.socket))
    sock.listen(128)
    paths.pid.write_text(f"{os.getpid()}\n")
    return sock, lock


def _answers(path: Path) -> bool:
    """Whether a relay listens on ``path`` (it may still be importing: connecting is enough)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


async def _read_request(reader: Any) -> tuple[dict[str, Any], bytes] | None:
    """The header and payload; None for a probe (a connection closed without a word)."""
    line = await reader.readline()
    if not line:
        return None
    header = json.loads(line)
    if not isinstance(header, dict):
        raise ValueError("the request header is not a JSON object")
    chunks: list[bytes] = []
    size = 0
    while chunk := await reader.read(256 * 1024):  # read() gives what is buffered: loop to EOF
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload over {MAX_PAYLOAD_BYTES} bytes")
        chunks.append(chunk)
    return header, b"".join(chunks)


async def _serve(sock: socket.socket, paths: RelayPaths, url: str | None, namespace: str) -> None:
    import asyncio

    from store.integrations.claude_code import HookRecorder

    idle = _idle_seconds()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[asyncio.Future[Any], asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if queue.qsize() >= MAX_PENDING:  # the store hangs: shed load, keep descriptors
            log(f"over {MAX_PENDING} requests waiting: one dropped", component="relay")
            writer.close()
            return
        # Queued before the first await: requests are applied in the order they connected.
        request: asyncio.Future[Any] = loop.create_future()
        queue.put_nowait((request, writer))
        try:
            result = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
        except Exception as e:
            if not request.done():
                request.set_exception(e)
        else:
            if not request.done():
                request.set_result(result)

    recorder = HookRecorder.open(url, namespace)
    server = await asyncio.start_unix_server(on_connect, sock=sock)
    counts = {"applied": 0, "ignored": 0, "malformed": 0, "failed": 0}
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        queue.put_nowait((loop.create_future(), None))  # wakes the loop below

    loop.add_signal_handler(signal.SIGTERM, stop)
    log(f"relay started for {recorder.display_url} namespace {namespace}", component="relay")

    async def answer(request: asyncio.Future[Any], writer: asyncio.StreamWriter | None) -> None:
        if writer is None:  # stop()'s wake-up call
            return
        try:
            received = await request
            if received is None:  # a starting relay's probe
                writer.close()
                return
            header, payload = received
        except Exception as e:
            reply = f"error request: {e}"
            log(f"unreadable request: {e!r}", component="relay")
        else:
            op = header.get("op")
            if op == "ping":
                reply = f"pong {os.getpid()}"
            elif op == "stop":
                stop()
                reply = f"stopping {os.getpid()}"
            else:
                at = header.get("at")
                outcome = await recorder.apply(
                    payload, received_at=at if isinstance(at, int | float) else None
                )
                counts[outcome.kind] += 1
                reply = outcome.status_line()
        with contextlib.suppress(Exception):
            writer.write(reply.encode() + b"\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()

    try:
        while not stopping:
            try:
                request, writer = await asyncio.wait_for(queue.get(), idle)
            except TimeoutError:
                break
            await answer(request, writer)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
        for _ in range(3):  # callbacks of connections accepted meanwhile still enqueue
            await asyncio.sleep(0)
        while not queue.empty():
            await answer(*queue.get_nowait())
        with contextlib.suppress(FileNotFoundError):
            paths.pid.unlink()
        await recorder.aclose()
        log(
            "relay exiting ("
            + ", ".join(f"{name} {n}" for name, n in counts.items())
            + (", asked to stop)" if stopping else ", idle)"),
            component="relay",
        )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import asyncio

    parser = argparse.ArgumentParser(prog="memdash-hook-relay", description=__doc__)
    parser.add_argument("--redis", default=os.environ.get(URL_ENV) or None)
    parser.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    paths = RelayPaths(args.redis, args.namespace)
    bound = _bind(paths)
    if bound is None:
        return 0  # another relay holds the lock and serves
    sock, lock = bound

    try:
        asyncio.run(_serve(sock, paths, args.redis, args.namespace))
    except BaseException as e:
        log(f"relay crashed: {e!r}", component="relay")
        raise
    finally:
        for leftover in (paths.socket, paths.pid):  # still ours: we hold the lock
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        os.close(lock)  # releases the flock
    return 0


if __name__ == "__main__":
    sys.exit(main())
