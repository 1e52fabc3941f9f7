"""Edit a session's context by hand: JSON in a TextArea, saved with compare-and-set.

The editor remembers the version it opened; if the agent wrote meanwhile, the save is refused
(VersionConflictError) and the operator is told on the screen, with the edit still in the box,
instead of one of the two edits vanishing.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from .editor import Save, SavingEditor


class ContextEditor(SavingEditor):
    """Returns the saved value (parsed JSON), or the sentinel ``ContextEditor.CANCELLED``."""

    HINT = (
        "ctrl+s saves (only if nobody wrote meanwhile; the agent is told what changed)"
        " · esc cancels"
    )
    LANGUAGE = "json"
    TEXT_ID = "context-text"

    def __init__(self, session: str, value: Any, version: int | None, save: Save) -> None:
        super().__init__(json.dumps(value, indent=2, ensure_ascii=False, default=str), save)
        self.session = session
        self.version = version

    def heading(self) -> Text:
        title = Text.assemble(("context of ", "bold"), (self.session, "bold cyan"))
        title.append(f"  (version {self.version})" if self.version else "  (new)")
        return title

    def parse(self, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
