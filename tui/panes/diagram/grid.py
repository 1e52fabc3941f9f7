"""The canvas the drawing steps write to and :mod:`.paint` reads: cells by (row, column).

A cell does not hold a glyph for a line but the *directions* it connects to (:data:`UP`,
:data:`DOWN`, :data:`LEFT`, :data:`RIGHT`), so lines that meet or cross merge into the right
box-drawing character (``├``, ``┼``) whatever order they were drawn in, and the current
state's box can be repainted heavy (``┏``, ``┝``) at paint time. Text and arrow heads are fixed
glyphs. Every cell also records what it belongs to, its *owner*: a state's box, name or
padding, a note, or the set of moves drawn through it, which is how painting colours a line by
the moves it carries.
Columns may be negative (a left side channel); painting crops to the columns used.
"""

from __future__ import annotations

from rich.cells import get_character_cell_size

from .model import Edge

UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8

Cell = tuple[int, int]  # (row, column)
Owner = tuple[str, str] | frozenset[Edge]  # ("box"|"label"|"pad", state) or the moves drawn there


class Grid:
    """Cells by (row, column): line directions, fixed glyphs and what each cell belongs to."""

    def __init__(self) -> None:
        self.base: dict[Cell, int] = {}  # a box border's own directions
        self.extra: dict[Cell, int] = {}  # lines attached or passing
        self.glyph: dict[Cell, str] = {}  # text, arrows ("" = a wide char's tail)
        self.owner: dict[Cell, Owner] = {}

    def own(self, cell: Cell, edge: Edge) -> None:
        """Record that ``edge`` is drawn through ``cell`` (a box or text keeps the cell)."""
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

    def columns(self) -> tuple[int, int]:
        """The leftmost column drawn on and how many columns from there to the rightmost."""
        xs = [x for _, x in (*self.base, *self.extra, *self.glyph)]
        left = min(xs)
        return left, max(xs) - left + 1
