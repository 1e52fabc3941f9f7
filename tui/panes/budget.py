"""#budget pane: how much of the selected session's token budget is gone, how fast it burns, and
when it runs out at that pace (drawn with the shared widgets of :mod:`tui.widgets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from rich.text import Text
from textual.widget import Widget

from store import SessionView
from store.budget import BudgetView

from ..text import clean as clean_text
from ..text import eta_text
from ..widgets import (
    GREEN_BELOW,
    MUTED,
    YELLOW_BELOW,
    Gauge,
    Palette,
    Row,
    Spark,
    axis,
    counted,
    first_fitting,
    line,
    number,
    palette,
    percent_text,
    threshold_colour,
)
from .base import FiguresPane

__all__ = [
    "GREEN_BELOW",
    "YELLOW_BELOW",
    "BudgetPane",
    "Gauge",
    "Palette",
    "Row",
    "Spark",
    "palette",
    "threshold_colour",
]

BURN_MINUTES = 5
"""The burn rate is tokens per minute over this many minutes, the current one included."""
SPARK_MINUTES = (60, 30)
"""The sparkline shows the longest of these windows that gets a column per minute."""
TICK_SECONDS = 5.0
"""How often the pane re-reads the app clock so the sparkline and burn rate move on when the
session goes quiet (the app only calls ``show`` on changes); work happens once per minute."""

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


def short_count(value: int) -> str:
    """Tokens, short: 950, 12k, 167k, 1.2M."""
    if value < 1000:
        return str(value)
    if value < 1_000_000:
        return f"{value // 1000}k"
    millions = value / 1_000_000
    return f"{millions:.0f}M" if millions == int(millions) or millions >= 10 else f"{millions:.1f}M"


def rate_text(rate: float) -> str:
    """Tokens per minute: whole numbers, one decimal when small so a trickle is not '0'."""
    return f"{rate:,.1f}" if 0 < rate < 10 else f"{rate:,.0f}"


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
    _breakdown_lines = 0
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
        if self._view is not None and self.clock is not None:
            self.show(self._view, int(self.clock() * 1000))

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
            eta = (f"empty in {eta_text(budget.time_to_exhaustion(now_ms, BURN_MINUTES))}", "bold")
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
        if parts:  # a layout only when its height (1 or 2 lines) changes
            lines, self._breakdown_lines = self._breakdown_lines, len(parts)
            breakdown.set(Text("\n", end="").join(parts), layout=len(parts) != lines)

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
