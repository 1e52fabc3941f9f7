"""Step 6: draw the boxes, lines and arrow heads onto a :class:`~.grid.Grid`, where the earlier
steps placed them.

Boxes come first, so that a line ending on a border joins it (``┬``, ``├``) instead of owning
it. Forward lines then run down each gap: from a port, along the net's track, down to an arrow
head (``▼``) over the target's top border, or straight on through a :class:`~.model.Virtual`
point. Back moves leave from the side of their source box (its bottom corner when that box also
receives back moves on the same side), run along their channel column and end in an arrow head
(``◀`` or ``▶``) beside the target's name.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from rich.cells import cell_len

from ...text import fit
from .grid import DOWN, LEFT, RIGHT, UP, Grid
from .model import Edge, Node, Virtual
from .placement import BOX_ROWS
from .routing import Channel, Gap

ARROW_DOWN, ARROW_LEFT, ARROW_RIGHT = "▼", "◀", "▶"
LOOP = "↻"
UNREACHABLE_NOTE = "┄ unreachable ┄"

Box = tuple[int, int, int]  # (top row, left column, width)


@dataclass(slots=True)
class Drawing:
    """A layout drawn for one width: the cells, and what painting needs to know about them."""

    grid: Grid = field(default_factory=Grid)
    height: int = 0
    left: int = 0  # leftmost used column of the grid
    used: int = 0  # columns used
    unrouted: list[Edge] = field(default_factory=list)  # moves listed under the drawing
    pads: dict[str, tuple[int, int]] = field(default_factory=dict)  # each box's left padding
    boxes: dict[str, Box] = field(default_factory=dict)  # state -> (top row, left, width)


def draw_box(
    drawing: Drawing, state: str, y: int, x: int, width: int, label: str, loop: bool
) -> None:
    """``state``'s box with its top-left corner at (y, x): ``│ label │`` or ``│ label ↻ │``."""
    grid = drawing.grid
    right = x + width - 1
    box = ("box", state)
    for cx in range(x, right + 1):
        across = LEFT | RIGHT
        grid.base[(y, cx)] = (DOWN | RIGHT) if cx == x else (DOWN | LEFT) if cx == right else across
        grid.base[(y + 2, cx)] = (UP | RIGHT) if cx == x else (UP | LEFT) if cx == right else across
        grid.owner[(y, cx)] = grid.owner[(y + 2, cx)] = box
    grid.base[(y + 1, x)] = grid.base[(y + 1, right)] = UP | DOWN
    grid.owner[(y + 1, x)] = grid.owner[(y + 1, right)] = box
    grid.glyph[(y + 1, x + 1)] = " "
    grid.owner[(y + 1, x + 1)] = ("pad", state)
    used = grid.text(y + 1, x + 2, label, ("label", state))
    tail = " " + (LOOP + " " if loop else "")
    for k, char in enumerate(tail):
        grid.glyph[(y + 1, x + 2 + used + k)] = char
        grid.owner[(y + 1, x + 2 + used + k)] = ("pad", state)
    drawing.pads[state] = (y + 1, x + 1)
    drawing.boxes[state] = (y, x, width)


def draw_point(grid: Grid, point: Virtual, y: int, x: int) -> None:
    """A long move passing a layer: a vertical line as high as the boxes beside it."""
    for k in range(BOX_ROWS):
        grid.line(y + k, x, UP | DOWN, (point.source, point.target))


def draw_gap(grid: Grid, gap: Gap, below: int, arrow: int) -> None:
    """The forward lines of one gap, from the upper layer's bottom row ``below`` down to the
    arrow row ``arrow`` (the row above the lower layer)."""
    for edge, target, x in gap.straight:
        _arrive(grid, target, x, below, arrow, edge)
    for net, track in gap.nets:
        y = below + 1 + track
        for edge, x in net.exits:
            grid.vertical(x, below, y, edge)
            grid.horizontal(y, x, net.entry, edge)
        for edge, _ in net.exits:
            _arrive(grid, net.target, net.entry, y, arrow, edge)


def _arrive(grid: Grid, target: Node, x: int, y: int, arrow: int, edge: Edge) -> None:
    """The last stretch of a line: down to the arrow row, into a box or on through a point."""
    if isinstance(target, Virtual):
        grid.vertical(x, y, arrow + 1, edge)
    else:
        grid.vertical(x, y, arrow, edge)
        grid.glyph[(arrow, x)] = ARROW_DOWN


def draw_channel(
    drawing: Drawing,
    side: str,
    channel: Channel,
    targets_here: Collection[str],
    left_edge: int,
    right_edge: int,
) -> None:
    """Back moves into ``channel.target`` along its column of the ``side`` channel, beyond the
    boxes' outermost columns ``left_edge`` and ``right_edge``."""
    grid = drawing.grid
    target, sources, k = channel
    ty, bx, bw = drawing.boxes[target]
    ty += 1
    if side == "right":
        column = right_edge + 3 + 2 * k
        arrow, mark = bx + bw, ARROW_LEFT
    else:
        column = left_edge - 3 - 2 * k
        arrow, mark = bx - 1, ARROW_RIGHT
    for source in sources:
        edge = (source, target)
        sy, sx, sw = drawing.boxes[source]
        # A box that also receives back moves on this side sends from its bottom corner.
        sy += 2 if source in targets_here else 1
        exit_x = sx + sw - 1 if side == "right" else sx
        grid.horizontal(ty, arrow, column, edge)
        grid.vertical(column, ty, sy, edge)
        grid.horizontal(sy, exit_x, column, edge)
        grid.owner[(sy, exit_x)] = ("box", source)
    grid.glyph[(ty, arrow)] = mark


def draw_unreachable_note(grid: Grid, y: int, left_edge: int, right_edge: int) -> None:
    """``┄ unreachable ┄`` centred on row ``y``: why the last boxes have no way in."""
    note = fit(UNREACHABLE_NOTE, right_edge - left_edge + 1)
    x = left_edge + (right_edge - left_edge + 1 - cell_len(note)) // 2
    grid.text(y, x, note, ("note", ""))
