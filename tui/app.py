"""MemdashApp: five live panes over a store.Feed, repainted at a bounded rate.

Data flow: the Feed (a background task) keeps ``feed.sessions`` current and yields changes; a
worker notes each change in the DashboardModel; a timer (≤ 30 Hz) repaints only what changed.
No Redis I/O happens on the UI's critical path: the feed, the history pager and every edit run in
workers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from store import Connection, Feed, SessionView
from store.connection import resolve

from .model import DashboardModel
from .panes.budget import BudgetPane
from .panes.cache import CachePane
from .panes.history import HistoryPane
from .panes.sessions import SessionsPane
from .panes.workflow import WorkflowPane
from .screens.help import HelpScreen
from .status import Banner, StatusBar

MAX_REPAINTS_PER_SECOND = 30


class MemdashApp(App[None]):
    """The memdash dashboard. ``MemdashApp()`` resolves the store like the CLI does."""

    CSS_PATH = "app.tcss"
    TITLE = "memdash"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("/", "filter", "Filter"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("s", "focus('sessions-table')", "Sessions", show=False),
        Binding("h", "focus('history')", "History", show=False),
        Binding("w", "focus('workflow')", "Workflow", show=False),
    ]

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
        session: str | None = None,
        clock: Callable[[], float] = time.time,
        repaint_hz: float = MAX_REPAINTS_PER_SECOND,
    ) -> None:
        super().__init__()
        self.conn = resolve(redis, namespace)
        self.feed = Feed(self.conn)
        self.model = DashboardModel(selected=session)
        self.clock = clock
        self.repaint_hz = min(repaint_hz, MAX_REPAINTS_PER_SECOND)
        self.url = "…"
        self.repaints = 0

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield Banner(id="banner")
        with Horizontal(id="main"):
            yield SessionsPane(id="sessions")
            with Vertical(id="centre"):
                with Horizontal(id="gauges"):
                    yield BudgetPane(id="budget")
                    yield CachePane(id="cache")
                yield HistoryPane(self.conn, id="history")
            yield WorkflowPane(id="workflow")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(Banner).display = False
        self.run_worker(self._follow_feed(), name="feed", exclusive=True, group="feed")
        self.set_interval(1 / self.repaint_hz, self._repaint, name="repaint")

    async def _follow_feed(self) -> None:
        # Resolving the default store may start the embedded server: not on the UI's loop.
        self.url = await asyncio.to_thread(lambda: self.conn.display_url)
        self.feed.start()
        async for change in self.feed:
            self.model.note(change)

    async def on_unmount(self) -> None:
        await self.feed.close()

    # -- repaint ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _repaint(self) -> None:
        now = self.clock()
        self.query_one(StatusBar).show(
            self.url,
            self.conn.namespace,
            self.feed.status,
            self.model.rate(now),
            self.feed.dropped,
        )
        self.query_one(Banner).show(self.feed.status, self.feed.last_error)
        selected_changed = self.model.selected_changed()
        changed, everything = self.model.take()
        if not changed and not everything:
            return
        self.repaints += 1
        now_ms = int(now * 1000)
        self.query_one(SessionsPane).sync(self.feed.sessions, changed, everything, now_ms)
        if selected_changed:
            self.show_selected(now_ms)

    def show_selected(self, now_ms: int | None = None) -> None:
        now_ms = self.now_ms() if now_ms is None else now_ms
        view = self.selected_view()
        for pane in (BudgetPane, CachePane, HistoryPane, WorkflowPane):
            self.query_one(pane).show(view, now_ms)

    def selected_view(self) -> SessionView | None:
        if self.model.selected is None:
            return None
        return self.feed.sessions.get(self.model.selected)

    # -- messages up, attributes down --------------------------------------------------------

    def on_sessions_pane_selected(self, message: SessionsPane.Selected) -> None:
        if message.session != self.model.selected:
            self.model.selected = message.session
            self.show_selected()

    # -- actions ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        self.query_one(SessionsPane).open_filter()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self))
