"""A host app for testing one pane alone, the way the dashboard shows it."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widget import Widget

from store import SessionView

NOW = 1_700_000_070_000  # half past a minute


class PaneHost(App[None]):
    """Just the pane :attr:`PANE` (with id :attr:`PANE_ID`), styled by the subclass's ``CSS`` as
        app.tcss styles it, showing ``view`` at the fixed clock ``now_ms`` (the pane's ``clock``:
    set ``clock_ms`` to move it on)."""

    PANE: type[Widget]
    PANE_ID: str

    def __init__(self, view: SessionView | None = None, now_ms: int = NOW) -> None:
        super().__init__()
        self.view, self.clock_ms = view, now_ms

    def compose(self) -> ComposeResult:
        yield self.PANE(id=self.PANE_ID, clock=lambda: self.clock_ms / 1000)  # type: ignore[call-arg]

    def on_mount(self) -> None:
        self.query_one(self.PANE).show(self.view, self.clock_ms)  # type: ignore[attr-defined]

    def now_ms(self) -> int:
        return self.clock_ms
