"""The frame of a multi-line editor that saves in place: ctrl+s saves, escape cancels.

The save runs in a worker while the screen stays open; only a save that succeeded closes it. A
refusal (too long, a version conflict, the store unreachable) is shown on the screen, and the
operator's text stays in the box to fix or copy: a failed save never drops typed text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

Save = Callable[[Any], Awaitable[str | None]]
"""Stores a value; returns None when saved, else why not (shown to the operator)."""


class SavingEditor(ModalScreen[Any]):
    """Returns what was saved, or the sentinel ``CANCELLED``. Subclasses give :meth:`heading`,
    :attr:`HINT`, :meth:`parse` (the text to the value to save, or raise ValueError) and
    :meth:`on_text` (a live word about the text, e.g. its size)."""

    CANCELLED = object()
    AUTO_FOCUS = "TextArea"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "cancel", "Cancel"),
    ]
    HINT = "ctrl+s saves · esc cancels"
    LANGUAGE: str | None = None
    TEXT_ID = "editor-text"

    def __init__(self, text: str, save: Save) -> None:
        super().__init__()
        self._initial = text
        self._save = save
        self.saving = False
        self.error: str | None = None

    def heading(self) -> Text:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        return text

    def on_text(self, text: str) -> Text:
        del text
        return Text()

    def compose(self) -> ComposeResult:
        with Vertical(classes="editor"):
            yield Static(self.heading(), classes="editor-title")
            yield TextArea(self._initial, language=self.LANGUAGE, id=self.TEXT_ID)
            yield Static(self.on_text(self._initial), classes="editor-info")
            yield Static(classes="editor-error")
            yield Static(Text(self.HINT, "dim"))

    def on_mount(self) -> None:
        self.query_one(".editor-error", Static).display = False

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.query_one(".editor-info", Static).update(self.on_text(event.text_area.text))

    def _show_error(self, message: str | None) -> None:
        self.error = message
        box = self.query_one(".editor-error", Static)
        box.display = message is not None
        box.update(Text(message or "", "bold red"))  # Text: the message may quote the input

    def action_save(self) -> None:
        if self.saving:
            return
        try:
            value = self.parse(self.text)
        except ValueError as error:
            self._show_error(str(error))
            return
        self.saving = True
        self._show_error(None)
        self.query_one(".editor-info", Static).update(Text("saving…", "dim"))
        self.run_worker(self._run_save(value), group="editor-save", exclusive=True)

    async def _run_save(self, value: Any) -> None:
        try:
            problem = await self._save(value)
        except Exception as error:  # never lose the text to an unexpected failure either
            problem = f"{type(error).__name__}: {error}"
        self.saving = False
        if problem is None:
            self.dismiss(value)
            return
        self.query_one(".editor-info", Static).update(self.on_text(self.text))
        self._show_error(f"not saved: {problem}  (your text is still here)")

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)
