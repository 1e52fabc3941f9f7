"""The status line: where we are connected, how the feed is doing, and a banner when it is not."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

STATUS_STYLE = {
    "connecting": "bold yellow",
    "connected": "bold green",
    "reconnecting": "bold red",
    "resynced": "bold green",
}


class StatusBar(Widget):
    """``memdash · <url> · ns <namespace> · <status> · <n> ev/s · dropped <n>`` and, when any
    session's agent waits for a person, how many do.

    Each figure is a reactive: the app sets them, and the line is drawn again (once per frame,
    whatever changed) only when one of them really changed. The app sets ``rate`` once a
    second, not on every repaint."""

    url = reactive("…", layout=False)
    namespace = reactive("", layout=False)
    status = reactive("connecting", layout=False)
    rate = reactive(0, layout=False)  # events per second, rounded
    dropped = reactive(0, layout=False)
    waiting = reactive(0, layout=False)

    def show_waiting(self, count: int) -> None:
        """How many sessions wait for a person (said first, in bold, when any do)."""
        self.waiting = count

    def show(self, url: str, namespace: str, status: str, rate: float, dropped: int) -> None:
        self.url, self.namespace, self.status = url, namespace, status
        self.rate, self.dropped = round(rate), dropped

    def render(self) -> Text:
        status, dropped = self.status, self.dropped
        text = Text.assemble(
            ("memdash", "bold"),
            "  ",
            (self.url, "cyan"),  # already masked; Text, so nothing in it is markup
            "  ns ",
            (self.namespace, "bold"),
            "  ",
            (status, STATUS_STYLE.get(status, "bold")),
            f"  {self.rate:,.0f} ev/s",
            "  dropped ",
            (f"{dropped:,}", "bold red" if dropped else ""),
        )
        if self.waiting:
            text.append("  ")
            text.append(f" ⚑ {self.waiting:,} waiting for a person ", "bold black on yellow")
        return text


class Banner(Static):
    """Shown only while the store is unreachable."""

    _shown: tuple[bool, str | None] | None = None

    def show(self, status: str, error: str | None) -> None:
        display = status in ("reconnecting", "connecting") and error is not None
        if (display, error) == self._shown:
            return
        self._shown = (display, error)
        self.display = display
        if display:
            self.update(
                Text.assemble(
                    ("Lost the store; reconnecting… ", "bold"),
                    (error or "", ""),
                    "  (the panes show the last known state)",
                )
            )
