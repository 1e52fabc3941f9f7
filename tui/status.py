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
    """``memdash · <url> · ns <namespace> · <status> · <n> ev/s · dropped <n>``."""

    _shown: tuple[object, ...] | None = None

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
