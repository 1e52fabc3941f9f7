"""Pure layout and drawing of a workflow diagram: states as boxes in layers, moves as lines.

:func:`layout` is a small Sugiyama-style layering. A depth-first search from the initial state
finds the back moves (to a state on the current path, e.g. testing -> coding); the other moves form
a DAG, and the longest path from the initial state gives each state its layer; states the initial
one cannot reach go in one last layer. A long move gets one :class:`Virtual` point per layer it
crosses, and a few barycenter sweeps order each layer to reduce crossings.

:class:`Diagram` turns a layout into a grid of box-drawing characters for one width: boxes top to
bottom, forward moves routed between layers (each target's incoming lines on their own
horizontal track), back moves in a channel along the right (or left) side, and whatever cannot be
drawn cleanly listed below ("↺ a → b"). It is built once per definition and width;
:meth:`Diagram.paint` styles it for a current, previous and next states, which is cheap. When a
workflow cannot be drawn legibly in the width (too many states, too wide, too tall), ``paint``
gives a compact list of ``state → targets`` instead.

Every name is untrusted text: :func:`clean` makes it printable, :func:`fit` crops it by cells,
and only :class:`rich.text.Text` built from plain strings leaves this module.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text

from ..text import VISIBLE, fit

Edge = tuple[str, str]

MAX_DRAWN_STATES = 32  # more than this is a list: a 40-column diagram of them would be noise
MAX_SEGMENTS = 160  # forward line segments between adjacent layers (long moves count per layer)
MAX_SEGMENTS_TO_SHUFFLE = 64  # above this, no search for side-channel room for back moves
MAX_DIAGRAM_ROWS = 64  # taller than this (16 layers) reads better as a list
MIN_LABEL = 4  # cells of a state's name in a box ("revi…"); less and the diagram gives up
COMFORT_LABEL = 8  # side channels are dropped before names get shorter than this
MAX_NAME = 128  # characters of a name kept before cropping (names are at most 256)
LIST_LIMIT = 200  # states listed in list mode (the current one is always among them)
MAX_CHANNELS = 4  # back-move columns per side
PAINT_CACHE = 16  # paints kept per diagram (a workflow cycles through a few states)

# Box-drawing glyphs by the directions a cell connects to.
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
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

ARROW_DOWN, ARROW_LEFT, ARROW_RIGHT = "▼", "◀", "▶"
LOOP = "↻"
PREVIOUS_MARK = "◆"

STYLE_BOX = "blue"
STYLE_EDGE = "bright_black"
STYLE_CURRENT_BOX = "bold yellow"
STYLE_CURRENT_LABEL = "bold reverse"
STYLE_PREVIOUS = "magenta"
STYLE_NEXT = "bold green"
STYLE_NEXT_EDGE = "green"
STYLE_LAST_MOVE = "magenta"
STYLE_NOTE = "dim"

# -- untrusted text ----------------------------------------------------------------------------


def clean(value: object, limit: int = MAX_NAME) -> str:
    """Printable one-line text (see ``tui.text``): at most ``limit`` characters, then …."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.translate(VISIBLE)


# -- layout ------------------------------------------------------------------------------------


class Virtual(NamedTuple):
    """Where the long move ``source -> target`` crosses layer ``layer`` (a vertical line)."""

    source: str
    target: str
    layer: int


Node = str | Virtual


@dataclass(frozen=True, slots=True)
class Layout:
    """States in layers and moves sorted by how they are drawn (see :func:`layout`)."""

    initial: str
    layers: tuple[tuple[str, ...], ...]  # states, top to bottom, each layer ordered
    rows: tuple[tuple[Node, ...], ...]  # the layers with Virtual points; () when not drawable
    forward: tuple[Edge, ...]  # to a later layer
    back: tuple[Edge, ...]  # to an earlier layer
    flat: tuple[Edge, ...]  # within a layer (only among unreachable states)
    loops: frozenset[str]  # states with a move to themselves
    targets: Mapping[str, tuple[str, ...]]  # every state -> its moves, in definition order
    unreachable: tuple[str, ...] = ()  # the last layer, when the initial state cannot reach it

    @property
    def drawable(self) -> bool:
        return bool(self.rows)

    @property
    def states(self) -> int:
        return len(self.targets)


def layout(transitions: Mapping[str, Iterable[str]], initial: str) -> Layout:
    """Layers of ``transitions`` (state -> allowed next states) from ``initial``.

    Runs in O(states + moves) for any definition (cycles included); the ordering sweeps run only
    when the workflow is small enough to draw (:data:`MAX_DRAWN_STATES`, :data:`MAX_SEGMENTS`).
    """
    graph: dict[str, tuple[str, ...]] = {}
    if isinstance(initial, str):
        graph[initial] = ()
    for state, targets in transitions.items():
        name = state if isinstance(state, str) else str(state)
        if isinstance(targets, str | bytes) or not isinstance(targets, Iterable):
            targets = ()
        moves = tuple(dict.fromkeys(t if isinstance(t, str) else str(t) for t in targets))
        graph[name] = moves
        for target in moves:
            graph.setdefault(target, ())
    if not isinstance(initial, str) or initial not in graph:
        initial = next(iter(graph), str(initial))
        graph.setdefault(initial, ())

    # Depth-first from the initial state: preorder, postorder and the back moves.
    on_path: dict[str, bool] = {initial: True}
    preorder = [initial]
    postorder: list[str] = []
    back_moves: set[Edge] = set()
    stack = [(initial, iter(graph[initial]))]
    while stack:
        node, moves = stack[-1]
        for target in moves:
            if target not in on_path:
                on_path[target] = True
                preorder.append(target)
                stack.append((target, iter(graph[target])))
                break
            if on_path[target]:
                back_moves.add((node, target))
        else:
            stack.pop()
            on_path[node] = False
            postorder.append(node)

    # Longest path over the DAG left without back moves (reverse postorder is topological).
    rank = dict.fromkeys(postorder, 0)
    for node in reversed(postorder):
        below = rank[node] + 1
        for target in graph[node]:
            if target != node and (node, target) not in back_moves and rank[target] < below:
                rank[target] = below
    depth = max(rank.values()) + 1
    unreachable = [state for state in graph if state not in rank]
    for state in unreachable:
        rank[state] = depth
    layers: list[list[str]] = [[] for _ in range(depth + (1 if unreachable else 0))]
    for state in itertools.chain(preorder, unreachable):
        layers[rank[state]].append(state)

    forward: list[Edge] = []
    back: list[Edge] = []
    flat: list[Edge] = []
    loops: set[str] = set()
    segments = 0
    for state, moves in graph.items():
        for target in moves:
            span = rank[target] - rank[state]
            if target == state:
                loops.add(state)
            elif span > 0:
                forward.append((state, target))
                segments += span
            elif span < 0:
                back.append((state, target))
            else:
                flat.append((state, target))

    rows: list[list[Node]] = []
    if len(graph) <= MAX_DRAWN_STATES and segments <= MAX_SEGMENTS:
        rows = _order(layers, forward, rank)
        if back and segments <= MAX_SEGMENTS_TO_SHUFFLE:
            rows = _ends(rows, back, _adjacency(forward, rank)[0])
        layers = [[n for n in row if isinstance(n, str)] for row in rows]
    return Layout(
        initial,
        tuple(tuple(layer) for layer in layers),
        tuple(tuple(row) for row in rows),
        tuple(forward),
        tuple(back),
        tuple(flat),
        frozenset(loops),
        graph,
        tuple(unreachable),
    )


def _chains(forward: Iterable[Edge], rank: Mapping[str, int]) -> Iterable[tuple[Edge, list[Node]]]:
    """Each forward move with the nodes it passes: source, Virtual points, target."""
    for source, target in forward:
        points = (Virtual(source, target, k) for k in range(rank[source] + 1, rank[target]))
        yield (source, target), [source, *points, target]


def _adjacency(
    forward: Iterable[Edge], rank: Mapping[str, int]
) -> tuple[dict[Node, list[Node]], dict[Node, list[Node]]]:
    down: dict[Node, list[Node]] = defaultdict(list)
    up: dict[Node, list[Node]] = defaultdict(list)
    for _, chain in _chains(forward, rank):
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    return down, up


def _order(layers: list[list[str]], forward: list[Edge], rank: dict[str, int]) -> list[list[Node]]:
    """Layers with Virtual points, ordered by barycenter sweeps (best of a few by crossings)."""
    rows: list[list[Node]] = [list(layer) for layer in layers]
    for _, chain in _chains(forward, rank):
        for point in chain[1:-1]:
            rows[point.layer].append(point)  # type: ignore[union-attr]
    down, up = _adjacency(forward, rank)

    def sweep(index: int, neighbours: dict[Node, list[Node]], other: list[Node]) -> None:
        at = {node: k for k, node in enumerate(other)}
        here = {node: k for k, node in enumerate(rows[index])}

        def barycenter(node: Node) -> float:
            near = [at[m] for m in neighbours.get(node, ()) if m in at]
            return sum(near) / len(near) if near else float(here[node])

        rows[index].sort(key=barycenter)

    best = [list(row) for row in rows]
    fewest = _crossings(rows, down)
    for _ in range(3):
        if fewest == 0:
            break
        for index in range(1, len(rows)):
            sweep(index, up, rows[index - 1])
        for index in range(len(rows) - 2, -1, -1):
            sweep(index, down, rows[index + 1])
        count = _crossings(rows, down)
        if count < fewest:
            best, fewest = [list(row) for row in rows], count
    return best


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


def _ends(
    rows: list[list[Node]], back: list[Edge], down: Mapping[Node, list[Node]]
) -> list[list[Node]]:
    """Move the ends of back moves to the ends of their rows, where a side channel can reach
    them, when that draws more back moves without adding crossings."""
    where = {n: i for i, row in enumerate(rows) for n in row if isinstance(n, str)}
    best = (_routable(rows, back), -_crossings(rows, down))
    for source, target in back[:16]:
        for at_end in (True, False):
            trial = [list(row) for row in rows]
            for state in (source, target):
                row = trial[where[state]]
                row.remove(state)
                row.insert(len(row) if at_end else 0, state)
            score = (_routable(trial, back), -_crossings(trial, down))
            if score > best:
                rows, best = trial, score
    return rows


def _crossings(rows: list[list[Node]], down: Mapping[Node, list[Node]]) -> int:
    total = 0
    for upper, lower in itertools.pairwise(rows):
        at = {node: k for k, node in enumerate(lower)}
        pairs = sorted((i, at[b]) for i, a in enumerate(upper) for b in down.get(a, ()) if b in at)
        for (i1, j1), (i2, j2) in itertools.combinations(pairs, 2):
            if i1 < i2 and j1 > j2:
                total += 1
    return total


# -- drawing -----------------------------------------------------------------------------------

Owner = tuple[str, str] | frozenset[Edge]  # ("box"|"label"|"pad", state) or the moves drawn there


class _Net(NamedTuple):
    """The lines into one target between two layers: exits above, one entry below."""

    target: Node
    entry: int
    exits: tuple[tuple[Edge, int], ...]  # (move, exit column)
    lo: int
    hi: int


class _Grid:
    """Cells by (row, column): line directions, fixed glyphs and what each cell belongs to."""

    def __init__(self) -> None:
        self.base: dict[tuple[int, int], int] = {}  # a box border's own directions
        self.extra: dict[tuple[int, int], int] = {}  # lines attached or passing
        self.glyph: dict[tuple[int, int], str] = {}  # text, arrows ("" = a wide char's tail)
        self.owner: dict[tuple[int, int], Owner] = {}

    def own(self, cell: tuple[int, int], edge: Edge) -> None:
        held = self.owner.get(cell)
        if not isinstance(held, frozenset):
            self.owner[cell] = frozenset((edge,)) if held is None else held
        elif edge not in held:
            self.owner[cell] = held | {edge}

    def line(self, y: int, x: int, mask: int, edge: Edge) -> None:
        cell = (y, x)
        self.extra[cell] = self.extra.get(cell, 0) | mask
        self.own(cell, edge)

    def vertical(self, x: int, top: int, bottom: int, edge: Edge) -> None:
        for y in range(top, bottom + 1):
            self.line(y, x, (DOWN if y < bottom else 0) | (UP if y > top else 0), edge)

    def horizontal(self, y: int, x1: int, x2: int, edge: Edge) -> None:
        lo, hi = min(x1, x2), max(x1, x2)
        for x in range(lo, hi + 1):
            self.line(y, x, (RIGHT if x < hi else 0) | (LEFT if x > lo else 0), edge)

    def text(self, y: int, x: int, text: str, owner: Owner) -> int:
        """Place ``text`` at (y, x); returns the cells used (wide characters take two)."""
        used = 0
        for char in text:
            size = get_character_cell_size(char)
            if size == 0:
                if used:  # a combining mark joins the previous character's cell
                    prev = (y, x + used - 1)
                    while self.glyph.get(prev) == "" and prev[1] > x:
                        prev = (y, prev[1] - 1)
                    self.glyph[prev] = self.glyph.get(prev, "") + char
                continue
            self.glyph[(y, x + used)] = char
            self.owner[(y, x + used)] = owner
            for k in range(1, size):
                self.glyph[(y, x + used + k)] = ""
                self.owner[(y, x + used + k)] = owner
            used += size
        return used


class Diagram:
    """A layout drawn for ``width`` cells; :meth:`paint` styles it (see the module doc)."""

    def __init__(self, graph: Layout, width: int) -> None:
        self.layout = graph
        self.width = max(int(width), 12)
        self.grid = _Grid()
        self.height = 0
        self.left = 0  # leftmost used column of the grid
        self.used = 0  # columns used
        self.unrouted: list[Edge] = []  # moves listed under the drawing
        self.pads: dict[str, tuple[int, int]] = {}  # each box's left padding cell
        self.boxes: dict[str, tuple[int, int, int]] = {}  # state -> (top row, left, width)
        self.drawn = self._build()
        self._painted: dict[tuple[object, ...], list[Text]] = {}

    # -- building ------------------------------------------------------------------------

    def _build(self) -> bool:
        graph = self.layout
        if not graph.rows:
            return False
        names = {s: clean(s) for s in graph.targets}
        sizes = {s: cell_len(name) for s, name in names.items()}
        rows = list(graph.rows)
        if graph.unreachable:  # nothing leads down into them: wrap them onto as many rows
            rows[-1:] = self._wrap(rows[-1], sizes, graph.loops, self.width)
        where: dict[Node, int] = {n: i for i, row in enumerate(rows) for n in row}
        rank = {n: i for n, i in where.items() if isinstance(n, str)}
        down, up = _adjacency(graph.forward, rank)

        # Back moves go up a side channel when both ends are the outermost boxes of their rows.
        last = [next((n for n in reversed(r) if isinstance(n, str)), None) for r in rows]
        first = [next((n for n in r if isinstance(n, str)), None) for r in rows]
        sides: dict[str, dict[str, list[str]]] = {"right": {}, "left": {}}
        unrouted = list(graph.flat)
        for source, target in graph.back:
            if last[where[source]] == source and last[where[target]] == target:
                sides["right"].setdefault(target, []).append(source)
            elif first[where[source]] == source and first[where[target]] == target:
                sides["left"].setdefault(target, []).append(source)
            else:
                unrouted.append((source, target))
        columns = {side: self._columns(nets, where) for side, nets in sides.items()}

        # Each row's longest label that fits; outer channel columns go before names get short.
        kr = max((k for *_, k in columns["right"]), default=-1) + 1
        kl = max((k for *_, k in columns["left"]), default=-1) + 1
        kr, kl = min(kr, MAX_CHANNELS), min(kl, MAX_CHANNELS)
        while True:
            area = self.width - 2 * (kr + kl) - (kr > 0) - (kl > 0)
            limits = [self._label_limit(row, sizes, area, graph.loops) for row in rows]
            if all(limit is not None for limit in limits) and (
                kr + kl == 0
                or all(
                    limit >= min(COMFORT_LABEL, max(sizes[n] for n in row if isinstance(n, str)))
                    for limit, row in zip(limits, rows, strict=True)
                    if limit is not None and any(isinstance(n, str) for n in row)
                )
            ):
                break
            if kr + kl == 0:
                return False
            if kr >= kl:
                kr -= 1
            else:
                kl -= 1
        for side, keep in (("right", kr), ("left", kl)):
            for target, sources, k in columns[side]:
                if k >= keep:
                    unrouted.extend((s, target) for s in sources)
            columns[side] = [c for c in columns[side] if c[2] < keep]

        # Columns: each node's left edge and width; a box's entry is its centre column.
        width: dict[Node, int] = {}
        labels: dict[str, str] = {}
        for node in where:
            if isinstance(node, str):
                labels[node] = fit(names[node], limits[where[node]] or MIN_LABEL)
                width[node] = cell_len(labels[node]) + 4 + (2 if node in graph.loops else 0)
            else:
                width[node] = 1
        left: dict[Node, int] = {}
        centre: dict[Node, int] = {}
        # Down (under the nodes above), up (over the nodes below), down again: each pass puts a
        # node at the mean of its neighbours' centres, keeping the order, one cell apart.
        passes = [(range(len(rows)), up), (range(len(rows) - 2, -1, -1), down)]
        for order, neighbours in (*passes, passes[0]):
            for index in order:
                row = rows[index]
                desired: list[int | None] = []
                for node in row:
                    near = [centre[m] for m in neighbours.get(node, ()) if m in centre]
                    if near:
                        desired.append(int(sum(near) / len(near) + 0.5) - width[node] // 2)
                    else:
                        desired.append(left.get(node))
                widths = [width[n] for n in row]
                for node, x in zip(row, _place(desired, widths, area), strict=True):
                    left[node] = x
                    centre[node] = x + width[node] // 2

        ports = self._ports(rows, down, left, width, centre)

        # Rows: each layer is three rows high, then its gap: one track per net, then arrows.
        gaps: list[list[tuple[_Net, int]]] = []
        straight: list[list[tuple[Edge, Node, int]]] = []
        top = [0]
        for index in range(len(rows) - 1):
            nets, lines = self._gap(rows[index], down, ports, centre)
            gaps.append(nets)
            straight.append(lines)
            tracks = max((t for _, t in nets), default=-1) + 1
            top.append(top[-1] + 3 + tracks + 1)
        self.height = top[-1] + 3
        if self.height > MAX_DIAGRAM_ROWS:
            return False

        grid = self.grid
        for node, index in where.items():
            y, x = top[index], left[node]
            if isinstance(node, Virtual):
                for k in range(3):
                    grid.line(y + k, x, UP | DOWN, (node.source, node.target))
            else:
                self._box(node, y, x, width[node], labels[node], node in graph.loops)
        for index, nets in enumerate(gaps):
            below = top[index] + 2  # the upper layer's bottom row
            arrow = top[index + 1] - 1
            for edge, target, x in straight[index]:
                self._arrive(target, x, below, arrow, edge)
            for net, track in nets:
                y = below + 1 + track
                for edge, x in net.exits:
                    grid.vertical(x, below, y, edge)
                    grid.horizontal(y, x, net.entry, edge)
                for edge, _ in net.exits:
                    self._arrive(net.target, net.entry, y, arrow, edge)

        right_edge = max(left[n] + width[n] - 1 for n in where)
        left_edge = min(left.values())
        into = {side: {t for t, _, _ in nets} for side, nets in columns.items()}
        for side, nets in columns.items():
            for target, sources, k in nets:
                self._channel(side, target, sources, k, into[side], left_edge, right_edge)

        if graph.unreachable:  # say why the last boxes have no way in
            first_row = where[graph.unreachable[0]]
            note = fit("┄ unreachable ┄", right_edge - left_edge + 1)
            x = left_edge + (right_edge - left_edge + 1 - cell_len(note)) // 2
            grid.text(top[first_row] - 1, x, note, ("note", ""))

        xs = [x for _, x in itertools.chain(grid.base, grid.extra, grid.glyph)]
        self.left = min(xs)
        self.used = max(xs) - self.left + 1
        self.unrouted = unrouted
        return True

    @staticmethod
    def _columns(
        nets: Mapping[str, list[str]], where: Mapping[Node, int]
    ) -> list[tuple[str, list[str], int]]:
        """A channel column for each target's back moves; short spans nearest the boxes."""
        placed: list[list[tuple[int, int]]] = []
        result = []
        spans = {t: (where[t], max(where[s] for s in sources)) for t, sources in nets.items()}
        for target in sorted(nets, key=lambda t: (spans[t][1] - spans[t][0], spans[t][0])):
            lo, hi = spans[target]
            free = (k for k, used in enumerate(placed) if all(hi < a or lo > b for a, b in used))
            k = next(free, len(placed))
            if k == len(placed):
                placed.append([])
            placed[k].append((lo, hi))
            result.append((target, nets[target], k))
        return result

    @staticmethod
    def _box_width(state: str, sizes: Mapping[str, int], limit: int, loops: Collection[str]) -> int:
        return min(sizes[state], limit) + 4 + (2 if state in loops else 0)

    @classmethod
    def _label_limit(
        cls, row: Iterable[Node], sizes: Mapping[str, int], area: int, loops: Collection[str]
    ) -> int | None:
        """The longest name (in cells) the row fits in ``area`` with; None if below MIN."""
        row = list(row)
        states = [n for n in row if isinstance(n, str)]
        points = len(row) - len(states)
        longest = max((sizes[s] for s in states), default=MIN_LABEL)
        for limit in range(max(longest, MIN_LABEL), MIN_LABEL - 1, -1):
            used = sum(cls._box_width(s, sizes, limit, loops) for s in states)
            if used + points + len(row) - 1 <= area:
                return limit
        return None

    @classmethod
    def _wrap(
        cls, row: Iterable[Node], sizes: Mapping[str, int], loops: Collection[str], width: int
    ) -> list[tuple[Node, ...]]:
        """A row of boxes split into rows that fit ``width`` with their names whole."""
        limit = max(MIN_LABEL, width - 8)
        rows: list[list[Node]] = [[]]
        used = 0
        for state in row:
            size = cls._box_width(state, sizes, limit, loops) if isinstance(state, str) else 1
            if rows[-1] and used + 1 + size > width:
                rows.append([])
                used = 0
            used += size + (1 if len(rows[-1]) else 0)
            rows[-1].append(state)
        return [tuple(r) for r in rows]

    @staticmethod
    def _ports(
        rows: tuple[tuple[Node, ...], ...],
        down: Mapping[Node, list[Node]],
        left: Mapping[Node, int],
        width: Mapping[Node, int],
        centre: Mapping[Node, int],
    ) -> dict[tuple[Node, Node], int]:
        """Exit column of each line leaving a box: under its target if it can, else nearest."""
        ports: dict[tuple[Node, Node], int] = {}
        for row in rows:
            for node in row:
                targets = sorted(down.get(node, ()), key=lambda t: centre[t])
                if isinstance(node, Virtual):
                    for target in targets:
                        ports[(node, target)] = left[node]
                    continue
                lo, hi = left[node] + 1, left[node] + width[node] - 2
                wanted = [min(max(centre[t], lo), hi) for t in targets]
                # Two cells apart reads best, unless it shifts a line one column off its
                # target (a tiny └┐ jog); then one apart; never more ports than cells.
                entries = [centre[t] for t in targets]
                options = [p for p in (_spread(wanted, lo, hi, k) for k in (2, 1)) if p is not None]
                placed = min(
                    options,
                    key=lambda p: sum(abs(x - e) == 1 for x, e in zip(p, entries, strict=True)),
                    default=_spread(wanted, lo, hi, 0),
                )
                for target, x in zip(targets, placed or wanted, strict=True):
                    ports[(node, target)] = x
        return ports

    @staticmethod
    def _gap(
        row: tuple[Node, ...],
        down: Mapping[Node, list[Node]],
        ports: Mapping[tuple[Node, Node], int],
        centre: Mapping[Node, int],
    ) -> tuple[list[tuple[_Net, int]], list[tuple[Edge, Node, int]]]:
        """The nets below ``row`` with their track, and the lines that go straight down."""
        incoming: dict[Node, list[tuple[Edge, int]]] = {}
        for node in row:
            for target in down.get(node, ()):
                edge = _edge_of(node, target)
                incoming.setdefault(target, []).append((edge, ports[(node, target)]))
        nets: list[_Net] = []
        lines: list[tuple[Edge, Node, int]] = []
        for target, exits in incoming.items():
            entry = centre[target]
            if all(x == entry for _, x in exits):
                lines.extend((edge, target, x) for edge, x in exits)
                continue
            xs = [x for _, x in exits] + [entry]
            nets.append(_Net(target, entry, tuple(exits), min(xs), max(xs)))
        return _tracks(nets), lines

    def _box(self, state: str, y: int, x: int, width: int, label: str, loop: bool) -> None:
        grid = self.grid
        right = x + width - 1
        box = ("box", state)
        for cx in range(x, right + 1):
            edge = LEFT | RIGHT
            grid.base[(y, cx)] = (
                (DOWN | RIGHT) if cx == x else (DOWN | LEFT) if cx == right else edge
            )
            grid.base[(y + 2, cx)] = (
                (UP | RIGHT) if cx == x else (UP | LEFT) if cx == right else edge
            )
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
        self.pads[state] = (y + 1, x + 1)
        self.boxes[state] = (y, x, width)

    def _arrive(self, target: Node, x: int, y: int, arrow: int, edge: Edge) -> None:
        """The last stretch of a line: down to the arrow row, into a box or on through a point."""
        if isinstance(target, Virtual):
            self.grid.vertical(x, y, arrow + 1, edge)
        else:
            self.grid.vertical(x, y, arrow, edge)
            self.grid.glyph[(arrow, x)] = ARROW_DOWN

    def _channel(
        self,
        side: str,
        target: str,
        sources: list[str],
        k: int,
        targets_here: set[str],
        left_edge: int,
        right_edge: int,
    ) -> None:
        """Back moves into ``target`` along column ``k`` of a side channel."""
        grid = self.grid
        ty, bx, bw = self.boxes[target]
        ty += 1
        if side == "right":
            column = right_edge + 3 + 2 * k
            arrow, mark = bx + bw, ARROW_LEFT
        else:
            column = left_edge - 3 - 2 * k
            arrow, mark = bx - 1, ARROW_RIGHT
        for source in sources:
            edge = (source, target)
            sy, sx, sw = self.boxes[source]
            # A box that also receives back moves on this side sends from its bottom corner.
            sy += 2 if source in targets_here else 1
            exit_x = sx + sw - 1 if side == "right" else sx
            grid.horizontal(ty, arrow, column, edge)
            grid.vertical(column, ty, sy, edge)
            grid.horizontal(sy, exit_x, column, edge)
            grid.owner[(sy, exit_x)] = ("box", source)
        grid.glyph[(ty, arrow)] = mark

    # -- painting ------------------------------------------------------------------------

    def paint(
        self,
        current: str | None = None,
        previous: str | None = None,
        next_states: Iterable[str] = (),
    ) -> list[Text]:
        """The drawing (or list) styled for these states, one Text per line (do not mutate)."""
        upcoming = frozenset(s for s in next_states if isinstance(s, str))
        key = (current, previous, upcoming)
        lines = self._painted.get(key)
        if lines is not None:
            return lines
        if self.drawn:
            lines = self._paint_grid(current, previous, upcoming)
            lines.extend(self._paint_notes(current))
        else:
            lines = self._paint_list(current, previous, upcoming)
        if len(self._painted) >= PAINT_CACHE:
            del self._painted[next(iter(self._painted))]
        self._painted[key] = lines
        return lines

    def _paint_grid(
        self, current: str | None, previous: str | None, upcoming: frozenset[str]
    ) -> list[Text]:
        grid = self.grid
        if previous == current:
            previous = None
        last_move = (previous, current)
        offset = max(0, (self.width - self.used) // 2)
        styles: dict[Owner, str] = {}

        def style_of(owner: Owner | None) -> str:
            if owner is None:
                return ""
            style = styles.get(owner)
            if style is None:
                if isinstance(owner, frozenset):
                    if any(source == current for source, _ in owner):
                        style = STYLE_NEXT_EDGE
                    elif last_move in owner:
                        style = STYLE_LAST_MOVE
                    else:
                        style = STYLE_EDGE
                else:
                    part, state = owner
                    if part == "note":
                        style = STYLE_NOTE
                    elif state == current:
                        style = STYLE_CURRENT_BOX if part == "box" else STYLE_CURRENT_LABEL
                    elif state == previous:
                        style = STYLE_PREVIOUS
                    elif state in upcoming:
                        style = STYLE_NEXT
                    else:
                        style = STYLE_BOX if part == "box" else ""
                styles[owner] = style
            return style

        previous_pad = self.pads.get(previous) if previous is not None else None
        lines: list[Text] = []
        for y in range(self.height):
            line = Text(" " * offset, no_wrap=True, overflow="crop")
            run: list[str] = []
            run_style = ""
            for x in range(self.left, self.left + self.used):
                cell = (y, x)
                owner = grid.owner.get(cell)
                glyph = grid.glyph.get(cell)
                if glyph is None:
                    base, extra = grid.base.get(cell, 0), grid.extra.get(cell, 0)
                    if owner == ("box", current) and current is not None:
                        glyph = HEAVY.get((base, extra)) or LIGHT[base | extra]
                    else:
                        glyph = LIGHT[base | extra]
                elif cell == previous_pad:
                    glyph = PREVIOUS_MARK
                style = style_of(owner) if glyph.strip() or owner is not None else ""
                if style != run_style and run:
                    line.append("".join(run), run_style)
                    run = []
                run_style = style
                run.append(glyph)
            if run:
                line.append("".join(run), run_style)
            line.rstrip()
            lines.append(line)
        return lines

    def _paint_notes(self, current: str | None) -> list[Text]:
        """Moves the drawing leaves out, by source: ``↺ review → coding, planning``."""
        by_source: dict[str, list[str]] = {}
        for source, target in self.unrouted:
            by_source.setdefault(source, []).append(target)
        lines = []
        for source, targets in by_source.items():
            style = STYLE_NEXT_EDGE if source == current else STYLE_NOTE
            line = Text("↺ ", style=style, no_wrap=True, overflow="ellipsis")
            line.append(clean(source))
            line.append(" → ")
            line.append(", ".join(clean(t) for t in targets))
            line.truncate(self.width, overflow="ellipsis")
            lines.append(line)
        return lines

    def _paint_list(
        self, current: str | None, previous: str | None, upcoming: frozenset[str]
    ) -> list[Text]:
        """The fallback: one line per state, ``marker name → targets``, in layer order."""
        graph = self.layout
        order = [s for layer in graph.layers for s in layer]
        shown = order[:LIST_LIMIT]
        if current in graph.targets and current not in shown:
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
            line.append(fit(clean(state), max(8, self.width // 2)), style)
            moves = graph.targets.get(state, ())
            if moves:
                line.append(" → ", STYLE_NOTE)
                line.append(
                    ", ".join(clean(t, 32) for t in moves[:20])
                    + (", …" if len(moves) > 20 else ""),
                    STYLE_NEXT_EDGE if state == current else STYLE_NOTE,
                )
            line.truncate(self.width, overflow="ellipsis")
            lines.append(line)
        hidden = len(order) - LIST_LIMIT
        if hidden > 0:
            lines.insert(LIST_LIMIT, Text(f"  … {hidden} more states", style=STYLE_NOTE))
        return lines


def _edge_of(node: Node, target: Node) -> Edge:
    """The move a segment between adjacent layers belongs to."""
    if isinstance(node, Virtual):
        return (node.source, node.target)
    if isinstance(target, Virtual):
        return (target.source, target.target)
    return (node, target)


def _place(desired: list[int | None], widths: list[int], area: int) -> list[int]:
    """Left columns for a row's nodes in order: near ``desired``, one apart, within ``area``."""
    total = sum(widths) + len(widths) - 1
    if all(d is None for d in desired):
        start = max(0, (area - total) // 2)
        desired = []
        for w in widths:
            desired.append(start)
            start += w + 1
    x: list[int] = []
    for k, d in enumerate(desired):
        after = x[k - 1] + widths[k - 1] + 1 if k else 0
        x.append(max(after, d if d is not None else after))
    if x and x[-1] + widths[-1] > area:
        x[-1] = area - widths[-1]
        for k in range(len(x) - 2, -1, -1):
            x[k] = min(x[k], x[k + 1] - 1 - widths[k])
    if x and x[0] < 0:
        x[0] = 0
        for k in range(1, len(x)):
            x[k] = max(x[k], x[k - 1] + widths[k - 1] + 1)
    return x


def _spread(wanted: list[int], lo: int, hi: int, spacing: int) -> list[int] | None:
    """Columns near ``wanted`` (sorted), ``spacing`` apart, within [lo, hi]; None if no room."""
    placed: list[int] = []
    for x in wanted:
        placed.append(max(x, placed[-1] + spacing) if placed else x)
    if placed and placed[-1] > hi:
        placed[-1] = hi
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - spacing)
    if placed and placed[0] < lo:
        return None
    return placed


def _tracks(nets: list[_Net]) -> list[tuple[_Net, int]]:
    """A horizontal track for each net: an order that crosses least, packed where disjoint."""
    if not nets:
        return []

    def cost(a: _Net, b: _Net) -> int:  # a's track above b's
        if a.hi < b.lo or b.hi < a.lo:
            return 0
        total = int(b.lo < a.entry < b.hi)  # b's line across a's way down
        for _, x in b.exits:
            if x == a.entry:
                total += 100  # b's way down would merge into a's: never
            elif a.lo < x < a.hi:
                total += 1
        return total

    n = len(nets)
    pair = [[cost(nets[i], nets[j]) if i != j else 0 for j in range(n)] for i in range(n)]
    if n <= 6:
        order = min(
            itertools.permutations(range(n)),
            key=lambda p: sum(pair[p[i]][p[j]] for i in range(n) for j in range(i + 1, n)),
        )
    else:
        order = tuple(sorted(range(n), key=lambda i: nets[i].hi - nets[i].lo))
    track: dict[int, int] = {}
    for k, i in enumerate(order):
        clash = [
            track[j]
            for j in order[:k]
            if nets[j].lo <= nets[i].hi + 1 and nets[i].lo <= nets[j].hi + 1
        ]
        track[i] = max(clash) + 1 if clash else 0
    return [(nets[i], track[i]) for i in order]


def draw(
    transitions: Mapping[str, Iterable[str]],
    initial: str,
    width: int,
    *,
    current: str | None = None,
    previous: str | None = None,
    next_states: Iterable[str] = (),
) -> list[Text]:
    """Convenience: lay out, draw and paint in one call (the pane caches the steps)."""
    return Diagram(layout(transitions, initial), width).paint(current, previous, next_states)
