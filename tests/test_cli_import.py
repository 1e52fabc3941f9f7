"""`memdash import`, run as a user runs it: a subprocess against a real redis-server, on the
transcript fixtures (tests/fixtures/claude/, see test_transcript.py for what they hold)."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from store import Connection, ConversationMemory, StatefulMemory
from store.feed import read_namespace
from store.integrations.claude_code import INITIAL, WORKFLOW
from store.integrations.transcript import record_transcript
from store.server import free_port

from .test_cli import env_for
from .test_transcript import AGENT_TOKENS, BLOG, PROJECTS, SHOP, SHOP_FILE, SHOP_TOKENS

MEMDASH = [sys.executable, "-m", "tui.cli"]
NS = "imp"
TREE_SUMMARY = (
    "imported 3 files, 2 sessions, 17 messages added, 1 duplicate skipped, "
    "6 usage records added, 4 malformed lines skipped"
)


def memdash_import(home: Path, url: str, *args: str, namespace: str = NS, **kwargs):
    return subprocess.run(
        [*MEMDASH, "import", *args, "--redis", url, "--namespace", namespace],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


async def sessions(url: str, namespace: str = NS):
    conn = Connection(url, namespace=namespace)
    try:
        return await read_namespace(conn)
    finally:
        await conn.aclose()


async def test_a_projects_tree_is_imported_once_and_again_adds_nothing(tmp_path, redis_url):
    first = memdash_import(tmp_path, redis_url, str(PROJECTS))

    assert (first.returncode, first.stderr) == (0, "")  # no progress bar: stderr is no terminal
    assert first.stdout == TREE_SUMMARY + "\n"
    views = await sessions(redis_url)
    assert set(views) == {SHOP, BLOG}
    shop = views[SHOP]
    assert shop.conversation.total == 12 + 3  # the session file, then its subagent's file
    assert shop.budget.used == SHOP_TOKENS + AGENT_TOKENS
    assert shop.context["transcript_path"] == str(SHOP_FILE)
    assert shop.workflow is None  # an import does not claim to know how the session ended
    assert views[BLOG].conversation.total == 2

    again = memdash_import(tmp_path, redis_url, str(PROJECTS))

    assert again.returncode == 0
    assert again.stdout == (
        "imported 3 files, 2 sessions, 0 messages added, 18 duplicates skipped, "
        "0 usage records added, 4 malformed lines skipped\n"
    )
    views = await sessions(redis_url)
    assert views[SHOP].conversation.total == 15
    assert views[SHOP].budget.used == SHOP_TOKENS + AGENT_TOKENS


async def test_one_file_into_a_chosen_session_and_namespace(tmp_path, redis_url):
    out = memdash_import(tmp_path, redis_url, str(SHOP_FILE), "--session", "mine", namespace="x")

    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("imported 1 file, 1 session, 12 messages added")
    assert set(await sessions(redis_url, "x")) == {"mine"}
    assert await sessions(redis_url) == {}


async def test_a_session_the_hooks_followed_is_completed_not_doubled(tmp_path, redis_url):
    """Hooks record the transcript's lines as the session goes (by uuid); the import adds the
    ones they missed (the store was down, say) and none twice. Workflows are left alone."""
    conn = Connection(redis_url, namespace=NS)
    try:
        workflow = StatefulMemory(SHOP, transitions=WORKFLOW, initial=INITIAL, redis=conn)
        await workflow.define()
        head = b"".join(SHOP_FILE.read_bytes().splitlines(keepends=True)[:4])
        partial = tmp_path / "partial.jsonl"
        partial.write_bytes(head)
        seen = await record_transcript(conn, partial)  # what the hooks had recorded

        out = memdash_import(tmp_path, redis_url, str(SHOP_FILE))

        assert out.returncode == 0, out.stderr
        assert f"{12 - seen.messages_added} messages added" in out.stdout
        assert len(await ConversationMemory(SHOP, redis=conn).load()) == 12
        assert (await StatefulMemory.open(SHOP, redis=conn)).current_state == "idle"
    finally:
        await conn.aclose()


async def test_a_path_that_does_not_exist_is_refused_and_nothing_is_written(tmp_path, redis_url):
    out = memdash_import(tmp_path, redis_url, str(SHOP_FILE), str(tmp_path / "nope"))

    assert out.returncode == 2
    assert "no such file or directory" in out.stderr and "nope" in out.stderr
    assert out.stdout == ""
    assert await sessions(redis_url) == {}


def test_a_bad_session_id_is_refused(tmp_path, redis_url):
    out = memdash_import(tmp_path, redis_url, str(SHOP_FILE), "--session", "a\tb")

    assert out.returncode == 2
    assert "session" in out.stderr


def test_an_unreachable_store_is_reported(tmp_path):
    out = memdash_import(tmp_path, f"redis://127.0.0.1:{free_port()}/0", str(SHOP_FILE))

    assert out.returncode == 1
    assert "cannot reach the store" in out.stderr
    assert out.stdout == ""


async def test_an_unreadable_file_is_reported_and_the_others_imported(tmp_path, redis_url):
    tree = tmp_path / "projects" / "p"
    tree.mkdir(parents=True)
    (tree / "ok.jsonl").write_bytes(SHOP_FILE.read_bytes())
    (tree / "gone.jsonl").symlink_to(tmp_path / "deleted.jsonl")

    out = memdash_import(tmp_path, redis_url, str(tmp_path / "projects"))

    assert out.returncode == 1
    assert "cannot read" in out.stderr and "gone.jsonl" in out.stderr
    assert out.stdout.startswith("imported 1 file, 1 session, 12 messages added")
    assert out.stdout.rstrip().endswith("1 file unreadable")
    assert (await sessions(redis_url))[SHOP].conversation.total == 12


async def test_a_huge_tool_output_is_imported_cut_with_a_note(tmp_path, redis_url):
    path = tmp_path / "huge.jsonl"
    output = "line of build output\n" * 100_000  # 2.1 MB
    block = {"type": "tool_result", "tool_use_id": "toolu_9", "content": output}
    entry = {"type": "user", "uuid": "h-1", "sessionId": "huge", "message": {"content": [block]}}
    path.write_text(json.dumps(entry) + "\n")

    out = memdash_import(tmp_path, redis_url, str(path))

    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith(
        "1 message added, 0 duplicates skipped, "
        "0 usage records added, 0 malformed lines skipped, "
        "1 message cut to fit"
    )
    conn = Connection(redis_url, namespace=NS)
    try:
        [message] = await ConversationMemory("huge", redis=conn).load()
    finally:
        await conn.aclose()
    assert message["role"] == "tool"
    assert message["context"]["original_bytes"] == len(output)
    assert (
        f"memdash cut {message['context']['cut_bytes']:,} of {len(output):,} bytes"
        in (message["content"])
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_terminal_gets_a_progress_bar_on_stderr(tmp_path, redis_url, workers):
    master, slave = pty.openpty()
    env = {**env_for(tmp_path), "COLUMNS": "100", "TERM": "xterm"}
    env["MEMDASH_IMPORT_WORKERS"] = workers
    try:
        proc = subprocess.Popen(
            [*MEMDASH, "import", str(PROJECTS), "--redis", redis_url, "--namespace", NS],
            env=env,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
        )
        os.close(slave)
        slave = -1
        shown = b""
        while True:  # read the terminal until the process closes it
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if slave != -1:
            os.close(slave)
    assert proc.returncode == 0
    assert stdout == TREE_SUMMARY + "\n"
    assert b"\x1b[" in shown  # drawn (and cleared) with escape sequences
    assert b"jsonl" in shown  # the file being imported


async def test_several_import_processes_write_what_one_would(tmp_path, redis_url):
    """A big tree is read by several processes (MEMDASH_IMPORT_WORKERS forces it here), each
    with whole sessions: the store and the summary are those of one process."""
    env = {**env_for(tmp_path), "MEMDASH_IMPORT_WORKERS": "2"}
    tree = tmp_path / "projects"
    shutil.copytree(PROJECTS, tree)
    (tree / "p").mkdir()
    (tree / "p" / "gone.jsonl").symlink_to(tmp_path / "deleted.jsonl")

    parallel = subprocess.run(
        [*MEMDASH, "import", str(tree), "--redis", redis_url, "--namespace", "par"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    alone = memdash_import(tmp_path, redis_url, str(tree), namespace="one")

    assert (parallel.returncode, alone.returncode) == (1, 1)  # the unreadable file
    assert parallel.stdout == alone.stdout
    assert parallel.stdout.startswith(TREE_SUMMARY)
    assert "gone.jsonl" in parallel.stderr
    ours, theirs = await sessions(redis_url, "par"), await sessions(redis_url, "one")
    assert set(ours) == set(theirs) == {SHOP, BLOG}
    for session in ours:
        assert ours[session].conversation.recent == theirs[session].conversation.recent
        assert ours[session].conversation.total == theirs[session].conversation.total
        assert ours[session].budget.used == theirs[session].budget.used
        assert ours[session].context == theirs[session].context
    again = subprocess.run(
        [*MEMDASH, "import", str(tree), "--redis", redis_url, "--namespace", "par"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert " 0 messages added" in again.stdout and " 0 usage records added" in again.stdout


def test_a_sessions_files_go_to_one_worker_and_the_shares_balance(tmp_path):
    from tui.commands.import_ import _share

    files = []
    for session, size in (("a", 10), ("b", 50), ("c", 30), ("d", 20)):
        main = tmp_path / "proj" / f"{session}.jsonl"
        sub = tmp_path / "proj" / session / "subagents" / "agent-1.jsonl"
        sub.parent.mkdir(parents=True)
        main.write_bytes(b"x" * size)
        sub.write_bytes(b"y" * size)
        files += [main, sub]

    shares = _share(files, 2)

    assert sorted(i for share in shares for i in share) == list(range(8))
    assert all(share == sorted(share) for share in shares)  # each in the files' order
    for share in shares:
        for i in share:
            if i % 2 == 1:  # a subagent file: with its session's file
                assert i - 1 in share
    sizes = sorted(sum(files[i].stat().st_size for i in share) for share in shares)
    assert sizes == [100, 120]  # b (100) | c, d, a (60 + 40 + 20)
