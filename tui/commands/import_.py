"""`memdash import <path>…`: Claude Code transcripts already on disk, into the store.

A path is a transcript file (any name) or a directory walked for ``*.jsonl`` (the
``~/.claude/projects`` layout: ``<project>/<session>.jsonl`` and
``<project>/<session>/subagents/agent-*.jsonl``), read in path order so a session's own file
comes before its subagents'. Each file goes through
``store.integrations.transcript.record_transcript`` (see there for what is recorded and how),
so importing again adds nothing, and a session the hooks recorded live (from the same lines) is
completed, not doubled. Sessions are the lines' ``sessionId`` (or ``--session``). The files are
read one after the other, each while the store writes what was read before
(``record_transcripts``); a tree of 64 MB or more is shared out among forked worker processes
(two on two CPUs; ``MEMDASH_IMPORT_WORKERS`` says how many), each with whole sessions (a
session's file and its subagents' files, in their order).

The import does not touch workflows: a transcript on disk may belong to a session still
running, so marking it ``ended`` could be false, and a session without a workflow is how the
dashboard tells one memdash did not follow live.

Output: a progress bar on stderr when stderr is a terminal; one summary line on stdout. Exit 0;
1 when the store cannot be reached or a file cannot be read (the others are still imported);
2 for bad arguments (a path that does not exist, a bad session id or URL), nothing written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import add_store_options

EXIT_FAILED = 1
EXIT_USAGE = 2
CONNECT_TIMEOUT = 10.0  # seconds to reach the store before giving up


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "import",
        help="import Claude Code transcripts (files or a ~/.claude/projects tree)",
        description="Import Claude Code transcript files (JSONL), or every *.jsonl under a "
        "directory such as ~/.claude/projects: messages, token usage and session context. "
        "Idempotent: importing again adds nothing. Malformed lines are skipped and counted.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a transcript or a directory")
    parser.add_argument(
        "--session", metavar="ID", help="record every line in this session (default: sessionId)"
    )
    add_store_options(parser)
    parser.set_defaults(func=run)


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"memdash import: {message}", file=sys.stderr)
    return code


def transcripts(paths: Iterable[Path]) -> list[Path]:
    """The files to import: given files as they are, directories walked for ``*.jsonl``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            walked = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                walked += [Path(root, name) for name in files if name.endswith(".jsonl")]
            found += sorted(walked, key=str)  # "<session>.jsonl" sorts before "<session>/…"
        else:
            found.append(path)
    return found


def run(args: argparse.Namespace) -> int:
    import store
    from store.keys import check_part

    paths = [Path(path).expanduser() for path in args.paths]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        return fail("no such file or directory: " + ", ".join(missing), EXIT_USAGE)
    try:
        if args.session is not None:
            check_part("session", args.session)
        conn = store.connect(
            getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
        )
    except ValueError as error:
        return fail(str(error), EXIT_USAGE)
    files = transcripts(paths)
    workers = _workers(files, args.session)
    if workers > 1:
        return _import_parallel(conn, files, workers)
    return asyncio.run(_import(conn, files, args.session))


async def _import(conn: Any, files: list[Path], session: str | None) -> int:
    from redis.exceptions import RedisError

    from store.integrations.transcript import TranscriptResult, record_transcripts

    total = TranscriptResult(offset=0)
    imported = unreadable = 0
    pending: list[Path] = []  # files read whose writes are not all done, oldest first
    _fewer_collections()

    def started(path: Path) -> Path:
        pending.append(path)
        progress.start(path)
        return path

    def done(path: Path, result: TranscriptResult) -> None:
        nonlocal imported
        pending.remove(path)
        progress.done(path)
        _add(total, result)
        imported += 1

    def failed(path: Path, error: OSError) -> None:
        nonlocal unreadable
        pending.remove(path)
        unreadable += 1
        progress.warn(f"memdash import: cannot read {path}: {error.strerror or error}")
        progress.done(path)  # its bytes are behind us too

    try:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await conn.client.ping()
        except (RedisError, OSError, TimeoutError) as error:
            return fail(f"cannot reach the store at {conn.display_url}: {error}")
        with _Progress(files) as progress:
            try:
                # Each file is read while the one before is still being written.
                await record_transcripts(
                    conn,
                    (started(path) for path in files),
                    session_id=session,
                    progress=progress.reached,
                    done=done,
                    failed=failed,
                )
            except (RedisError, TimeoutError) as error:
                progress.stop()
                print(_summary(imported, total), flush=True)
                return fail(f"the store failed during {pending[0] if pending else '?'}: {error}")
    finally:
        await conn.aclose()
    print(_summary(imported, total, unreadable), flush=True)
    return EXIT_FAILED if unreadable else 0


def _fewer_collections() -> None:
    """The import makes and drops millions of small containers (parsed lines) and keeps few:
    the objects made so far (modules…) are left out of the cyclic collector's passes, and a
    pass comes every 10,000 new containers instead of 700. Memory is unchanged (the parsed
    lines hold no cycles: reference counts free them)."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


WORKERS_ENV = "MEMDASH_IMPORT_WORKERS"
PARALLEL_BYTES = 64 * 1024 * 1024
"""A tree this big (or bigger) is read by several processes (see _workers)."""


def _workers(files: list[Path], session: str | None) -> int:
    """How many processes read the files: one for a small tree, for --session (one session:
    its messages keep the files' order) or a single CPU; else two (the store's server wants a
    CPU too), or one less than the CPUs on a bigger machine, at most four. MEMDASH_IMPORT_WORKERS
    says otherwise."""
    chosen = os.environ.get(WORKERS_ENV)
    if chosen:
        try:
            return max(1, min(int(chosen), 16)) if session is None else 1
        except ValueError:
            pass
    if session is not None or len(files) < 2:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 1
    size = 0
    for path in files:
        with contextlib.suppress(OSError):
            size += path.stat().st_size
    if size < PARALLEL_BYTES:
        return 1
    return min(4, max(2, cpus - 1))


def _share(files: list[Path], workers: int) -> list[list[int]]:
    """The files (their indices) each worker reads: a session's files (``<session>.jsonl`` and
    ``<session>/subagents/*.jsonl``) all to one worker, in their order, so a session's messages
    are written in the order one process would write them; the biggest sessions first, each to
    the worker with the fewest bytes so far."""
    groups: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for index, path in enumerate(files):
        key = str(path.parent.parent if path.parent.name == "subagents" else path.with_suffix(""))
        groups.setdefault(key, []).append(index)
        try:
            sizes[key] = sizes.get(key, 0) + path.stat().st_size
        except OSError:
            sizes.setdefault(key, 0)
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for key in sorted(groups, key=lambda key: -sizes[key]):
        least = loads.index(min(loads))
        shares[least] += groups[key]
        loads[least] += sizes[key]
    return [sorted(share) for share in shares if share]


def _import_parallel(conn: Any, files: list[Path], workers: int) -> int:
    """The import by ``workers`` processes (forked), each recording its share of the files
    (see _share) as _import would; this one shows the progress and sums up."""
    import multiprocessing
    import multiprocessing.connection

    from redis.exceptions import RedisError

    async def ping() -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await conn.client.ping()
        finally:
            await conn.aclose()

    try:
        url = conn.url  # resolved here (an embedded server starts once, here)
        asyncio.run(ping())
    except (RedisError, OSError, TimeoutError) as error:
        return fail(f"cannot reach the store at {conn.display_url}: {error}")
    # The workers import the transcript reader (pydantic…) themselves, at the same time.
    context = multiprocessing.get_context("fork")
    readers: dict[Any, Any] = {}
    total = _Totals()
    imported = unreadable = 0
    failure: str | None = None
    sys.stdout.flush()
    sys.stderr.flush()
    # forked before the progress bar starts its thread
    for share in _share(files, workers):
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker,
            args=(url, conn.namespace, [(i, files[i]) for i in share], writer, workers),
            daemon=True,
        )
        process.start()
        writer.close()
        readers[reader] = process
    with _Progress(files) as progress:
        try:
            while readers and failure is None:
                for reader in multiprocessing.connection.wait(list(readers)):
                    try:
                        message = reader.recv()
                    except EOFError:  # the worker is done (or died)
                        process = readers.pop(reader)
                        process.join()
                        reader.close()
                        if process.exitcode != 0 and failure is None:
                            failure = f"an import process stopped (exit code {process.exitcode})"
                        continue
                    kind, index, value = message
                    path = files[index] if index is not None else None
                    if kind == "progress":
                        if path not in progress._current:
                            progress.start(path)
                        progress.reached(path, value)
                    elif kind == "done":
                        progress.done(path)
                        _add(total, value)
                        imported += 1
                    elif kind == "failed":
                        unreadable += 1
                        progress.warn(f"memdash import: cannot read {path}: {value}")
                        progress.done(path)
                    elif kind == "error":
                        failure = f"the store failed during {path}: {value}"
        finally:
            for reader, process in readers.items():
                if process.is_alive():
                    process.terminate()
                process.join()
                reader.close()
        if failure is not None:
            progress.stop()
    if failure is not None:
        print(_summary(imported, total), flush=True)
        return fail(failure)
    print(_summary(imported, total, unreadable), flush=True)
    return EXIT_FAILED if unreadable else 0


def _worker(
    url: str, namespace: str, share: list[tuple[int, Path]], pipe: Any, workers: int
) -> None:
    """One import process: record its files, say what happens through ``pipe``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent stops it
    asyncio.run(_work(url, namespace, share, pipe, workers))
    pipe.close()


async def _work(
    url: str, namespace: str, share: list[tuple[int, Path]], pipe: Any, workers: int
) -> None:
    from redis.exceptions import RedisError

    import store
    from store.integrations.transcript import WRITES_AHEAD_BYTES, record_transcripts

    indices = {id(path): index for index, path in share}
    pending: list[Path] = []

    def started(path: Path) -> Path:
        pending.append(path)
        return path

    def done(path: Path, result: Any) -> None:
        pending.remove(path)
        counts = {name: getattr(result, name) for name in _COUNTED}
        pipe.send(("done", indices[id(path)], _Totals(sessions=result.sessions, **counts)))

    def failed(path: Path, error: OSError) -> None:
        pending.remove(path)
        pipe.send(("failed", indices[id(path)], error.strerror or str(error)))

    _fewer_collections()
    conn = store.connect(url, namespace=namespace)
    try:
        await record_transcripts(
            conn,
            (started(path) for _, path in share),
            progress=lambda path, offset: pipe.send(("progress", indices[id(path)], offset)),
            done=done,
            failed=failed,
            # the memory one import may use for reading ahead, shared out
            ahead_bytes=WRITES_AHEAD_BYTES // workers,
        )
    except (RedisError, TimeoutError) as error:
        where = indices[id(pending[0])] if pending else None
        pipe.send(("error", where, str(error)))
    finally:
        await conn.aclose()


_COUNTED = (
    "messages_added",
    "duplicates",
    "usage_added",
    "malformed",
    "ignored",
    "usage_unattributed",
    "truncated",
    "lines",
)


@dataclass
class _Totals:
    """What the summary adds up of TranscriptResults (a worker sends one per file: the parent
    then needs no import of the transcript reader)."""

    sessions: set[str] = field(default_factory=set)
    messages_added: int = 0
    duplicates: int = 0
    usage_added: int = 0
    malformed: int = 0
    ignored: int = 0
    usage_unattributed: int = 0
    truncated: int = 0
    lines: int = 0


def _add(total: Any, result: Any) -> None:
    total.sessions |= result.sessions
    for name in (
        "messages_added",
        "duplicates",
        "usage_added",
        "malformed",
        "ignored",
        "usage_unattributed",
    ):
        setattr(total, name, getattr(total, name) + getattr(result, name))
    total.truncated += result.truncated
    total.lines += result.lines


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def _summary(files: int, total: Any, unreadable: int = 0) -> str:
    parts = [
        f"imported {_plural(files, 'file')}",
        _plural(len(total.sessions), "session"),
        f"{_plural(total.messages_added, 'message')} added",
        f"{_plural(total.duplicates, 'duplicate')} skipped",
        f"{_plural(total.usage_added, 'usage record')} added",
        f"{_plural(total.malformed, 'malformed line')} skipped",
    ]
    if total.truncated:
        parts.append(f"{_plural(total.truncated, 'message')} cut to fit")
    if total.usage_unattributed:
        # ccusage counts these; memdash cannot tie them to a message, so it says so.
        parts.append(
            f"{_plural(total.usage_unattributed, 'line')} with token usage but no message "
            "(not counted)"
        )
    if unreadable:
        parts.append(f"{_plural(unreadable, 'file')} unreadable")
    return ", ".join(parts)


class _Progress:
    """A rich progress bar over the files' bytes, on stderr, only when stderr is a terminal:
    bytes recorded (or skipped, for a file that cannot be read) out of all the files' bytes."""

    def __init__(self, files: list[Path]) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._base = 0  # bytes recorded: of the files finished, and so far of those read
        self._current: dict[Path, int] = {}  # files read, not all written: bytes recorded
        self._sizes: dict[Path, int] = {}
        if not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        for path in files:
            try:
                self._sizes[path] = path.stat().st_size
            except OSError:
                self._sizes[path] = 0
        self._bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._task = self._bar.add_task("importing", total=sum(self._sizes.values()) or None)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def warn(self, message: str) -> None:
        """A line on stderr (above the bar while it shows)."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=sys.stderr)

    def start(self, path: Path) -> None:
        """``path`` is being read (its bytes count as they are written)."""
        self._current[path] = 0
        if self._bar is not None:
            self._bar.update(self._task, description=path.name[:40])

    def reached(self, path: Path, offset: int) -> None:
        """``offset`` bytes of ``path`` are recorded (after each of its batches)."""
        if self._bar is None or path not in self._current:  # done or failed already
            return
        # a file that grew since it was measured must not eat into the next one's share
        done = min(offset, self._sizes.get(path, 0))
        self._base += done - self._current[path]
        self._current[path] = done
        self._bar.update(self._task, completed=self._base)

    def done(self, path: Path) -> None:
        """All of ``path`` is recorded (or skipped, for a file that cannot be read)."""
        counted = self._current.pop(path, 0)
        if self._bar is not None:
            self._base += self._sizes.get(path, 0) - counted
            self._bar.update(self._task, completed=self._base)
