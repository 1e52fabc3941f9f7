"""Step 4: where each box and each passing line goes, across (columns) and down (rows).

Across: a few passes over the rows (down, up, down again) put each node at the mean of its
neighbours' centres in the row just placed, so that lines run as straight as they can, while
keeping the order :mod:`.ordering` chose, one cell apart and inside the area :mod:`.sizing` left.
A box's centre column is where its incoming lines arrive.

Down: each layer is three rows high (a box), then its gap: one row per horizontal track that
:mod:`.routing` needed below it, then one row for the arrow heads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .model import Node

BOX_ROWS = 3  # a box: top border, name, bottom border


def place_columns(
    rows: Sequence[tuple[Node, ...]],
    width: Mapping[Node, int],
    up: Mapping[Node, list[Node]],
    down: Mapping[Node, list[Node]],
    area: int,
) -> tuple[dict[Node, int], dict[Node, int]]:
    """Each node's left column and centre column."""
    left: dict[Node, int] = {}
    centre: dict[Node, int] = {}
    # Down (under the nodes above), up (over the nodes below), down again.
    passes = [(range(len(rows)), up), (range(len(rows) - 2, -1, -1), down)]
    for order, neighbours in (*passes, passes[0]):
        for index in order:
            row = rows[index]
            desired = [_desired(node, width[node], neighbours, left, centre) for node in row]
            widths = [width[n] for n in row]
            for node, x in zip(row, place_row(desired, widths, area), strict=True):
                left[node] = x
                centre[node] = x + width[node] // 2
    return left, centre


def _desired(
    node: Node,
    width: int,
    neighbours: Mapping[Node, list[Node]],
    left: Mapping[Node, int],
    centre: Mapping[Node, int],
) -> int | None:
    """Where ``node`` would like its left column: centred under (or over) its placed
    neighbours, else where it already is; None when it has neither."""
    near = [centre[m] for m in neighbours.get(node, ()) if m in centre]
    if near:
        return int(sum(near) / len(near) + 0.5) - width // 2
    return left.get(node)


def place_row(desired: list[int | None], widths: list[int], area: int) -> list[int]:
    """Left columns for a row's nodes in order: near ``desired``, one apart, within ``area``."""
    total = sum(widths) + len(widths) - 1
    if all(d is None for d in desired):  # nothing to line up with: centre the row
        start = max(0, (area - total) // 2)
        desired = []
        for w in widths:
            desired.append(start)
            start += w + 1
    x: list[int] = []
    for k, d in enumerate(desired):
        after = x[k - 1] + widths[k - 1] + 1 if k else 0
        x.append(max(after, d if d is not None else after))
    if x and x[-1] + widths[-1] > area:  # pushed past the right: push back from there
        x[-1] = area - widths[-1]
        for k in range(len(x) - 2, -1, -1):
            x[k] = min(x[k], x[k + 1] - 1 - widths[k])
    if x and x[0] < 0:  # and past the left: the left edge wins
        x[0] = 0
        for k in range(1, len(x)):
            x[k] = max(x[k], x[k - 1] + widths[k - 1] + 1)
    return x


def row_tops(tracks: Sequence[int]) -> list[int]:
    """The top row of each layer, given the horizontal tracks in each gap between layers."""
    top = [0]
    for count in tracks:
        top.append(top[-1] + BOX_ROWS + count + 1)
    return top
