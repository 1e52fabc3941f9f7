"""Step 3: how long a name each row of boxes can show, and how many side channels fit.

The width is shared between the boxes and the side channels that carry back moves (see
:mod:`.routing`): every channel column costs two cells, plus one for its arrow, on the side it
is on. Names are shortened (``revi…``) before anything else gives way, down to
:data:`COMFORT_LABEL` cells; below that the outermost channel columns are dropped first (their
moves are listed under the drawing instead), and if a row still does not fit with names of
:data:`MIN_LABEL` cells, the workflow is not drawn at all.

The last layer (the states nothing leads to) has no lines coming in, so it is first wrapped onto
as many rows as keep its names whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple, TypeGuard

from .model import Node

MIN_LABEL = 4  # cells of a state's name in a box ("revi…"); less and the diagram gives up
COMFORT_LABEL = 8  # side channels are dropped before names get shorter than this


class Fit(NamedTuple):
    """The channel columns kept on each side, and what that leaves for the boxes."""

    right: int  # channel columns kept on the right
    left: int  # and on the left
    area: int  # cells across for the boxes and the lines between them
    limits: list[int]  # each row's longest name, in cells


def box_width(label_cells: int, loop: bool) -> int:
    """Cells across a box: ``│ name │``, or ``│ name ↻ │`` for a state with a self-loop."""
    return label_cells + 4 + (2 if loop else 0)


def _box_width(state: str, sizes: Mapping[str, int], limit: int, loops: Collection[str]) -> int:
    return box_width(min(sizes[state], limit), state in loops)


def wrap(
    row: Iterable[Node], sizes: Mapping[str, int], loops: Collection[str], width: int
) -> list[tuple[Node, ...]]:
    """A row of boxes split into rows that fit ``width`` with their names whole."""
    limit = max(MIN_LABEL, width - 8)
    rows: list[list[Node]] = [[]]
    used = 0
    for state in row:
        size = _box_width(state, sizes, limit, loops) if isinstance(state, str) else 1
        if rows[-1] and used + 1 + size > width:
            rows.append([])
            used = 0
        used += size + (1 if len(rows[-1]) else 0)
        rows[-1].append(state)
    return [tuple(r) for r in rows]


def fit_labels(
    rows: list[tuple[Node, ...]],
    sizes: Mapping[str, int],
    loops: Collection[str],
    width: int,
    right: int,
    left: int,
) -> Fit | None:
    """Give up channel columns (``right`` and ``left`` wanted), the outer ones and the larger
    side first, until every row fits with comfortable names; None if no row fits at all."""
    while True:
        area = width - 2 * (right + left) - (right > 0) - (left > 0)
        limits = [label_limit(row, sizes, area, loops) for row in rows]
        if _all_fit(limits) and (right + left == 0 or _comfortable(limits, rows, sizes)):
            return Fit(right, left, area, limits)
        if right + left == 0:
            return None
        if right >= left:
            right -= 1
        else:
            left -= 1


def _all_fit(limits: list[int | None]) -> TypeGuard[list[int]]:
    """Every row fits (with names of at least :data:`MIN_LABEL` cells)."""
    return all(limit is not None for limit in limits)


def _comfortable(limits: list[int], rows: list[tuple[Node, ...]], sizes: Mapping[str, int]) -> bool:
    """Every row with boxes shows its longest name whole, or at least :data:`COMFORT_LABEL`
    cells of it."""
    return all(
        limit >= min(COMFORT_LABEL, max(sizes[n] for n in row if isinstance(n, str)))
        for limit, row in zip(limits, rows, strict=True)
        if any(isinstance(n, str) for n in row)
    )


def label_limit(
    row: Iterable[Node], sizes: Mapping[str, int], area: int, loops: Collection[str]
) -> int | None:
    """The longest name (in cells) the row fits in ``area`` with; None if below MIN."""
    row = list(row)
    states = [n for n in row if isinstance(n, str)]
    points = len(row) - len(states)
    longest = max((sizes[s] for s in states), default=MIN_LABEL)
    for limit in range(max(longest, MIN_LABEL), MIN_LABEL - 1, -1):
        used = sum(_box_width(s, sizes, limit, loops) for s in states)
        if used + points + len(row) - 1 <= area:
            return limit
    return None
