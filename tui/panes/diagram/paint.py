"""Step 7: turn the drawn cells into styled lines of text for the states of the moment.

Drawing (steps 1-6) depends only on the definition and the width; painting depends on the
current, previous and next states too, which change all the time, so it is the cheap part: one
pass over the cells, merging each cell's line directions into a box-drawing glyph (heavy for the
current state's box) and styling it by its owner (the current state's box and name, the previous
one's ``◆``, the next states, the lines leaving the current state, the last move).

When the workflow could not be drawn, :func:`paint_list` gives a compact ``state → targets``
list instead. Only :class:`rich.text.Text` built from plain strings leaves here: never markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.text import Text

from ...text import fit
from .drawing import Drawing
from .grid import DOWN, LEFT, RIGHT, UP, Cell, Grid, Owner
from .model import Edge, Layout, clean

# Box-drawing glyphs by the directions a cell connects to.
LIGHT = {
    0: " ",
    UP: "╵",
    DOWN: "╷",
    LEFT: "╴",
    RIGHT: "╶",
    UP | DOWN: "│",
    LEFT | RIGHT: "─",
    DOWN | RIGHT: "┌",
    DOWN | LEFT: "┐",
    UP | RIGHT: "└",
    UP | LEFT: "┘",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT: "┤",
    DOWN | LEFT | RIGHT: "┬",
    UP | LEFT | RIGHT: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
}
# The current state's box: (heavy border directions, light line directions) -> glyph.
HEAVY = {
    (DOWN | RIGHT, 0): "┏",
    (DOWN | LEFT, 0): "┓",
    (UP | RIGHT, 0): "┗",
    (UP | LEFT, 0): "┛",
    (LEFT | RIGHT, 0): "━",
    (UP | DOWN, 0): "┃",
    (LEFT | RIGHT, DOWN): "┯",
    (LEFT | RIGHT, UP): "┷",
    (UP | DOWN, RIGHT): "┝",
    (UP | DOWN, LEFT): "┥",
    (UP | LEFT, RIGHT): "┹",
    (UP | RIGHT, LEFT): "┺",
}

PREVIOUS_MARK = "◆"
LIST_LIMIT = 200  # states listed in list mode (the current one is always among them)

STYLE_BOX = "blue"
STYLE_EDGE = "bright_black"
STYLE_CURRENT_BOX = "bold yellow"
STYLE_CURRENT_LABEL = "bold reverse"
STYLE_PREVIOUS = "magenta"
STYLE_NEXT = "bold green"
STYLE_NEXT_EDGE = "green"
STYLE_LAST_MOVE = "magenta"
STYLE_NOTE = "dim"


@dataclass(frozen=True, slots=True)
class Highlight:
    """The states one paint singles out, and so the style of every part of the drawing."""

    current: str | None
    previous: str | None  # None when it is the current state (a move to itself)
    upcoming: frozenset[str]

    def style(self, owner: Owner | None) -> str:
        """The style of a cell that belongs to ``owner`` (none for a blank cell)."""
        if owner is None:
            return ""
        if isinstance(owner, frozenset):
            return self._line_style(owner)
        part, state = owner
        return self._state_style(part, state)

    def _line_style(self, moves: frozenset[Edge]) -> str:
        """A line is green if one of its moves leaves the current state, magenta if it
        carries the last move."""
        if any(source == self.current for source, _ in moves):
            return STYLE_NEXT_EDGE
        if (self.previous, self.current) in moves:
            return STYLE_LAST_MOVE
        return STYLE_EDGE

    def _state_style(self, part: str, state: str) -> str:
        """A box's border (``part`` "box"), name ("label") or padding ("pad"), or a note."""
        if part == "note":
            return STYLE_NOTE
        if state == self.current:
            return STYLE_CURRENT_BOX if part == "box" else STYLE_CURRENT_LABEL
        if state == self.previous:
            return STYLE_PREVIOUS
        if state in self.upcoming:
            return STYLE_NEXT
        return STYLE_BOX if part == "box" else ""


def paint_grid(
    drawing: Drawing,
    width: int,
    current: str | None,
    previous: str | None,
    upcoming: frozenset[str],
) -> list[Text]:
    """The drawing styled for these states, one Text per row, centred in ``width``."""
    marks = Highlight(current, previous if previous != current else None, upcoming)
    previous_pad = drawing.pads.get(marks.previous) if marks.previous is not None else None
    offset = max(0, (width - drawing.used) // 2)
    grid = drawing.grid
    styles: dict[Owner | None, str] = {}  # a drawing has few owners and many cells

    def style_of(owner: Owner | None) -> str:
        style = styles.get(owner)
        if style is None:
            style = styles[owner] = marks.style(owner)
        return style

    lines = []
    for y in range(drawing.height):
        line = Text(" " * offset, no_wrap=True, overflow="crop")
        run: list[str] = []  # glyphs of one style, appended to the line as one span
        run_style = ""
        for x in range(drawing.left, drawing.left + drawing.used):
            owner = grid.owner.get((y, x))
            style = style_of(owner)
            if style != run_style and run:
                line.append("".join(run), run_style)
                run = []
            run_style = style
            run.append(_glyph(grid, (y, x), owner, current, previous_pad))
        if run:
            line.append("".join(run), run_style)
        line.rstrip()
        lines.append(line)
    return lines


def _glyph(
    grid: Grid, cell: Cell, owner: Owner | None, current: str | None, previous_pad: Cell | None
) -> str:
    """The character of one cell: its text or arrow, the ``◆`` of the previous state, or the
    lines meeting there (heavy where they are the current state's border)."""
    glyph = grid.glyph.get(cell)
    if glyph is None:
        base, extra = grid.base.get(cell, 0), grid.extra.get(cell, 0)
        if owner == ("box", current) and current is not None:
            return HEAVY.get((base, extra)) or LIGHT[base | extra]
        return LIGHT[base | extra]
    if cell == previous_pad:
        return PREVIOUS_MARK
    return glyph


def paint_notes(unrouted: Iterable[Edge], width: int, current: str | None) -> list[Text]:
    """Moves the drawing leaves out, by source: ``↺ review → coding, planning``."""
    by_source: dict[str, list[str]] = {}
    for source, target in unrouted:
        by_source.setdefault(source, []).append(target)
    lines = []
    for source, targets in by_source.items():
        style = STYLE_NEXT_EDGE if source == current else STYLE_NOTE
        line = Text("↺ ", style=style, no_wrap=True, overflow="ellipsis")
        line.append(clean(source))
        line.append(" → ")
        line.append(", ".join(clean(t) for t in targets))
        line.truncate(width, overflow="ellipsis")
        lines.append(line)
    return lines


def paint_list(
    graph: Layout,
    width: int,
    current: str | None,
    previous: str | None,
    upcoming: frozenset[str],
) -> list[Text]:
    """The fallback: one line per state, ``marker name → targets``, in layer order."""
    order = [s for layer in graph.layers for s in layer]
    shown = order[:LIST_LIMIT]
    if current is not None and current in graph.targets and current not in shown:
        shown.append(current)
    lines = []
    for state in shown:
        if state == current:
            mark, style = "▶ ", STYLE_CURRENT_LABEL
        elif state == previous:
            mark, style = PREVIOUS_MARK + " ", STYLE_PREVIOUS
        elif state in upcoming:
            mark, style = "▷ ", STYLE_NEXT
        else:
            mark, style = "  ", ""
        line = Text(mark, style=style if state != current else STYLE_CURRENT_BOX)
        line.no_wrap, line.overflow = True, "ellipsis"
        line.append(fit(clean(state), max(8, width // 2)), style)
        moves = graph.targets.get(state, ())
        if moves:
            line.append(" → ", STYLE_NOTE)
            line.append(
                ", ".join(clean(t, 32) for t in moves[:20]) + (", …" if len(moves) > 20 else ""),
                STYLE_NEXT_EDGE if state == current else STYLE_NOTE,
            )
        line.truncate(width, overflow="ellipsis")
        lines.append(line)
    hidden = len(order) - LIST_LIMIT
    if hidden > 0:
        lines.insert(LIST_LIMIT, Text(f"  … {hidden} more states", style=STYLE_NOTE))
    return lines
