"""#cache pane: how well the selected session's cache serves (hits, misses, hit ratio), how full
it is (size / max size, evictions), and the hit ratio of each recent flush as a sparkline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from rich.text import Text
from textual.widget import Widget

from store import SessionView
from store.cache import CacheView

from ..text import span_text
from ..widgets import (
    MUTED,
    Gauge,
    Row,
    Spark,
    axis,
    counted,
    first_fitting,
    line,
    number,
    palette,
    percent_text,
)
from .base import FiguresPane


def hit_ratio(hits: int, misses: int) -> float | None:
    """Hits per lookup; None before the first lookup (a ratio of nothing is not 0 %)."""
    lookups = hits + misses
    return hits / lookups if lookups > 0 else None


class CachePane(FiguresPane):
    """Hit ratio gauge, hits/misses, size/max size and evictions, and a hit-ratio sparkline."""

    DEFAULT_CSS = """
    CachePane > Spark {
        height: 1fr;
        max-height: 4;
    }
    """
    TITLE = "cache"
    ABSENT = "no cache stats yet"

    def parts(self) -> Sequence[Widget]:
        return (
            Gauge(id="cache-gauge", classes="data"),
            Row(id="cache-lookups", classes="data row"),
            Row(id="cache-size", classes="data row"),
            Row(id="cache-writes", classes="data row"),
            Spark(id="cache-spark", classes="data", stretch=False),
            Row(id="cache-axis", classes="data row"),
            Row(id="cache-empty", classes="row empty"),
        )

    def data_of(self, view: SessionView) -> CacheView | None:
        return view.cache

    def key_of(self, cache: CacheView, now_ms: int) -> tuple[object, ...]:
        # a flush replaces the CacheView and appends to its series (in place)
        series = cache.series
        return (id(cache), cache.stats, cache.updated, len(series), series[-1:])

    def draw(self, cache: CacheView, now_ms: int) -> None:
        stats = cache.stats
        colours = palette(self.app)
        ratio = hit_ratio(stats.hits, stats.misses)
        gauge = cast(Gauge, self._parts["cache-gauge"])
        if ratio is None:
            gauge.set(None, MUTED, "— hit ratio", MUTED)
        else:
            gauge.set(ratio, colours.accent, f"{ratio * 100:.1f} % hit", "bold")

        total = stats.hits + stats.misses
        lookups = line(
            (number(stats.hits), "bold"),
            counted(stats.hits, " hit · ", " hits · "),
            (number(stats.misses), "bold"),
            counted(stats.misses, " miss · ", " misses · "),
            (number(total), MUTED),
            (counted(total, " lookup", " lookups"), MUTED),
        )
        self._row("cache-lookups").set(lookups)

        if stats.max_size:
            full = stats.size >= stats.max_size
            size = line(
                "size ",
                (number(stats.size), f"bold {colours.warn}" if full else "bold"),
                " / ",
                number(stats.max_size),
                (f" ({percent_text(stats.size * 100 / stats.max_size)})", MUTED),
            )
        else:
            size = line("size ", (number(stats.size), "bold"), (" (no max size)", MUTED))
        size.append_text(
            line(
                " · ",
                (number(stats.evictions), f"bold {colours.warn}" if stats.evictions else "bold"),
                counted(stats.evictions, " eviction", " evictions"),
            )
        )
        self._row("cache-size").set(size)

        writes = line(
            (number(stats.sets), MUTED), (counted(stats.sets, " set · ", " sets · "), MUTED),
            (number(stats.deletes), MUTED), (counted(stats.deletes, " delete", " deletes"), MUTED),
        )  # fmt: skip
        self._row("cache-writes").set(writes)

        spark = cast(Spark, self._parts["cache-spark"])
        width = self.content_size.width  # the spark's: it may be hidden (size 0) right now
        ratios = cache.hit_ratios()[-width:] if width > 0 else []
        spark.set(ratios, top=1.0)
        self._row("cache-axis").set(self._axis(cache, len(ratios), width))

    @staticmethod
    def _axis(cache: CacheView, shown: int, width: int) -> Text:
        """Under the sparkline: what it shows and how far back it reaches (flushes are not
        evenly spaced: a busy cache flushes 4 times a second, an idle one not at all)."""
        if shown == 0:
            return line(("hit ratio: needs 2 flushes", MUTED))
        series = cache.series
        span = span_text(series[-1].ts - series[-shown - 1].ts)
        flushes = counted(shown, "flush", "flushes")
        return first_fitting(
            width,
            axis(width, f"hit ratio of {shown} {flushes} over {span}", "", "latest"),
            axis(width, f"hit ratio, {shown} {flushes}, {span}", "", "latest"),
            axis(width, f"hit ratio, {span}", "", "latest"),
        )
