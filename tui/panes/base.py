"""What every pane shares: the ``show`` contract, a title that names the session, and the frame
of the figure panes (#budget, #cache)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget

from store import SessionView

from ..widgets import MUTED, Row


def set_border_title(widget: Widget, title: str) -> None:
    """Set ``widget``'s border title literally, and only when it changed: Textual's setter
    repaints the whole widget (children included) on every assignment, and the panes retitle
    on every update."""
    if widget.__dict__.get("_memdash_title") != title:
        widget.__dict__["_memdash_title"] = title
        widget.border_title = Text(title)


def set_border_subtitle(widget: Widget, subtitle: str) -> None:
    """As :func:`set_border_title`, for the subtitle."""
    if widget.__dict__.get("_memdash_subtitle") != subtitle:
        widget.__dict__["_memdash_subtitle"] = subtitle
        widget.border_subtitle = Text(subtitle)


class Pane:
    """Mixin for a pane widget: ``show`` is called by the app with the selected session."""

    def show(self, view: SessionView | None, now_ms: int) -> None:
        raise NotImplementedError


class FiguresPane(Pane, Vertical):
    """A pane of figures about one component of the selected session (#budget, #cache).

    Shared here: the parts kept by id (updated in place, no DOM query per show), the empty state
    (the ``.data`` parts hidden, the ``.empty`` row saying why), a memoised :meth:`show` that
    redraws only when the subclass's key changes, and a redraw on theme or width changes.
    Subclasses give :attr:`TITLE`, :attr:`ABSENT`, :meth:`parts` (one with class ``empty``),
    :meth:`data_of`, :meth:`key_of` and :meth:`draw`.
    """

    DEFAULT_CSS = """
    FiguresPane > Static {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FiguresPane > .row {
        height: 1;
    }
    FiguresPane > .empty {
        display: none;
        color: $text-muted;
    }
    FiguresPane.-empty > .data {
        display: none;
    }
    FiguresPane.-empty > .empty {
        display: block;
    }
    """
    TITLE = ""
    ABSENT = ""  # the empty row when the selected session has none of this component

    def __init__(self, *, clock: Callable[[], float] | None = None, **kwargs: str | None) -> None:
        """``clock``: the app's (seconds), for a pane that moves on with time by itself."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.clock = clock
        set_border_title(self, self.TITLE)
        self._view: SessionView | None = None
        self._key: tuple[object, ...] | None = None
        self._now_ms = 0
        self._parts: dict[str | None, Widget] = {}
        self.renders = 0  # how many shows did work (the rest were unchanged)

    def parts(self) -> Sequence[Widget]:
        raise NotImplementedError

    def data_of(self, view: SessionView) -> object | None:
        raise NotImplementedError

    def key_of(self, data: Any, now_ms: int) -> tuple[object, ...]:
        """What the drawing depends on: an unchanged key skips the redraw."""
        raise NotImplementedError

    def draw(self, data: Any, now_ms: int) -> None:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        self._parts = {part.id: part for part in self.parts()}
        yield from self._parts.values()

    def on_mount(self) -> None:
        self._say_empty("no session selected")
        self.watch(self.app, "theme", self._redraw, init=False)

    def on_resize(self) -> None:
        self._redraw()  # what fits (sparkline samples, axis labels) depends on the width

    def _redraw(self) -> None:
        self._key = None
        if self._view is not None:
            self.show(self._view, self._now_ms)

    def show(self, view: SessionView | None, now_ms: int) -> None:
        self._view, self._now_ms = view, now_ms
        data = self.data_of(view) if view is not None else None
        key = (view is None,) if data is None else self.key_of(data, now_ms)
        if key == self._key:
            return
        self._key = key
        self.renders += 1
        if data is None:
            self._say_empty("no session selected" if view is None else self.ABSENT)
            return
        self.remove_class("-empty")
        self.draw(data, now_ms)

    def _say_empty(self, message: str) -> None:
        self.add_class("-empty")
        [row] = [part for part in self._parts.values() if part.has_class("empty")]
        cast(Row, row).set(Text(message, style=MUTED), layout=True)

    def _row(self, name: str) -> Row:
        return cast(Row, self._parts[name])
