"""Edit a session's context by hand: JSON in a TextArea, saved with compare-and-set.

The editor remembers the version it opened; if the agent wrote meanwhile, the save is refused
(VersionConflictError) and the operator is told, instead of one of the two edits vanishing.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea


class ContextEditor(ModalScreen[Any]):
    """Returns the new value (parsed JSON), or the sentinel ``ContextEditor.CANCELLED``."""

    CANCELLED = object()
    AUTO_FOCUS = "#context-text"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, session: str, value: Any, version: int | None) -> None:
        super().__init__()
        self.session = session
        self.version = version
        self._text = json.dumps(value, indent=2, ensure_ascii=False, default=str)

    def compose(self) -> ComposeResult:
        with Vertical(classes="editor"):
            title = Text.assemble(("context of ", "bold"), (self.session, "bold cyan"))
            title.append(f"  (version {self.version})" if self.version else "  (new)")
            yield Static(title)
            yield TextArea(self._text, language="json", id="context-text")
            yield Static(Text("ctrl+s saves (only if nobody wrote meanwhile) · esc cancels", "dim"))

    def action_save(self) -> None:
        text = self.query_one(TextArea).text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            self.notify(f"not JSON: {error}", severity="error", markup=False)
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)
