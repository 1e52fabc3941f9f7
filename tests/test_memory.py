import asyncio
from datetime import datetime

import pytest

from store import MemoryKey, MemoryStore, VersionConflictError
from store.keys import split_memory_member
from tests.events import capture_events, count_round_trips

KEY = MemoryKey("session", "alice", "context")


async def test_set_get_round_trip_with_nested_values_and_datetimes(conn):
    store = MemoryStore(conn)
    value = {"goal": "ship", "at": datetime(2026, 11, 24, 6, 0), "steps": [{"n": 1}, {"n": [2, 3]}]}
    await store.set(KEY, value)
    assert await store.get(KEY) == value
    assert await store.get(MemoryKey("session", "alice", "other")) is None


async def test_ttl_is_seconds_left_or_none(conn):
    store = MemoryStore(conn)
    await store.set(KEY, 1, ttl=100)
    assert 98 <= await store.ttl(KEY) <= 100
    await store.set(KEY, 2)  # a write without ttl clears the old expiry, like SET
    assert await store.ttl(KEY) is None
    assert await store.ttl(MemoryKey("session", "alice", "missing")) is None


async def test_values_expire(conn):
    store = MemoryStore(conn)
    await store.set(KEY, "soon gone", ttl=1)
    await conn.client.pexpire(conn.session("alice").memory("session", "context"), 1)
    await asyncio.sleep(0.01)
    assert await store.get(KEY) is None


async def test_delete_reports_whether_there_was_a_value(conn):
    store = MemoryStore(conn)
    await store.set(KEY, "x")
    assert await store.delete(KEY) is True
    assert await store.get(KEY) is None
    assert await store.delete(KEY) is False


@pytest.mark.parametrize("ttl", [0, -5, 1.5, "10", True])
async def test_bad_ttl_raises_and_writes_nothing(conn, ttl):
    store = MemoryStore(conn)
    with pytest.raises(ValueError, match="ttl"):
        await store.set(KEY, "x", ttl=ttl)
    assert await conn.client.dbsize() == 0


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"a": object()}, TypeError),
        ({"x": float("inf")}, ValueError),
        ("x" * (1024 * 1024 + 1), ValueError),
    ],
)
async def test_unserialisable_value_raises_and_writes_nothing(conn, value, error):
    store = MemoryStore(conn)
    await store.set(KEY, "before")
    async with capture_events(conn) as log:
        with pytest.raises(error):
            await store.set(KEY, value)
    assert await store.get(KEY) == "before"
    assert log.events == []


async def test_key_must_be_a_memory_key(conn):
    with pytest.raises(TypeError, match="MemoryKey"):
        await MemoryStore(conn).set("session:alice:context", 1)


async def test_each_write_is_one_round_trip(conn):
    store = MemoryStore(conn)
    await store.set(KEY, "warm")  # loads each script once
    await store.delete(KEY)
    async with count_round_trips(conn) as trips:
        await store.set(KEY, {"a": 1}, ttl=60)
        await store.delete(KEY)
        await store.get(KEY)
        await store.ttl(KEY)
    assert trips.commands == ["EVALSHA", "EVALSHA", "GET", "TTL"]


async def test_every_mutation_publishes_one_ordered_event(conn):
    store = MemoryStore(conn)
    async with capture_events(conn) as log:
        v1 = await store.set(KEY, {"n": 1}, ttl=60)
        v2 = await store.set(KEY, {"n": 2})
        await store.delete(KEY)
        await store.delete(KEY)  # nothing to delete: no mutation, no event
        await store.set(MemoryKey("session", "bob", "context"), "hi")
    assert log.kinds() == ["memory.set", "memory.set", "memory.delete", "memory.set"]
    alice = [e for e in log.events if e.session == "alice"]
    assert [e.seq for e in alice] == [1, 2, 3]
    assert [e.seq for e in log.events if e.session == "bob"] == [1]
    first = log.events[0]
    assert first.namespace == "test"
    assert first.payload == {
        "scope": "session",
        "component": "context",
        "version": v1,
        "ttl": 60,
        "value": {"n": 1},
    }
    assert log.events[1].payload["version"] == v2 == 2
    server_now = (await conn.client.time())[0] * 1000
    assert abs(first.ts - server_now) < 5000


async def test_large_values_are_not_carried_in_events(conn):
    store = MemoryStore(conn)
    async with capture_events(conn) as log:
        await store.set(KEY, "x" * 10_000)
    assert "value" not in log.events[0].payload


async def test_registry_orders_sessions_by_last_activity(conn):
    store = MemoryStore(conn)
    for user in ["a", "b", "c"]:
        await store.set(MemoryKey("session", user, "context"), user)
        await asyncio.sleep(0.002)
    await store.set(MemoryKey("session", "a", "context"), "again")
    newest_first = await conn.client.zrevrange(conn.keys.sessions, 0, -1)
    assert newest_first == ["a", "c", "b"]
    meta = await conn.client.hgetall(conn.session("a").meta)
    last = await conn.client.zscore(conn.keys.sessions, "a")
    assert meta["seq"] == "2" and last >= int(meta["created"])


async def test_memory_index_lists_the_session_keys(conn):
    store = MemoryStore(conn)
    index = conn.session("alice").memory_index
    await store.set(KEY, 1)
    await store.set(MemoryKey("task", "alice", "plan:v2"), 2, ttl=30)
    members = await conn.client.smembers(index)
    assert {split_memory_member(m) for m in members} == {
        ("task", "plan:v2"),
        ("session", "context"),
    }
    await store.delete(KEY)
    assert await conn.client.smembers(index) == {"mem:task:plan%3Av2"}


async def test_memory_index_forgets_expired_keys_over_time(conn):
    store = MemoryStore(conn)
    index = conn.session("alice").memory_index
    for i in range(8):
        await store.set(MemoryKey("tmp", "alice", str(i)), i, ttl=60)
    for i in range(8):  # expire them now
        await conn.client.delete(conn.session("alice").memory("tmp", str(i)))
    assert await conn.client.scard(index) == 8
    for _ in range(64):  # later writes sample the index and drop what no longer exists
        await store.set(KEY, "busy")
    assert await conn.client.smembers(index) == {"mem:session:context"}


async def test_compare_and_set_on_version(conn):
    store = MemoryStore(conn)
    created = await store.set(KEY, "v1", expected_version=0)
    with pytest.raises(VersionConflictError) as info:
        await store.set(KEY, "lost update", expected_version=0)
    assert info.value.actual == created
    entry = await store.get_entry(KEY)
    assert entry.value == "v1" and entry.version == created
    await store.set(KEY, "v2", expected_version=entry.version)
    with pytest.raises(VersionConflictError):
        await store.set(KEY, "stale", expected_version=entry.version)
    assert await store.get(KEY) == "v2"


async def test_concurrent_compare_and_set_lets_exactly_one_win(conn):
    store = MemoryStore(conn)
    version = await store.set(KEY, 0)

    async def bump(i):
        try:
            await store.set(KEY, i, expected_version=version)
            return True
        except VersionConflictError:
            return False

    results = await asyncio.gather(*(bump(i) for i in range(50)))
    assert results.count(True) == 1


async def test_namespaces_do_not_see_each_other(conn):
    other = conn.with_namespace("other")
    await MemoryStore(conn).set(KEY, "mine")
    assert await MemoryStore(other).get(KEY) is None
    assert all(k.startswith("test:") for k in await conn.client.keys("*"))
    await MemoryStore(other).set(KEY, "theirs")
    assert await MemoryStore(conn).get(KEY) == "mine"


async def test_hostile_text_is_stored_verbatim(conn):
    store = MemoryStore(conn)
    hostile = {"t": '[bold]x[/] \x1b[31mred\x1b[0m \x00\x07 {"json": true}', "k}{": "%3A"}
    user = MemoryKey("session", "al}ice{:x", "ctx")
    await store.set(user, hostile)
    assert await store.get(user) == hostile
