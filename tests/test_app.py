"""The whole dashboard, driven by Pilot against a real redis-server."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
import redis
from textual.widgets import DataTable

from store import (
    ConversationMemory,
    MemoryCache,
    MemoryKey,
    MemoryStore,
    StatefulMemory,
    TokenBudgetTracker,
)
from store.connection import Connection
from store.server import RedisServer, free_port
from tui.app import MemdashApp
from tui.panes.sessions import SessionsPane
from tui.screens.context_editor import ContextEditor
from tui.screens.help import HelpScreen
from tui.screens.pickers import LimitPrompt, StatePicker, TextPrompt
from tui.status import Banner, StatusBar

FLOW = {"planning": ["coding"], "coding": ["testing"], "testing": ["review", "coding"],
        "review": ["done", "coding"], "done": []}  # fmt: skip
SIZE = (160, 45)


async def until(pilot, predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def populate(conn: Connection, session: str = "s1") -> StatefulMemory:
    await MemoryStore(conn).set(MemoryKey("session", session, "context"), {"goal": "ship"})
    await TokenBudgetTracker(session, 1000, redis=conn).track_request("r1", 100)
    await ConversationMemory(session, redis=conn).add_message("user", "hello")
    flow = StatefulMemory(session, transitions=FLOW, initial="planning", redis=conn)
    await flow.transition("coding")
    return flow


def table(app: MemdashApp) -> DataTable:
    return app.query_one("#sessions-table", DataTable)


async def test_live_updates_reach_the_sessions_and_the_selected_view(conn):
    await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected" and table(app).row_count == 1)
        assert app.selected_view().workflow.state == "coding"
        await populate(conn, "s2")
        await until(pilot, lambda: table(app).row_count == 2)
        await TokenBudgetTracker("s1", 1000, redis=conn).track_request("r2", 300)
        await until(pilot, lambda: app.selected_view().budget.used == 400)
        assert app.repaints >= 2


async def test_selecting_a_session_drives_the_panes(conn):
    await populate(conn, "s1")
    await populate(conn, "s2")
    app = MemdashApp(conn)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: table(app).row_count == 2)
        await until(pilot, lambda: app.model.selected == "s2")  # the cursor's row: newest first
        await pilot.press("down")
        await until(pilot, lambda: app.model.selected == "s1")
        assert app.selected_view().session == "s1"
        await pilot.press("up")
        await until(pilot, lambda: app.model.selected == "s2")


async def test_repaints_are_bounded_under_a_burst(conn):
    await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        before = app.repaints
        started = asyncio.get_running_loop().time()
        conversation = ConversationMemory("s1", redis=conn)
        await asyncio.gather(*(conversation.add_message("user", f"m{i}") for i in range(500)))
        await until(pilot, lambda: app.selected_view().conversation.total == 501)
        elapsed = asyncio.get_running_loop().time() - started
        # 500 events coalesce into repaints at no more than 30 a second (+1 for the edge); the
        # default is 10.
        assert app.repaints - before <= 30 * elapsed + 1


async def test_status_bar_shows_the_masked_url_and_counts(conn):
    app = MemdashApp(conn)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        await pilot.pause(0.1)
        status = str(app.query_one(StatusBar).render())
        assert "connected" in status and "ns test" in status and "dropped 0" in status


def test_the_password_never_reaches_the_screen():
    app = MemdashApp("redis://agent:s3cret@127.0.0.1:1/0", namespace="x")
    assert "s3cret" not in app.conn.display_url


@pytest.fixture
def restartable_server(tmp_path):
    server = RedisServer(directory=tmp_path, port=free_port(), appendonly=True).start()
    yield server
    server.stop()


async def test_a_lost_connection_shows_a_banner_and_recovers(restartable_server):
    conn = Connection(restartable_server.url, namespace="test")
    await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        restartable_server.kill()
        await until(pilot, lambda: app.query_one(Banner).display)
        assert app.feed.status == "reconnecting"
        restartable_server.start()
        await until(pilot, lambda: app.feed.status == "resynced", timeout=15)
        await until(pilot, lambda: not app.query_one(Banner).display)
        await TokenBudgetTracker("s1", 1000, redis=conn).track_request("after", 50)
        await until(pilot, lambda: app.selected_view().budget.used == 150)
    await conn.aclose()


async def test_step_workflow_from_the_keyboard(conn):
    flow = await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, StatePicker))
        await pilot.press("enter")  # the only valid next state: testing
        await until(pilot, lambda: app.selected_view().workflow.state == "testing")
    history = await flow.history(limit=1)
    assert (history[0].from_state, history[0].to_state, history[0].actor) == (
        "coding",
        "testing",
        "operator",
    )


async def test_force_state_asks_why_and_records_it(conn):
    flow = await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, StatePicker))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TextPrompt))
        await pilot.press(*"stuck", "enter")
        await until(pilot, lambda: app.selected_view().workflow.state != "coding")
    last = (await flow.history(limit=1))[0]
    assert last.forced and last.reason == "stuck" and last.actor == "operator"


async def test_edit_context_saves_or_reports_a_conflict(conn):
    await populate(conn, "s1")
    store = MemoryStore(conn)
    key = MemoryKey("session", "s1", "context")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ContextEditor))
        app.screen.query_one("#context-text").text = '{"goal": "edited"}'
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.selected_view().context == {"goal": "edited"})

        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ContextEditor))
        await store.set(key, {"goal": "the agent wrote meanwhile"})  # a concurrent write
        app.screen.query_one("#context-text").text = '{"goal": "mine"}'
        await pilot.press("ctrl+s")
        await pilot.pause(0.3)
    assert await store.get(key) == {"goal": "the agent wrote meanwhile"}  # nothing lost


async def test_set_limit_from_the_keyboard(conn):
    await populate(conn, "s1")
    app = MemdashApp(conn, session="s1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LimitPrompt))
        app.screen.query_one("#number").value = "5000"
        await pilot.press("enter")
        await until(pilot, lambda: app.selected_view().budget.limit == 5000)


async def test_every_action_is_in_the_command_palette(conn):
    app = MemdashApp(conn)
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
    for title in ("Filter sessions", "Keys", "Step workflow", "Force workflow state",
                  "Edit context", "Set budget limit", "Reset budget"):  # fmt: skip
        assert title in titles


async def test_help_lists_the_bindings(conn):
    app = MemdashApp(conn)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        table = app.screen._bindings_table
        keys = {str(cell) for cell in table.columns[0].cells}
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
    assert {"q", "/", "?", "t", "e", "l", "ctrl+p"} <= keys


# -- the whole screen: hostile content everywhere, and a snapshot --------------------------

HOSTILE = "[bold]x[/] \x1b[31mred\x1b[0m \x00\x07\r[link=http://evil]y[/link] " + "w" * 300


async def populate_hostile(conn: Connection) -> str:
    session = "[bold]s[/]1 [link=x]"  # names may not hold control characters; markup, yes
    start = "[reverse]start[/]"
    flow = {start: ["[/]done"], "[/]done": []}
    await MemoryStore(conn).set(MemoryKey("session", session, "context"), {"note": HOSTILE})
    budget = TokenBudgetTracker(session, 1000, redis=conn)
    await budget.track_request("r1", 950, model="[red]model[/]", input_tokens=900)
    conversation = ConversationMemory(session, max_messages=3, redis=conn)
    for i in range(5):
        await conversation.add_message("user", HOSTILE + f" {i}" + "z" * 10_000)
    machine = StatefulMemory(session, transitions=flow, initial=start, redis=conn)
    await machine.force_state("[/]done", reason=HOSTILE)
    return session


async def test_hostile_content_is_shown_literally_in_every_pane(conn):
    session = await populate_hostile(conn)
    app = MemdashApp(conn, session=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.feed.status == "connected" and app.selected_view())
        await pilot.pause(0.5)
        screen = app.export_screenshot()
    # Markup shows as its own characters; escapes and controls as visible glyphs.
    for literal in ("[bold]", "[/]", "[red]model", "␛[31mred", "␀", "[link=http://evil]"):
        assert literal.replace(" ", "&#160;") in screen, literal
    assert "\x1b" not in screen and "\x00" not in screen


FIXED_CLOCK = 1_795_000_000.0


def freeze(app: MemdashApp) -> None:
    """Server-time fields of every view pinned relative to the fixed clock (for a stable SVG)."""
    now = int(FIXED_CLOCK * 1000)
    for view in app.feed.sessions.values():
        view.last_activity, view.created = now - 5_000, now - 600_000
        if view.budget is not None:
            view.budget.minutes = {now // 60000 - k: 40 * (k % 4 + 1) for k in range(12)}
        if view.workflow is not None:
            view.workflow.since = now - 90_000
            view.workflow.recent = [
                t._replace(ts=now - 60_000 * (i + 1)) for i, t in enumerate(view.workflow.recent)
            ]
        if view.cache is not None:
            view.cache.updated = now
            view.cache.series = [
                s._replace(ts=now - 250 * (len(view.cache.series) - i))
                for i, s in enumerate(view.cache.series)
            ]
        if view.conversation is not None:
            view.conversation.trims = [t._replace(ts=now) for t in view.conversation.trims]
    app.url = "redis://127.0.0.1:6400/0"
    app.model.everything_changed = True


def test_the_whole_screen(snap_compare, redis_url):
    async def scenario(pilot):
        app = pilot.app
        conn = app.conn
        for name in ("agent-a", "agent-b"):
            flow = StatefulMemory(name, transitions=FLOW, initial="planning", redis=conn)
            await flow.transition("coding", actor="agent")
            await flow.transition("testing", actor="agent")
            budget = TokenBudgetTracker(name, 10_000, redis=conn)
            await budget.track_request("r1", 7_600, input_tokens=7_000, output_tokens=600)
            conversation = ConversationMemory(name, max_messages=6, redis=conn)
            for i in range(8):
                await conversation.append(
                    {"role": "user" if i % 2 else "assistant", "content": f"step {i} of the plan",
                     "timestamp": datetime(2026, 11, 24, 9, 0, i), "tokens": 10 * i}
                )  # fmt: skip
            cache = MemoryCache(name, max_size=2, redis=conn)
            for key in "abcab":
                await cache.set(key, 1)
                await cache.get(key)
            await cache.get("zz")
            await cache.flush_stats()
            await cache.aclose()
        await MemoryStore(conn).set(MemoryKey("session", "agent-a", "context"), {"goal": "ship"})
        # Every write is in: wait for the feed to have applied all of them before pinning times.
        seqs = {name: int(await conn.client.hget(conn.session(name).meta, "seq"))
                for name in ("agent-a", "agent-b")}  # fmt: skip
        await until(pilot, lambda: {s: v.seq for s, v in app.feed.sessions.items()} == seqs)
        freeze(app)
        sessions = app.query_one(SessionsPane)
        # The frozen ages tie: the re-sort puts the greater id first, as the registry does.
        await until(pilot, lambda: not app.model.everything_changed and sessions.settled)
        await pilot.pause(0.3)

    with redis.Redis.from_url(redis_url) as admin:
        admin.flushall()
    app = MemdashApp(redis_url, namespace="snap", session="agent-a", clock=lambda: FIXED_CLOCK)
    assert snap_compare(app, terminal_size=SIZE, run_before=scenario)
