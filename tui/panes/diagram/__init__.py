"""Pure layout and drawing of a workflow diagram: states as boxes in layers, moves as lines.

A workflow (state -> allowed next states) is drawn in steps, one module each:

1. :mod:`.layers` -- :func:`layout` puts each state in a layer so that most moves point down,
   and sorts the moves into forward, back, flat and loops;
2. :mod:`.ordering` -- orders each layer so that few lines cross;
3. :mod:`.sizing` -- how long a name each row can show and how many side channels fit;
4. :mod:`.placement` -- each box's column, each layer's row;
5. :mod:`.routing` -- back moves into side channels, forward moves onto ports and tracks;
6. :mod:`.drawing` -- boxes, lines and arrows onto a :class:`~.grid.Grid` of cells;
7. :mod:`.paint` -- the cells as styled text for the current, previous and next states.

:mod:`.model` holds what the steps share, and :mod:`.build` runs steps 3 to 6. A
:class:`Diagram` is built once per definition and width (steps 3-6 run in its constructor);
:meth:`Diagram.paint` styles it for a current, previous and next states, which is cheap and
cached. Whatever cannot be drawn cleanly is listed below the drawing (``↺ a → b``); when a
workflow cannot be drawn legibly in the width at all (too many states, too wide, too tall),
``paint`` gives a compact list of ``state → targets`` instead.

Every name is untrusted text: :func:`clean` makes it printable, :func:`fit` crops it by cells,
and only :class:`rich.text.Text` built from plain strings leaves this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rich.text import Text

from ...text import fit
from .build import MAX_DIAGRAM_ROWS, build
from .drawing import ARROW_DOWN, ARROW_LEFT, ARROW_RIGHT, LOOP, Drawing
from .grid import DOWN, LEFT, RIGHT, UP, Grid, Owner
from .layers import MAX_DRAWN_STATES, MAX_SEGMENTS, MAX_SEGMENTS_TO_SHUFFLE, layout
from .model import MAX_NAME, Edge, Layout, Node, Virtual, clean
from .paint import (
    HEAVY,
    LIGHT,
    LIST_LIMIT,
    PREVIOUS_MARK,
    STYLE_BOX,
    STYLE_CURRENT_BOX,
    STYLE_CURRENT_LABEL,
    STYLE_EDGE,
    STYLE_LAST_MOVE,
    STYLE_NEXT,
    STYLE_NEXT_EDGE,
    STYLE_NOTE,
    STYLE_PREVIOUS,
    paint_grid,
    paint_list,
    paint_notes,
)
from .routing import MAX_CHANNELS
from .sizing import COMFORT_LABEL, MIN_LABEL

__all__ = [
    "ARROW_DOWN",
    "ARROW_LEFT",
    "ARROW_RIGHT",
    "COMFORT_LABEL",
    "DOWN",
    "HEAVY",
    "LEFT",
    "LIGHT",
    "LIST_LIMIT",
    "LOOP",
    "MAX_CHANNELS",
    "MAX_DIAGRAM_ROWS",
    "MAX_DRAWN_STATES",
    "MAX_NAME",
    "MAX_SEGMENTS",
    "MAX_SEGMENTS_TO_SHUFFLE",
    "MIN_LABEL",
    "PAINT_CACHE",
    "PREVIOUS_MARK",
    "RIGHT",
    "STYLE_BOX",
    "STYLE_CURRENT_BOX",
    "STYLE_CURRENT_LABEL",
    "STYLE_EDGE",
    "STYLE_LAST_MOVE",
    "STYLE_NEXT",
    "STYLE_NEXT_EDGE",
    "STYLE_NOTE",
    "STYLE_PREVIOUS",
    "UP",
    "Diagram",
    "Edge",
    "Layout",
    "Node",
    "Owner",
    "Virtual",
    "clean",
    "draw",
    "fit",
    "layout",
]

PAINT_CACHE = 16  # paints kept per diagram (a workflow cycles through a few states)


class Diagram:
    """A layout drawn for ``width`` cells; :meth:`paint` styles it (see the package doc)."""

    def __init__(self, graph: Layout, width: int) -> None:
        self.layout = graph
        self.width = max(int(width), 12)
        built = build(graph, self.width)
        self.drawn = built is not None
        self._drawing = built if built is not None else Drawing()
        self.grid: Grid = self._drawing.grid
        self.height = self._drawing.height
        self.left = self._drawing.left  # leftmost used column of the grid
        self.used = self._drawing.used  # columns used
        self.unrouted: list[Edge] = self._drawing.unrouted  # moves listed under the drawing
        self.pads = self._drawing.pads  # each box's left padding cell
        self.boxes = self._drawing.boxes  # state -> (top row, left, width)
        self._painted: dict[tuple[object, ...], list[Text]] = {}

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
            lines = paint_grid(self._drawing, self.width, current, previous, upcoming)
            lines.extend(paint_notes(self.unrouted, self.width, current))
        else:
            lines = paint_list(self.layout, self.width, current, previous, upcoming)
        if len(self._painted) >= PAINT_CACHE:
            del self._painted[next(iter(self._painted))]
        self._painted[key] = lines
        return lines


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
