"""Step 5: which way each line goes: back moves up a side channel, forward moves down a gap.

Back moves (up to an earlier layer) run in *channels*, columns beside the boxes: out of the side
of the source box, up the column, into the side of the target box. A channel can only reach a
box that is the outermost one of its row on that side, so a back move goes right when both its
ends are the last boxes of their rows, else left when both are the first, else it is *unrouted*
(listed under the drawing). All back moves into one target share a column; targets whose spans
of rows do not overlap share one, the shortest spans nearest the boxes.

Forward moves run down the gap between two adjacent rows. Each line leaves its box at a *port*
(a column on the bottom border, under its target when it can be, spread apart otherwise). All
the lines into one target form a *net*: down from their ports to one horizontal *track*, along
it, and down into the target's centre. A net whose lines all leave right above the target needs
no track. Tracks are ordered so that nets cross least, and nets that do not overlap share one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .model import Edge, Node, Virtual, move_of

MAX_CHANNELS = 4  # back-move columns per side
SIDES = ("right", "left")  # the order sides are tried, given up and drawn in

# -- back moves: side channels ---------------------------------------------------------------


class Channel(NamedTuple):
    """The back moves into ``target`` (from ``sources``), in column ``column`` of a side."""

    target: str
    sources: list[str]
    column: int  # 0 is nearest the boxes


def split_back_moves(
    back: Sequence[Edge], rows: Sequence[tuple[Node, ...]], where: Mapping[Node, int]
) -> tuple[dict[str, dict[str, list[str]]], list[Edge]]:
    """The back moves each side's channels can reach (side -> target -> sources), and the
    others, in definition order."""
    last = [next((n for n in reversed(r) if isinstance(n, str)), None) for r in rows]
    first = [next((n for n in r if isinstance(n, str)), None) for r in rows]
    sides: dict[str, dict[str, list[str]]] = {side: {} for side in SIDES}
    unrouted: list[Edge] = []
    for source, target in back:
        if last[where[source]] == source and last[where[target]] == target:
            sides["right"].setdefault(target, []).append(source)
        elif first[where[source]] == source and first[where[target]] == target:
            sides["left"].setdefault(target, []).append(source)
        else:
            unrouted.append((source, target))
    return sides, unrouted


def channel_columns(nets: Mapping[str, list[str]], where: Mapping[Node, int]) -> list[Channel]:
    """A channel column for each target's back moves; short spans nearest the boxes."""
    placed: list[list[tuple[int, int]]] = []  # per column: the spans of rows it carries
    result = []
    spans = {t: (where[t], max(where[s] for s in sources)) for t, sources in nets.items()}
    for target in sorted(nets, key=lambda t: (spans[t][1] - spans[t][0], spans[t][0])):
        lo, hi = spans[target]
        free = (k for k, used in enumerate(placed) if all(hi < a or lo > b for a, b in used))
        k = next(free, len(placed))
        if k == len(placed):
            placed.append([])
        placed[k].append((lo, hi))
        result.append(Channel(target, nets[target], k))
    return result


def columns_wanted(channels: Sequence[Channel]) -> int:
    """The columns a side's channels need, at most :data:`MAX_CHANNELS`."""
    return min(max((c.column for c in channels), default=-1) + 1, MAX_CHANNELS)


def keep_columns(channels: Sequence[Channel], keep: int) -> tuple[list[Channel], list[Edge]]:
    """The channels in the first ``keep`` columns, and the moves of the others."""
    dropped = [(s, c.target) for c in channels if c.column >= keep for s in c.sources]
    return [c for c in channels if c.column < keep], dropped


# -- forward moves: ports, nets and tracks ---------------------------------------------------


class Net(NamedTuple):
    """The lines into one target between two layers: exits above, one entry below."""

    target: Node
    entry: int
    exits: tuple[tuple[Edge, int], ...]  # (move, exit column)
    lo: int
    hi: int


class Gap(NamedTuple):
    """The lines between a row and the next: nets on their tracks, and straight drops."""

    nets: list[tuple[Net, int]]  # (net, track); track 0 is the top one
    straight: list[tuple[Edge, Node, int]]  # (move, target, column): no turn on the way down

    @property
    def tracks(self) -> int:
        return max((t for _, t in self.nets), default=-1) + 1


def exit_ports(
    rows: Sequence[tuple[Node, ...]],
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
            if isinstance(node, Virtual):  # a passing line goes straight on
                for target in targets:
                    ports[(node, target)] = left[node]
                continue
            lo, hi = left[node] + 1, left[node] + width[node] - 2  # inside the corners
            columns = _box_ports([centre[t] for t in targets], lo, hi)
            for target, x in zip(targets, columns, strict=True):
                ports[(node, target)] = x
    return ports


def _box_ports(entries: list[int], lo: int, hi: int) -> list[int]:
    """Exit columns within [lo, hi] for lines into targets entered at ``entries`` (sorted)."""
    wanted = [min(max(entry, lo), hi) for entry in entries]
    # Two cells apart reads best, unless it shifts a line one column off its
    # target (a tiny └┐ jog); then one apart; never more ports than cells.
    options = [p for p in (_spread(wanted, lo, hi, k) for k in (2, 1)) if p is not None]
    placed = min(
        options,
        key=lambda p: sum(abs(x - e) == 1 for x, e in zip(p, entries, strict=True)),
        default=_spread(wanted, lo, hi, 0),
    )
    return placed or wanted


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


def route_gap(
    row: tuple[Node, ...],
    down: Mapping[Node, list[Node]],
    ports: Mapping[tuple[Node, Node], int],
    centre: Mapping[Node, int],
) -> Gap:
    """The nets below ``row`` with their track, and the lines that go straight down."""
    incoming: dict[Node, list[tuple[Edge, int]]] = {}
    for node in row:
        for target in down.get(node, ()):
            edge = move_of(node, target)
            incoming.setdefault(target, []).append((edge, ports[(node, target)]))
    nets: list[Net] = []
    lines: list[tuple[Edge, Node, int]] = []
    for target, exits in incoming.items():
        entry = centre[target]
        if all(x == entry for _, x in exits):
            lines.extend((edge, target, x) for edge, x in exits)
            continue
        xs = [x for _, x in exits] + [entry]
        nets.append(Net(target, entry, tuple(exits), min(xs), max(xs)))
    return Gap(_tracks(nets), lines)


def _tracks(nets: list[Net]) -> list[tuple[Net, int]]:
    """A horizontal track for each net: an order that crosses least, packed where disjoint."""
    if not nets:
        return []
    n = len(nets)
    pair = [[_cost(nets[i], nets[j]) if i != j else 0 for j in range(n)] for i in range(n)]
    if n <= 6:  # try every order (720 at most)
        order = min(
            itertools.permutations(range(n)),
            key=lambda p: sum(pair[p[i]][p[j]] for i in range(n) for j in range(i + 1, n)),
        )
    else:  # narrow nets first
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


def _cost(a: Net, b: Net) -> int:
    """The crossings of putting ``a``'s track above ``b``'s."""
    if a.hi < b.lo or b.hi < a.lo:
        return 0
    total = int(b.lo < a.entry < b.hi)  # b's line across a's way down
    for _, x in b.exits:
        if x == a.entry:
            total += 100  # b's way down would merge into a's: never
        elif a.lo < x < a.hi:
            total += 1
    return total
