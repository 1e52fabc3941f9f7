"""#history pane (to be completed)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from store import Connection, SessionView


class HistoryPane(Static):
    def __init__(self, conn: Connection, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.conn = conn

    def show(self, view: SessionView | None, now_ms: int) -> None:
        part = view.conversation if view is not None else None
        self.update(Text(repr(part)))
