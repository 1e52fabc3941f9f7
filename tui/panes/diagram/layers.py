"""Step 1: put each state in a layer (a row of boxes), so that most moves point down.

This is the first step of a small Sugiyama-style layout. A depth-first search from the initial
state finds the *back* moves (to a state still on the search path, e.g. testing -> coding):
without them the moves form a DAG, and the longest path from the initial state gives each state
its layer, so every remaining move points strictly down. States the initial one cannot reach go
in one last layer. Every move is then sorted by how it will be drawn: forward (down, between
layers), back (up, in a side channel), flat (within the last layer) or a loop (``↻`` in the box).

When the workflow is small enough to draw, :mod:`.ordering` then orders each layer; a bigger one
keeps the search order and is shown as a list. Everything here is O(states + moves), whatever the
definition holds (cycles, unknown targets, non-string names).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .model import Edge, Layout, Node, adjacency
from .ordering import move_back_ends_outward, order_rows

MAX_DRAWN_STATES = 32  # more than this is a list: a 40-column diagram of them would be noise
MAX_SEGMENTS = 160  # forward line segments between adjacent layers (long moves count per layer)
MAX_SEGMENTS_TO_SHUFFLE = 64  # above this, no search for side-channel room for back moves

Graph = dict[str, tuple[str, ...]]  # state -> its moves, every target a state too


class _Search(NamedTuple):
    """What the depth-first search from the initial state found."""

    preorder: list[str]  # the order states were first reached: each layer's initial order
    postorder: list[str]  # reversed, a topological order of the DAG without the back moves
    back_moves: set[Edge]


class _Moves(NamedTuple):
    """Every move, sorted by how it is drawn."""

    forward: list[Edge]
    back: list[Edge]
    flat: list[Edge]
    loops: set[str]
    segments: int  # forward line segments between adjacent layers: the drawing's size


def layout(transitions: Mapping[str, Iterable[str]], initial: str) -> Layout:
    """Layers of ``transitions`` (state -> allowed next states) from ``initial``.

    Runs in O(states + moves) for any definition (cycles included); the ordering sweeps run only
    when the workflow is small enough to draw (:data:`MAX_DRAWN_STATES`, :data:`MAX_SEGMENTS`).
    """
    graph, initial = _graph(transitions, initial)
    search = _depth_first(graph, initial)
    rank = _longest_paths(graph, search)
    depth = max(rank.values()) + 1
    unreachable = [state for state in graph if state not in rank]
    rank.update(dict.fromkeys(unreachable, depth))
    layers: list[list[str]] = [[] for _ in range(depth + (1 if unreachable else 0))]
    for state in itertools.chain(search.preorder, unreachable):
        layers[rank[state]].append(state)
    moves = _sort_moves(graph, rank)

    rows: list[list[Node]] = []
    if len(graph) <= MAX_DRAWN_STATES and moves.segments <= MAX_SEGMENTS:
        rows = order_rows(layers, moves.forward, rank)
        if moves.back and moves.segments <= MAX_SEGMENTS_TO_SHUFFLE:
            down = adjacency(moves.forward, rank)[0]
            rows = move_back_ends_outward(rows, moves.back, down)
        layers = [[n for n in row if isinstance(n, str)] for row in rows]
    return Layout(
        initial,
        tuple(tuple(layer) for layer in layers),
        tuple(tuple(row) for row in rows),
        tuple(moves.forward),
        tuple(moves.back),
        tuple(moves.flat),
        frozenset(moves.loops),
        graph,
        tuple(unreachable),
    )


def _graph(transitions: Mapping[str, Iterable[str]], initial: str) -> tuple[Graph, str]:
    """The definition as it is drawn: names as strings, each state's moves without repeats,
    every target a state of its own, and an initial state that is one of them."""
    graph: Graph = {}
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
    return graph, initial


def _depth_first(graph: Graph, initial: str) -> _Search:
    """An iterative depth-first search (no recursion limit on long chains) from ``initial``."""
    on_path: dict[str, bool] = {initial: True}  # reached; True while on the current path
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
    return _Search(preorder, postorder, back_moves)


def _longest_paths(graph: Graph, search: _Search) -> dict[str, int]:
    """Each reachable state's layer: its longest path from the initial state, without back
    moves (so every other move goes down at least one layer)."""
    rank = dict.fromkeys(search.postorder, 0)
    for node in reversed(search.postorder):  # topological: a node's rank is final when reached
        below = rank[node] + 1
        for target in graph[node]:
            if target != node and (node, target) not in search.back_moves and rank[target] < below:
                rank[target] = below
    return rank


def _sort_moves(graph: Graph, rank: Mapping[str, int]) -> _Moves:
    """Each move by the way its layers point: down, up, level, or to the same state."""
    moves = _Moves([], [], [], set(), 0)
    segments = 0
    for state, targets in graph.items():
        for target in targets:
            span = rank[target] - rank[state]
            if target == state:
                moves.loops.add(state)
            elif span > 0:
                moves.forward.append((state, target))
                segments += span
            elif span < 0:
                moves.back.append((state, target))
            else:
                moves.flat.append((state, target))
    return moves._replace(segments=segments)
