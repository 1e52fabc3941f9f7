"""What the panes share on screen: the theme's palette and the used-% thresholds and colours,
one-line figures (``line``, ``first_fitting``, ``axis``, ``number``…) and the small drawing
widgets: :class:`Gauge` (a one-line bar with a label), :class:`Spark` (a sparkline on a fixed
scale, newest at the right) and :class:`Row` (a one-line Static that skips unchanged updates).

#budget and #cache draw with them, and #sessions colours its budget column with the same
:func:`threshold_colour` of the same :func:`palette`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from rich.text import Text
from textual.app import App, RenderResult
from textual.color import Color
from textual.widget import Widget
from textual.widgets import Static

GREEN_BELOW = 70.0
"""Percent used under which the gauge is green; yellow under YELLOW_BELOW, red from there."""
YELLOW_BELOW = 90.0
MUTED = "dim"


def line(*parts: str | tuple[str, str] | Text) -> Text:
    """One line of trusted pieces; cropped with an ellipsis when the pane is too narrow."""
    return Text.assemble(*parts, no_wrap=True, overflow="ellipsis", end="")


def first_fitting(width: int, *candidates: Text) -> Text:
    """The first (fullest) wording that fits ``width`` cells; else the last (shortest)."""
    for text in candidates:
        if text.cell_len <= width:
            return text
    return candidates[-1]


def number(value: int | float) -> str:
    return f"{value:,.0f}"


def counted(value: int, one: str, many: str) -> str:
    """' request' / ' requests' after a count."""
    return one if value == 1 else many


def percent_text(percent: float) -> str:
    """Rounded down, so 69.99 % reads 69.9 % (green, as drawn) and 99.99 % is not '100.0 %'."""
    if percent < 100:
        return f"{math.floor(percent * 10) / 10:.1f} %"
    return f"{math.floor(percent):,} %"


class Palette(NamedTuple):
    """Colours from the app's theme (Rich colour names, #rrggbb), so the panes follow it."""

    ok: str = "green"
    warn: str = "yellow"
    bad: str = "red"
    accent: str = "cyan"
    track: str = "grey30"


_PALETTE_SOURCES = Palette("success", "warning", "error", "primary", "panel-lighten-1")
_palettes: dict[str, Palette] = {}


def palette(app: App[object]) -> Palette:
    """The current theme's palette (cached per theme; read from the Theme itself, which is
    current as soon as ``app.theme`` changes, unlike ``app.theme_variables``)."""
    theme = app.current_theme
    found = _palettes.get(theme.name)
    if found is None:
        variables = theme.to_color_system().generate()
        colours = []
        for key, fallback in zip(_PALETTE_SOURCES, Palette(), strict=True):
            try:
                colours.append(Color.parse(variables[key]).hex6)
            except (KeyError, ValueError, TypeError):
                colours.append(fallback)
        found = _palettes[theme.name] = Palette(*colours)
    return found


def threshold_colour(percent: float, colours: Palette) -> str:
    """Green under 70 % used, yellow under 90 %, red from 90 %."""
    if percent < GREEN_BELOW:
        return colours.ok
    if percent < YELLOW_BELOW:
        return colours.warn
    return colours.bad


def axis(width: int, left: str, middle: str, right: str, start: int = 0) -> Text:
    """The line under a sparkline: ``left`` at column ``start`` (where the data begins),
    ``middle`` centred in what is left, ``right`` at the right edge; ``middle`` (then the
    indent) give way when the width is short."""
    if start + len(left) + len(middle) + len(right) + 2 > width:
        middle = ""
    if start + len(left) + len(middle) + len(right) + 2 > width:
        start = 0
    gap = max(width - start - len(left) - len(middle) - len(right), 1)
    before = gap // 2 if middle else gap
    return Text.assemble(
        " " * start, left, " " * before, middle, " " * (gap - before), right,
        style=MUTED, no_wrap=True, overflow="ellipsis", end="",
    )  # fmt: skip


# -- drawing widgets ----------------------------------------------------------------------------

_EIGHTHS = " ▏▎▍▌▋▊▉"
_BARS = " ▁▂▃▄▅▆▇█"


class Gauge(Widget):
    """A one-line bar filled to ``fraction`` (0..1) in ``style``, then ``label`` at the right."""

    DEFAULT_CSS = """
    Gauge {
        height: 1;
    }
    """

    def __init__(self, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._state: tuple[float | None, str, str, str] = (None, "", "", "")
        self._mark: float | None = None

    @property
    def state(self) -> tuple[float | None, str, str, str]:
        """(fraction, bar style, label, label style) as last set."""
        return self._state

    @property
    def mark(self) -> float | None:
        """Where a tick is drawn across the bar (0..1), if anywhere."""
        return self._mark

    def set(
        self,
        fraction: float | None,
        style: str,
        label: str,
        label_style: str = "",
        mark: float | None = None,
    ) -> None:
        """``fraction`` None draws an empty track (nothing to measure against); ``mark`` puts a
        tick at that fraction of the bar (e.g. where something happens)."""
        state = (fraction, style, label, label_style or style)
        if state != self._state or mark != self._mark:
            self._state, self._mark = state, mark
            self.refresh()

    def render(self) -> RenderResult:
        fraction, style, label, label_style = self._state
        track = palette(self.app).track
        label = f" {label}" if label else ""
        width = max(self.size.width - len(label), 0)
        filled = 0.0 if fraction is None else min(max(fraction, 0.0), 1.0) * width
        full = int(filled)
        part = int((filled - full) * 8)
        bar = Text("█" * full, style=style, no_wrap=True, end="")
        if full < width:
            if part:
                bar.append(_EIGHTHS[part], f"{style} on {track}")
                full += 1
            bar.append(" " * (width - full), f"on {track}")
        if self._mark is not None and 0 < self._mark < 1 and width > 2:
            column = min(int(self._mark * width), width - 1)
            if column < full and style.startswith("#"):  # on the bar: in the track's colour
                tick = Text("┃", style=f"bold {track} on {style}")
            else:
                tick = Text("┃", style=f"bold {palette(self.app).bad} on {track}")
            bar = Text.assemble(bar[:column], tick, bar[column + 1 :], no_wrap=True, end="")
        bar.append(label, label_style)
        return bar


class Spark(Widget):
    """A sparkline of non-negative values on a fixed scale, the newest at the right.

    Unlike Textual's ``Sparkline`` it keeps 0 at the bottom (a steady burn is not drawn as a
    flat line of nothing, a 95 % hit ratio is not drawn as 0), shows None as a gap, and can
    stretch a short series over the width (``stretch``) or leave the left blank (history not
    there yet).
    """

    DEFAULT_CSS = """
    Spark {
        height: 2;
    }
    """

    def __init__(self, *, stretch: bool = True, **kwargs: str) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.stretch = stretch
        self.bar_style = ""  # default: the theme's accent colour
        self._data: tuple[float | None, ...] = ()
        self._top = 1.0

    @property
    def data(self) -> tuple[float | None, ...]:
        return self._data

    def set(self, data: Sequence[float | None], top: float | None = None) -> None:
        """Draw ``data`` scaled to ``top`` (default: its maximum; 0 stays at the bottom)."""
        data = tuple(data)
        if top is None:
            top = max((v for v in data if v is not None), default=0.0)
        top = top if top > 0 else 1.0
        if (data, top) != (self._data, self._top):
            self._data, self._top = data, top
            self.refresh()

    def columns(self, width: int) -> list[float | None]:
        """The value drawn in each of ``width`` columns, left to right."""
        data = self._data[-width:] if width > 0 else ()
        if not data:
            return [None] * width
        if not self.stretch or len(data) >= width:
            return [None] * (width - len(data)) + list(data)
        n = len(data)
        return [data[c * n // width] for c in range(width)]

    def render(self) -> RenderResult:
        width, height = self.size.width, max(self.size.height, 1)
        colours = palette(self.app)
        bar_style = self.bar_style or colours.accent
        levels = 8 * height
        heights = [
            None if v is None else (0 if v <= 0 else max(1, math.ceil(v / self._top * levels)))
            for v in self.columns(width)
        ]
        text = Text(no_wrap=True, end="")
        for row in reversed(range(height)):
            for level in heights:
                if level is None:
                    text.append(" ")
                elif level == 0:
                    text.append("▁" if row == 0 else " ", colours.track)
                else:
                    text.append(_BARS[min(max(level - 8 * row, 0), 8)], bar_style)
            if row:
                text.append("\n")
        return text


class Row(Static):
    """A Static that skips an update with the text it already shows (the common case: one
    figure of a pane changes, the other rows rebuild the same Text)."""

    def set(self, text: Text, *, layout: bool = False) -> None:
        """``layout=False``: the row's height does not depend on the text (a 1-line row)."""
        if text != self.content:
            self.update(text, layout=layout)
