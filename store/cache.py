"""MemoryCache: an in-process LRU cache whose hit/miss statistics the dashboard can watch.

Values live in this process only (an ``OrderedDict``, least recently used first); a get or a set
never waits for Redis. What reaches Redis is the statistics, coalesced: after an operation, a
background task flushes at most every :data:`FLUSH_INTERVAL` seconds while there is activity
(and once more after it stops), and :meth:`MemoryCache.flush_stats` / :meth:`MemoryCache.aclose`
flush on demand. A flush is one script (``cache_flush.lua``) that adds this instance's counts
since its previous flush to the session's totals, appends a sample to a capped series for the
hit-ratio sparkline, and publishes a ``cache.stats`` event with the new totals.

Several instances (threads, processes, machines) may use one session's cache: the stored
hits/misses/sets/deletes/evictions are the sums over all of them, while ``size`` and
``max_size`` are whatever the last instance to flush reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import pydantic_core
import redis.asyncio as aioredis

from .connection import Connection, resolve
from .keys import SessionKeys, check_part

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25
"""Seconds between two background flushes of one cache while it is in use."""

MAX_RETRY_INTERVAL = 5.0
"""Longest wait between background flush attempts while the store keeps failing."""

SERIES_LENGTH = 120
"""Samples a read returns (about 30 s of one busy cache at 4 flushes a second); the list holds
up to 150, trimmed back to 120 now and then (``cache_flush.lua``, ``cache_read.lua``)."""

_Counts = tuple[int, int, int, int, int]  # hits, misses, sets, deletes, evictions


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a cache: of one instance (``MemoryCache.stats``) or a session's totals."""

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    evictions: int = 0
    size: int = 0
    max_size: int | None = None

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float:
        """Hits per lookup; 0.0 before the first lookup (see :attr:`lookups`)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    @classmethod
    def from_mapping(cls, fields: Mapping[str, Any]) -> CacheStats:
        """From the stored hash or a ``cache.stats`` payload; unreadable fields count as 0."""
        max_size = _count(fields.get("max_size"))
        return cls(
            hits=_count(fields.get("hits")),
            misses=_count(fields.get("misses")),
            sets=_count(fields.get("sets")),
            deletes=_count(fields.get("deletes")),
            evictions=_count(fields.get("evictions")),
            size=_count(fields.get("size")),
            max_size=max_size or None,
        )


class CacheSample(NamedTuple):
    """One point of the series: the session's totals at server time ``ts`` (ms)."""

    ts: int
    hits: int
    misses: int
    evictions: int
    size: int


@dataclass(frozen=True, slots=True)
class CacheSnapshot:
    """What the dashboard reads: the session's totals, their series, and the session seq the
    read saw (apply only ``cache.stats`` events with a higher seq)."""

    session: str
    stats: CacheStats | None  # None: no cache of this session has flushed yet
    updated: int | None  # server time (ms) of the last flush
    seq: int
    series: tuple[CacheSample, ...]

    def hit_ratios(self) -> list[float | None]:
        """Hit ratio between consecutive samples (None where no lookup happened), oldest first.

        Samples of a restarted series or of malformed data may go backwards; those intervals
        are None too.
        """
        ratios: list[float | None] = []
        for before, after in zip(self.series, self.series[1:], strict=False):
            hits, misses = after.hits - before.hits, after.misses - before.misses
            ok = hits >= 0 and misses >= 0 and hits + misses > 0
            ratios.append(hits / (hits + misses) if ok else None)
        return ratios


def _count(value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


def _sample(fields: dict[str, Any]) -> CacheSample:
    return CacheSample(
        fields["ts"], fields["hits"], fields["misses"], fields["evictions"], fields["size"]
    )


def check_max_size(max_size: object) -> int | None:
    if max_size is None:
        return None
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ValueError(f"max_size must be a positive int or None, not {max_size!r}")
    return int(max_size)


def _bad_key(key: object) -> str:
    """The slow path of key checking: str subclasses (StrEnum…) become plain str."""
    if isinstance(key, str):
        return str.__str__(key)
    raise TypeError(f"key must be a str, not {type(key).__name__}")


class MemoryCache:
    """An in-process LRU cache (``_data``, oldest first); its statistics go to Redis coalesced.

    Every operation is O(1). Values are kept as given (not copied, not serialised); keys are
    strings. With ``max_size`` set, a set that makes the cache exceed it evicts the least
    recently used entry (a get or set counts as use).
    """

    __slots__ = (
        "_data",
        "_deletes",
        "_due",
        "_evictions",
        "_flusher",
        "_hits",
        "_inflight",
        "_lock",
        "_lock_loop",
        "_max_size",
        "_misses",
        "_reported",
        "_retry_delay",
        "_session",
        "_sets",
        "last_flush_error",
        "redis",
        "session_id",
        "stats_flush_errors",
    )

    def __init__(
        self,
        session_id: str = "default",
        *,
        max_size: int | None = None,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.session_id = check_part("session_id", session_id)
        self._max_size = check_max_size(max_size)
        self.redis: Connection = resolve(redis, namespace)  # no I/O until the first flush
        self._session: SessionKeys = self.redis.session(session_id)
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._hits = self._misses = self._sets = self._deletes = self._evictions = 0
        self._reported: _Counts = (0, 0, 0, 0, 0)  # the counts Redis has been told about
        self._flusher: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0  # time.monotonic() before which the background does not flush
        self._retry_delay = FLUSH_INTERVAL
        self.stats_flush_errors = 0
        self.last_flush_error: BaseException | None = None

    # -- the cache ------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.redis.namespace

    @property
    def max_size(self) -> int | None:
        return self._max_size

    @max_size.setter
    def max_size(self, max_size: int | None) -> None:
        """Settable at any time (usage example 4 sets it after ``__init__``); shrinking evicts."""
        self._max_size = check_max_size(max_size)
        self._evict()

    def _evict(self) -> None:
        max_size, data = self._max_size, self._data
        if max_size is not None:
            while len(data) > max_size:
                data.popitem(last=False)
                self._evictions += 1

    async def get(self, key: str, default: Any = None) -> Any:
        """The value (now the most recently used), or ``default``."""
        if type(key) is not str:
            key = _bad_key(key)
        data = self._data
        if key in data:  # faster than data.get(key, sentinel) on CPython 3.11
            data.move_to_end(key)
            self._hits += 1
            if self._flusher is None:
                self._schedule_flush()
            return data[key]
        self._misses += 1
        if self._flusher is None:
            self._schedule_flush()
        return default

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` as the most recently used entry, evicting the least recently used
        one if the cache is now over ``max_size``."""
        if type(key) is not str:
            key = _bad_key(key)
        data = self._data
        data[key] = value
        data.move_to_end(key)
        self._sets += 1
        max_size = self._max_size
        if max_size is not None and len(data) > max_size:
            data.popitem(last=False)  # over by one at most: the max_size setter trims
            self._evictions += 1
        if self._flusher is None:
            self._schedule_flush()

    async def delete(self, key: str) -> bool:
        """Remove the entry; True when there was one (a missing key is not an error)."""
        if type(key) is not str:
            key = _bad_key(key)
        try:
            del self._data[key]
        except KeyError:
            return False
        self._deletes += 1
        if self._flusher is None:
            self._schedule_flush()
        return True

    async def clear(self) -> int:
        """Remove every entry (counted as deletes); returns how many there were."""
        removed = len(self._data)
        self._data.clear()
        if removed:
            self._deletes += removed
            if self._flusher is None:
                self._schedule_flush()
        return removed

    def __contains__(self, key: object) -> bool:
        """Membership without counting a lookup or refreshing the entry."""
        return key in self._data

    @property
    def stats(self) -> CacheStats:
        """This instance's counts since it was created, and its size now."""
        return CacheStats(
            self._hits,
            self._misses,
            self._sets,
            self._deletes,
            self._evictions,
            len(self._data),
            self._max_size,
        )

    # -- statistics to Redis --------------------------------------------------------------

    def _counts(self) -> _Counts:
        return (self._hits, self._misses, self._sets, self._deletes, self._evictions)

    def _unreported(self) -> bool:
        return self._counts() != self._reported

    async def flush_stats(self) -> CacheStats:
        """Report the counts since the previous flush now; returns the session's new totals.

        Raises what the store raises; the counts it could not report go with the next flush.
        """
        stats = await self._flush(always=True)
        assert stats is not None
        return stats

    async def _flush(self, *, always: bool) -> CacheStats | None:
        """One flush at a time (two could land out of order and leave an old size); unless
        ``always``, only if something is unreported once it is this one's turn."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # an asyncio.Lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:  # type: ignore[union-attr]
            if always or self._unreported():
                return await self._flush_now()
            return None

    async def _flush_now(self) -> CacheStats:
        counts = self._counts()
        deltas = tuple(now - then for now, then in zip(counts, self._reported, strict=True))
        size, max_size = len(self._data), self._max_size
        hits, misses, sets, deletes, evictions = deltas
        packed = f"{hits} {misses} {sets} {deletes} {evictions} {size} {max_size or ''}"
        # On an error (even a lost reply, when the script may have run) these counts stay
        # unreported and go with the next flush: rather counted twice than lost.
        totals = await self.redis.run("cache_flush", self._session, (), (packed,))
        self._reported = counts
        self._due = time.monotonic() + FLUSH_INTERVAL
        self._retry_delay = FLUSH_INTERVAL
        return CacheStats(*totals, size, max_size)

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven by something other than asyncio: flush on demand only
            return
        self._flusher = loop.create_task(self._flush_in_background(), name="memdash-cache-stats")

    async def _flush_in_background(self) -> None:
        """Flush when due while there is something to report, then end (the next operation
        starts another)."""
        try:
            while True:
                delay = self._due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not self._unreported():
                    return
                # Shielded: close() cancels the wait, never a flush halfway through.
                self._inflight = asyncio.ensure_future(self._try_flush())
                await asyncio.shield(self._inflight)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    async def _try_flush(self) -> None:
        try:
            await self._flush(always=False)
        except Exception as error:
            self._flush_failed(error)

    def _flush_failed(self, error: Exception) -> None:
        first = self._retry_delay == FLUSH_INTERVAL  # the first failure since a success
        self.stats_flush_errors += 1
        self.last_flush_error = error
        self._due = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_INTERVAL)
        log = logger.warning if first else logger.debug
        log(
            "cache stats of session %r not flushed (%d failures so far): %s",
            self.session_id,
            self.stats_flush_errors,
            error,
        )

    async def aclose(self) -> None:
        """Stop the background flushing and report what is left.

        Never raises because the store is down (that counts in ``stats_flush_errors``); call
        :meth:`flush_stats` first to know. The cache stays usable.
        """
        task, self._flusher = self._flusher, None
        here = asyncio.get_running_loop()
        if task is not None and not task.done():
            try:
                task.cancel()
            except RuntimeError:  # its event loop is closed: nothing runs it any more
                task = None
            if task is not None and task.get_loop() is here:
                await asyncio.wait((task,))
        inflight, self._inflight = self._inflight, None
        if inflight is not None and not inflight.done() and inflight.get_loop() is here:
            await asyncio.wait((inflight,))
        try:
            await self._flush(always=False)
        except Exception as error:
            self._flush_failed(error)

    close = aclose

    async def __aenter__(self) -> MemoryCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, "
            f"max_size={self._max_size!r}, size={len(self._data)}, "
            f"namespace={self.namespace!r})"
        )

    # -- reading what was flushed ---------------------------------------------------------

    @classmethod
    async def read_stats(
        cls,
        session_id: str = "default",
        *,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> CacheSnapshot:
        """The session's stored totals and series and its seq, in one round trip."""
        check_part("session_id", session_id)
        conn = resolve(redis, namespace)
        flat, series, seq = await conn.run("cache_read", conn.session(session_id), (), ())
        totals = dict(zip(flat[::2], flat[1::2], strict=True))
        return CacheSnapshot(
            session=session_id,
            stats=CacheStats.from_mapping(totals) if totals else None,
            updated=_count(totals.get("updated")) or None,
            seq=_count(seq),
            series=_series(series),
        )


def _series(samples: list[str]) -> tuple[CacheSample, ...]:
    """Samples parsed in one go; if one is malformed (not ours), item by item, skipping it."""
    try:
        series = tuple(map(_sample, pydantic_core.from_json("[" + ",".join(samples) + "]")))
        if all(type(n) is int for sample in series for n in sample):
            return series
    except (ValueError, TypeError, KeyError):
        pass
    parsed = []
    for text in samples:
        try:
            sample = _sample(pydantic_core.from_json(text))
        except (ValueError, TypeError, KeyError):
            continue
        if all(type(n) is int for n in sample):
            parsed.append(sample)
    return tuple(parsed)


read_stats = MemoryCache.read_stats
"""``await read_stats(session_id, redis=…, namespace=…)``: same as the classmethod."""


@dataclass(slots=True)
class CacheView:
    """The cache part of a session's feed view (``store.feed``): totals and their series."""

    stats: CacheStats
    updated: int | None
    series: list[CacheSample]

    def hit_ratios(self) -> list[float | None]:
        return CacheSnapshot("", self.stats, self.updated, 0, tuple(self.series)).hit_ratios()


class CacheSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`CacheView`."""

    name = "cache"
    kinds = ("cache.",)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.hgetall(keys.key("cache"))
        pipe.lrange(keys.key("cache:series"), -SERIES_LENGTH, -1)
        return 2

    def build(self, results: Any) -> CacheView | None:
        totals, samples = results
        if not totals:
            return None
        return CacheView(
            CacheStats.from_mapping(totals),
            _count(totals.get("updated")) or None,
            list(_series(samples)),
        )

    def apply(self, view: Any, event: Any) -> bool:
        if event.kind != "cache.stats":
            return False
        stats = CacheStats.from_mapping(event.payload)
        series = view.cache.series if view.cache is not None else []
        series.append(CacheSample(event.ts, stats.hits, stats.misses, stats.evictions, stats.size))
        del series[:-SERIES_LENGTH]
        view.cache = CacheView(stats, event.ts, series)
        return True
