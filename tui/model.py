"""The dashboard's plain model: what changed since the last repaint, and how fast events come.

The feed updates ``store.SessionView`` objects in place; this model only records *which* sessions
changed, so the app can repaint at a bounded rate however fast events arrive (bursts coalesce
into one repaint).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from store import Change

RATE_WINDOW = 2.0  # seconds of history behind the events-per-second figure


@dataclass
class DashboardModel:
    selected: str | None = None
    changed: set[str] = field(default_factory=set)  # sessions changed since the last repaint
    everything_changed: bool = True  # a resync of all sessions (or the first snapshot)
    events: int = 0
    _times: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256))

    def note(self, change: Change) -> None:
        if change.session == "*":
            self.everything_changed = True
            return
        self.changed.add(change.session)
        if change.kind != "resync":
            self.events += 1

    def selected_changed(self) -> bool:
        return self.everything_changed or (
            self.selected is not None and self.selected in self.changed
        )

    def take(self) -> tuple[set[str], bool]:
        """The sessions changed since the last call, and whether everything did."""
        changed, everything = self.changed, self.everything_changed
        self.changed, self.everything_changed = set(), False
        return changed, everything

    def rate(self, now: float) -> float:
        """Events per second over the last couple of seconds."""
        self._times.append((now, self.events))
        while self._times and now - self._times[0][0] > RATE_WINDOW:
            self._times.popleft()
        first_time, first_count = self._times[0]
        elapsed = now - first_time
        return (self.events - first_count) / elapsed if elapsed > 0 else 0.0
