"""#budget pane (to be completed)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from store import SessionView


class BudgetPane(Static):
    def show(self, view: SessionView | None, now_ms: int) -> None:
        part = getattr(view, "budget", None) if view is not None else None
        self.update(Text(repr(part)))
