"""Steering from the dashboard: notes (``n``), pause (``P``), binding limits (``l``), the task
workflow (``t``), waiting for a person, the context-window gauge and context-edit notes; driven
with Pilot against the real redis-server, and snapshots of each pane's new parts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static, TextArea

from store import (
    ConversationMemory,
    MemoryKey,
    MemoryStore,
    SessionView,
    StatefulMemory,
    TokenBudgetTracker,
)
from store.budget import BudgetView
from store.connection import Connection
from store.control import ControlView, PauseEntry, SessionControl, Waiting
from store.feed import read_sessions
from store.notes import Delivery, Note, Notes, NotesView
from store.steering import TASK_INITIAL, TASK_POLICIES, TASK_TRANSITIONS, Steering
from store.workflow import Transition, WorkflowView
from tests.panes import NOW, PaneHost
from tests.test_pane_sessions import Host as SessionsHost
from tests.test_pane_sessions import by_id
from tests.test_pane_sessions import view as session_view
from tui.app import MemdashApp
from tui.panes.budget import AUTO_COMPACT_RESERVE, BudgetPane, Gauge
from tui.panes.history import HistoryPane
from tui.panes.sessions import SessionsPane
from tui.panes.workflow import WorkflowPane
from tui.screens.context_editor import ContextEditor
from tui.screens.note_editor import NoteEditor
from tui.screens.pickers import Confirm, LimitPrompt, StatePicker
from tui.status import StatusBar

SIZE = (160, 45)
FLOW = {"planning": ["coding"], "coding": ["testing"], "testing": ["review", "coding"],
        "review": ["done", "coding"], "done": []}  # fmt: skip


async def until(pilot: Any, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def eventually(
    pilot: Any, check: Callable[[], Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Like :func:`until`, for a condition that reads the store."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await pilot.pause(0.05)


async def populate(conn: Connection, session: str = "s1") -> None:
    await MemoryStore(conn).set(MemoryKey("session", session, "context"), {"goal": "ship"})
    await TokenBudgetTracker(session, 1000, redis=conn).track_request("r1", 100)
    conversation = ConversationMemory(session, redis=conn)
    await conversation.add_message("user", "hello")
    await conversation.add_message("assistant", "on it")
    flow = StatefulMemory(session, transitions=FLOW, initial="planning", redis=conn)
    await flow.transition("coding")


def history_text(app: MemdashApp) -> str:
    pane = app.query_one(HistoryPane)
    height = pane.scrollable_content_region.height
    return "\n".join(pane.render_line(y).text for y in range(height))


def state_cell(app: MemdashApp, session: str) -> str:
    table = app.query_one("#sessions-table", DataTable)
    return str(table.get_cell(session, "state"))


async def connected(pilot: Any, app: MemdashApp) -> None:
    await until(pilot, lambda: app.feed.status == "connected" and app.selected_view() is not None)


# -- notes ------------------------------------------------------------------------------------


async def test_a_note_is_pending_in_the_history_until_a_hook_delivers_it(conn):
    await populate(conn)
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor))
        app.screen.query_one(TextArea).text = "look at [bold]the logs[/]\nbefore you push"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, NoteEditor))
        [note] = await Notes("s1", conn).list()
        assert (note.text, note.author, note.kind) == (
            "look at [bold]the logs[/]\nbefore you push",
            "operator",
            "note",
        )
        assert note.after == 1  # written after message 1 ("on it")
        await until(pilot, lambda: "pending" in history_text(app))
        lines = history_text(app).splitlines()
        at = next(i for i, line in enumerate(lines) if "✎ note" in line)
        assert "on it" in lines[at - 1]  # drawn where it was written
        assert "look at [bold]the logs[/]⏎before you push" in lines[at]  # literally
        assert "◌ pending" in lines[at + 1]

        decision = await Steering("s1", conn).check("PostToolUse", tool="Bash")
        assert [n.id for n in decision.notes.notes] == [note.id]
        await until(pilot, lambda: "after Bash" in history_text(app))
        lines = history_text(app).splitlines()
        delivered = next(line for line in lines if "delivered" in line)
        assert "✓ delivered" in delivered and delivered.rstrip().endswith("after Bash")
        assert "pending" not in history_text(app)


async def test_a_failed_note_keeps_the_typed_text_on_screen(conn):
    await populate(conn)
    app = MemdashApp(conn, session="s1")
    text = "é" * 5000  # 10,000 bytes: over the store's 8 KiB
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NoteEditor))
        editor = app.screen
        editor.query_one(TextArea).text = text
        await pilot.press("ctrl+s")
        await until(pilot, lambda: editor.error is not None)
        assert app.screen is editor and editor.query_one(TextArea).text == text
        assert "8192 bytes" in editor.error
        assert "10,000 / 8,192 bytes" in str(editor.query_one(".editor-info", Static).content)
        # fixed in place, it goes
        editor.query_one(TextArea).text = "é" * 100
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, NoteEditor))
    assert [n.text for n in await Notes("s1", conn).list()] == ["é" * 100]


# -- pause ------------------------------------------------------------------------------------


async def test_pause_asks_first_and_resume_does_not(conn):
    await populate(conn)
    control = SessionControl("s1", conn)
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("n")  # cancelled: nothing happens
        await until(pilot, lambda: not isinstance(app.screen, Confirm))
        await pilot.pause(0.2)
        assert not (await control.status()).paused

        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")

        async def paused() -> bool:
            return (await control.status()).paused

        await eventually(pilot, paused)
        await until(pilot, lambda: state_cell(app, "s1") == "‖paused")
        await until(pilot, lambda: "‖ paused" in history_text(app))
        workflow = "\n".join(line.plain for line in app.query_one(WorkflowPane).lines)
        assert "‖ paused" in workflow and "P resumes" in workflow
        assert (await Steering("s1", conn).check("PreToolUse", tool="Bash")).deny

        await pilot.press("P")  # resumes at once

        async def resumed() -> bool:
            return not (await control.status()).paused

        await eventually(pilot, resumed)
        await until(pilot, lambda: state_cell(app, "s1") == "coding")
        await until(pilot, lambda: "▸ resumed" in history_text(app))
    log = (await control.status()).log
    assert [(entry.paused, entry.actor) for entry in log] == [
        (True, "operator"),
        (False, "operator"),
    ]


# -- binding budgets ------------------------------------------------------------------------------


async def test_l_binds_the_limit_and_off_lifts_it(conn):
    await populate(conn)
    tracker = TokenBudgetTracker("s1", 1000, redis=conn)
    app = MemdashApp(conn, session="s1")

    async def limit(value: str) -> None:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LimitPrompt))
        app.screen.query_one("#number").value = value
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, LimitPrompt))

    def counts() -> str:
        return str(app.query_one("#budget-counts", Static).content)

    def used() -> str:
        return str(app.query_one("#budget-used", Static).content)

    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await until(pilot, lambda: counts().endswith("not binding"))
        await limit("5000")

        async def bound() -> bool:
            status = await tracker.status()
            return status.binding and status.limit == 5000

        await eventually(pilot, bound)
        await until(pilot, lambda: counts().endswith("· binding"))

        await limit("100")  # what is used already: spent, and binding, so the agent is held
        await until(pilot, lambda: "held: budget spent" in used())
        assert (await Steering("s1", conn).check("PreToolUse", tool="Bash")).deny

        await limit("off")

        async def lifted() -> bool:
            status = await tracker.status()
            return not status.binding and status.limit == 100  # the limit stays

        await eventually(pilot, lifted)
        await until(pilot, lambda: counts().endswith("not binding"))
        assert "held" not in used()


# -- waiting for a person ------------------------------------------------------------------------


async def test_waiting_sessions_sort_first_and_the_title_counts_them(conn):
    await populate(conn, "s1")
    await populate(conn, "s2")  # newer: first, until s1 waits
    app = MemdashApp(conn, session="s2")
    table = lambda: app.query_one("#sessions-table", DataTable)  # noqa: E731

    def first_row() -> str | None:
        return table().coordinate_to_cell_key((0, 0)).row_key.value

    def status_line() -> str:
        return str(app.query_one(StatusBar).render())

    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await until(pilot, lambda: table().row_count == 2 and first_row() == "s2")
        assert app.title == "memdash"
        await SessionControl("s1", conn).set_waiting(
            "permission_prompt", "Claude needs your permission to use Bash", tool="Bash"
        )
        await until(pilot, lambda: first_row() == "s1")
        await until(pilot, lambda: app.title == "memdash (1 waiting)")
        assert "1 waiting for a person" in status_line()
        assert state_cell(app, "s1") == "waiting"
        assert app.selected_view().session == "s2"  # the selection stays where it was

        # the store clears it with the agent's next step; the dashboard follows
        await Steering("s1", conn).check("PreToolUse", tool="Bash")
        await until(pilot, lambda: app.title == "memdash")
        assert "waiting" not in status_line()
        await until(pilot, lambda: state_cell(app, "s1") == "coding")


async def test_the_workflow_pane_says_what_the_waiting_agent_asked(conn):
    await populate(conn)
    await SessionControl("s1", conn).set_waiting("idle_prompt", "Claude is waiting for [b]input")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        pane = app.query_one(WorkflowPane)
        await until(pilot, lambda: any("waiting for a person" in t.plain for t in pane.lines))
        assert any("Claude is waiting for [b]input" in t.plain for t in pane.lines)


# -- the context window ------------------------------------------------------------------------


async def test_the_context_gauge_shows_how_full_the_window_is(conn):
    await populate(conn)
    tracker = TokenBudgetTracker("s1", 1_000_000, redis=conn)
    await tracker.record_usage(
        "r2",
        151_000,
        enforce_limit=False,
        model="claude-sonnet-4-5",
        input_tokens=10_000,
        cache_creation_input_tokens=40_000,
        cache_read_input_tokens=100_000,
        output_tokens=1_000,
    )
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        gauge = app.query_one("#budget-context", Gauge)
        await until(pilot, lambda: gauge.state[2] == "ctx 150k/200k")
        assert gauge.state[0] == 0.75 and gauge.display
        assert gauge.mark == (200_000 - AUTO_COMPACT_RESERVE) / 200_000
        drawn = lambda: "\n".join(s.text for s in app.screen._compositor.render_strips())  # noqa: E731
        await until(pilot, lambda: "ctx 150k/200k" in drawn())
        [row] = [line for line in drawn().splitlines() if "ctx 150k/200k" in line]
        assert "┃" in row

        await tracker.record_usage(
            "r3", 600_000, enforce_limit=False, model="claude-opus-4-5[1m]", input_tokens=600_000
        )
        await until(pilot, lambda: gauge.state[2] == "ctx 600k/1M")
        assert gauge.state[0] == 0.6

        # the session context may say the window (another model, a proxy…)
        await MemoryStore(conn).set(
            MemoryKey("session", "s1", "context"), {"goal": "ship", "context_window": 800_000}
        )
        await until(pilot, lambda: gauge.state[2] == "ctx 600k/800k")


async def test_no_context_gauge_before_a_request_reports_input(conn):
    await populate(conn)
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.pause(0.2)
        assert not app.query_one("#budget-context", Gauge).display


# -- the task workflow ----------------------------------------------------------------------------


async def define_task(conn: Connection, session: str = "s1") -> StatefulMemory:
    task = StatefulMemory(
        session,
        transitions=TASK_TRANSITIONS,
        initial=TASK_INITIAL,
        policies=TASK_POLICIES,
        name="task",
        redis=conn,
    )
    await task.define()
    return task


async def test_t_steps_the_task_workflow_when_there_is_one(conn):
    await populate(conn)
    await define_task(conn)
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await until(pilot, lambda: app.selected_view().task is not None)
        pane = app.query_one(WorkflowPane)
        await until(pilot, lambda: pane.lines[0].plain.startswith("● planning"))
        assert any(line.plain.startswith("activity ● coding") for line in pane.lines)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, StatePicker))
        await pilot.press("enter")  # planning → coding
        await until(pilot, lambda: app.selected_view().task.state == "coding")
        assert app.selected_view().workflow.state == "coding"  # the activity one: untouched
        await until(pilot, lambda: state_cell(app, "s1") == "coding")  # at the next repaint
        task = await StatefulMemory.open("s1", name="task", redis=conn)
        await task.transition("review")
        await until(pilot, lambda: any("⊘ denies" in line.plain for line in pane.lines))
        text = "\n".join(line.plain for line in pane.lines)
        assert "⊘ denies Edit, MultiEdit, Write," in text and "        NotebookEdit" in text
        assert "the work is in review" in text


async def test_t_steps_the_activity_workflow_without_a_task_one(conn):
    await populate(conn)
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, StatePicker))
        await pilot.press("enter")
        await until(pilot, lambda: app.selected_view().workflow.state == "testing")


# -- context edits reach the agent ----------------------------------------------------------------


async def test_a_context_save_tells_the_agent_what_changed(conn):
    await populate(conn)
    store = MemoryStore(conn)
    key = MemoryKey("session", "s1", "context")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot, app)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ContextEditor))
        app.screen.query_one("#context-text").text = '{"goal": "ship it", "owner": "ana"}'
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, ContextEditor))
        [note] = await Notes("s1", conn).list()
        assert note.kind == "context" and note.author == "operator"
        assert note.text == 'changed goal: "ship" -> "ship it"\nset owner = "ana"'
        await until(pilot, lambda: "✎ context" in history_text(app))

        # saved unchanged: nothing to tell
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ContextEditor))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, ContextEditor))
        assert len(await Notes("s1", conn).list()) == 1

        # a conflict keeps the editor open with the operator's text, and tells no one
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ContextEditor))
        editor = app.screen
        await store.set(key, {"goal": "the agent wrote meanwhile"})
        editor.query_one("#context-text").text = '{"goal": "mine"}'
        await pilot.press("ctrl+s")
        await until(pilot, lambda: editor.error is not None)
        assert app.screen is editor
        assert editor.query_one("#context-text").text == '{"goal": "mine"}'
    assert await store.get(key) == {"goal": "the agent wrote meanwhile"}
    assert len(await Notes("s1", conn).list()) == 1


async def test_new_keys_are_in_the_help_and_the_palette(conn):
    app = MemdashApp(conn)
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        keys = {binding.key for _, binding, _, _ in app.active_bindings.values()}
    assert {"Write a note", "Pause or resume", "Set budget limit"} <= titles
    assert {"n", "P", "l", "t", "F"} <= keys


# -- snapshots ----------------------------------------------------------------------------------

T0 = 1_767_268_800_000  # 2026-01-01 12:00:00 UTC


class HistoryHost(App[None]):
    CSS = "HistoryPane { height: 1fr; border: round $primary; }"

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def compose(self) -> ComposeResult:
        yield HistoryPane(self.conn, id="history", tz=UTC)

    async def on_unmount(self) -> None:
        await self.conn.aclose()


def test_snapshot_history_with_notes_and_a_pause(snap_compare, redis_url):
    conn = Connection(redis_url, namespace="test")

    async def run_before(pilot: Any) -> None:
        memory = ConversationMemory("s1", redis=conn)
        lines = [
            ("user", "Fix the flaky login test"),
            ("assistant", "Reading tests/test_login.py"),
            ("tool", "Bash: pytest -q tests/test_login.py → 1 failed"),
            ("assistant", "The fixture leaks a session; patching it"),
            ("tool", "Edit: tests/conftest.py"),
            ("assistant", "Re-running the suite"),
        ]
        for i, (role, content) in enumerate(lines):
            await memory.append(
                {"role": role, "content": content, "timestamp": datetime(2026, 1, 1, 12, 0, 10 * i)}
            )
        view = (await read_sessions(conn, ["s1"]))["s1"]
        view.notes = NotesView(
            {
                1: Note(
                    1,
                    "note",
                    "operator",
                    T0 + 25_000,
                    2,
                    "don't touch [b]conftest[/b]\nuse a fixture",
                    Delivery(T0 + 31_000, "PostToolUse", "Bash"),
                ),
                2: Note(2, "context", "operator", T0 + 45_000, 4, 'set owner = "ana"'),
            }
        )
        view.control = ControlView(
            paused=False,
            log=[
                PauseEntry(T0 + 33_000, True, "operator", "wait for the fixture fix", 3),
                PauseEntry(T0 + 37_000, False, "operator", None, 3),
            ],
        )
        pane = pilot.app.query_one(HistoryPane)
        pane.show(view, T0 + 60_000)

        def loaded() -> bool:
            height = pane.scrollable_content_region.height
            return "loading" not in "".join(pane.render_line(y).text for y in range(height))

        await until(pilot, loaded)
        await pilot.pause()

    assert snap_compare(HistoryHost(conn), terminal_size=(80, 16), run_before=run_before)


def test_snapshot_sessions_waiting_and_paused(snap_compare):
    async def fill(pilot: Any) -> None:
        waiting = session_view("sess-wait", 300_000, state="tool", used=300, limit=1000, total=40)
        waiting.control = ControlView(waiting=Waiting(NOW - 300_000, "permission_prompt", "Bash?"))
        paused = session_view("sess-held", 9_000, state="coding", used=820, limit=1000, total=7)
        paused.control = ControlView(paused=True, paused_at=NOW - 9_000, paused_by="operator")
        both = session_view("sess-both", 600_000, state="idle", used=10, limit=1000, total=3)
        both.control = ControlView(
            paused=True, waiting=Waiting(NOW - 600_000, "idle_prompt", "waiting for input")
        )
        task = session_view("sess-task", 2_000, state="tool", used=100, limit=1000, total=12)
        task.task = WorkflowView("review", None, NOW, TASK_TRANSITIONS, TASK_INITIAL)
        plain = session_view("sess-free", 1_000, state="responding", total=99)
        pilot.app.query_one(SessionsPane).sync(
            by_id(waiting, paused, both, task, plain), set(), True, NOW
        )
        await pilot.pause()

    assert snap_compare(SessionsHost(selected="sess-held"), terminal_size=(60, 12), run_before=fill)


class BudgetHost(PaneHost):
    PANE = BudgetPane
    PANE_ID = "budget"
    CSS = "#budget { border: round $primary; padding: 0 1; height: 13; width: 1fr; }"


def budget_view(used: int, limit: int, *, binding: bool, context: int, model: str) -> SessionView:
    budget = BudgetView(used=used, limit=limit, binding=binding, context_tokens=context)
    budget.model = model
    budget.requests, budget.rejected = 41, 0
    budget.totals.update(
        input_tokens=9_800, output_tokens=21_400,
        cache_creation_input_tokens=61_000, cache_read_input_tokens=1_480_000,
    )  # fmt: skip
    budget.minutes = {NOW // 60000 - i: (i * 7919) % 40_000 for i in range(0, 40, 3)}
    return SessionView("s1", budget=budget)


def test_snapshot_budget_binding_with_the_context_gauge(snap_compare):
    view = budget_view(1_572_200, 2_000_000, binding=True, context=152_400,
                       model="claude-sonnet-4-5")  # fmt: skip
    assert snap_compare(BudgetHost(view), terminal_size=(64, 13))


def test_snapshot_budget_held_near_compaction(snap_compare):
    view = budget_view(2_000_000, 2_000_000, binding=True, context=181_000,
                       model="claude-sonnet-4-5")  # fmt: skip
    assert snap_compare(BudgetHost(view), terminal_size=(64, 13))


class WorkflowHost(App[None]):
    CSS = "#workflow { width: 44; border: round $primary; padding: 0 1; }"

    def __init__(self, view: SessionView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield WorkflowPane(id="workflow", tz=UTC)

    def on_mount(self) -> None:
        self.query_one(WorkflowPane).show(self.view, T0 + 425_000)


def test_snapshot_workflow_task_with_its_policy(snap_compare):
    task = WorkflowView(
        "review", None, T0 + 300_000, TASK_TRANSITIONS, TASK_INITIAL,
        recent=[
            Transition("coding", "review", "operator", False, None, None, 9, T0 + 300_000),
            Transition("testing", "coding", "ops", True, "tests are flaky", None, 7, T0 + 200_000),
            Transition("planning", "coding", "agent", False, None, None, 3, T0 + 60_000),
        ],
        policies=TASK_POLICIES,
    )  # fmt: skip
    activity = WorkflowView(
        "tool", {"tool": "Edit"}, T0 + 410_000,
        {"idle": ["prompting"], "prompting": ["tool"], "tool": ["responding"],
         "responding": ["idle"]}, "idle",
    )  # fmt: skip
    control = ControlView(
        waiting=Waiting(T0 + 420_000, "permission_prompt",
                        "Claude needs your permission to use Edit", "Edit"),
    )  # fmt: skip
    view = SessionView("s1", task=task, workflow=activity, control=control)
    assert snap_compare(WorkflowHost(view), terminal_size=(44, 40))
