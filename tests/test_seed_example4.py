"""Usage example 4 of the six the store's API comes from, verbatim apart from its import lines."""

import asyncio
from datetime import datetime

from store import MemoryCache
from tests.events import capture_events

# fmt: off
# memory/cache_layer.py

class LRUMemoryCache(MemoryCache):
    """LRU cache implementation"""

    def __init__(self, max_size: int = 1000):
        super().__init__()
        self.max_size = max_size
        self.access_times = {}

    async def get(self, key: str):
        """Retrieve from cache"""

        value = await super().get(key)

        if value is not None:
            # Update access time
            self.access_times[key] = datetime.now()

        return value

    async def set(self, key: str, value):
        """Store in cache"""

        # Remove oldest item if size exceeded
        if len(self._data) >= self.max_size:
            oldest_key = min(
                self.access_times,
                key=self.access_times.get
            )
            await self.delete(oldest_key)

        await super().set(key, value)
        self.access_times[key] = datetime.now()
# fmt: on


async def tick() -> None:
    """datetime.now() has microsecond resolution: keep the example's access times apart."""
    await asyncio.sleep(0.002)


async def test_seed_lru_cache_evicts_the_oldest_accessed_key(redis_url, monkeypatch, conn):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    monkeypatch.setenv("MEMDASH_NAMESPACE", "test")
    cache = LRUMemoryCache(max_size=3)  # redis=None: the default connection, session "default"
    assert cache.max_size == 3 and cache.namespace == "test"
    for key in ["a", "b", "c"]:
        await cache.set(key, key.upper())
        await tick()
    assert await cache.get("a") == "A"  # a is used again: b is now the oldest
    await tick()
    assert await cache.get("nope") is None

    await cache.set("d", "D")  # full: the example's own eviction deletes b
    assert list(cache._data) == ["c", "a", "d"]
    await tick()
    # The example never forgets b's access time, so next time it deletes b again (a no-op that
    # must not raise) and MemoryCache's own LRU eviction keeps the size: c goes.
    await cache.set("e", "E")
    assert list(cache._data) == ["a", "d", "e"]
    assert await cache.get("b") is None and await cache.get("c") is None

    stats = cache.stats
    assert (stats.hits, stats.misses, stats.evictions) == (1, 3, 1)
    assert (stats.sets, stats.deletes, stats.size, stats.max_size) == (5, 1, 3, 3)
    assert stats.hit_ratio == 0.25

    async with capture_events(conn) as log:
        await cache.flush_stats()
    assert log.kinds() == ["cache.stats"]
    assert log.events[0].session == "default"
    assert log.events[0].payload == {
        "hits": 1,
        "misses": 3,
        "sets": 5,
        "deletes": 1,
        "evictions": 1,
        "size": 3,
        "max_size": 3,
    }
    snapshot = await MemoryCache.read_stats(redis=conn)
    assert snapshot.stats == stats
    assert snapshot.seq == log.events[0].seq
    assert len(snapshot.series) >= 1 and snapshot.series[-1].hits == 1
    await cache.aclose()


async def test_seed_cache_with_default_size(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    monkeypatch.setenv("MEMDASH_NAMESPACE", "test")
    cache = LRUMemoryCache()
    for i in range(1500):
        await cache.set(f"k{i}", i)
    assert len(cache._data) == 1000 and cache.stats.size == 1000
    assert await cache.get("k1499") == 1499 and await cache.get("k0") is None
    await cache.aclose()
