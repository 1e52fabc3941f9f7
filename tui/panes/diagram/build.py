"""Steps 3 to 6 in order: from a :class:`~.model.Layout` to a :class:`~.drawing.Drawing` for one
width, or None when the workflow cannot be drawn legibly in it (then it is shown as a list).

:func:`plan` decides where everything goes (sizing, channels, placement, routing) without
drawing anything, so that a diagram too tall to show costs no drawing; :func:`draw_plan` then
draws it. Each step lives in its own module; this one only passes results from one to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len

from ...text import fit
from .drawing import (
    Drawing,
    draw_box,
    draw_channel,
    draw_gap,
    draw_point,
    draw_unreachable_note,
)
from .model import Edge, Layout, Node, adjacency, clean
from .placement import BOX_ROWS, place_columns, row_tops
from .routing import (
    SIDES,
    Channel,
    Gap,
    channel_columns,
    columns_wanted,
    exit_ports,
    keep_columns,
    route_gap,
    split_back_moves,
)
from .sizing import MIN_LABEL, box_width, fit_labels, wrap

MAX_DIAGRAM_ROWS = 64  # taller than this (16 layers) reads better as a list


@dataclass(frozen=True, slots=True)
class Plan:
    """Where everything goes, before anything is drawn."""

    rows: list[tuple[Node, ...]]  # the layout's rows, the last one wrapped
    where: dict[Node, int]  # each node's row
    labels: dict[str, str]  # each state's name as shown (cropped to fit)
    widths: dict[Node, int]  # cells across each node (1 for a passing line)
    left: dict[Node, int]  # each node's left column
    gaps: list[Gap]  # the lines between each row and the next
    top: list[int]  # each row's top line
    channels: dict[str, list[Channel]]  # side -> its back-move channels
    unrouted: list[Edge]  # the moves listed under the drawing

    @property
    def height(self) -> int:
        return self.top[-1] + BOX_ROWS


def build(graph: Layout, width: int) -> Drawing | None:
    """``graph`` drawn in ``width`` cells; None when it does not fit legibly."""
    if not graph.rows:
        return None
    planned = plan(graph, width)
    if planned is None or planned.height > MAX_DIAGRAM_ROWS:
        return None
    return draw_plan(graph, planned)


def plan(graph: Layout, width: int) -> Plan | None:
    """Where each box, line and channel goes; None when the boxes do not fit ``width``."""
    names = {s: clean(s) for s in graph.targets}
    sizes = {s: cell_len(name) for s, name in names.items()}
    rows = list(graph.rows)
    if graph.unreachable:  # nothing leads down into them: wrap them onto as many rows
        rows[-1:] = wrap(rows[-1], sizes, graph.loops, width)
    where: dict[Node, int] = {n: i for i, row in enumerate(rows) for n in row}
    rank = {n: i for n, i in where.items() if isinstance(n, str)}
    down, up = adjacency(graph.forward, rank)

    # Back moves into side channels, as many columns as leave the names legible.
    sides, off_side = split_back_moves(graph.back, rows, where)
    unrouted = [*graph.flat, *off_side]
    channels = {side: channel_columns(sides[side], where) for side in SIDES}
    wanted = {side: columns_wanted(channels[side]) for side in SIDES}
    fitted = fit_labels(rows, sizes, graph.loops, width, wanted["right"], wanted["left"])
    if fitted is None:
        return None
    for side, keep in zip(SIDES, (fitted.right, fitted.left), strict=True):
        channels[side], dropped = keep_columns(channels[side], keep)
        unrouted.extend(dropped)

    # Each box's name and width, then its columns, then the lines and rows between layers.
    labels = {s: fit(names[s], fitted.limits[where[s]] or MIN_LABEL) for s in rank}
    widths = {
        n: box_width(cell_len(labels[n]), n in graph.loops) if isinstance(n, str) else 1
        for n in where
    }
    left, centre = place_columns(rows, widths, up, down, fitted.area)
    ports = exit_ports(rows, down, left, widths, centre)
    gaps = [route_gap(row, down, ports, centre) for row in rows[:-1]]
    top = row_tops([gap.tracks for gap in gaps])
    return Plan(rows, where, labels, widths, left, gaps, top, channels, unrouted)


def draw_plan(graph: Layout, planned: Plan) -> Drawing:
    """Boxes and passing lines, then the lines in each gap, then the side channels."""
    drawing = Drawing(height=planned.height, unrouted=planned.unrouted)
    grid, top, left = drawing.grid, planned.top, planned.left
    for node, index in planned.where.items():
        if isinstance(node, str):
            label, loop = planned.labels[node], node in graph.loops
            draw_box(drawing, node, top[index], left[node], planned.widths[node], label, loop)
        else:
            draw_point(grid, node, top[index], left[node])
    for index, gap in enumerate(planned.gaps):
        draw_gap(grid, gap, below=top[index] + BOX_ROWS - 1, arrow=top[index + 1] - 1)

    right_edge = max(left[n] + planned.widths[n] - 1 for n in planned.where)
    left_edge = min(left.values())
    for side, channels in planned.channels.items():
        targets_here = {channel.target for channel in channels}
        for channel in channels:
            draw_channel(drawing, side, channel, targets_here, left_edge, right_edge)
    if graph.unreachable:
        y = top[planned.where[graph.unreachable[0]]] - 1
        draw_unreachable_note(grid, y, left_edge, right_edge)
    drawing.left, drawing.used = grid.columns()
    return drawing
