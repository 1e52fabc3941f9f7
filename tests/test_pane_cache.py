"""The #cache pane: hit ratio, hits/misses, size/max size, evictions and the hit-ratio sparkline;
driven with hand-built views in a tiny host app, and once end to end through MemdashApp."""

from __future__ import annotations

import asyncio
import time

from textual.app import App
from textual.widgets import Static

from store import CacheSample, CacheStats, MemoryCache, SessionView
from store.cache import CacheView
from tests.panes import NOW, PaneHost
from tui.app import MemdashApp
from tui.panes.budget import Gauge, Spark, palette
from tui.panes.cache import CachePane, hit_ratio, span_text

SIZE = (64, 12)
HOST_CSS = """
#cache { border: round $primary; padding: 0 1; height: 12; width: 1fr; }
"""


class Host(PaneHost):
    PANE = CachePane
    PANE_ID = "cache"
    CSS = HOST_CSS


def samples(*totals: tuple[int, int], step_ms: int = 250) -> list[CacheSample]:
    """Series samples with the given running (hits, misses), ``step_ms`` apart, ending at NOW."""
    start = NOW - step_ms * (len(totals) - 1)
    return [
        CacheSample(start + i * step_ms, hits, misses, 0, 1)
        for i, (hits, misses) in enumerate(totals)
    ]


def cache(stats: CacheStats, series: list[CacheSample] | None = None) -> SessionView:
    return SessionView("s1", cache=CacheView(stats, NOW, series or []))


def screen_text(app: App[None]) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def static_text(app: App[None], selector: str) -> str:
    return str(app.query_one(selector, Static).content)


def test_ratio_maths():
    assert hit_ratio(0, 0) is None
    assert hit_ratio(3, 1) == 0.75
    assert hit_ratio(0, 5) == 0.0
    assert hit_ratio(7, 0) == 1.0
    assert span_text(500) == "< 1 s" and span_text(1_400) == "1 s" and span_text(45_000) == "45 s"
    assert span_text(12 * 60_000) == "12 min" and span_text(3 * 3_600_000) == "3 h"


async def test_hits_misses_and_ratio():
    app = Host(cache(CacheStats(hits=3_000, misses=1_000, sets=1_200, deletes=1, size=7)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(CachePane).border_title == "cache"
        fraction, colour, label, _ = app.query_one(Gauge).state
        assert (fraction, colour, label) == (0.75, palette(app).accent, "75.0 % hit")
        assert static_text(app, "#cache-lookups") == "3,000 hits · 1,000 misses · 4,000 lookups"
        assert static_text(app, "#cache-size") == "size 7 (no max size) · 0 evictions"
        assert static_text(app, "#cache-writes") == "1,200 sets · 1 delete"
        assert "75.0 % hit" in screen_text(app)


async def test_zero_lookups_is_no_ratio_not_zero():
    app = Host(cache(CacheStats(sets=5, size=5, max_size=10)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(Gauge).state[:3] == (None, "dim", "— hit ratio")
        assert static_text(app, "#cache-lookups") == "0 hits · 0 misses · 0 lookups"
        assert "0.0 %" not in screen_text(app).splitlines()[1]
        # all misses is a real 0 %
        app.query_one(CachePane).show(cache(CacheStats(misses=1)), NOW)
        assert app.query_one(Gauge).state[:3] == (0.0, palette(app).accent, "0.0 % hit")
        assert static_text(app, "#cache-lookups") == "0 hits · 1 miss · 1 lookup"


async def test_size_max_size_and_evictions():
    app = Host(cache(CacheStats(hits=1, size=80, max_size=100, evictions=12)))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert static_text(app, "#cache-size") == "size 80 / 100 (80.0 %) · 12 evictions"
        full = CacheStats(hits=1, size=100, max_size=100, evictions=1)
        app.query_one(CachePane).show(cache(full), NOW)
        assert static_text(app, "#cache-size") == "size 100 / 100 (100 %) · 1 eviction"
        content = app.query_one("#cache-size", Static).content
        assert any(palette(app).warn in str(span.style) for span in content.spans)


async def test_sparkline_shows_the_hit_ratio_of_each_flush():
    # intervals: 2/2 hits; nothing; 1 of 4; restarted (backwards) -> None; 0 of 2
    series = samples((0, 0), (2, 0), (2, 0), (3, 3), (1, 0), (1, 2))
    view = cache(CacheStats(hits=1, misses=2), series)
    assert view.cache.hit_ratios() == [1.0, None, 0.25, None, 0.0]
    app = Host(view)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        spark = app.query_one(Spark)
        assert spark.data == (1.0, None, 0.25, None, 0.0)
        assert spark.columns(60) == [None] * 55 + [1.0, None, 0.25, None, 0.0]
        rendered = spark.render()
        rows = str(rendered).split("\n")
        assert len(rows) == spark.size.height == 4  # the rows the pane has to spare
        # a fixed 0..1 scale: 100 % fills every row, 25 % the bottom one, 0 % is the baseline;
        # None (no lookups, or a restarted series) is a gap
        assert rows[0][-5:] == "█    " and rows[-1][-5:] == "█ █ ▁"
        axis = static_text(app, "#cache-axis")
        assert axis.startswith("hit ratio of 5 flushes over 1 s ") and axis.endswith(" latest")


async def test_sparkline_keeps_the_newest_samples_that_fit():
    series = samples(*[(i * (i % 3 != 0), i * (i % 3 == 0)) for i in range(121)], step_ms=1_000)
    app = Host(cache(CacheStats(hits=1), series))
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        spark = app.query_one(Spark)
        assert spark.size.width == 46
        assert spark.data == tuple(app.view.cache.hit_ratios()[-46:])
        assert static_text(app, "#cache-axis").startswith("hit ratio of 46 flushes over 46 s")


async def test_one_flush_has_no_sparkline_yet():
    app = Host(cache(CacheStats(hits=1), samples((1, 0))))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.query_one(Spark).data == ()
        assert "needs 2 flushes" in screen_text(app)


async def test_none_views_are_calm():
    app = Host(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(CachePane)
        assert "no session selected" in screen_text(app)
        pane.show(SessionView("s1"), NOW)
        await pilot.pause()
        assert "no cache stats yet" in screen_text(app)
        assert not app.query_one(Gauge).display and "hits" not in screen_text(app)
        pane.show(cache(CacheStats(hits=2)), NOW)
        await pilot.pause()
        assert "no cache" not in screen_text(app) and "2 hits" in screen_text(app)


async def test_unchanged_views_are_skipped():
    series = samples((0, 0), (1, 1))
    view = cache(CacheStats(hits=1, misses=1), series)
    app = Host(view)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pane = app.query_one(CachePane)
        renders = pane.renders
        for i in range(100):
            pane.show(view, NOW + i)
        assert pane.renders == renders
        # the feed appends to the series and replaces the CacheView on each flush
        series.append(CacheSample(NOW + 250, 3, 1, 0, 1))
        view.cache = CacheView(CacheStats(hits=3, misses=1), NOW + 250, series)
        pane.show(view, NOW)
        assert pane.renders == renders + 1
        assert app.query_one(Spark).data == (0.5, 1.0)
        started = time.perf_counter()
        for i in range(1_000):
            series.append(CacheSample(NOW + 500 + i, 4 + i, 1, 0, 1))
            del series[:-120]
            view.cache = CacheView(CacheStats(hits=4 + i, misses=1), NOW + 500 + i, series)
            pane.show(view, NOW)
        per_show = (time.perf_counter() - started) / 1_000
        assert per_show < 0.002, per_show  # a changed show stays far below a 30 Hz frame


async def test_hostile_numbers_keep_the_layout():
    huge = 10**18
    series = [CacheSample(NOW, huge, huge, huge, huge), CacheSample(NOW - 10**12, -5, 3, 0, 0)]
    series += samples((0, 0), (huge, 1))
    view = cache(CacheStats(huge, huge, huge, huge, huge, huge, 1), series)
    app = Host(view)
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
        assert len(lines) == 12 and all(len(row) == 50 for row in lines)
        assert lines[0].startswith("╭─ cache ") and lines[-1].startswith("╰")
        assert any(row.rstrip(" │").endswith("…") for row in lines)  # cropped, not wrapped
        assert "50.0 % hit" in screen_text(app)


def test_snapshot(snap_compare):
    totals, hits, misses = [], 0, 0
    for i in range(70):
        hits += (i * 7) % 10
        misses += (i * 3) % 4 if i % 11 else 0
        totals.append((hits, misses))
    totals.insert(40, totals[39])  # a flush without lookups: a gap
    view = cache(
        CacheStats(hits, misses, sets=812, deletes=3, evictions=12, size=100, max_size=100),
        samples(*totals),
    )
    assert snap_compare(Host(view), terminal_size=SIZE)


def quiet_shutdown(app: MemdashApp) -> MemdashApp:
    """Skip repaint ticks once the app stops running. Textual's shutdown sets ``_running``
    False, prunes every widget, and only then stops the app's timers: a 30 Hz repaint tick in
    between finds no StatusBar (NoMatches, about 1 run in 3 here). Remove once
    ``MemdashApp._repaint`` returns early when ``not self.is_running``."""
    repaint = app._repaint

    def guarded() -> None:
        if app.is_running:
            repaint()

    app._repaint = guarded  # type: ignore[method-assign]
    return app


async def test_end_to_end_through_the_app(conn):
    store = MemoryCache("s1", max_size=2, redis=conn)
    await store.set("a", 1)
    await store.set("b", 2)
    assert await store.get("a") == 1
    assert await store.get("zz") is None
    await store.set("c", 3)  # evicts b
    await store.flush_stats()
    frozen = time.time()
    app = quiet_shutdown(MemdashApp(conn, session="s1", clock=lambda: frozen))
    async with app.run_test(size=(160, 45)) as pilot:
        deadline = asyncio.get_running_loop().time() + 10
        pane = app.query_one(CachePane)

        async def until(text: str) -> None:
            while text not in static_text(app, "#cache-lookups"):
                assert asyncio.get_running_loop().time() < deadline, static_text(
                    app, "#cache-lookups"
                )
                await pilot.pause(0.05)
            await pilot.pause()  # and on screen (a row may have just been shown)

        await until("1 hit · 1 miss · 2 lookups")
        assert pane.query_one(Gauge).state[2] == "50.0 % hit"
        assert static_text(app, "#cache-size") == "size 2 / 2 (100 %) · 1 eviction"
        for key in ("a", "c", "c", "nope"):
            await store.get(key)
        await store.flush_stats()
        await until("4 hits · 2 misses · 6 lookups")
        assert pane.query_one(Spark).data == (0.75,)
        assert "66.7 % hit" in screen_text(app)
    await store.aclose()
