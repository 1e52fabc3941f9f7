"""#cache pane (to be completed)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from store import SessionView


class CachePane(Static):
    def show(self, view: SessionView | None, now_ms: int) -> None:
        part = getattr(view, "cache", None) if view is not None else None
        self.update(Text(repr(part)))
