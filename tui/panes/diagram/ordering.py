"""Step 2: order the boxes within each layer so that few lines cross.

Long moves first get a :class:`~.model.Virtual` point in every layer they cross, so that every
line runs between adjacent rows. Then a few barycenter sweeps (down, then up) move each node
towards the mean position of its neighbours in the row just swept; the order with the fewest
crossings wins. Finally, a back move can only be drawn in a side channel when both its ends are
the outermost boxes of their rows (see :mod:`.routing`), so :func:`move_back_ends_outward` tries
moving them there, keeping a move only when it routes more back moves without adding crossings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from .model import Edge, Node, adjacency, virtual_points

SWEEPS = 3  # rounds of down-and-up barycenter sweeps (each kept only if it crosses less)
ENDS_TRIED = 16  # back moves whose ends are tried at the ends of their rows


def order_rows(
    layers: list[list[str]], forward: list[Edge], rank: Mapping[str, int]
) -> list[list[Node]]:
    """Layers with Virtual points, ordered by barycenter sweeps (best of a few by crossings)."""
    rows: list[list[Node]] = [list(layer) for layer in layers]
    for move in forward:
        for point in virtual_points(move, rank):
            rows[point.layer].append(point)
    down, up = adjacency(forward, rank)
    best = [list(row) for row in rows]
    fewest = crossings(rows, down)
    for _ in range(SWEEPS):
        if fewest == 0:
            break
        for index in range(1, len(rows)):
            _sweep(rows[index], up, rows[index - 1])
        for index in range(len(rows) - 2, -1, -1):
            _sweep(rows[index], down, rows[index + 1])
        count = crossings(rows, down)
        if count < fewest:
            best, fewest = [list(row) for row in rows], count
    return best


def _sweep(row: list[Node], neighbours: Mapping[Node, list[Node]], other: list[Node]) -> None:
    """Sort ``row`` by the mean position of each node's neighbours in the adjacent row
    ``other``; a node without any keeps its place."""
    at = {node: k for k, node in enumerate(other)}
    here = {node: k for k, node in enumerate(row)}

    def barycenter(node: Node) -> float:
        near = [at[m] for m in neighbours.get(node, ()) if m in at]
        return sum(near) / len(near) if near else float(here[node])

    row.sort(key=barycenter)


def crossings(rows: list[list[Node]], down: Mapping[Node, list[Node]]) -> int:
    """How many pairs of segments cross between each pair of adjacent rows."""
    total = 0
    for upper, lower in itertools.pairwise(rows):
        at = {node: k for k, node in enumerate(lower)}
        pairs = sorted((i, at[b]) for i, a in enumerate(upper) for b in down.get(a, ()) if b in at)
        for (i1, j1), (i2, j2) in itertools.combinations(pairs, 2):
            if i1 < i2 and j1 > j2:
                total += 1
    return total


def move_back_ends_outward(
    rows: list[list[Node]], back: list[Edge], down: Mapping[Node, list[Node]]
) -> list[list[Node]]:
    """Move the ends of back moves to the ends of their rows, where a side channel can reach
    them, when that draws more back moves without adding crossings."""
    where = {n: i for i, row in enumerate(rows) for n in row if isinstance(n, str)}
    best = (_routable(rows, back), -crossings(rows, down))
    for source, target in back[:ENDS_TRIED]:
        for at_end in (True, False):
            trial = [list(row) for row in rows]
            for state in (source, target):
                row = trial[where[state]]
                row.remove(state)
                row.insert(len(row) if at_end else 0, state)
            score = (_routable(trial, back), -crossings(trial, down))
            if score > best:
                rows, best = trial, score
    return rows


def _routable(rows: list[list[Node]], back: Iterable[Edge]) -> int:
    """Back moves whose two ends are both the outermost boxes of their rows on one side."""
    where = {n: i for i, row in enumerate(rows) for n in row if isinstance(n, str)}
    states = [[n for n in row if isinstance(n, str)] for row in rows]
    count = 0
    for source, target in back:
        a, b = states[where[source]], states[where[target]]
        if (a[-1] == source and b[-1] == target) or (a[0] == source and b[0] == target):
            count += 1
    return count
