"""Feed: snapshot + ordered events + resync, against a real redis-server and real writers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections import defaultdict

import pytest

from store import MemoryKey, MemoryStore
from store.connection import Connection
from store.feed import RESYNC, Feed, read_namespace
from store.server import RedisServer, free_port


async def eventually(predicate, timeout=15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def context(session: str) -> MemoryKey:
    return MemoryKey("session", session, "context")


async def test_snapshot_then_live_events(conn):
    store = MemoryStore(conn)
    await store.set(context("old"), {"n": 0}, ttl=600)
    async with Feed(conn) as feed:
        assert feed.status == "connected"
        assert feed.sessions["old"].context == {"n": 0}
        assert feed.sessions["old"].seq == 1
        await store.set(context("old"), {"n": 1})
        await store.set(context("new"), "hello")
        await store.set(MemoryKey("task", "new", "plan"), [1, 2])
        await eventually(lambda: "new" in feed.sessions and feed.sessions["new"].seq == 2)
        new = feed.sessions["new"]
        assert new.context == "hello" and new.memory.keys == {
            ("session", "context"),
            ("task", "plan"),
        }
        assert feed.sessions["old"].context == {"n": 1}
        assert feed.sessions == await read_namespace(conn)


async def test_changes_are_yielded_in_seq_order(conn):
    store = MemoryStore(conn)
    async with Feed(conn) as feed:
        changes = []

        async def collect():
            async for change in feed:
                changes.append(change)

        collector = asyncio.create_task(collect())
        for i in range(20):
            await store.set(context("a"), i)
        await eventually(lambda: len([c for c in changes if c.session == "a"]) == 20)
        collector.cancel()
    assert [c.seq for c in changes if c.session == "a"] == list(range(1, 21))
    assert changes[0].kind == RESYNC  # the initial snapshot


async def test_large_values_are_read_not_guessed(conn):
    store = MemoryStore(conn)
    async with Feed(conn) as feed:
        big = {"blob": "x" * 10_000}
        await store.set(context("s"), big)
        await eventually(lambda: "s" in feed.sessions and feed.sessions["s"].context == big)


async def test_a_gap_resyncs_the_session(conn):
    store = MemoryStore(conn)
    async with Feed(conn) as feed:
        await store.set(context("s"), 1)
        await eventually(lambda: "s" in feed.sessions)
        # A write whose event the feed never sees (as if pub/sub dropped it).
        await conn.client.hincrby(conn.session("s").meta, "seq", 1)
        await conn.client.set(conn.session("s").memory("session", "context"), '2 0 - "hidden"')
        await store.set(MemoryKey("x", "s", "y"), 2)  # seq 3 arrives after a missing 2
        await eventually(lambda: feed.sessions["s"].seq == 3)
        assert feed.gaps == 1
        assert feed.sessions["s"].context == "hidden"
        assert feed.sessions == await read_namespace(conn)


@pytest.mark.parametrize(
    "garbage",
    [
        "not json",
        "{}",
        '{"ns": "test", "session": 5, "kind": "memory.set", "seq": "x", "ts": 1}',
        '{"ns": "test", "session": "s", "kind": "memory.set", "seq": 0, "ts": 1}',
        "[" * 100_000,
        '{"ns": "test", "session": "s", "kind": "memory.set", "seq": 1, "ts": 1, "payload": {"x": "'
        + "y" * 200_000
        + '"}}',
        '{"ns": "other", "session": "s", "kind": "memory.set", "seq": 1, "ts": 1}',
    ],
)
async def test_garbage_on_the_channel_is_counted_and_skipped(conn, garbage):
    store = MemoryStore(conn)
    async with Feed(conn) as feed:
        await conn.client.publish(conn.keys.events, garbage)
        await store.set(context("s"), "after")
        await eventually(lambda: "s" in feed.sessions)
        assert feed.dropped == 1
        assert feed.sessions["s"].context == "after"


async def test_unknown_kinds_are_counted_and_keep_the_order(conn):
    store = MemoryStore(conn)
    async with Feed(conn) as feed:
        await store.set(context("s"), 1)
        await eventually(lambda: "s" in feed.sessions)
        seq = await conn.client.hincrby(conn.session("s").meta, "seq", 1)
        await conn.client.publish(
            conn.keys.events,
            f'{{"ns": "test", "session": "s", "kind": "future.kind", "seq": {seq}, "ts": 1}}',
        )
        await store.set(context("s"), 2)
        await eventually(lambda: feed.sessions["s"].context == 2)
        assert feed.dropped == 1 and feed.gaps == 0


async def test_ten_thousand_sessions_load_in_pages(conn):
    pipe = conn.client.pipeline(transaction=False)
    for i in range(10_000):
        pipe.zadd(conn.keys.sessions, {f"s{i}": i})
        pipe.hset(conn.session(f"s{i}").meta, mapping={"seq": 1, "created": i})
    await pipe.execute()
    async with Feed(conn, page_size=1000) as feed:
        assert len(feed.sessions) == 10_000
        assert next(iter(feed.sessions)) == "s9999"  # newest first


WRITER = """
import asyncio, os, random, sys
from store import (BudgetExceededError, ConversationMemory, InvalidTransitionError, MemoryCache,
                   MemoryKey, MemoryStore, StatefulMemory, TokenBudgetTracker, connect)

FLOW = {"planning": ["coding"], "coding": ["testing"], "testing": ["review", "coding"],
        "review": ["done", "coding"], "done": ["planning"]}

async def main(n, sessions):
    conn = connect(namespace="test")
    store = MemoryStore(conn)
    rng = random.Random(7)
    parts = {}
    for s in range(sessions):
        sid = f"w{s}"
        parts[sid] = (
            TokenBudgetTracker(sid, 50_000, redis=conn),
            ConversationMemory(sid, max_messages=20, redis=conn),
            MemoryCache(sid, max_size=5, redis=conn),
            StatefulMemory(sid, transitions=FLOW, initial="planning", redis=conn),
        )
    done = 0
    while done < n:
        sid = f"w{rng.randrange(sessions)}"
        budget, conversation, cache, flow = parts[sid]
        op = rng.random()
        try:
            if op < 0.25:
                scope, name = rng.choice(["session", "task"]), rng.choice(["context", "plan"])
                key = MemoryKey(scope, sid, name)
                if rng.random() < 0.2:
                    await store.delete(key)
                else:
                    size = rng.choice([10, 100, 5000])
                    ttl = rng.choice([None, 600])
                    await store.set(key, {"i": done, "pad": "x" * size}, ttl=ttl)
            elif op < 0.45:
                try:
                    await budget.track_request(f"r{done}", rng.randrange(1, 3000), input_tokens=5)
                except BudgetExceededError:
                    pass
            elif op < 0.7:
                role = rng.choice(["user", "assistant"])
                await conversation.add_message(role, f"m{done} [b]x[/b]")
            elif op < 0.85:
                for k in range(8):
                    await cache.set(str(rng.randrange(8)), k)
                    await cache.get(str(rng.randrange(8)))
                await cache.flush_stats()
            else:
                await flow.load()
                try:
                    await flow.transition(rng.choice(list(FLOW)))
                except InvalidTransitionError:
                    pass
            done += 1
        except Exception as error:  # the server may be restarting: try again shortly
            print("retry", type(error).__name__, error, file=sys.stderr, flush=True)
            await asyncio.sleep(0.05)
        if done == n // 2:
            print("half", flush=True)
    for budget, conversation, cache, flow in parts.values():
        await cache.aclose()
    print("done", flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def start_writer(url: str, n: int, sessions: int) -> subprocess.Popen[str]:
    env = {**os.environ, "MEMDASH_REDIS_URL": url}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(n), str(sessions)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def seqs_in_order(changes) -> bool:
    last: dict[str, int] = defaultdict(int)
    for change in changes:
        if change.kind == RESYNC:
            if change.session == "*":
                last.clear()
            else:
                last[change.session] = change.seq
            continue
        if last[change.session] and change.seq != last[change.session] + 1:
            return False
        last[change.session] = change.seq
    return True


async def follow(feed: Feed, into: list) -> None:
    async for change in feed:
        into.append(change)


async def test_a_writer_process_and_the_feed_end_equal(conn, redis_url):
    async with Feed(conn) as feed:
        changes: list = []
        collector = asyncio.create_task(follow(feed, changes))
        writer = start_writer(redis_url, 3000, 8)
        _out, err = await asyncio.to_thread(writer.communicate, timeout=120)
        assert writer.returncode == 0, err
        total = sum(v.seq for v in (await read_namespace(conn)).values())
        await eventually(lambda: sum(v.seq for v in feed.sessions.values()) == total)
        collector.cancel()
        assert feed.sessions == await read_namespace(conn)
        assert seqs_in_order(changes)
        assert feed.dropped == 0
        views = list(feed.sessions.values())
        assert all(v.budget and v.conversation and v.cache and v.workflow for v in views)
        assert any(v.budget.rejected for v in views)  # budgets ran out
        assert any(v.conversation.trims for v in views)  # max_messages trimmed
        assert any(v.memory and v.context is not None for v in views)


@pytest.fixture
def durable_server(tmp_path):
    server = RedisServer(directory=tmp_path, port=free_port(), appendonly=True).start()
    yield server
    server.stop()


async def test_redis_killed_and_restarted_mid_stream(durable_server):
    conn = Connection(durable_server.url, namespace="test")
    try:
        async with Feed(conn) as feed:
            statuses = []

            async def watch_status():
                while True:
                    if not statuses or statuses[-1] != feed.status:
                        statuses.append(feed.status)
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch_status())
            writer = start_writer(durable_server.url, 4000, 6)
            line = await asyncio.to_thread(writer.stdout.readline)
            assert line.strip() == "half"
            durable_server.kill()
            await eventually(lambda: feed.status == "reconnecting")
            await asyncio.sleep(0.3)  # writes fail meanwhile; the writer retries
            durable_server.start()
            out, err = await asyncio.to_thread(writer.communicate, timeout=120)
            assert writer.returncode == 0, err
            assert "done" in out
            snapshot = await read_namespace(conn)
            await eventually(
                lambda: (
                    {s: v.seq for s, v in feed.sessions.items()}
                    == {s: v.seq for s, v in snapshot.items()}
                )
            )
            watcher.cancel()
            assert feed.sessions == await read_namespace(conn)
            assert "reconnecting" in statuses and statuses[-1] == "resynced"
            assert feed.reconnects >= 1
    finally:
        await conn.aclose()


async def test_unreadable_stored_data_does_not_stop_the_feed(conn):
    store = MemoryStore(conn)
    await store.set(context("s"), "fine")
    await conn.client.rpush(conn.session("s").key("conversation"), "not json {")
    await conn.client.hset(conn.session("s").key("budget"), "used", "many")
    async with Feed(conn) as feed:
        view = feed.sessions["s"]
        assert view.context == "fine"
        assert view.conversation is None and view.budget is None
        await store.set(context("s"), "still live")
        await eventually(lambda: feed.sessions["s"].context == "still live")


async def test_on_change_gets_every_change_in_order_and_survives_a_failing_callback(conn):
    store = MemoryStore(conn)
    seen = []

    def note(change):
        seen.append((change.session, change.seq))
        if change.seq == 2:
            raise RuntimeError("a consumer's bug")

    async with Feed(conn, on_change=note) as feed:
        for n in range(5):
            await store.set(context("a"), n)
        await eventually(lambda: feed.sessions["a"].seq == 5)
        await eventually(lambda: len(seen) == 6)
        assert seen == [("*", 0)] + [("a", seq) for seq in range(1, 6)]
        assert feed.sessions["a"].context == 4

        waiter = asyncio.create_task(feed.wait_closed())
        await asyncio.sleep(0.05)
        assert not waiter.done()  # it waits for the feed…
    await asyncio.wait_for(waiter, 5)  # …which closing ends


async def test_feed_subscribes_over_resp2(conn):
    """redis-py 8 speaks RESP3 by default; pub/sub messages are cheaper to receive over RESP2."""
    async with Feed(conn) as feed:
        clients = await conn.client.client_list()
        subscribers = [c for c in clients if int(c.get("sub", 0)) > 0]
        assert len(subscribers) == 1
        if "resp" in subscribers[0]:  # Redis 7 on says what the client speaks…
            assert subscribers[0]["resp"] == "2"
        else:  # …older servers do not: check what it was asked to speak
            kwargs = conn._clients.subscriber().connection_pool.connection_kwargs
            assert kwargs["protocol"] == 2
        assert feed.status == "connected"
