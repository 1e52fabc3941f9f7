"""`memdash import` speed on a large transcript tree, next to ccusage and a bare parse.

Requirement (issue: import speed): on the same tree `memdash import` reads at least 0.25x the
lines/s of ccusage 20.0.24 (`ccusage claude session --json --offline`), a second import adds
nothing, the importer's peak RSS stays under 200 MB whatever the tree's size, and the token
totals of every session agree with ccusage's to the token.

    python bench/import_speed.py [--lines 200000] [--runs 3] [--url URL] [--keep DIR]
                                 [--no-ccusage] [--seed 1]

The tree (``<dir>/projects/<project>/<session>.jsonl`` and
``<session>/subagents/agent-<id>.jsonl``, the ~/.claude layout) is built from real Claude Code
2.1.197 transcripts (/work/shared/claude-code-2.1.197/transcripts: a session file and a
subagent file) and the hook fixture turn (tests/fixtures/hooks/turn.json, which has a repeated
line, a malformed one and a sidechain line): each session is many copies of them with every id
rewritten (sessionId, uuid, parentUuid, message.id, requestId, promptId, agentId…), so every
line is unique; tool results get realistic outputs (mostly a few KB, some tens or hundreds of
KB, a few over the 256 KiB message limit) in both the message and ``toolUseResult``.

Each run, in a fresh namespace: a bare parse of every line (``json.loads`` by this Python),
``memdash import`` as a user runs it (a subprocess; wall time and its own peak RSS from
``wait4``), the same import again (idempotent: it must add nothing), and ccusage 20.0.24 when
npm is there (installed once into ~/.cache/memdash-bench; skipped with the reason otherwise).
Medians over the runs are printed side by side, then the per-session token comparison.
Without --url a private redis-server is started and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _store import NAMESPACE, bench_store

from store import Connection, TokenBudgetTracker

ROOT = Path(__file__).resolve().parent.parent
REAL = Path("/work/shared/claude-code-2.1.197/transcripts")
TURN = ROOT / "tests" / "fixtures" / "hooks" / "turn.json"
CCUSAGE_VERSION = "20.0.24"
CCUSAGE_PACKAGES = (f"ccusage@{CCUSAGE_VERSION}", f"@ccusage/ccusage-linux-x64@{CCUSAGE_VERSION}")
CCUSAGE_DIR = Path.home() / ".cache" / "memdash-bench" / f"ccusage-{CCUSAGE_VERSION}"
RATIO = 0.25  # memdash lines/s at least this times ccusage's
MAX_RSS_MB = 200
ID_FIELDS = ("uuid", "parentUuid", "leafUuid", "logicalParentUuid", "sourceToolAssistantUUID")
CORPUS_FILES = sorted((ROOT / "store").glob("*.py")) + sorted((ROOT / "tui").rglob("*.py"))


# -- the tree ------------------------------------------------------------------------------


def _templates() -> tuple[list[Any], list[Any], list[Any]]:
    """(real session lines, real subagent lines, the fixture turn's lines): dicts, or str for a
    line that is not JSON."""
    session = next(REAL.glob("*.jsonl"))
    agent = next(REAL.glob("*/subagents/agent-*.jsonl"))

    def read(path: Path) -> list[Any]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    turn: list[Any] = []
    for step in json.loads(TURN.read_text())["steps"]:
        turn += step.get("lines", [])
    return read(session), read(agent), turn


def _new_id(value: str, tag: str) -> str:
    return str(uuid.UUID(bytes=hashlib.blake2b(f"{value}/{tag}".encode(), digest_size=16).digest()))


def _hex(value: str, tag: str) -> str:
    return hashlib.blake2b(f"{value}/{tag}".encode(), digest_size=12).hexdigest()


class _Output:
    """Tool outputs of realistic sizes: slices of this repository's source."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.text = "\n".join(path.read_text() for path in CORPUS_FILES)

    def size(self) -> int:
        r = self.rng.random()
        if r < 0.88:
            return self.rng.randint(100, 3000)
        if r < 0.985:
            return self.rng.randint(3000, 20_000)
        if r < 0.998:
            return self.rng.randint(20_000, 120_000)
        return self.rng.randint(300_000, 1_200_000)  # over the store's 256 KiB: cut with a note

    def take(self, size: int) -> str:
        text = self.text
        if size >= len(text):
            return (text * (size // len(text) + 1))[:size]
        start = self.rng.randrange(len(text) - size)
        return text[start : start + size]


def _rewrite(line: Any, tag: str, session: str, day: str, output: _Output) -> str:
    """One template line as a new, unique line of ``session``."""
    if isinstance(line, str):
        return line.rstrip("\n") + "\n"  # a malformed line stays malformed
    data = dict(line)
    for name in ID_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = _new_id(data[name], tag)
    for name, prefix in (("requestId", "req_"), ("promptId", ""), ("agentId", "a")):
        if isinstance(data.get(name), str):
            data[name] = prefix + _hex(data[name], tag)[: 17 if name == "agentId" else 24]
    if "sessionId" in data:
        data["sessionId"] = session
    if isinstance(data.get("timestamp"), str) and len(data["timestamp"]) > 10:
        data["timestamp"] = day + data["timestamp"][10:]
    message = data.get("message")
    if isinstance(message, dict):
        message = data["message"] = dict(message)
        if isinstance(message.get("id"), str):
            message["id"] = "msg_" + _hex(message["id"], tag)
        usage = message.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("cache_creation"), dict):
            # The shared transcripts come from a stand-in API whose nested breakdown says 0
            # while cache_creation_input_tokens does not; the real API's add up (ccusage
            # 20.0.24 counts the nested one when present). Make them add up, as real ones do.
            message["usage"] = {
                **usage,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": usage.get("cache_creation_input_tokens", 0),
                },
            }
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            text = output.take(output.size())
            message["content"] = [
                {**b, "content": text} if b.get("type") == "tool_result" else b for b in content
            ]
            result = data.get("toolUseResult")
            if isinstance(result, dict) and "stdout" in result:
                data["toolUseResult"] = {**result, "stdout": text}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass
class Tree:
    root: Path  # CLAUDE_CONFIG_DIR: <root>/projects/…
    lines: int = 0
    bytes: int = 0
    files: int = 0
    sessions: list[str] = field(default_factory=list)

    @property
    def projects(self) -> Path:
        return self.root / "projects"


def build_tree(root: Path, lines: int, seed: int) -> Tree:
    """Sessions of copies of the templates until ``lines`` lines are written."""
    rng = random.Random(seed)
    output = _Output(rng)
    main, agent, turn = _templates()
    tree = Tree(root)
    projects = [f"-home-dev-src-project{n:02d}" for n in range(12)]
    copy = 0
    while tree.lines < lines:
        number = len(tree.sessions)
        session = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        tree.sessions.append(session)
        day = f"2026-{1 + number % 11:02d}-{1 + number % 28:02d}"
        folder = tree.projects / rng.choice(projects)
        folder.mkdir(parents=True, exist_ok=True)
        chunks = min(int(rng.paretovariate(1.1) * 2), 300)
        with open(folder / f"{session}.jsonl", "w") as file:
            tree.files += 1
            for _ in range(chunks):
                copy += 1
                tag = f"{session}/{copy}"
                use_turn = rng.random() < 0.3
                for line in turn if use_turn else main:
                    text = _rewrite(line, tag, session, day, output)
                    file.write(text)
                    tree.lines += 1
                    tree.bytes += len(text.encode())
                if not use_turn and rng.random() < 0.3:  # this copy ran a subagent
                    agent_id = "a" + _hex("agent", tag)[:17]
                    sub = folder / session / "subagents" / f"agent-{agent_id}.jsonl"
                    sub.parent.mkdir(parents=True, exist_ok=True)
                    with open(sub, "w") as subfile:
                        tree.files += 1
                        for line in agent:
                            line = {**line, "agentId": agent_id}
                            text = _rewrite(line, tag, session, day, output)
                            subfile.write(text)
                            tree.lines += 1
                            tree.bytes += len(text.encode())
                if tree.lines >= lines:
                    break
    return tree


# -- the runs ------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mb: float | None = None
    output: str = ""
    tree_rss_mb: float | None = None  # peak of the process tree's summed RSS (sampled)
    tree_pss_mb: float | None = None  # and of its summed PSS


def bare_parse(tree: Tree) -> Run:
    """Every line through json.loads, by this Python (files read as the importer reads them)."""
    start = time.perf_counter()
    count = 0
    for path in sorted(tree.projects.rglob("*.jsonl")):
        with open(path, "rb") as file:
            for raw in file:
                count += 1
                try:  # noqa: SIM105 (contextlib.suppress would slow the baseline)
                    json.loads(raw)
                except ValueError:
                    pass
    seconds = time.perf_counter() - start
    assert count == tree.lines, (count, tree.lines)
    return Run(seconds)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the import's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        parent = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        todo += children.get(one, [])
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of one process in kB, or zeros when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _timed(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command``; wall time, its own peak RSS (wait4: the largest of the process and its
    children), the peak summed RSS and PSS of its process tree (sampled every 50 ms: the
    import may fork workers, and shared pages count in each one's RSS, once in the PSS sum),
    stdout."""
    import threading

    peaks = [0, 0]
    stop = threading.Event()

    def sample(pid: int) -> None:
        while not stop.wait(0.05):
            rss = pss = 0
            for one in _tree(pid):
                r, p = _memory_kb(one)
                rss, pss = rss + r, pss + p
            peaks[0], peaks[1] = max(peaks[0], rss), max(peaks[1], pss)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {proc.returncode}: {stderr[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, stdout, peaks[0] / 1024, peaks[1] / 1024)


def _memdash() -> list[str]:
    script = Path(sys.executable).parent / "memdash"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]


def memdash_import(tree: Tree, url: str, namespace: str) -> Run:
    return _timed(
        [*_memdash(), "import", str(tree.projects), "--redis", url, "--namespace", namespace]
    )


def ensure_ccusage() -> tuple[list[str] | None, str]:
    """The ccusage command (installed into CCUSAGE_DIR), or None and why not."""
    cli = CCUSAGE_DIR / "node_modules" / "ccusage" / "src" / "cli.js"
    native = CCUSAGE_DIR / "node_modules" / "@ccusage" / "ccusage-linux-x64" / "bin" / "ccusage"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None, "node/npm not on PATH"
    if sys.platform != "linux" or os.uname().machine not in ("x86_64", "amd64"):
        return None, f"the native package here is linux-x64 only, not {os.uname().machine}"
    if not (cli.exists() and native.exists()):
        for package in CCUSAGE_PACKAGES:
            check = subprocess.run(
                [npm, "view", package, "version"], capture_output=True, text=True
            )
            if check.returncode != 0 or check.stdout.strip() != CCUSAGE_VERSION:
                return None, f"npm view {package}: {check.stderr.strip() or check.stdout.strip()}"
        CCUSAGE_DIR.mkdir(parents=True, exist_ok=True)
        (CCUSAGE_DIR / "package.json").write_text('{"private": true}\n')
        done = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", *CCUSAGE_PACKAGES],
            cwd=CCUSAGE_DIR,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None, f"npm install failed: {done.stderr.strip()[-500:]}"
    # The package's bin (src/cli.js) finds the native binary of this platform, makes it
    # executable and runs it: what `npx ccusage` runs.
    return [node, str(cli)], ""


def run_ccusage(command: list[str], tree: Tree) -> Run:
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(tree.root), "NO_COLOR": "1"}
    return _timed([*command, "claude", "session", "--json", "--offline"], env)


async def memdash_totals(conn: Connection, sessions: list[str]) -> dict[str, tuple[int, ...]]:
    """(total, input, output, cache creation, cache read) per session, from the store."""
    out = {}
    for session in sessions:
        status = await TokenBudgetTracker(session, 1, redis=conn).status()
        if status.requests:
            out[session] = (
                status.used,
                status.input_tokens,
                status.output_tokens,
                status.cache_creation_input_tokens,
                status.cache_read_input_tokens,
            )
    return out


def ccusage_totals(text: str) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for s in json.loads(text)["sessions"]:
        counts = (
            s["totalTokens"],
            s["inputTokens"],
            s["outputTokens"],
            s["cacheCreationTokens"],
            s["cacheReadTokens"],
        )
        known = out.get(s["sessionId"])
        # a session listed once per project it appears in: add them up
        out[s["sessionId"]] = (
            counts if known is None else tuple(a + b for a, b in zip(known, counts, strict=True))
        )
    return out


async def drop_namespace(conn: Connection, namespace: str) -> None:
    client = conn.client
    batch = []
    async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)


def median(runs: list[Run], attr: str = "seconds") -> float:
    return statistics.median(getattr(run, attr) for run in runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines in the tree")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="a Redis to use (default: a private redis-server)")
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it")
    parser.add_argument("--no-ccusage", action="store_true", help="skip ccusage")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="memdash-import-bench-"))
    root = args.keep or workdir / "claude"
    try:
        if (root / "projects").is_dir() and args.keep:
            print(f"tree: reusing {root} (delete it to rebuild)")
            tree = Tree(root)
            for path in tree.projects.rglob("*.jsonl"):
                data = path.read_bytes()
                tree.files += 1
                tree.lines += data.count(b"\n")
                tree.bytes += len(data)
                if path.parent.parent == tree.projects:
                    tree.sessions.append(path.stem)
        else:
            start = time.perf_counter()
            tree = build_tree(root, args.lines, args.seed)
            print(f"tree: built in {time.perf_counter() - start:.1f} s at {root}")
        print(
            f"tree: {tree.lines:,} lines, {tree.bytes / 1e6:,.0f} MB, {tree.files:,} files, "
            f"{len(tree.sessions):,} sessions ({tree.bytes / tree.lines:,.0f} bytes/line)"
        )
        ccusage, why = (None, "--no-ccusage") if args.no_ccusage else ensure_ccusage()
        if ccusage is None:
            print(f"ccusage {CCUSAGE_VERSION}: skipped ({why})")

        parses: list[Run] = []
        firsts: list[Run] = []
        seconds: list[Run] = []
        ccusages: list[Run] = []
        mismatches: list[str] = []
        compared = 0
        async with bench_store(args.url) as conn:
            url = conn.url
            for number in range(1, args.runs + 1):
                namespace = f"{NAMESPACE}-import-{number}"
                await drop_namespace(conn, namespace)
                parses.append(bare_parse(tree))
                firsts.append(memdash_import(tree, url, namespace))
                seconds.append(memdash_import(tree, url, namespace))
                if ccusage is not None:
                    ccusages.append(run_ccusage(ccusage, tree))
                print(
                    f"run {number}: parse {parses[-1].seconds:.2f} s, import "
                    f"{firsts[-1].seconds:.2f} s ({firsts[-1].rss_mb:.0f} MB), again "
                    f"{seconds[-1].seconds:.2f} s ({seconds[-1].rss_mb:.0f} MB)"
                    + (f", ccusage {ccusages[-1].seconds:.2f} s" if ccusages else "")
                )
                print(f"  first:  {firsts[-1].output.strip()}")
                print(f"  again:  {seconds[-1].output.strip()}")
                if number == 1 and ccusages:
                    theirs = ccusage_totals(ccusages[-1].output)
                    ours = await memdash_totals(
                        conn.with_namespace(namespace), sorted(set(tree.sessions) | set(theirs))
                    )
                    for session in sorted(set(theirs) | set(ours)):
                        compared += 1
                        if theirs.get(session) != ours.get(session):
                            mismatches.append(
                                f"  {session}: memdash {ours.get(session)} ccusage "
                                f"{theirs.get(session)} (total, input, output, cache "
                                "creation, cache read)"
                            )
                await drop_namespace(conn, namespace)

        def rate(runs: list[Run]) -> float:
            return tree.lines / median(runs)

        print()
        print(f"medians of {args.runs} runs over {tree.lines:,} lines ({tree.bytes / 1e6:.0f} MB):")
        rows = [("bare parse (json.loads, this Python)", parses)]
        rows.append(("memdash import", firsts))
        rows.append(("memdash import again (adds nothing)", seconds))
        if ccusages:
            rows.append((f"ccusage {CCUSAGE_VERSION} claude session --json --offline", ccusages))
        for name, runs in rows:
            rss = "" if runs[0].rss_mb is None else f", peak RSS {median(runs, 'rss_mb'):.0f} MB"
            print(f"  {name:<52} {median(runs):7.2f} s  {rate(runs):>10,.0f} lines/s{rss}")
        added_again = [r.output for r in seconds if " 0 messages added" not in r.output]
        added_again += [r.output for r in seconds if " 0 usage records added" not in r.output]
        rss = max(run.rss_mb or 0 for run in firsts + seconds)
        tree_rss = max(run.tree_rss_mb or 0 for run in firsts + seconds)
        tree_pss = max(run.tree_pss_mb or 0 for run in firsts + seconds)
        print()
        if ccusages:
            ratio = rate(firsts) / rate(ccusages)
            verdict = "ok" if ratio >= RATIO else "FAILS"
            print(f"memdash / ccusage lines/s: {ratio:.3f} (requirement >= {RATIO}): {verdict}")
        print(f"memdash / bare parse lines/s: {rate(firsts) / rate(parses):.3f}")
        verdict = "ok" if max(rss, tree_rss) < MAX_RSS_MB else "FAILS"
        print(
            f"importer peak RSS: {rss:.0f} MB per process, {tree_rss:.0f} MB summed over its "
            f"processes (PSS {tree_pss:.0f} MB) (requirement < {MAX_RSS_MB} MB): {verdict}"
        )
        verdict = "ok" if not added_again else "FAILS: " + "; ".join(added_again)
        print(f"second import adds nothing: {verdict}")
        if ccusages:
            verdict = "ok" if not mismatches else f"FAILS on {len(mismatches)}"
            print(f"per-session tokens vs ccusage ({compared} sessions): {verdict}")
            for mismatch in mismatches[:20]:
                print(mismatch)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
