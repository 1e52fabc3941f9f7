"""The hook relay: one long-lived process per (store URL, namespace) that answers and records
Claude Code hook payloads, so that a hook costs the agent as little as possible.

Why: a process that imports redis-py and pydantic costs ~160 ms before it does anything, and a
hook must not slow the agent down. The relay imports ``store`` once, keeps its Redis
connection, and serves hooks two ways:

- **HTTP** (what ``memdash install-hooks`` installs for every event but SessionStart and Stop):
  Claude Code POSTs the payload to ``http://127.0.0.1:<port>/hook`` and reads the answer JSON
  from the response; no process is started at all. The relay listens on loopback only.
- **Command** (SessionStart and Stop, or every event with ``install-hooks --command-hooks``):
  ``memdash hook`` imports only the standard library (this module's top level), hands the raw
  payload over a unix socket and prints the answer it gets back within :data:`ACK_TIMEOUT`
  (nothing when none comes). A command hook also starts the relay when none listens, and tells
  it which HTTP port to serve (``memdash hook --http-port P``).

Per hook, the relay first **decides** the answer (``HookRecorder.decide``: notes to carry, a
tool or prompt refused; one store script), in arrival order, within :data:`DECIDE_TIMEOUT`; an
error or a late decision answers ``{}`` (fail-open: the agent goes on as if memdash were
absent, and the log says why) and a decision that arrives late, or whose answer could not be
written, is released (its notes are pending again). Then the payload joins the ordered
**recording** queue (``HookRecorder.apply``: transcript read, workflow moves…), applied one at a
time in arrival order (PreToolUse before PostToolUse), after the answer went out.

**Liveness.** A relay exits after :data:`IDLE_SECONDS` without a hook (``MEMDASH_HOOK_RELAY_IDLE``)
unless it serves HTTP and a session it served is still open: one that has not ended
(SessionEnd) and had a hook in the last :data:`HOLD_SECONDS` (``MEMDASH_HOOK_RELAY_HOLD``). HTTP
hooks cannot start a relay, so it stays up while a session may still need it. An error while
serving one request is logged and serving goes on; an error that escapes the serving loop
restarts it (at most :data:`MAX_RESTARTS` times in ten minutes). A relay killed outright comes
back with the next command hook (SessionStart, or Stop at the end of every turn); meanwhile the
HTTP hooks fail fast (connection refused: Claude Code goes on), and nothing recorded from the
transcript is lost: the next hook of the session reads it from the offset the previous one
stored, and a workflow move that was missed is recorded as a forced move with the reason.

Files (see :class:`RelayPaths`): ``<name>.sock``, ``<name>.pid`` and ``<name>.lock`` in
``<user data dir>/hook-relay/`` (``/tmp/memdash-<uid>/`` when that path is too long for a unix
socket), ``<name>`` a short hash of the store URL and namespace. The relay holds the lock for its
whole life, so when concurrent hooks each start one, one wins and the others exit.

Unix-socket wire format (client -> relay): one JSON header line ``{"op": "apply", "redis":
url|null, "namespace": ns, "cwd": dir, "at": epoch_seconds}`` plus the hook's options
(``"http_port"``, ``"budget"``, ``"workflow"``), or ``{"op": "ping"|"stop"}``; then the raw
payload bytes until the client shuts its side down. Relay -> client: one status line (``ok …``,
``error <kind>: …``, ``pong <pid> v2 http=<ports>``), then for ``apply`` the hook's answer as
one JSON line.

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
    "PostToolUseFailure",
    "PermissionRequest",
    "Notification",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "SessionEnd",
)
"""The Claude Code hook events `memdash install-hooks` registers (here, in the standard-library
module, so install-hooks can read them without importing the recorder)."""

COMMAND_EVENTS = ("SessionStart", "Stop")
"""Events installed as command hooks even when the others are HTTP hooks: SessionStart (an
HTTP SessionStart hook does not fire in ``claude -p``, and this one starts the relay) and Stop
(once per turn it brings back a relay that was killed, for ~0.1 s when the turn is over)."""

HTTP_EVENTS = tuple(event for event in EVENTS if event not in COMMAND_EVENTS)
"""Events installed as HTTP hooks by default."""

HTTP_TIMEOUT = 2
"""Seconds Claude Code waits for an HTTP hook (written into the settings): the most a relay
that accepts but does not answer (stopped, swapping) can hold the agent per hook."""

HTTP_PATH = "/hook"
PORT_BASE = 24000
PORT_SPAN = 8000
"""Default HTTP ports are derived from (store, namespace, uid) in ``[PORT_BASE, PORT_BASE +
PORT_SPAN)``: high, and below Linux's (32768+) and macOS's (49152+) ephemeral ranges, so an
outgoing connection cannot be holding it."""

PROTOCOL = "v2"
"""Relay protocol: v2 answers ``apply`` with the hook output JSON after the status line."""

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""Largest hook payload accepted; a bigger one is logged and dropped (never half-applied), and
answered 413 over HTTP."""

MAX_HEADER_BYTES = 64 * 1024
"""Largest HTTP request head (request line and headers)."""

ACK_TIMEOUT = 0.5
"""Seconds a command hook waits for the relay's answer; it exits 0 either way, printing the
answer only when it came (a payload already sent is still recorded later)."""

DECIDE_TIMEOUT = 1.0
"""Seconds the relay gives a decision before answering ``{}`` (below :data:`HTTP_TIMEOUT`, so
the answer reaches the agent before Claude Code gives up on the hook)."""

START_TIMEOUT = 0.7
"""Seconds a hook waits for a relay it started to listen, before giving up (and logging)."""

IDLE_ENV = "MEMDASH_HOOK_RELAY_IDLE"
IDLE_SECONDS = 600.0
"""The relay exits after this long without a payload (``MEMDASH_HOOK_RELAY_IDLE`` overrides),
unless it holds an open session (see :data:`HOLD_SECONDS`)."""

HOLD_ENV = "MEMDASH_HOOK_RELAY_HOLD"
HOLD_SECONDS = 12 * 3600.0
"""A relay serving HTTP does not idle out while a session it served has not ended and had a
hook less than this long ago (``MEMDASH_HOOK_RELAY_HOLD`` overrides)."""

MAX_RESTARTS = 5
"""Restarts of the serving loop after an unexpected error, within ten minutes, before the relay
gives up and exits (the next command hook starts a new one)."""

KEEPALIVE_SECONDS = 30.0
"""An idle keep-alive HTTP connection is closed after this long."""

LOG_NAME = "hook.log"
LOG_MAX_BYTES = 1024 * 1024
LOG_LINE_CHARS = 2000
MAX_PENDING = 256
"""Requests the relay holds at most while one is being applied (a hung store); more are not
recorded (command hooks: closed unanswered; HTTP hooks: answered ``{}``) and logged, so a stuck
relay cannot run out of file descriptors or memory."""

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


def default_port(url: str | None, namespace: str) -> int:
    """The HTTP port ``install-hooks`` proposes for (url, namespace) and this user: stable, so
    installing again writes the same one."""
    digest = hashlib.sha1(f"{url or ''}\0{namespace}\0{os.getuid()}".encode()).digest()
    return PORT_BASE + int.from_bytes(digest[:4], "big") % PORT_SPAN


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port`` (binding it is possible now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def hook_url(port: int) -> str:
    return f"http://127.0.0.1:{port}{HTTP_PATH}"


# --- the client side (standard library only: this runs in every hook call) ----------------------


class RelayUnavailable(Exception):
    """No relay could be reached (or started) within the time budget."""


def _exchange(path: Path, header: dict[str, Any], payload: bytes, deadline: float) -> str:
    """Send one request and return the relay's whole reply (it closes when done).

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
        chunks: list[bytes] = []
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    if not reply:
        raise ConnectionResetError("the relay closed the connection without an answer")
    return reply.decode("utf-8", "replace")


def _no_listener(error: OSError) -> bool:
    return isinstance(error, FileNotFoundError | ConnectionRefusedError) or error.errno in (
        errno.ENOENT,
        errno.ECONNREFUSED,
    )


def start_relay(url: str | None, namespace: str, http_port: int | None = None) -> None:
    """Start a detached relay for (url, namespace), serving HTTP on ``http_port`` if given; it
    exits by itself if another one runs."""
    import subprocess

    paths = RelayPaths(url, namespace)
    paths.ensure_directory()
    # -P: nothing from the current directory on sys.path. The URL goes in the environment, not
    # argv, where `ps` would show its password.
    command = [sys.executable, "-P", "-m", __name__, "--namespace", namespace]
    if http_port is not None:
        command += ["--http-port", str(http_port)]
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


def parse_reply(reply: str) -> tuple[str, dict[str, Any] | None]:
    """The status line and the hook's answer (None: the relay sent none, e.g. an older one)."""
    status, _, rest = reply.partition("\n")
    output = None
    if rest.strip():
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, dict):
            output = value
    return status.strip(), output


def deliver(
    payload: bytes,
    url: str | None,
    namespace: str,
    *,
    options: dict[str, Any] | None = None,
    ack_timeout: float = ACK_TIMEOUT,
    start_timeout: float = START_TIMEOUT,
) -> tuple[str, dict[str, Any] | None] | None:
    """Hand ``payload`` to the relay (starting one if none listens) and return its status line
    and the hook's answer, or None when it was sent but not answered within ``ack_timeout``
    (it is still recorded later; its notes, if any, go back to pending).

    ``options``: ``http_port`` (the relay serves HTTP there), ``budget``, ``workflow`` (passed
    on to the recorder). Raises :class:`RelayUnavailable` when nothing could be delivered.
    """
    paths = RelayPaths(url, namespace)
    try:
        paths.check_private()
    except FileNotFoundError:
        pass  # no relay yet: start_relay makes the directory
    except OSError as e:
        raise RelayUnavailable(str(e)) from None
    options = options or {}
    header = {"op": "apply", "redis": url, "namespace": namespace, "cwd": os.getcwd()}
    header.update(options)
    header["at"] = time.time()
    started = False
    start_deadline = time.monotonic() + start_timeout
    resets = 0
    while True:
        try:
            reply = _exchange(paths.socket, header, payload, time.monotonic() + ack_timeout)
        except TimeoutError:
            return None
        except ConnectionResetError:
            # A relay that was exiting (idle) dropped the connection unanswered: nothing was
            # decided or applied, so sending again is safe.
            resets += 1
            if resets > 2:
                raise RelayUnavailable("the relay keeps dropping connections") from None
        except OSError as e:
            if not _no_listener(e):
                raise RelayUnavailable(f"cannot reach the relay at {paths.socket}: {e}") from e
            if not started:
                start_relay(url, namespace, options.get("http_port"))
                started = True
            elif time.monotonic() >= start_deadline:
                raise RelayUnavailable(
                    f"no relay listening at {paths.socket} after {start_timeout} s"
                ) from None
            time.sleep(0.01)
        else:
            status, output = parse_reply(reply)
            if output is None and status.startswith("ok ") and options.get("http_port"):
                # A relay from before HTTP hooks (an upgrade): it recorded the payload, but it
                # cannot serve the HTTP hooks. Ask it to go; the next command hook starts ours.
                log(f"an older hook relay answered ({status!r}): asked it to stop")
                with contextlib.suppress(OSError):
                    _exchange(paths.socket, {"op": "stop"}, b"", time.monotonic() + 0.2)
            return status, output


def control(op: str, url: str | None, namespace: str, timeout: float = 2.0) -> str | None:
    """Send ``ping`` or ``stop`` to the relay for (url, namespace); None when none listens."""
    paths = RelayPaths(url, namespace)
    try:
        return _exchange(paths.socket, {"op": op}, b"", time.monotonic() + timeout).strip()
    except OSError:
        return None


def relay_status(url: str | None, namespace: str) -> tuple[int, list[int]] | None:
    """The pid of the relay for (url, namespace) and the HTTP ports it serves, if one answers."""
    reply = control("ping", url, namespace)
    if reply is None or not reply.startswith("pong "):
        return None
    words = reply.split()
    ports = [
        int(p)
        for word in words[2:]
        if word.startswith("http=")
        for p in word[5:].split(",")
        if p.isdigit()
    ]
    return int(words[1]), ports


def running_pid(url: str | None, namespace: str) -> int | None:
    """The pid of the relay for (url, namespace) if one answers (once it has recorded every
    payload it received before: the ping waits its turn in the recording queue)."""
    status = relay_status(url, namespace)
    return None if status is None else status[0]


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


def _seconds(env: str, default: float) -> float:
    try:
        return max(float(os.environ.get(env, default)), 0.1)
    except ValueError:
        return default


def _lock(paths: RelayPaths) -> int | None:
    """Take the relay's lock, or None when another relay holds it."""
    paths.ensure_directory()
    lock = os.open(paths.lock, os.O_CREAT | os.O_RDWR, 0o600)
    deadline = time.monotonic() + 2.0  # a relay exiting after its idle time lets go soon
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if _answers(paths.socket) or time.monotonic() >= deadline:
                os.close(lock)
                return None
            time.sleep(0.02)


def _listen_unix(paths: RelayPaths) -> socket.socket:
    """The relay's unix socket, bound and listening (we hold the lock: any file there is
    stale). Bound before ``store`` is imported, so a hook that started us can connect at once;
    its request waits in the backlog until we serve."""
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(paths.socket))
    sock.listen(128)
    paths.pid.write_text(f"{os.getpid()}\n")
    return sock


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


class HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


async def _read_http(
    reader: Any, writer: Any
) -> tuple[str, str, dict[str, str], bytes, bool] | None:
    """One HTTP/1.x request: method, path, headers (lower-case names), body, and whether the
    connection stays open after it. None when the client closed between requests. Raises
    :class:`HttpError` (the caller answers it and closes)."""
    import asyncio

    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEPALIVE_SECONDS)
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise HttpError(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request head over {MAX_HEADER_BYTES} bytes") from None
    except TimeoutError:
        return None
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise ValueError(line)
            headers[name.strip().lower()] = value.strip()
    except ValueError:
        raise HttpError(400, "malformed request head") from None
    connection = headers.get("connection", "").lower()
    keep = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    encoding = headers.get("transfer-encoding", "").lower()
    if encoding and encoding != "identity":
        if encoding != "chunked":
            raise HttpError(501, f"transfer encoding {encoding!r}")
        body = await asyncio.wait_for(_read_chunked(reader), READ_TIMEOUT)
    else:
        length_text = headers.get("content-length")
        if length_text is None:
            if method in ("POST", "PUT"):
                raise HttpError(411, "no Content-Length")
            length = 0
        else:
            if not length_text.isdigit():
                raise HttpError(400, f"bad Content-Length {length_text!r}")
            length = int(length_text)
        if length > MAX_PAYLOAD_BYTES:
            raise HttpError(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
        try:
            body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "body shorter than its Content-Length") from None
        except TimeoutError:
            raise HttpError(408, "body not sent in time") from None
    return method, target, headers, body, keep


async def _read_chunked(reader: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            n = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "malformed chunk size") from None
        if n == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        size += n
        if size > MAX_PAYLOAD_BYTES:
            raise HttpError(413, f"payload over {MAX_PAYLOAD_BYTES} bytes")
        chunks.append(await reader.readexactly(n))
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError(400, "malformed chunk")


def _http_response(status: int, body: bytes, *, keep: bool, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _from_a_local_client(headers: dict[str, str]) -> bool:
    """Not a web page: a browser sends ``Origin`` with a POST, and a page on a domain rebound to
    127.0.0.1 sends its own ``Host``. Claude Code sends neither."""
    if "origin" in headers:
        return False
    host = headers.get("host")
    if host is None:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("127.0.0.1", "localhost", "[::1]")


_STOP = object()


class Relay:
    """The serving side: the unix socket, the HTTP listeners, the decisions and the ordered
    recording queue, over one :class:`HookRecorder`."""

    def __init__(
        self,
        unix_sock: socket.socket,
        paths: RelayPaths,
        url: str | None,
        namespace: str,
        http_ports: list[int],
    ) -> None:
        import asyncio

        self.unix_sock = unix_sock
        self.paths = paths
        self.url = url
        self.namespace = namespace
        self.wanted_ports = list(http_ports)
        self.http_servers: dict[int, asyncio.AbstractServer] = {}
        self.failed_ports: set[int] = set()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.decisions: asyncio.Queue[Any] = asyncio.Queue()
        self.open_sessions: dict[str, float] = {}
        self.ended_sessions: dict[str, float] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.counts = {"applied": 0, "ignored": 0, "malformed": 0, "failed": 0}
        self.stopping = False
        self.idle = _seconds(IDLE_ENV, IDLE_SECONDS)
        self.hold = _seconds(HOLD_ENV, HOLD_SECONDS)
        self.recorder: Any = None
        self.exit_reason = "idle"

    # --- lifecycle

    async def run(self) -> None:
        import asyncio

        from store.integrations.claude_code import HookRecorder

        loop = asyncio.get_running_loop()
        # Fresh per run: queues and futures belong to the loop they were made in (a restart
        # after a crash runs a new loop).
        self.queue = asyncio.Queue()
        self.decisions = asyncio.Queue()
        self.tasks = set()
        if self.recorder is None:
            self.recorder = HookRecorder.open(self.url, self.namespace)
        unix = await asyncio.start_unix_server(self.on_unix, sock=self.unix_sock)
        for port in self.wanted_ports:
            await self.listen_http(port)
        decider = asyncio.ensure_future(self._decide_loop())
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        log(
            f"relay started for {self.recorder.display_url} namespace {self.namespace}"
            + (
                f", HTTP on 127.0.0.1:{','.join(map(str, self.http_servers))}"
                if self.http_servers
                else ""
            ),
            component="relay",
        )
        reason = "idle"
        try:
            while not self.stopping:
                try:
                    item = await asyncio.wait_for(self.queue.get(), self.idle)
                except TimeoutError:
                    if self.held():
                        continue
                    break
                try:
                    await self.process(item)
                except Exception as e:  # one request's failure must not end the serving
                    log(
                        f"request failed, serving goes on: {type(e).__name__}: {e}",
                        component="relay",
                    )
            else:
                reason = "asked to stop"
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            unix.close()
            for server in self.http_servers.values():
                server.close()
            # a restart listens there again (and on the ports asked for since)
            self.wanted_ports = sorted({*self.wanted_ports, *self.http_servers})
            self.http_servers.clear()
            with contextlib.suppress(FileNotFoundError):
                self.paths.socket.unlink()
            for _ in range(3):  # callbacks of connections accepted meanwhile still enqueue
                await asyncio.sleep(0)
            while not self.queue.empty():
                with contextlib.suppress(Exception):
                    await self.process(self.queue.get_nowait())
            decider.cancel()
            for task in list(self.tasks):
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 2.0)
        self.exit_reason = reason

    def stop(self) -> None:
        self.stopping = True
        self.queue.put_nowait(_STOP)  # wakes the loop

    def held(self) -> bool:
        """Whether an open session keeps this relay up although it is idle."""
        if not self.http_servers:
            return False
        now = time.monotonic()
        for session, seen in list(self.open_sessions.items()):
            if now - seen > self.hold:
                del self.open_sessions[session]
        return bool(self.open_sessions)

    def seen(self, session: str, event: str) -> None:
        now = time.monotonic()
        if event == "SessionEnd":
            self.open_sessions.pop(session, None)
            self.ended_sessions[session] = now
            if len(self.ended_sessions) > 1000:
                oldest = min(self.ended_sessions, key=self.ended_sessions.__getitem__)
                del self.ended_sessions[oldest]
        elif event == "SessionStart" or session not in self.ended_sessions:
            # (StopFailure can come after SessionEnd: it does not open the session again)
            self.ended_sessions.pop(session, None)
            self.open_sessions[session] = now

    async def listen_http(self, port: int) -> None:
        import asyncio

        if port in self.http_servers:
            return
        try:
            self.http_servers[port] = await asyncio.start_server(
                self.on_http, "127.0.0.1", port, limit=MAX_HEADER_BYTES, reuse_address=True
            )
        except OSError as e:
            if port not in self.failed_ports:
                log(f"cannot serve HTTP hooks on 127.0.0.1:{port}: {e}", component="relay")
            self.failed_ports.add(port)
        else:
            self.failed_ports.discard(port)

    def spawn(self, coroutine: Any) -> None:
        import asyncio

        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def reserve(self) -> Any:
        """A place in the recording queue (arrival order), or None when it is full."""
        import asyncio

        if self.queue.qsize() >= MAX_PENDING:  # the store hangs: shed load, keep descriptors
            log(f"over {MAX_PENDING} requests waiting: one not recorded", component="relay")
            return None
        slot = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(slot)
        return slot

    # --- decisions

    async def _decide_loop(self) -> None:
        """Decisions one at a time, in arrival order; never cancelled by a waiter's timeout
        (a decision cut short could have marked notes delivered unseen)."""
        while True:
            payload, future = await self.decisions.get()
            try:
                decision = await self.recorder.decide(payload)
            except Exception as e:
                if not future.done():
                    future.set_exception(e)
            else:
                if not future.done():
                    future.set_result(decision)

    async def decide(self, raw: bytes) -> tuple[Any, Any, dict[str, Any]]:
        """(payload, decision, answer): anything wrong answers ``{}``. Raises only
        ``MalformedHook`` (not a hook payload; the recording queue logs it)."""
        import asyncio

        from store.integrations.claude_code import MalformedHook, parse_payload

        try:
            payload = parse_payload(raw)
        except MalformedHook:
            raise
        except Exception as e:
            log(f"payload not parsed, answered {{}}: {type(e).__name__}: {e}", component="relay")
            return None, None, {}
        self.seen(payload.session_id, payload.hook_event_name)
        future = asyncio.get_running_loop().create_future()
        self.decisions.put_nowait((payload, future))
        try:
            decision = await asyncio.wait_for(asyncio.shield(future), DECIDE_TIMEOUT)
        except TimeoutError:
            log(
                f"{payload.hook_event_name} {payload.session_id}: no decision within "
                f"{DECIDE_TIMEOUT} s, answered {{}}",
                component="relay",
            )
            future.add_done_callback(lambda done: self._late(payload, done))
            return payload, None, {}
        except Exception as e:
            log(
                f"{payload.hook_event_name} {payload.session_id}: decision failed, answered {{}}: "
                f"{type(e).__name__}: {e}",
                component="relay",
            )
            return payload, None, {}
        try:
            output = decision.hook_output()
            json.dumps(output)
        except Exception as e:
            log(f"answer not serialisable, answered {{}}: {e!r}", component="relay")
            self.spawn(self.release(payload, decision))
            return payload, None, {}
        return payload, decision, output

    def _late(self, payload: Any, future: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        self.spawn(self.release(payload, future.result()))

    async def release(self, payload: Any, decision: Any) -> None:
        if payload is None or decision is None or not decision.notes:
            return
        try:
            await self.recorder.release(payload, decision)
            log(
                f"{payload.hook_event_name} {payload.session_id}: answer not delivered, "
                "its notes are pending again",
                component="relay",
            )
        except Exception as e:
            log(f"notes not released: {type(e).__name__}: {e}", component="relay")

    # --- the unix socket (command hooks, ping, stop)

    async def on_unix(self, reader: Any, writer: Any) -> None:
        import asyncio

        from store.integrations.claude_code import MalformedHook

        slot = self.reserve()  # before the first await: recorded in the order they connected
        if slot is None:
            writer.close()
            return
        try:
            received = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT)
        except Exception as e:
            log(f"unreadable request: {e!r}", component="relay")
            slot.set_result(None)
            await self._reply(writer, f"error request: {e}\n")
            return
        if received is None:  # a starting relay's probe
            slot.set_result(None)
            writer.close()
            return
        header, body = received
        if header.get("op") in ("ping", "stop"):
            slot.set_result(("control", header, writer))  # answered in turn: a barrier
            return
        try:
            port = header.get("http_port")
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                await self.listen_http(port)
            try:
                payload, decision, output = await self.decide(body)
            except MalformedHook as e:
                await self._reply(writer, f"error malformed: {e}\n{{}}\n")
                return
            event = payload.hook_event_name if payload is not None else "unparsed"
            reply = f"ok decided {event}\n{json.dumps(output)}\n"
            if not await self._reply(writer, reply):
                self.spawn(self.release(payload, decision))
        finally:
            slot.set_result(("apply", header, body))

    async def _reply(self, writer: Any, text: str) -> bool:
        """Write and close; False when the client was gone (it gave up waiting)."""
        try:
            writer.write(text.encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except Exception:
            with contextlib.suppress(Exception):
                writer.close()
            return False
        return True

    # --- HTTP (Claude Code's http hooks)

    async def on_http(self, reader: Any, writer: Any) -> None:
        try:
            while True:
                try:
                    request = await _read_http(reader, writer)
                except HttpError as e:
                    log(f"HTTP request refused: {e.status} {e}", component="relay")
                    body = json.dumps({"error": str(e)}).encode()
                    writer.write(_http_response(e.status, body, keep=False))
                    await writer.drain()
                    return
                if request is None:
                    return
                method, target, headers, body, keep = request
                path = target.split("?", 1)[0]
                if not _from_a_local_client(headers):
                    log(
                        f"HTTP request refused: Origin {headers.get('origin')!r}, "
                        f"Host {headers.get('host')!r}",
                        component="relay",
                    )
                    writer.write(_http_response(403, b'{"error": "forbidden"}', keep=False))
                    keep = False
                elif path != HTTP_PATH and not path.startswith(HTTP_PATH + "/"):
                    writer.write(_http_response(404, b'{"error": "not found"}', keep=keep))
                elif method != "POST":
                    writer.write(
                        _http_response(
                            405, b'{"error": "POST only"}', keep=keep, extra="Allow: POST\r\n"
                        )
                    )
                else:
                    await self.hook_over_http(reader, writer, body, keep)
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, OSError):
            pass  # the client went away
        except Exception as e:
            log(f"HTTP connection failed: {type(e).__name__}: {e}", component="relay")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def hook_over_http(self, reader: Any, writer: Any, body: bytes, keep: bool) -> None:
        from store.integrations.claude_code import MalformedHook

        at = time.time()
        slot = self.reserve()
        payload = decision = None
        try:
            try:
                payload, decision, output = await self.decide(body)
            except MalformedHook as e:
                writer.write(_http_response(400, json.dumps({"error": str(e)}).encode(), keep=keep))
                return
            response = _http_response(200, json.dumps(output).encode(), keep=keep)
            if reader.at_eof():  # the client gave up and closed: the answer would be lost
                raise ConnectionResetError("client gone")
            writer.write(response)
            await writer.drain()
        except BaseException:
            self.spawn(self.release(payload, decision))
            raise
        finally:
            if slot is not None:
                slot.set_result(("apply", {"at": at}, body))

    # --- the recording queue

    async def process(self, item: Any) -> None:
        if item is _STOP:
            return
        received = await item
        if received is None:
            return
        kind, header, rest = received
        if kind == "control":
            if header.get("op") == "stop":
                self.stop()
                reply = f"stopping {os.getpid()}"
            else:
                ports = ",".join(map(str, self.http_servers))
                reply = f"pong {os.getpid()} {PROTOCOL}" + (f" http={ports}" if ports else "")
            await self._reply(rest, reply + "\n")
            return
        at = header.get("at")
        outcome = await self.recorder.apply(
            rest, received_at=at if isinstance(at, int | float) else None, options=header
        )
        self.counts[outcome.kind] = self.counts.get(outcome.kind, 0) + 1


def main(argv: list[str] | None = None) -> int:
    import argparse
    import asyncio
    import traceback

    parser = argparse.ArgumentParser(prog="memdash-hook-relay", description=__doc__)
    parser.add_argument("--redis", default=os.environ.get(URL_ENV) or None)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--http-port", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    paths = RelayPaths(args.redis, args.namespace)
    lock = _lock(paths)
    if lock is None:
        return 0  # another relay holds the lock and serves
    relay: Relay | None = None
    crashes: list[float] = []
    try:
        while True:
            sock = _listen_unix(paths)
            if relay is None:
                relay = Relay(sock, paths, args.redis, args.namespace, args.http_port)
            else:
                relay.unix_sock = sock
            try:
                asyncio.run(relay.run())
                break
            except Exception as e:
                sock.close()
                now = time.monotonic()
                crashes = [t for t in crashes if now - t < 600] + [now]
                trace = "".join(traceback.format_exception(e)).strip()
                if len(crashes) > MAX_RESTARTS:
                    log(
                        f"relay crashed {len(crashes)} times in 10 min, exiting: {trace}",
                        component="relay",
                    )
                    raise
                log(f"relay crashed, serving again: {trace}", component="relay")
                relay.recorder = None  # its connection belonged to the loop that ended
        log(
            "relay exiting ("
            + ", ".join(f"{name} {n}" for name, n in relay.counts.items())
            + f", {relay.exit_reason})",
            component="relay",
        )
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
