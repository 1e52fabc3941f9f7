"""The vocabulary every step shares: moves, the points a long move passes, a layout, and names.

A workflow definition is a graph of states (strings) and moves (``Edge``: source, target). The
layering step (:mod:`.layers`) turns it into a :class:`Layout`; every later step only reads it.
Lines are drawn between adjacent layers only, so a move that spans several layers is split into
*segments* through one :class:`Virtual` point per layer it crosses; :func:`adjacency` is that
graph of segments, which the ordering, placement and routing steps all walk.

State names are untrusted text from the store: :func:`clean` makes one printable before it is
measured or drawn.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from ...text import VISIBLE

Edge = tuple[str, str]

MAX_NAME = 128  # characters of a name kept before cropping (names are at most 256)


def clean(value: object, limit: int = MAX_NAME) -> str:
    """Printable one-line text (see ``tui.text``): at most ``limit`` characters, then …."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.translate(VISIBLE)


class Virtual(NamedTuple):
    """Where the long move ``source -> target`` crosses layer ``layer`` (a vertical line)."""

    source: str
    target: str
    layer: int


Node = str | Virtual  # what a row holds: a state's box, or a long move passing through


@dataclass(frozen=True, slots=True)
class Layout:
    """States in layers and moves sorted by how they are drawn (see :func:`.layers.layout`)."""

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


def virtual_points(move: Edge, rank: Mapping[str, int]) -> list[Virtual]:
    """The points a forward move passes, one per layer strictly between its two ends."""
    source, target = move
    return [Virtual(source, target, k) for k in range(rank[source] + 1, rank[target])]


def adjacency(
    forward: Iterable[Edge], rank: Mapping[str, int]
) -> tuple[dict[Node, list[Node]], dict[Node, list[Node]]]:
    """The segments of the forward moves between adjacent layers, as (down, up) neighbours."""
    down: dict[Node, list[Node]] = defaultdict(list)
    up: dict[Node, list[Node]] = defaultdict(list)
    for move in forward:
        source, target = move
        chain: list[Node] = [source, *virtual_points(move, rank), target]
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    return down, up


def move_of(node: Node, target: Node) -> Edge:
    """The move the segment ``node -> target`` (between adjacent layers) belongs to."""
    if isinstance(node, Virtual):
        return (node.source, node.target)
    if isinstance(target, Virtual):
        return (target.source, target.target)
    return (node, target)
