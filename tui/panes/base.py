"""What every pane shares: the ``show`` contract and a title that names the session."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from store import SessionView


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
