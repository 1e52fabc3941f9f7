"""The status line: where we are connected, how the feed is doing, and a banner when it is not."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STATUS_STYLE = {
    "connecting": "bold yellow",
    "connected": "bold green",
    "reconnecting": "bold red",
    "resynced": "bold green",
}


class StatusBar(Static):
    """``memdash · <url> · ns <namespace> · <status> · <n> ev/s · dropped <n>`` and, when any
    session's agent waits for a person, how many do."""

    _shown: tuple[object, ...] | None = None
    waiting = 0

    def show_waiting(self, count: int) -> None:
        """How many sessions wait for a person (said first, in bold, when any do)."""
        if count != self.waiting:
            self.waiting = count
            if self._shown is not None:
                shown, self._shown = self._shown, None
                self.show(*shown)  # type: ignore[arg-type]

    def show(self, url: str, namespace: str, status: str, rate: float, dropped: int) -> None:
        shown = (url, namespace, status, round(rate), dropped)
        if shown == self._shown:
            return  # called every repaint tick: redraw only what changed
        self._shown = shown
        text = Text.assemble(
            ("memdash", "bold"),
            "  ",
            (url, "cyan"),  # already masked; Text, so nothing in it is markup
            "  ns ",
            (namespace, "bold"),
            "  ",
            (status, STATUS_STYLE.get(status, "bold")),
            f"  {rate:,.0f} ev/s",
            "  dropped ",
            (f"{dropped:,}", "bold red" if dropped else ""),
        )
        if self.waiting:
            text.append("  ")
            text.append(f" ⚑ {self.waiting:,} waiting for a person ", "bold black on yellow")
        self.update(text, layout=False)  # one line, full width (app.tcss): the size is fixed


class Banner(Static):
    """Shown only while the store is unreachable."""

    def show(self, status: str, error: str | None) -> None:
        self.display = status in ("reconnecting", "connecting") and error is not None
        if self.display:
            self.update(
                Text.assemble(
                    ("Lost the store; reconnecting… ", "bold"),
                    (error or "", ""),
                    "  (the panes show the last known state)",
                )
            )
