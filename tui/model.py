"""The dashboard's plain model: what changed since the last repaint, and how fast events come.

The feed updates ``store.SessionView`` objects in place; this model only records *which* sessions
changed, so the app can repaint at a bounded rate however fast events arrive (bursts coalesce
into one repaint). ``wake`` is called when the model goes from clean to dirty: the app's repaint
timer sleeps while nothing changes and is woken by the first change (push, not polling).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from store import Change

RATE_WINDOW = 2.0  # seconds of history behind the events-per-second figure


@dataclass
class DashboardModel:
    selected: str | None = None
    changed: set[str] = field(default_factory=set)  # sessions changed since the last repaint
    events: int = 0
    wake: Callable[[], None] | None = None  # called on the first change after a take()
    _everything: bool = True  # a resync of all sessions (or the first snapshot)
    _times: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256))

    @property
    def everything_changed(self) -> bool:
        return self._everything

    @everything_changed.setter
    def everything_changed(self, value: bool) -> None:
        if value and not self.dirty and self.wake is not None:
            self._everything = True
            self.wake()
        self._everything = value

    @property
    def dirty(self) -> bool:
        """Something changed since the last :meth:`take`."""
        return self._everything or bool(self.changed)

    def note(self, change: Change) -> None:
        if change.session == "*":
            self.everything_changed = True
            return
        changed = self.changed
        if not changed and not self._everything and self.wake is not None:
            changed.add(change.session)
            self.wake()
        else:
            changed.add(change.session)
        if change.kind != "resync":
            self.events += 1

    def selected_changed(self) -> bool:
        return self._everything or (self.selected is not None and self.selected in self.changed)

    def take(self) -> tuple[set[str], bool]:
        """The sessions changed since the last call, and whether everything did."""
        changed, everything = self.changed, self._everything
        self.changed, self._everything = set(), False
        return changed, everything

    def rate(self, now: float) -> float:
        """Events per second over the last couple of seconds."""
        self._times.append((now, self.events))
        while self._times and now - self._times[0][0] > RATE_WINDOW:
            self._times.popleft()
        first_time, first_count = self._times[0]
        elapsed = now - first_time
        return (self.events - first_count) / elapsed if elapsed > 0 else 0.0
