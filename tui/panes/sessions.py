"""#sessions: every session by last activity; selecting one drives the other panes."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from store import SessionView


class SessionsPane(Vertical):
    class Selected(Message):
        def __init__(self, session: str) -> None:
            super().__init__()
            self.session = session

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter sessions", id="sessions-filter")
        yield DataTable(id="sessions-table", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(Input).display = False
        table = self.query_one(DataTable)
        table.add_column("session", key="session")

    def open_filter(self) -> None:
        search = self.query_one(Input)
        search.display = True
        search.focus()

    def sync(
        self, sessions: Mapping[str, SessionView], changed: set[str], everything: bool, now_ms: int
    ) -> None:
        table = self.query_one(DataTable)
        for session in sessions if everything else changed:
            if session not in table.rows:
                table.add_row(Text(session), key=session)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.post_message(self.Selected(event.row_key.value))
