"""Deleting whole sessions (store.sessions): every key in one atomic script, the registry, one
event, a Feed that drops the session, deletes raced by writers, pruning, transcript offsets."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from store import (
    BudgetExceededError,
    ConversationMemory,
    MemoryCache,
    MemoryKey,
    MemoryStore,
    Notes,
    SessionControl,
    Sessions,
    StatefulMemory,
    TokenBudgetTracker,
)
from store.feed import DELETED, Feed, read_namespace, read_sessions
from store.integrations.claude_code import TranscriptOffsets
from store.sessions import COMPONENT_KEYS

from .events import capture_events

FLOW = {"plan": ["code"], "code": ["review"], "review": ["code", "done"], "done": []}


async def eventually(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def use_everything(conn, session: str) -> None:
    """A session that used every component, so every kind of key exists."""
    store = MemoryStore(conn)
    await store.set(
        MemoryKey("session", session, "context"), {"transcript_path": "/t/x.jsonl"}, ttl=600
    )
    await store.set(MemoryKey("task", session, "plan"), ["a", "b"])
    budget = TokenBudgetTracker(session, 1000, redis=conn)
    await budget.track_request("r1", 300, input_tokens=200, output_tokens=100)
    await budget.record_usage("r2", 100, enforce_limit=False)
    with pytest.raises(BudgetExceededError):
        await budget.track_request("r3", 700)
    conversation = ConversationMemory(session, redis=conn)
    for n in range(4):
        await conversation.add_message("user", f"m{n}")
    await conversation.append_unique({"role": "assistant", "content": "once"}, "uuid-1")
    await conversation.trim_old_messages(3)
    cache = MemoryCache(session, max_size=1, redis=conn)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.get("a")
    await cache.flush_stats()
    await cache.aclose()
    flow = StatefulMemory(session, transitions=FLOW, initial="plan", redis=conn)
    await flow.transition("code")
    task = StatefulMemory(session, transitions=FLOW, initial="plan", name="task", redis=conn)
    await task.transition("code")
    review = StatefulMemory(session, transitions=FLOW, initial="plan", name="review", redis=conn)
    await review.transition("code")
    notes = Notes(session, conn)
    await notes.add("look at the tests")
    await notes.deliver("UserPromptSubmit")
    control = SessionControl(session, conn)
    await control.pause(reason="lunch")
    await control.set_waiting("permission", "may I?")


async def snapshot(conn, pattern: str) -> dict[str, object]:
    """Every key matching ``pattern`` with its type and content."""
    client = conn.client
    out: dict[str, object] = {}
    for key in sorted(await client.keys(pattern)):
        out[key] = await client.dump(key)
    return out


async def test_a_delete_removes_every_key_and_only_that_session(conn):
    await use_everything(conn, "s")
    await use_everything(conn, "other")
    prefix = conn.session("s").prefix
    before = set(await conn.client.keys("*{test:s}*"))
    # Every kind of key is there: each component's, a named workflow's, the request markers.
    assert {prefix + name for name in COMPONENT_KEYS} <= before
    assert {prefix + "wf.review", prefix + "budget:req:r1", prefix + "mem"} <= before
    others = await snapshot(conn, "*{test:other}*")
    seq = int(await conn.client.hget(conn.session("s").meta, "seq"))

    async with capture_events(conn) as log:
        deletion = await Sessions(conn).delete("s")

    assert await conn.client.keys("*{test:s}*") == []
    assert await conn.client.zscore(conn.keys.sessions, "s") is None
    assert await conn.client.zscore(conn.keys.sessions, "other") is not None
    assert await snapshot(conn, "*{test:other}*") == others
    assert deletion.outcome == "deleted"
    assert deletion.keys == len(before)
    assert (deletion.memory, deletion.messages) == (2, 3)
    assert deletion.transcript_path == "/t/x.jsonl"
    (event,) = log.events
    assert (event.session, event.kind, event.seq) == ("s", DELETED, seq + 1)
    assert event.payload == {"keys": len(before), "memory": 2, "messages": 3}

    # Nothing left to delete: says so, announces nothing.
    async with capture_events(conn) as log:
        assert (await Sessions(conn).delete("s")).outcome == "missing"
    assert log.events == []


async def test_a_session_with_odd_characters_in_its_id(conn):
    session = "a*b?[c]\\d:{e}%"
    await use_everything(conn, session)
    await use_everything(conn, "a")  # a glob that escaped badly would match this one's keys
    kept = await snapshot(conn, "*{test:a}*")
    assert (await Sessions(conn).delete(session)).outcome == "deleted"
    prefix = conn.session(session).prefix
    assert [k for k in await conn.client.keys("*") if k.startswith(prefix)] == []
    assert await snapshot(conn, "*{test:a}*") == kept


async def test_a_value_written_after_the_index_was_read_is_deleted_too(conn, monkeypatch):
    store = MemoryStore(conn)
    await store.set(MemoryKey("session", "s", "context"), 1)
    sessions = Sessions(conn)
    scan = sessions._scan

    async def scan_then_write(keys):
        found = await scan(keys)
        await store.set(MemoryKey("late", "s", "value"), 2)  # between the read and the script
        return found

    monkeypatch.setattr(sessions, "_scan", scan_then_write)
    deletion = await sessions.delete("s")
    assert (deletion.outcome, deletion.memory) == ("deleted", 2)
    assert await conn.client.keys("*{test:s}*") == []


async def test_a_feed_drops_the_session_and_a_resync_makes_no_ghost(conn):
    await use_everything(conn, "s")
    await use_everything(conn, "other")
    changes = []
    async with Feed(conn, on_change=changes.append) as feed:
        assert {"s", "other"} <= feed.sessions.keys()
        await Sessions(conn).delete("s")
        await eventually(lambda: "s" not in feed.sessions)
        assert changes[-1].session == "s" and changes[-1].kind == DELETED
        assert feed.sessions == await read_namespace(conn)

        # A re-read of a session that has no keys (a gap, a late event) adds no row.
        await feed._resync("s")
        assert "s" not in feed.sessions
        views = await read_sessions(conn, ["s"])
        assert views["s"].seq == 0 and views["s"].last_activity == 0

        # Written again: a new session, from seq 1.
        await MemoryStore(conn).set(MemoryKey("session", "s", "context"), "again")
        await eventually(lambda: "s" in feed.sessions)
        assert feed.sessions["s"].seq == 1 and feed.sessions["s"].context == "again"
        assert feed.sessions == await read_namespace(conn)


async def test_a_feed_whose_snapshot_already_has_the_session_started_again(conn):
    """The delete's event reaches a feed whose snapshot was read after the delete and a new
    write: the session shown is the new one, and stays."""
    store = MemoryStore(conn)
    await store.set(MemoryKey("session", "s", "context"), "old")
    changes = []
    feed = Feed(conn, on_change=changes.append)
    read = read_namespace

    async def read_late(*args, **kwargs):
        await Sessions(conn).delete("s")  # after the feed subscribed, before its snapshot
        await asyncio.sleep(0.002)
        await store.set(MemoryKey("session", "s", "context"), "new")
        return await read(*args, **kwargs)

    import store.feed as feed_module

    feed_module.read_namespace, original = read_late, feed_module.read_namespace
    try:
        feed.start()
        await feed.ready()
    finally:
        feed_module.read_namespace = original
    try:
        await asyncio.sleep(0.1)  # the delete's event is handled
        assert feed.sessions["s"].context == "new"
        assert feed.sessions == await read_namespace(conn)
        assert DELETED not in [c.kind for c in changes]  # the row never went away
    finally:
        await feed.close()


async def test_a_delete_raced_by_writers_ends_consistent(conn):
    """Writers hammer a session while it is deleted: afterwards the session either is gone
    without a trace or is a new session whose every key and seq came after the delete, and a
    Feed that watched it all agrees with the store."""
    await use_everything(conn, "s")
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        conversation = ConversationMemory("s", redis=conn)
        budget = TokenBudgetTracker("s", 10**9, redis=conn)
        store = MemoryStore(conn)
        i = 0
        while not stop.is_set():
            i += 1
            await conversation.add_message("user", f"w{n}-{i}")
            await budget.record_usage(f"w{n}-{i}", 5, enforce_limit=False)
            await store.set(MemoryKey(f"w{n}", "s", f"k{i % 3}"), i)

    async with Feed(conn) as feed, capture_events(conn, settle=0.2) as log:
        writers = [asyncio.create_task(writer(n)) for n in range(3)]
        await asyncio.sleep(0.05)
        deletion = await Sessions(conn).delete("s")
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*writers)

    assert deletion.outcome == "deleted"
    kinds = [e.kind for e in log.events if e.session == "s"]
    assert kinds.count(DELETED) == 1
    after = [e for e in log.events if e.session == "s"][kinds.index(DELETED) + 1 :]
    assert after, "the writers went on after the delete"
    # A new session: seqs 1…k with no gap, holding exactly what those events wrote.
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert int(await conn.client.hget(conn.session("s").meta, "seq")) == len(after)
    appended = [e for e in after if e.kind == "conversation.append"]
    assert [e.payload["index"] for e in appended] == list(range(len(appended)))
    assert (await ConversationMemory("s", redis=conn).count()).total == len(appended)
    used = sum(e.payload["tokens"] for e in after if e.kind == "budget.usage")
    assert (await TokenBudgetTracker("s", 1, redis=conn).status()).used == used
    keys = await conn.client.keys("*{test:s}*")
    assert not any(
        k.endswith((":wf", ":notes", ":control", ":cache", ":mem:task:plan")) for k in keys
    )
    await eventually(lambda: "s" in feed.sessions and feed.sessions["s"].seq == len(after))
    assert feed.sessions == await read_namespace(conn)


async def test_prune_deletes_by_last_activity_and_keeps_what_became_active(conn):
    store = MemoryStore(conn)
    for name in ("old1", "old2", "new"):
        await store.set(MemoryKey("session", name, "context"), name)
    sessions = Sessions(conn)
    now = await sessions.now_ms()
    day = 86_400_000
    await conn.client.zadd(conn.keys.sessions, {"old1": now - 40 * day, "old2": now - 35 * day})
    cutoff = now - 30 * day

    listed = [page async for page in sessions.older_than(cutoff, page=1)]
    assert [[s for s, _ in page] for page in listed] == [["old1"], ["old2"]]

    # old2 is written to after it was chosen: a prune leaves it.
    await store.set(MemoryKey("session", "old2", "context"), "busy")
    assert (await sessions.delete("old2", active_before=cutoff)).outcome == "active"
    pruned = [d async for page in sessions.prune(cutoff, page=1) for d in page]
    assert [(d.session, d.outcome) for d in pruned] == [("old1", "deleted")]
    assert set(await conn.client.zrange(conn.keys.sessions, 0, -1)) == {"old2", "new"}
    assert await conn.client.keys("*{test:old1}*") == []


async def test_keep_newest(conn):
    store = MemoryStore(conn)
    for n in range(25):
        await store.set(MemoryKey("session", f"s{n:02}", "context"), n)
    await conn.client.zadd(conn.keys.sessions, {f"s{n:02}": 1_000_000 + n for n in range(25)})
    deleted = await Sessions(conn).keep_newest(20, page=3)
    assert sorted(d.session for d in deleted) == [f"s{n:02}" for n in range(5)]
    assert await conn.client.zrange(conn.keys.sessions, 0, -1) == [f"s{n:02}" for n in range(5, 25)]
    assert await conn.client.keys("*{test:s00}*") == []
    assert await Sessions(conn).keep_newest(20) == []


def write_offset(directory: Path, transcript: Path, age_days: float = 0) -> Path:
    """An offset file as the hooks write it (TranscriptOffsets.set), ``age_days`` old."""
    offsets = TranscriptOffsets(directory, "redis://x\0ns")
    if transcript.exists():
        offsets.set(transcript, 0)
        target = offsets._file(transcript)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        target = offsets._file(transcript)
        target.write_text(json.dumps({"path": str(transcript), "offset": 1}))
    then = time.time() - age_days * 86400
    os.utime(target, (then, then))
    return target


def test_offset_files_are_pruned_with_their_session_and_when_stale(tmp_path):
    directory = tmp_path / "offsets"
    home = tmp_path / "projects"
    (home / "s" / "subagents").mkdir(parents=True)
    files = {}
    for name in ("s.jsonl", "s/subagents/agent-1.jsonl", "other.jsonl", "old.jsonl"):
        (home / name).write_text("{}\n")
    files["main"] = write_offset(directory, home / "s.jsonl")
    files["sub"] = write_offset(directory, home / "s" / "subagents" / "agent-1.jsonl")
    files["other"] = write_offset(directory, home / "other.jsonl")
    files["old"] = write_offset(directory, home / "old.jsonl", age_days=31)
    files["gone"] = write_offset(directory, home / "gone.jsonl")
    (directory / "junk.json").write_text("not json")

    dropped = TranscriptOffsets.prune(directory, transcripts=[str(home / "s.jsonl")])
    assert set(dropped) == {files["main"], files["sub"]}
    assert not files["main"].exists() and not files["sub"].exists()

    would = TranscriptOffsets.prune(directory, stale=True, dry_run=True)
    assert set(would) == {files["old"], files["gone"], directory / "junk.json"}
    assert all(path.exists() for path in would)
    assert set(TranscriptOffsets.prune(directory, stale=True)) == set(would)
    assert [p.name for p in directory.iterdir()] == [files["other"].name]
    assert TranscriptOffsets.prune(tmp_path / "none", stale=True) == []
