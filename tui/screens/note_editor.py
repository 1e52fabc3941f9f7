"""``n``: write a note to the selected session's agent (delivered with its next hook)."""

from __future__ import annotations

from rich.text import Text

from store.notes import MAX_NOTE_BYTES

from .editor import Save, SavingEditor


def note_size(text: str) -> int:
    """Bytes of UTF-8 the note takes (a lone surrogate counts as 3, as it would be refused)."""
    return len(text.encode("utf-8", "surrogatepass"))


class NoteEditor(SavingEditor):
    """Returns the saved note's text, or ``NoteEditor.CANCELLED``. Checked here for size and
    emptiness, then by the store (``Notes.add``), whose refusal keeps the screen open."""

    TEXT_ID = "note-text"
    HINT = "ctrl+s sends (delivered with the agent's next hook) · esc cancels"

    def __init__(self, session: str, save: Save, text: str = "") -> None:
        super().__init__(text, save)
        self.session = session

    def heading(self) -> Text:
        return Text.assemble(("note to ", "bold"), (self.session, "bold cyan"))

    def parse(self, text: str) -> str:
        if not text.strip():
            raise ValueError("the note is empty")
        return text

    def on_text(self, text: str) -> Text:
        size = note_size(text)
        style = "bold red" if size > MAX_NOTE_BYTES else "dim"
        return Text(f"{size:,} / {MAX_NOTE_BYTES:,} bytes", style)
