"""What every pane shares: the ``show`` contract and a title that names the session."""

from __future__ import annotations

from store import SessionView


class Pane:
    """Mixin for a pane widget: ``show`` is called by the app with the selected session."""

    def show(self, view: SessionView | None, now_ms: int) -> None:
        raise NotImplementedError
