"""``?``: every key binding of the app and of the focused pane, in one table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, app: App[None]) -> None:
        super().__init__()
        self._bindings_table = self._table(app)

    @staticmethod
    def _table(app: App[None]) -> Table:
        table = Table(title="memdash keys", show_edge=False, expand=True)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("does")
        seen: set[str] = set()
        for _, binding, _enabled, tooltip in app.active_bindings.values():
            label = binding.key_display or app.get_key_display(binding)
            if label in seen:
                continue
            seen.add(label)
            table.add_row(Text(label), Text(binding.description or tooltip or binding.action))
        table.add_row(Text("ctrl+p"), Text("command palette: every action by name"))
        return table

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(self._bindings_table)
            yield Static(Text("esc closes", style="dim"))
