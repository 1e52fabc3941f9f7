"""#budget pane: how much of the selected session's token budget is gone, how fast it burns, and
when it runs out at that pace.

Also home of the two small drawing widgets the #cache pane shares: :class:`Gauge` (a one-line
bar with a label) and :class:`Spark` (a sparkline on a fixed scale, newest at the right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple, cast

from rich.text import Text
from textual.app import App, ComposeResult, RenderResult
from textual.color import Color
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from store import SessionView
from store.budget import BudgetView

from ..text import clean as clean_text
from .base import Pane, set_border_title

GREEN_BELOW = 70.0
"""Percent used under which the gauge is green; yellow under YELLOW_BELOW, red from there."""
YELLOW_BELOW = 90.0
BURN_MINUTES = 5
"""The burn rate is tokens per minute over this many minutes, the current one included."""
SPARK_MINUTES = (60, 30)
"""The sparkline shows the longest of these windows that gets a column per minute."""
TICK_SECONDS = 5.0
"""How often the pane re-reads the app clock so the sparkline and burn rate move on when the
session goes quiet (the app only calls ``show`` on changes); work happens once per minute."""

MUTED = "dim"

CONTEXT_WINDOW = 200_000
"""Tokens a Claude model reads at once, unless its name says ``[1m]``…"""
CONTEXT_WINDOW_1M = 1_000_000
"""…then a million (Claude Code names such models ``claude-sonnet-4-5[1m]``). A session context
(``view.context``) with an int ``context_window`` overrides both."""
AUTO_COMPACT_RESERVE = 33_000
"""Claude Code auto-compacts when the context comes within this many tokens of the window: it
keeps 20,000 for the summary's output and a 13,000-token buffer (``autoCompact.ts``), i.e. at
167,000 of 200,000 (83.5 %) and 967,000 of 1,000,000; the gauge marks that point."""


def clean(value: object, limit: int = 120) -> str:
    """``value`` as one displayable line (see ``tui.text``), cropped to ``limit`` characters."""
    return clean_text(value, limit)


def literal(value: object, style: str = "", limit: int = 120) -> Text:
    """Untrusted text as typed (markup and escapes are just characters), one cropped line."""
    return Text(clean(value, limit), style=style, no_wrap=True, overflow="ellipsis", end="")


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


def short_count(value: int) -> str:
    """Tokens, short: 950, 12k, 167k, 1.2M."""
    if value < 1000:
        return str(value)
    if value < 1_000_000:
        return f"{value // 1000}k"
    millions = value / 1_000_000
    return f"{millions:.0f}M" if millions == int(millions) or millions >= 10 else f"{millions:.1f}M"


def counted(value: int, one: str, many: str) -> str:
    """' request' / ' requests' after a count."""
    return one if value == 1 else many


def rate_text(rate: float) -> str:
    """Tokens per minute: whole numbers, one decimal when small so a trickle is not '0'."""
    return f"{rate:,.1f}" if 0 < rate < 10 else f"{rate:,.0f}"


def percent_text(percent: float) -> str:
    """Rounded down, so 69.99 % reads 69.9 % (green, as drawn) and 99.99 % is not '100.0 %'."""
    if percent < 100:
        return f"{math.floor(percent * 10) / 10:.1f} %"
    return f"{math.floor(percent):,} %"


def humanize(duration: timedelta | None) -> str:
    """Time to exhaustion, roughly: '~12 min', '~3 h', '~4 d'; '—' when nothing burns."""
    if duration is None:
        return "—"
    minutes = duration.total_seconds() / 60
    if minutes < 1:
        return "< 1 min"
    if minutes < 90:
        return f"~{round(minutes)} min"
    hours = minutes / 60
    if hours < 48:
        return f"~{round(hours)} h"
    days = hours / 24
    if days < 1000:
        return f"~{round(days):,} d"
    return "> 1,000 d"


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


# -- the panes' shared frame ------------------------------------------------------------------


class FiguresPane(Pane, Vertical):
    """A pane of figures about one component of the selected session (#budget, #cache).

    Shared here: the parts kept by id (updated in place, no DOM query per show), the empty state
    (the ``.data`` parts hidden, the ``.empty`` row saying why), a memoised :meth:`show` that
    redraws only when the subclass's key changes, and a redraw on theme or width changes.
    Subclasses give :attr:`TITLE`, :attr:`ABSENT`, :meth:`parts` (one with class ``empty``),
    :meth:`data_of`, :meth:`key_of` and :meth:`draw`.
    """

    DEFAULT_CSS = """
    FiguresPane > Static {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FiguresPane > .row {
        height: 1;
    }
    FiguresPane > .empty {
        display: none;
        color: $text-muted;
    }
    FiguresPane.-empty > .data {
        display: none;
    }
    FiguresPane.-empty > .empty {
        display: block;
    }
    """
    TITLE = ""
    ABSENT = ""  # the empty row when the selected session has none of this component

    def __init__(self, **kwargs: str | None) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        set_border_title(self, self.TITLE)
        self._view: SessionView | None = None
        self._key: tuple[object, ...] | None = None
        self._now_ms = 0
        self._parts: dict[str | None, Widget] = {}
        self.renders = 0  # how many shows did work (the rest were unchanged)

    def parts(self) -> Sequence[Widget]:
        raise NotImplementedError

    def data_of(self, view: SessionView) -> object | None:
        raise NotImplementedError

    def key_of(self, data: Any, now_ms: int) -> tuple[object, ...]:
        """What the drawing depends on: an unchanged key skips the redraw."""
        raise NotImplementedError

    def draw(self, data: Any, now_ms: int) -> None:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        self._parts = {part.id: part for part in self.parts()}
        yield from self._parts.values()

    def on_mount(self) -> None:
        self._say_empty("no session selected")
        self.watch(self.app, "theme", self._redraw, init=False)

    def on_resize(self) -> None:
        self._redraw()  # what fits (sparkline samples, axis labels) depends on the width

    def _redraw(self) -> None:
        self._key = None
        if self._view is not None:
            self.show(self._view, self._now_ms)

    def show(self, view: SessionView | None, now_ms: int) -> None:
        self._view, self._now_ms = view, now_ms
        data = self.data_of(view) if view is not None else None
        key = (view is None,) if data is None else self.key_of(data, now_ms)
        if key == self._key:
            return
        self._key = key
        self.renders += 1
        if data is None:
            self._say_empty("no session selected" if view is None else self.ABSENT)
            return
        self.remove_class("-empty")
        self.draw(data, now_ms)

    def _say_empty(self, message: str) -> None:
        self.add_class("-empty")
        [row] = [part for part in self._parts.values() if part.has_class("empty")]
        cast(Row, row).set(Text(message, style=MUTED), layout=True)

    def _row(self, name: str) -> Row:
        return cast(Row, self._parts[name])


# -- the pane -----------------------------------------------------------------------------------


class BudgetPane(FiguresPane):
    """Used/limit gauge, what is left, burn rate and time to exhaustion, tokens per minute, the
    input/output/cache breakdown (when reported), requests and rejections, whether the limit
    binds the agent (and holds it, once spent), and how full the context window is."""

    DEFAULT_CSS = """
    BudgetPane > #budget-breakdown {
        height: auto;
        max-height: 2;
    }
    """
    TITLE = "budget"
    ABSENT = "no budget for this session"

    def parts(self) -> Sequence[Widget]:
        return (
            Gauge(id="budget-gauge", classes="data"),
            Row(id="budget-used", classes="data row"),
            Row(id="budget-burn", classes="data row"),
            Spark(id="budget-spark", classes="data"),
            Row(id="budget-axis", classes="data row"),
            Row(id="budget-breakdown", classes="data"),
            Row(id="budget-counts", classes="data row"),
            Row(id="budget-model", classes="data row"),
            Gauge(id="budget-context", classes="data"),
            Row(id="budget-empty", classes="row empty"),
        )

    def on_mount(self) -> None:
        # Textual calls FiguresPane.on_mount too (handlers run for each class in the MRO)
        self.set_interval(TICK_SECONDS, self._tick, name="budget-tick")

    def _tick(self) -> None:
        now_ms = getattr(self.app, "now_ms", None)
        if self._view is not None and callable(now_ms):
            self.show(self._view, now_ms())

    def data_of(self, view: SessionView) -> BudgetView | None:
        return view.budget

    def key_of(self, budget: BudgetView, now_ms: int) -> tuple[object, ...]:
        return (
            id(budget),
            budget.used,
            budget.limit,
            budget.rejected,
            budget.requests,
            budget.model,
            budget.binding,
            budget.context_tokens,
            self._window_override(),
            *budget.totals.values(),
            len(budget.minutes),
            now_ms // 60000,
        )

    def _window_override(self) -> int | None:
        """The session context's ``context_window``, when it is a positive int."""
        context = self._view.context if self._view is not None else None
        window = context.get("context_window") if isinstance(context, dict) else None
        return window if type(window) is int and window > 0 else None

    def context_window(self, model: str | None) -> int:
        """The model's context window: the session context's ``context_window`` if set, else
        1,000,000 for a ``[1m]`` model, else 200,000."""
        override = self._window_override()
        if override is not None:
            return override
        return CONTEXT_WINDOW_1M if model and "[1m]" in model.lower() else CONTEXT_WINDOW

    def draw(self, budget: BudgetView, now_ms: int) -> None:
        colours = palette(self.app)
        bad = f"bold {colours.bad}"
        limit = budget.limit if budget.limit is not None and budget.limit > 0 else None
        used = budget.used
        held = budget.spent  # binding and used up: the agent's hooks refuse tools and prompts
        gauge = cast(Gauge, self._parts["budget-gauge"])
        if limit is None:
            gauge.set(None, MUTED, "no limit", MUTED)
            summary = line((number(used), "bold"), " used · ", ("no limit recorded", MUTED))
        else:
            percent = used * 100 / limit
            style = threshold_colour(percent, colours)
            if held:
                over = f"bold reverse {colours.bad}"
                gauge.set(1.0, colours.bad, f"{percent_text(percent)} HELD", over)
                tail: tuple[str, str] = ("held: budget spent", over)
            elif used > limit:
                over = f"bold reverse {colours.bad}"
                gauge.set(1.0, colours.bad, f"{percent_text(percent)} OVER", over)
                tail = (f"over by {number(used - limit)}", over)
            else:
                gauge.set(used / limit, style, percent_text(percent), style)
                tail = (f"{number(limit - used)} left", "bold")
            summary = line((number(used), "bold"), " / ", number(limit), " used · ", tail)
        self._row("budget-used").set(summary)

        rate = budget.burn_rate(now_ms, BURN_MINUTES)
        if held:
            eta: tuple[str, str] = ("agent held", bad)
        elif limit is not None and used >= limit:
            eta = ("budget exhausted", bad)
        else:
            eta = (f"empty in {humanize(budget.time_to_exhaustion(now_ms, BURN_MINUTES))}", "bold")
        width = self.content_size.width
        rate_part = (rate_text(rate), "bold")
        short_eta = (eta[0].replace("empty in ", "empty "), eta[1])
        burn = first_fitting(
            width,
            line("burn ", rate_part, f" tok/min ({BURN_MINUTES} min) · ", eta),
            line("burn ", rate_part, " tok/min · ", eta),
            line("burn ", rate_part, "/min · ", eta),
            line(rate_part, "/min · ", short_eta),
        )
        self._row("budget-burn").set(burn)

        spark = cast(Spark, self._parts["budget-spark"])
        window = next((m for m in SPARK_MINUTES if m <= width), SPARK_MINUTES[-1])
        current = now_ms // 60000
        series = [budget.minutes.get(m, 0) for m in range(current - window + 1, current + 1)]
        spark.set(series)
        self._row("budget-axis").set(self._axis(width, window, max(series)))

        breakdown = self._row("budget-breakdown")
        parts = self._breakdown(budget.totals)
        breakdown.display = bool(parts)
        if parts:
            breakdown.set(Text("\n", end="").join(parts), layout=True)

        rejected = (number(budget.rejected), bad if budget.rejected else "bold")
        rejected_word = (" rejected", bad if budget.rejected else "")
        requests = (number(budget.requests), "bold")
        binds: tuple[str, str] = ("", "")
        if limit is not None:  # whether the limit holds the agent once spent, or only warns
            binds = (" · binding", "bold") if budget.binding else (" · not binding", MUTED)
        counts = first_fitting(
            width,
            line(requests, counted(budget.requests, " request", " requests"), " · ",
                 rejected, rejected_word, binds),
            line(requests, " req · ", rejected, rejected_word, binds),
        )  # fmt: skip
        self._row("budget-counts").set(counts)
        self._draw_context(budget, colours)

        model = self._row("budget-model")
        model.display = budget.model is not None
        if budget.model is not None:
            name = literal(budget.model)
            compact_at = self.context_window(budget.model) - AUTO_COMPACT_RESERVE
            legend = f" · ┃ compacts at {short_count(compact_at)}"
            if budget.context_tokens is not None and compact_at > 0:  # the tick's legend
                model.set(
                    first_fitting(
                        width,
                        line(("model ", MUTED), name, (legend, MUTED)),
                        line(("model ", MUTED), name),
                    )
                )
            else:
                model.set(line(("model ", MUTED), name))

    def _draw_context(self, budget: BudgetView, colours: Palette) -> None:
        """How full the latest request's context window was, with Claude Code's auto-compact
        point marked ┃ (hidden until a request reported its input tokens)."""
        gauge = cast(Gauge, self._parts["budget-context"])
        tokens = budget.context_tokens
        gauge.display = tokens is not None
        if tokens is None:
            return
        window = self.context_window(budget.model)
        compact_at = window - AUTO_COMPACT_RESERVE
        mark = compact_at / window if compact_at > 0 else None
        fraction = tokens / window
        if compact_at > 0 and tokens >= compact_at:
            style = colours.bad
        elif mark is not None and fraction >= mark - 0.1:
            style = colours.warn
        else:
            style = colours.accent
        label = f"ctx {short_count(tokens)}/{short_count(window)}"
        gauge.set(fraction, style, label, "bold" if style == colours.accent else style, mark)

    @staticmethod
    def _axis(width: int, window: int, peak: int) -> Text:
        middle = f"peak {number(peak)}/min" if peak else f"no tokens in {window} min"
        return axis(width, f"-{window} min", middle, "now")

    @staticmethod
    def _breakdown(totals: dict[str, int]) -> list[Text]:
        """Only what was reported: a line for input/output, one for the prompt cache."""
        parts: list[Text] = []
        sent, received = totals.get("input_tokens", 0), totals.get("output_tokens", 0)
        if sent or received:
            parts.append(
                line(("input ", MUTED), number(sent), (" · output ", MUTED), number(received))
            )
        wrote = totals.get("cache_creation_input_tokens", 0)
        read = totals.get("cache_read_input_tokens", 0)
        if wrote or read:
            parts.append(
                line(
                    ("cache write ", MUTED), number(wrote), (" · cache read ", MUTED), number(read)
                )
            )
        return parts
