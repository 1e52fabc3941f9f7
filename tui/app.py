"""MemdashApp: five live panes over a store.Feed, repainted at a bounded rate.

Data flow: the Feed (a background task) keeps ``feed.sessions`` current and notes each change in
the DashboardModel (a plain callback: no queue, no task switch per event); a timer (5 Hz by
default, ``repaint_hz`` up to 30) repaints only what changed. The timer sleeps (paused) as soon
as a tick finds nothing changed, and the model's first change wakes it: with nothing happening
the app does no work at all, and a change is on screen at once, later ones within 1/repaint_hz
(push, never polling). The status
line's events per second move once a second, in a repaint while events come (so not a frame of
their own), then on a timer of their own down to 0, where it sleeps too; the feed's status and
dropped count are pushed to it as they change.
No Redis I/O happens on the UI's critical path: the feed, the history pager and every edit run in
workers.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer

from store import (
    Connection,
    Feed,
    InvalidTransitionError,
    MemoryKey,
    MemoryStore,
    SessionView,
    StatefulMemory,
    TokenBudgetTracker,
    VersionConflictError,
)
from store.connection import resolve
from store.control import SessionControl
from store.notes import Notes, context_change_summary
from store.steering import TASK_WORKFLOW

from .model import DashboardModel
from .panes.budget import BudgetPane
from .panes.cache import CachePane
from .panes.history import HistoryPane
from .panes.sessions import SessionsPane
from .panes.workflow import WorkflowPane
from .screens.context_editor import ContextEditor
from .screens.help import HelpScreen
from .screens.note_editor import NoteEditor
from .screens.pickers import Confirm, LimitPrompt, StatePicker, TextPrompt
from .status import Banner, StatusBar

MAX_REPAINTS_PER_SECOND = 30  # the most ``repaint_hz`` may ask for
REPAINTS_PER_SECOND = 5  # the default: a change is on screen within 200 ms (at once after a lull)
STATUS_SECONDS = 1.0  # how often the events-per-second figure moves while events come
BUSY_EVENTS_PER_SECOND = 2_000  # above this many events a second…
BUSY_REPAINTS_PER_SECOND = 6  # …repaint at most this often


def _waits(view: SessionView) -> bool:
    """The session's agent waits for a person (a permission prompt, an idle prompt…)."""
    return view.control is not None and view.control.waiting is not None


def _printable(text: str) -> str:
    """``text`` without control characters (it goes into a terminal escape sequence)."""
    return "".join(c for c in text if c.isprintable())[:200]


class MemdashApp(App[None]):
    """The memdash dashboard. ``MemdashApp()`` resolves the store like the CLI does."""

    CSS_PATH = "app.tcss"
    url: reactive[str] = reactive("…")  # the store, password masked (the status line shows it)
    TITLE = "memdash"
    AUTO_FOCUS = "#sessions-table"  # keys go to the app's bindings, not a text box
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("/", "filter", "Filter"),
        Binding("question_mark", "help", "Keys", key_display="?"),
        Binding("t", "step_workflow", "Step"),
        Binding("e", "edit_context", "Edit context"),
        Binding("l", "set_limit", "Limit"),
        Binding("n", "write_note", "Note"),
        Binding("P", "toggle_pause", "Pause"),
        Binding("F", "force_state", "Force state", show=False),
        Binding("R", "reset_budget", "Reset budget", show=False),
        Binding("s", "focus('sessions-table')", "Focus sessions", show=False),
        Binding("h", "focus('history')", "Focus history", show=False),
    ]

    def __init__(
        self,
        redis: Connection | aioredis.Redis | str | None = None,
        *,
        namespace: str | None = None,
        session: str | None = None,
        clock: Callable[[], float] = time.time,
        repaint_hz: float = REPAINTS_PER_SECOND,
    ) -> None:
        super().__init__()
        self.conn = resolve(redis, namespace)
        self.model = DashboardModel(selected=session)
        self.feed = Feed(self.conn, on_change=self.model.note, on_status=self._feed_status)
        self.clock = clock
        self.repaint_hz = min(repaint_hz, MAX_REPAINTS_PER_SECOND)
        self.repaints = 0
        self._painted_at = 0.0
        self._painted_events = 0
        self._frozen = False
        self.waiting: set[str] = set()  # sessions whose agent waits for a person
        self._title_pushed = False
        # The widgets, made here and handed what they need (the clock, the session): the
        # repaint path holds them, no DOM query per tick.
        self.status_bar = StatusBar(id="status")
        self.status_bar.namespace = self.conn.namespace
        self.banner = Banner(id="banner")
        self.sessions = SessionsPane(id="sessions", selected=session, clock=clock)
        self.panes: tuple[BudgetPane, CachePane, HistoryPane, WorkflowPane] = (
            BudgetPane(id="budget", clock=clock),
            CachePane(id="cache", clock=clock),
            HistoryPane(self.conn, id="history"),
            WorkflowPane(id="workflow"),
        )
        self._repaint_timer: Timer | None = None
        self._status_timer: Timer | None = None
        self._asleep = False  # the repaint timer is paused until the model's next change
        self._status_asleep = False
        self._status_events = 0
        self._status_at = float("-inf")  # monotonic time of the last ev/s update

    def compose(self) -> ComposeResult:
        budget, cache, history, workflow = self.panes
        yield self.status_bar.data_bind(MemdashApp.url)
        yield self.banner
        with Horizontal(id="main"):
            yield self.sessions
            with Vertical(id="centre"):
                with Horizontal(id="gauges"):
                    yield budget
                    yield cache
                yield history
            yield workflow
        yield Footer()

    def on_mount(self) -> None:
        self.banner.display = False
        self.run_worker(self._follow_feed(), name="feed", exclusive=True, group="feed")
        self._repaint_timer = self.set_interval(1 / self.repaint_hz, self._repaint, name="repaint")
        self._status_timer = self.set_interval(STATUS_SECONDS, self._tick_status, name="status")
        self.model.wake = self._wake
        self._feed_status()

    async def _follow_feed(self) -> None:
        # Resolving the default store may start the embedded server: not on the UI's loop.
        self.url = await asyncio.to_thread(lambda: self.conn.display_url)
        self.feed.start()
        try:
            await self.feed.wait_closed()
        finally:
            await self.feed.close()

    async def on_unmount(self) -> None:
        await self.feed.close()
        if self._title_pushed and self._driver is not None:
            self._driver.write("\x1b[23;2t")
            self._title_pushed = False
        if self._frozen:
            gc.unfreeze()  # an app in a longer-lived process (tests) gives its objects back

    def _freeze_long_lived(self) -> None:
        """Exempt what is on screen now (widgets, caches, the snapshot's views) from the garbage
        collector's full passes: with ~100k such objects a full pass stalled the UI for 250 ms
        under load. Redone after each full re-read, whose old views are garbage by then."""
        if self._frozen:
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._frozen = True

    # -- repaint ----------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _wake(self) -> None:
        """The model's first change since a repaint: repaint now (the timer's next tick comes at
        once), then at most ``repaint_hz`` times a second while changes keep coming."""
        if self._asleep and self._repaint_timer is not None:
            self._asleep = False
            self._repaint_timer.resume()

    def _repaint(self) -> None:
        if not self.is_running:  # shutting down: widgets are pruned before the timers stop
            return
        model = self.model
        if not model.dirty:  # nothing to do until the next change: sleep
            if self._repaint_timer is not None:
                self._asleep = True
                self._repaint_timer.pause()
            return
        if self._busy_skip():
            return
        if self._status_asleep and self._status_timer is not None:
            self._status_asleep = False  # events come: the ev/s figure moves again
            self._status_timer.resume()
        if time.monotonic() - self._status_at >= STATUS_SECONDS:
            self._show_rate()  # in this repaint's frame, not one of its own
        now = self.clock()
        selected_changed = model.selected_changed()
        changed, everything = model.take()
        self._count_waiting(changed, everything)
        self.repaints += 1
        now_ms = int(now * 1000)
        with self.batch_update():
            self.sessions.sync(self.feed.sessions, changed, everything, now_ms)
            if selected_changed:
                self.show_selected(now_ms)
        if everything and self.feed.status != "connecting":
            self.call_after_refresh(self._freeze_long_lived)

    def _tick_status(self) -> None:
        """The events-per-second figure, once a second when no repaint moved it; asleep once
        it is 0 and stays 0."""
        if not self.is_running or time.monotonic() - self._status_at < STATUS_SECONDS * 0.9:
            return
        self._show_rate()

    def _show_rate(self) -> None:
        events = self.model.events
        self._status_at = time.monotonic()
        self.status_bar.rate = round(self.model.rate(self.clock()))
        quiet = self.status_bar.rate == 0 and events == self._status_events
        if quiet and self._status_timer is not None:
            self._status_asleep = True
            self._status_timer.pause()
        self._status_events = events

    def _feed_status(self) -> None:
        """The feed's status, last error or dropped count changed (pushed by the feed)."""
        feed = self.feed
        self.status_bar.status = feed.status
        self.status_bar.dropped = feed.dropped
        self.banner.show(feed.status, feed.last_error)

    def _count_waiting(self, changed: set[str], everything: bool) -> None:
        """Keep :attr:`waiting` current from the sessions that changed (all after a resync),
        and say how many wait in the status line and the terminal's title."""
        sessions = self.feed.sessions
        before = len(self.waiting)
        if everything:
            self.waiting = {s for s, v in sessions.items() if _waits(v)}
        else:
            for sid in changed:
                view = sessions.get(sid)
                if view is not None and _waits(view):
                    self.waiting.add(sid)
                else:
                    self.waiting.discard(sid)
        if len(self.waiting) != before or everything:
            self.status_bar.show_waiting(len(self.waiting))
            count = len(self.waiting)
            self.title = f"{self.TITLE} ({count} waiting)" if count else self.TITLE

    def watch_title(self, title: str) -> None:
        """Textual shows ``title`` only in a Header; the terminal's window (or tab) title is
        set here with OSC 2, as Claude Code's agent view does, and put back on exit (the
        xterm title stack: CSI 22 saves, CSI 23 restores; ignored where unsupported)."""
        driver = self._driver
        if driver is None or self.is_headless or self.is_web:
            return
        if not self._title_pushed:
            driver.write("\x1b[22;2t")
            self._title_pushed = True
        driver.write(f"\x1b]2;{_printable(title)}\x07")

    def _busy_skip(self) -> bool:
        """Under a flood of events, repaint less often: a frame of this screen then costs tens of
        milliseconds, and the time is better spent keeping up with the feed."""
        tick = time.monotonic()
        elapsed = tick - self._painted_at
        events = self.model.events - self._painted_events
        if elapsed < 1 / BUSY_REPAINTS_PER_SECOND and events > BUSY_EVENTS_PER_SECOND * elapsed:
            return True
        self._painted_at, self._painted_events = tick, self.model.events
        return False

    def show_selected(self, now_ms: int | None = None) -> None:
        now_ms = self.now_ms() if now_ms is None else now_ms
        view = self.selected_view()
        for pane in self.panes:
            pane.show(view, now_ms)

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
        self.sessions.open_filter()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every action, by name, in the command palette (ctrl+p)."""
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Filter sessions", "Show sessions whose id contains…", self.action_filter
        )
        yield SystemCommand("Keys", "Show every key binding", self.action_help)
        yield SystemCommand(
            "Step workflow",
            "Move the selected session to a valid next state",
            self.action_step_workflow,
        )
        yield SystemCommand(
            "Force workflow state", "Move to any state, recorded as forced", self.action_force_state
        )
        yield SystemCommand(
            "Edit context", "Edit the selected session's context (JSON)", self.action_edit_context
        )
        yield SystemCommand(
            "Set budget limit",
            "Set the token limit and make it bind the agent ('off' lifts the binding)",
            self.action_set_limit,
        )
        yield SystemCommand(
            "Write a note",
            "A note to the selected session's agent, delivered with its next hook",
            self.action_write_note,
        )
        yield SystemCommand(
            "Pause or resume",
            "Hold the selected session's agent (tools denied, prompts blocked), or let it go on",
            self.action_toggle_pause,
        )
        yield SystemCommand(
            "Reset budget", "Zero the usage, keep the limit", self.action_reset_budget
        )
        yield SystemCommand(
            "Focus sessions", "Move the cursor to the sessions", self._focus_sessions
        )
        yield SystemCommand("Focus history", "Scroll the conversation", self._focus_history)

    def _focus_sessions(self) -> None:
        self.action_focus("sessions-table")

    def _focus_history(self) -> None:
        self.action_focus("history")

    # -- operator actions: every edit goes through the store API, in a worker ----------------

    def _selected_or_warn(self) -> str | None:
        if self.model.selected is None:
            self.notify("select a session first", severity="warning")
        return self.model.selected

    async def _try(self, operation: Awaitable[object]) -> str | None:
        """Run one store call for an editor screen: None when it went through, else why not
        (the screen shows it and keeps the operator's text)."""
        try:
            await operation
        except (ValueError, LookupError, VersionConflictError, InvalidTransitionError) as error:
            return str(error)
        except (RedisError, OSError) as error:
            return f"the store is unreachable ({error})"
        return None

    async def _attempt(self, what: str, operation: Awaitable[object]) -> bool:
        """Run one store call; a refusal or an outage is told, never raised into the UI."""
        try:
            await operation
        except (ValueError, LookupError, VersionConflictError, InvalidTransitionError) as error:
            self.notify(f"{what}: {error}", severity="warning", markup=False)
            return False
        except (RedisError, OSError) as error:
            self.notify(
                f"{what}: the store is unreachable ({error})", severity="error", markup=False
            )
            return False
        return True

    @work(group="edit")
    async def action_step_workflow(self) -> None:
        await self._move_workflow(force=False)

    @work(group="edit")
    async def action_force_state(self) -> None:
        await self._move_workflow(force=True)

    async def _move_workflow(self, *, force: bool) -> None:
        session = self._selected_or_warn()
        if session is None:
            return
        machine = None
        try:
            for name in (TASK_WORKFLOW, None):  # the task workflow when there is one
                try:
                    machine = await StatefulMemory.open(session, name=name, redis=self.conn)
                    break
                except LookupError:
                    continue
        except RedisError as error:
            self.notify(f"the store is unreachable ({error})", severity="error", markup=False)
            return
        if machine is None:
            self.notify("this session has no workflow", severity="warning")
            return
        which = "workflow" if machine.name is None else f"{machine.name} workflow"
        if force:
            choices = [state for state in machine.states if state != machine.current_state]
            title = f"force {session}'s {which} from {machine.current_state} to…"
        else:
            choices = list(machine.next_states())
            title = f"move {session}'s {which} from {machine.current_state} to…"
        state = await self.push_screen_wait(StatePicker(title, choices))
        if state is None:
            return
        if force:
            reason = await self.push_screen_wait(TextPrompt("why? (recorded with the move)"))
            if reason is None:
                return
            await self._attempt("force", machine.force_state(state, reason, actor="operator"))
        else:
            await self._attempt("move", machine.transition(state, actor="operator"))

    @work(group="edit")
    async def action_edit_context(self) -> None:
        session = self._selected_or_warn()
        if session is None:
            return
        store = MemoryStore(self.conn)
        key = MemoryKey("session", session, "context")
        try:
            entry = await store.get_entry(key)
        except RedisError as error:
            self.notify(f"the store is unreachable ({error})", severity="error", markup=False)
            return
        value, version = (entry.value, entry.version) if entry else ({}, None)
        ttl = entry.ttl if entry else None

        async def save(edited: Any) -> str | None:
            problem = await self._try(
                store.set(key, edited, ttl=ttl, expected_version=version or 0)
            )
            if problem is None and edited != value:
                # The agent is told what changed, with its next hook (a note of kind context).
                summary = context_change_summary(value, edited)
                told = await self._try(
                    Notes(session, self.conn).add(summary, author="operator", kind="context")
                )
                if told is not None:
                    self.notify(
                        f"context saved, but the agent was not told: {told}",
                        severity="warning",
                        markup=False,
                    )
            return problem

        edited = await self.push_screen_wait(ContextEditor(session, value, version, save))
        if edited is not ContextEditor.CANCELLED:
            self.notify("context saved")

    @work(group="edit")
    async def action_set_limit(self) -> None:
        session = self._selected_or_warn()
        if session is None:
            return
        view = self.selected_view()
        current = view.budget.limit if view is not None and view.budget is not None else None
        limit = await self.push_screen_wait(
            LimitPrompt(f"binding token limit of {session}", current)
        )
        if limit is None:
            return
        if limit == LimitPrompt.OFF:
            budget = TokenBudgetTracker(session, current or 1, redis=self.conn)
            if await self._attempt("lift", budget.set_limit(None, binding=False)):
                self.notify("the limit no longer binds the agent")
            return
        budget = TokenBudgetTracker(session, limit, redis=self.conn)
        if await self._attempt("limit", budget.set_limit(limit, binding=True)):
            self.notify(f"limit {limit:,} binds the agent")

    @work(group="edit")
    async def action_write_note(self) -> None:
        session = self._selected_or_warn()
        if session is None:
            return

        async def save(text: str) -> str | None:
            return await self._try(Notes(session, self.conn).add(text, author="operator"))

        sent = await self.push_screen_wait(NoteEditor(session, save))
        if sent is not NoteEditor.CANCELLED:
            self.notify("note queued: the agent reads it with its next hook")

    @work(group="edit")
    async def action_toggle_pause(self) -> None:
        """Pausing asks first (it holds a working agent); resuming does not (it only lets the
        agent go on, and a held agent should not wait on a dialog)."""
        session = self._selected_or_warn()
        if session is None:
            return
        control = SessionControl(session, self.conn)
        try:
            status = await control.status()
        except (RedisError, OSError) as error:
            self.notify(f"the store is unreachable ({error})", severity="error", markup=False)
            return
        changed: list[bool] = []

        async def toggle(pause: bool) -> None:
            action = control.pause if pause else control.resume
            changed.append(await action(actor="operator"))

        if status.paused:
            if await self._attempt("resume", toggle(False)):
                said = "resumed" if changed[0] else "was not paused (someone resumed it)"
                self.notify(f"{session} {said}", markup=False)
            return
        question = Text.assemble("Pause ", (session, "cyan"), "?")
        detail = Text(
            "Its agent's tool calls are denied and its prompts blocked (\"paused by the "
            'operator") until you resume it with P.',
            style="dim",
        )
        if await self.push_screen_wait(
            Confirm(question, detail, yes="Pause")
        ) and await self._attempt("pause", toggle(True)):
            said = "paused" if changed[0] else "was paused already"
            self.notify(f"{session} {said}", markup=False)

    @work(group="edit")
    async def action_reset_budget(self) -> None:
        session = self._selected_or_warn()
        if session is None:
            return
        view = self.selected_view()
        limit = view.budget.limit if view is not None and view.budget is not None else None
        budget = TokenBudgetTracker(session, limit or 1, redis=self.conn)
        if await self._attempt("reset", budget.reset()):
            self.notify("budget reset")
