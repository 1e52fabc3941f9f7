import asyncio
import enum
import logging
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from store import Connection
from store.cache import (
    FLUSH_INTERVAL,
    SERIES_LENGTH,
    CacheSample,
    CacheStats,
    MemoryCache,
    read_stats,
)
from store.server import RedisServer, free_port
from tests.events import capture_events, count_round_trips


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def wait_for(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def flushers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "memdash-cache-stats"]


# -- the cache itself -----------------------------------------------------------------------


async def test_get_set_delete_and_defaults(conn):
    cache = MemoryCache(redis=conn)
    assert await cache.get("k") is None
    assert await cache.get("k", "fallback") == "fallback"
    await cache.set("k", {"v": 1})
    assert await cache.get("k") == {"v": 1}
    assert "k" in cache and "other" not in cache
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False  # missing: no error, no count
    assert await cache.delete("never") is False
    await cache.set("a", None)  # None is a value like any other: a hit
    assert await cache.get("a", "default") is None
    await cache.aclose()
    assert cache.stats == CacheStats(hits=2, misses=2, sets=2, deletes=1, size=1)


async def test_evicts_the_least_recently_used_entry(conn):
    cache = MemoryCache(redis=conn, max_size=3)
    for key in "abc":
        await cache.set(key, key.upper())
    assert await cache.get("a") == "A"  # a is now the most recently used
    await cache.set("b", "B2")  # so is b, overwritten
    await cache.set("d", "D")  # over max_size: c goes
    assert list(cache._data) == ["a", "b", "d"]
    assert await cache.get("c") is None
    await cache.set("e", "E")
    assert list(cache._data) == ["b", "d", "e"]
    assert cache.stats.evictions == 2 and cache.stats.size == 3
    await cache.aclose()


async def test_max_size_is_settable_and_shrinking_evicts_the_oldest(conn):
    cache = MemoryCache(redis=conn)
    assert cache.max_size is None
    for i in range(10):
        await cache.set(str(i), i)
    cache.max_size = 4
    assert list(cache._data) == ["6", "7", "8", "9"]
    assert cache.stats.evictions == 6
    cache.max_size = None
    for i in range(10, 20):
        await cache.set(str(i), i)
    assert cache.stats.size == 14
    await cache.aclose()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
async def test_bad_max_size_raises(conn, bad):
    with pytest.raises(ValueError, match="max_size"):
        MemoryCache(redis=conn, max_size=bad)
    cache = MemoryCache(redis=conn, max_size=5)
    with pytest.raises(ValueError, match="max_size"):
        cache.max_size = bad
    assert cache.max_size == 5


async def test_eviction_cost_does_not_grow_with_the_cache(conn):
    """O(1): a full cache of 200 000 entries evicts as fast as one of 100 (a scan for the
    oldest key would be thousands of times slower)."""

    async def per_op(max_size: int) -> float:
        cache = MemoryCache(redis=conn, max_size=max_size)
        cache._data.update((f"pre{i}", i) for i in range(max_size))
        start = time.perf_counter()
        for i in range(20_000):
            await cache.set(f"k{i}", i)  # every one evicts
        elapsed = time.perf_counter() - start
        assert cache.stats.evictions == 20_000
        cache._flusher and cache._flusher.cancel()  # never ran: no loop iteration yet
        return elapsed

    small = min([await per_op(100) for _ in range(2)])
    large = min([await per_op(200_000) for _ in range(2)])
    assert large < small * 5


async def test_values_are_kept_as_given_and_hostile_keys_round_trip(conn):
    cache = MemoryCache(redis=conn)
    hostile = [
        "[bold]x[/]",
        "\x1b[31mred\x1b[0m",
        "\x00\x07",
        '{"json": true}',
        "k}{:%3A",
        "",
        "é" * 10_000,
    ]
    unserialisable = object()
    for i, key in enumerate(hostile):
        await cache.set(key, (i, unserialisable))
    for i, key in enumerate(hostile):
        value = await cache.get(key)
        assert value[0] == i and value[1] is unserialisable
    assert list(cache._data) == hostile
    await cache.aclose()


async def test_keys_must_be_strings(conn):
    cache = MemoryCache(redis=conn)
    for bad in [1, None, b"bytes", ("t",), ["unhashable"]]:
        with pytest.raises(TypeError, match="key must be a str"):
            await cache.set(bad, 1)
        with pytest.raises(TypeError, match="key must be a str"):
            await cache.get(bad)
        with pytest.raises(TypeError, match="key must be a str"):
            await cache.delete(bad)
    assert cache.stats == CacheStats()

    class Kind(enum.StrEnum):
        PLAN = "plan"

    await cache.set(Kind.PLAN, 1)  # a str subclass is stored as the plain str
    assert type(next(iter(cache._data))) is str
    assert await cache.get("plan") == 1
    await cache.aclose()


@pytest.mark.parametrize("session_id", ["", "a\x1bb", 7, "x" * 300])
async def test_bad_session_id_raises(conn, session_id):
    with pytest.raises(ValueError, match="session_id"):
        MemoryCache(session_id, redis=conn)
    with pytest.raises(ValueError, match="session_id"):
        await MemoryCache.read_stats(session_id, redis=conn)


async def test_bad_redis_argument_raises():
    with pytest.raises(TypeError, match="redis must be"):
        MemoryCache(redis=42)


async def test_clear_counts_removed_entries_as_deletes(conn):
    cache = MemoryCache(redis=conn)
    for key in "abc":
        await cache.set(key, 1)
    assert await cache.clear() == 3
    assert await cache.clear() == 0
    assert cache.stats.deletes == 3 and cache.stats.size == 0
    await cache.aclose()


async def test_stats_and_hit_ratio(conn):
    cache = MemoryCache(redis=conn, max_size=2)
    assert cache.stats.hit_ratio == 0.0 and cache.stats.lookups == 0
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("c", 3)  # evicts a
    for key in ["b", "c", "c", "a"]:
        await cache.get(key)
    await cache.delete("b")
    stats = cache.stats
    assert stats == CacheStats(hits=3, misses=1, sets=3, deletes=1, evictions=1, size=1, max_size=2)
    assert stats.hit_ratio == 0.75 and stats.lookups == 4
    await cache.aclose()


# -- statistics in Redis ----------------------------------------------------------------------


async def test_constructing_does_no_io(isolated_env):
    cache = MemoryCache()  # default connection: would start the embedded server if resolved
    MemoryCache("s", redis=dead_url(), max_size=3)
    assert not isolated_env.exists()
    await cache.aclose()  # nothing happened: nothing to report, still no I/O
    assert not isolated_env.exists()


async def test_gets_and_sets_make_no_round_trips(conn):
    cache = MemoryCache(redis=conn, max_size=100)
    await cache.flush_stats()  # the next background flush is FLUSH_INTERVAL away
    async with count_round_trips(conn) as trips:
        for i in range(2000):
            await cache.set(f"k{i % 300}", i)
            await cache.get(f"k{i % 250}")
    assert trips.commands == []
    await cache.aclose()


async def test_flush_stores_a_snapshot_a_sample_and_publishes_one_event(conn):
    cache = MemoryCache("alice", redis=conn, max_size=2)
    async with capture_events(conn) as log, count_round_trips(conn) as trips:
        await cache.set("a", 1)
        await cache.set("b", 2)
        await cache.set("c", 3)
        await cache.get("c")
        await cache.get("a")
        # Before the background task first runs: it then finds nothing left to report.
        totals = await cache.flush_stats()
        await asyncio.sleep(FLUSH_INTERVAL * 1.5)
    assert trips.commands == ["EVALSHA"]
    assert log.kinds() == ["cache.stats"]
    event = log.events[0]
    assert event.session == "alice" and event.namespace == "test"
    assert event.payload == {
        "hits": 1,
        "misses": 1,
        "sets": 3,
        "deletes": 0,
        "evictions": 1,
        "size": 2,
        "max_size": 2,
    }
    assert totals == CacheStats.from_mapping(event.payload) == cache.stats
    snapshot = await MemoryCache.read_stats("alice", redis=conn)
    assert snapshot.session == "alice"
    assert snapshot.stats == cache.stats
    assert snapshot.updated == event.ts
    assert snapshot.seq == event.seq
    assert snapshot.series == (CacheSample(event.ts, 1, 1, 1, 2),)
    server_now = (await conn.client.time())[0] * 1000
    assert abs(event.ts - server_now) < 5000
    await cache.aclose()


async def test_series_is_capped_and_gives_interval_hit_ratios(conn):
    cache = MemoryCache(redis=conn)
    flushes = SERIES_LENGTH + 45
    for i in range(flushes):
        await cache.get("k" if i % 2 else "missing")
        await cache.set("k", i)
        await cache.flush_stats()
    assert await conn.client.llen(conn.session("default").key("cache:series")) <= 150
    snapshot = await read_stats(redis=conn)
    assert len(snapshot.series) == SERIES_LENGTH
    assert snapshot.series[-1].hits == cache.stats.hits
    first = snapshot.series[0]
    assert first.hits + first.misses == flushes - SERIES_LENGTH + 1  # one lookup per flush
    assert [s.ts for s in snapshot.series] == sorted(s.ts for s in snapshot.series)
    assert set(snapshot.hit_ratios()) == {0.0, 1.0}
    await cache.aclose()


async def test_many_operations_are_coalesced_into_few_flushes(conn):
    cache = MemoryCache(redis=conn, max_size=50)
    await cache.set("warm", 0)
    await cache.flush_stats()  # loads the script
    async with capture_events(conn, settle=FLUSH_INTERVAL * 2) as log:
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 0.6:
            for _ in range(100):
                await cache.set(f"k{n % 80}", n)
                await cache.get(f"k{n % 60}")
                n += 1
            await asyncio.sleep(0.001)  # let the loop run, as an agent awaiting I/O does
    # 0.6 s of activity at 4 flushes a second, plus the one after it stopped.
    assert 2 <= len(log.events) <= 5, log.kinds()
    assert set(log.kinds()) == {"cache.stats"}
    assert n > 1000
    # The trailing flush reported everything, without close().
    assert log.events[-1].payload == {**vars_of(cache.stats)}
    assert (await MemoryCache.read_stats(redis=conn)).stats == cache.stats
    assert flushers() == []  # idle: the background task has ended
    await cache.aclose()


def vars_of(stats: CacheStats) -> dict:
    return {name: getattr(stats, name) for name in stats.__slots__}


async def test_instances_add_their_counts_and_report_their_size(conn):
    one = MemoryCache("shared", redis=conn, max_size=10)
    two = MemoryCache("shared", redis=conn)
    await one.set("a", 1)
    await one.get("a")
    await two.get("a")
    await two.set("b", 2)
    await two.set("c", 3)
    await one.flush_stats()
    await two.flush_stats()
    await one.get("a")
    await one.flush_stats()
    stats = (await MemoryCache.read_stats("shared", redis=conn)).stats
    assert (stats.hits, stats.misses, stats.sets) == (2, 1, 3)
    assert (stats.size, stats.max_size) == (1, 10)  # the last instance to flush
    await one.aclose()
    await two.aclose()


async def test_concurrent_flushes_report_each_count_once(conn):
    cache = MemoryCache(redis=conn)

    async def work(i: int) -> None:
        await cache.set(str(i % 7), i)
        await cache.get(str(i % 11))
        await cache.flush_stats()

    await asyncio.gather(*(work(i) for i in range(50)))
    await cache.aclose()
    stored = (await MemoryCache.read_stats(redis=conn)).stats
    assert stored == cache.stats
    assert (stored.sets, stored.hits + stored.misses) == (50, 50)


async def test_close_flushes_what_is_left_and_leaves_no_task(conn):
    async with capture_events(conn) as log:
        async with MemoryCache("bob", redis=conn) as cache:
            await cache.set("k", "v")
            await cache.get("k")
            assert len(flushers()) == 1
        assert flushers() == [] and cache._flusher is None
        await cache.aclose()  # twice is fine; nothing new to report
    assert log.kinds() == ["cache.stats"]
    assert log.events[0].payload["hits"] == 1
    assert (await MemoryCache.read_stats("bob", redis=conn)).stats == cache.stats


async def test_never_flushed_session_reads_empty_and_bad_samples_are_skipped(conn):
    snapshot = await MemoryCache.read_stats("nobody", redis=conn)
    assert (snapshot.stats, snapshot.updated, snapshot.seq, snapshot.series) == (None, None, 0, ())
    cache = MemoryCache("nobody", redis=conn)
    await cache.get("x")
    await cache.flush_stats()
    series_key = conn.session("nobody").key("cache:series")
    wrong_type = '{"ts":1e400,"hits":1,"misses":1,"evictions":1,"size":"1"}'
    await conn.client.rpush(series_key, "not json", '{"ts":1}', "[1,2]", "null", wrong_type)
    snapshot = await MemoryCache.read_stats("nobody", redis=conn)
    assert len(snapshot.series) == 1 and snapshot.stats.misses == 1
    await cache.aclose()


async def test_hostile_session_id_round_trips_in_keys_and_events(conn):
    session = 'al}ice{:x [bold]"quoted" %3A'
    cache = MemoryCache(session, redis=conn)
    await cache.get("k")
    async with capture_events(conn) as log:
        await cache.flush_stats()
    assert log.events[0].session == session
    assert (await MemoryCache.read_stats(session, redis=conn)).stats.misses == 1
    assert await MemoryCache.read_stats("al", redis=conn) == (
        await MemoryCache.read_stats("al", redis=conn)
    )
    assert all(k.startswith("test:") for k in await conn.client.keys("*"))
    await cache.aclose()


async def test_namespaces_are_separate(conn):
    cache = MemoryCache(redis=conn, namespace="other")
    await cache.get("k")
    await cache.flush_stats()
    assert (await MemoryCache.read_stats(redis=conn)).stats is None
    assert (await MemoryCache.read_stats(redis=conn, namespace="other")).stats.misses == 1
    await cache.aclose()


# -- the store being down -----------------------------------------------------------------------


async def test_store_down_never_reaches_get_or_set(caplog):
    cache = MemoryCache(redis=dead_url(), max_size=2)
    with caplog.at_level(logging.DEBUG, logger="store.cache"):
        await cache.set("a", 1)
        assert await cache.get("a") == 1
        await wait_for(lambda: _true(cache.stats_flush_errors >= 1))
        for i in range(50):
            await cache.set(str(i), i)
            assert await cache.get(str(i)) == i
    assert isinstance(cache.last_flush_error, RedisConnectionError)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not flushed" in warnings[0].getMessage()
    with pytest.raises(RedisConnectionError):
        await cache.flush_stats()
    errors = cache.stats_flush_errors
    await cache.aclose()  # the final flush fails too, quietly
    assert cache.stats_flush_errors == errors + 1
    assert flushers() == []
    assert cache.stats.sets == 51


async def _true(value: bool) -> bool:
    return value


async def test_counts_survive_an_outage_and_are_reported_once(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cache = MemoryCache("outage", redis=url, namespace="test")
    for i in range(30):
        await cache.set(str(i % 5), i)
        await cache.get(str(i % 7))
    await wait_for(lambda: _true(cache.stats_flush_errors >= 1))
    server = RedisServer(directory=tmp_path, port=port).start()
    reader = Connection(url, namespace="test")
    try:

        async def caught_up() -> bool:
            snapshot = await MemoryCache.read_stats("outage", redis=reader)
            return snapshot.stats == cache.stats

        await wait_for(caught_up, timeout=5)  # the background retry got through
        await cache.get("0")
        await cache.aclose()
        assert await caught_up()
    finally:
        await cache.redis.aclose()
        await reader.aclose()
        server.stop()
