"""#sessions: rows keyed by session id and updated in place, newest first, `/` filter, pages of
rows for 10,000 sessions, the selection message, hostile ids; end to end and a snapshot."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input

from store import MemoryKey, MemoryStore, SessionView, TokenBudgetTracker
from store.budget import BudgetView
from store.conversation import ConversationView
from store.workflow import WorkflowView
from tui.app import MemdashApp
from tui.panes import sessions as sessions_module
from tui.panes.sessions import PAGE, SessionsPane, budget_cell
from tui.text import age_due, humanise_age, humanise_count
from tui.widgets import palette

NOW = 1_700_000_000_000  # ms


def view(
    sid: str,
    ago_ms: int = 1000,
    *,
    state: str | None = None,
    used: int | None = None,
    limit: int | None = None,
    total: int | None = None,
) -> SessionView:
    budget = BudgetView(used=used or 0, limit=limit) if used is not None or limit else None
    conversation = ConversationView(total=total) if total is not None else None
    workflow = (
        WorkflowView(state=state, data=None, since=None, transitions={}, initial=state)
        if state is not None
        else None
    )
    return SessionView(
        sid,
        1,
        NOW - ago_ms,
        NOW - 86_400_000,
        budget=budget,
        conversation=conversation,
        workflow=workflow,
    )


def by_id(*views: SessionView) -> dict[str, SessionView]:
    return {v.session: v for v in views}


class Host(App[None]):
    """Only the pane, sized like the dashboard's, with a fixed clock and a `/` binding."""

    CSS = """
    #sessions { width: 38; border: round $primary; border-title-align: left; }
    #sessions-filter { height: 3; }
    """
    BINDINGS = [Binding("/", "filter", "Filter")]

    def __init__(self, selected: str | None = None, now_ms: int = NOW) -> None:
        super().__init__()
        self.now_ms = now_ms
        self.clock = lambda: self.now_ms / 1000
        self.model = SimpleNamespace(selected=selected)
        self.selected: list[str] = []

    def compose(self) -> ComposeResult:
        yield SessionsPane(id="sessions", selected=self.model.selected, clock=self.clock)

    def action_filter(self) -> None:
        self.query_one(SessionsPane).open_filter()

    def on_sessions_pane_selected(self, message: SessionsPane.Selected) -> None:
        self.selected.append(message.session)

    @property
    def pane(self) -> SessionsPane:
        return self.query_one(SessionsPane)

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#sessions-table", DataTable)


def row_ids(table: DataTable[Any]) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def cell(table: DataTable[Any], sid: str, column: str) -> Text:
    return table.get_cell(sid, column)


def screen_text(app: App[Any]) -> str:
    console = Console(width=app.size.width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


class Spy:
    """Counts calls of some DataTable methods (and still calls them)."""

    def __init__(self, table: DataTable[Any], *names: str) -> None:
        self.calls: dict[str, list[tuple[Any, ...]]] = {name: [] for name in names}
        for name in names:
            original = getattr(table, name)

            def wrapper(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
                self.calls[_name].append(args)
                return _original(*args, **kw)

            setattr(table, name, wrapper)

    def count(self, name: str) -> int:
        return len(self.calls[name])


@pytest.fixture
def fast_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "RESORT_INTERVAL", 0.0)


# -- formatting ---------------------------------------------------------------------------------


def test_humanised_age_and_count():
    # Under a minute in 10-second steps (a per-second age redrew every row every second).
    ages = (-5, 0, 5_000, 10_000, 25_000, 59_999, 180_000, 7_200_000)
    assert [humanise_age(ms) for ms in ages] == [
        "<10s",
        "<10s",
        "<10s",
        "10s",
        "20s",
        "50s",
        "3m",
        "2h",
    ]
    assert age_due(0, 5_000) == 10_000 and age_due(0, 59_000) == 60_000
    assert age_due(0, 61_000) == 120_000
    assert humanise_age(4 * 86_400_000) == "4d"
    assert humanise_age(10**15) == "999d"
    assert [humanise_count(n) for n in (0, 9999, 12_345, 1_234_567, 98_765_432)] == [
        "0",
        "9999",
        "12k",
        "1.2M",
        "98M",
    ]


def test_budget_percent_and_colour_thresholds():
    def at(used: int, limit: int | None = 1000) -> tuple[str, str]:
        return budget_cell(view("s", used=used, limit=limit))

    assert at(0) == ("0%", "green")
    assert at(699) == ("69%", "green")
    assert at(700) == ("70%", "yellow")
    assert at(899) == ("89%", "yellow")
    assert at(900) == ("90%", "bold red")
    assert at(1000) == ("100%", "bold red")
    assert at(5, limit=0) == ("100%", "bold red")
    assert budget_cell(view("s")) == ("", "")  # no budget at all
    assert budget_cell(SessionView("s", budget=BudgetView(used=5, limit=None))) == ("", "")


# -- rows -------------------------------------------------------------------------------------


async def test_rows_show_every_column_newest_first():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(
            view("old", 3 * 3_600_000, state="done", used=950, limit=1000, total=3),
            view("new", 5_000, state="running", used=420, limit=1000, total=12),
            view("mid", 200_000, state="waiting", total=12_345),
        )
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        assert row_ids(table) == ["new", "mid", "old"]
        assert cell(table, "new", "state").plain == "running"
        assert cell(table, "new", "budget").plain == "42%"
        colours = palette(app)  # #budget's thresholds and the theme's colours
        assert str(cell(table, "new", "budget").style) == colours.ok
        assert cell(table, "old", "budget").style == f"bold {colours.bad}"
        assert cell(table, "mid", "budget").plain == ""  # no budget
        assert cell(table, "mid", "messages").plain == "12k"
        assert [cell(table, s, "age").plain for s in ("new", "mid", "old")] == ["<10s", "3m", "3h"]
        assert app.pane.border_title == "sessions (3)"
        text = screen_text(app)
        assert "sessions (3)" in text
        assert "new" in text and "running" in text and "42%" in text


async def test_a_change_updates_the_row_in_place():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(
            view("a", 1000, state="plan", used=100, limit=1000, total=1), view("b", 2000)
        )
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        key_before = table.coordinate_to_cell_key((0, 0)).row_key
        spy = Spy(table, "clear", "add_row", "remove_row", "update_row", "update_cell", "sort")

        # The same session, a new budget figure and one more message; same last_activity.
        sessions["a"].budget.used = 800
        sessions["a"].conversation.total = 2
        app.pane.sync(sessions, {"a"}, False, NOW)
        await pilot.pause()

        assert table.coordinate_to_cell_key((0, 0)).row_key == key_before
        assert cell(table, "a", "budget").plain == "80%"
        assert cell(table, "a", "budget").style == palette(app).warn
        assert cell(table, "a", "messages").plain == "2"
        assert table.row_count == 2
        assert spy.count("clear") == spy.count("add_row") == spy.count("remove_row") == 0
        assert spy.count("sort") == 0  # the order did not change
        # Only the two cells whose text changed were written, in one update of the row (which
        # repaints that row, not the table as update_cell would).
        assert spy.count("update_cell") == 0
        assert [(args[0], sorted(args[1])) for args in spy.calls["update_row"]] == [
            ("a", ["budget", "messages"])
        ]

        # The state changes; a sync with nothing new for a session writes nothing.
        sessions["a"].workflow.state = "act"
        app.pane.sync(sessions, {"a", "b"}, False, NOW)
        assert cell(table, "a", "state").plain == "act"
        assert [list(args[1]) for args in spy.calls["update_row"][1:]] == [["state"]]
        # A full resync with the same data rebuilds nothing either.
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        assert spy.count("clear") == spy.count("add_row") == 0
        assert spy.count("update_row") == 2


async def test_new_and_active_sessions_move_to_the_top_keeping_the_selection(fast_resort):
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(view("a", 3000), view("b", 2000), view("c", 1000))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        assert row_ids(table) == ["c", "b", "a"]
        table.focus()
        await pilot.press("down")
        assert app.selected == ["c", "b"]  # the first row, then the user's choice
        spy = Spy(table, "clear")

        # "a" becomes the most active; a new session "d" appears after it.
        sessions["a"].last_activity = NOW
        sessions["d"] = view("d", 500)
        app.pane.sync(sessions, {"a", "d"}, False, NOW)
        await pilot.pause()
        assert row_ids(table) == ["a", "d", "c", "b"]
        assert table.cursor_row == 3  # still on "b"
        assert app.pane.selected == "b"
        assert app.selected == ["c", "b"]  # moving its row is not a new selection
        assert spy.count("clear") == 0
        assert app.pane.border_title == "sessions (4)"


async def test_a_session_gone_after_a_resync_loses_its_row(fast_resort):
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(view("a", 1000), view("b", 2000), view("c", 3000))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        app.table.focus()
        await pilot.press("down")
        assert app.pane.selected == "b"
        spy = Spy(app.table, "clear", "remove_row")
        del sessions["b"]  # e.g. expired, then the feed re-read the namespace
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        assert row_ids(app.table) == ["a", "c"]
        assert spy.count("clear") == 0 and spy.count("remove_row") == 1
        assert app.pane.selected == "c"  # the row now under the cursor
        assert app.selected[-1] == "c"
        assert app.pane.border_title == "sessions (2)"


async def test_resorting_happens_at_most_once_a_second():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(view("a", 3000), view("b", 2000))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        sessions["a"].last_activity = NOW
        sessions["new"] = view("new", 100)
        app.pane.sync(sessions, {"a", "new"}, False, NOW)
        await pilot.pause()
        assert row_ids(table) == ["b", "a"]  # not yet: the first sort was just now
        deadline = time.monotonic() + 3
        while row_ids(table) != ["a", "new", "b"] and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert row_ids(table) == ["a", "new", "b"]


async def test_ages_tick_for_visible_rows_without_events(monkeypatch):
    monkeypatch.setattr(sessions_module, "AGE_INTERVAL", 0.05)
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        app.pane.sync(by_id(view("a", 5000)), set(), True, NOW)
        await pilot.pause()
        assert cell(app.table, "a", "age").plain == "<10s"
        app.now_ms = NOW + 125_000
        await pilot.pause(0.2)
        assert cell(app.table, "a", "age").plain == "2m"


# -- filter -----------------------------------------------------------------------------------


async def test_slash_filters_by_id_keeps_a_matching_selection_and_escape_clears():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        ids = ["alpha-1", "Beta-2", "gamma-3", "alpha-4", "delta-5"]
        sessions = by_id(*(view(sid, 1000 * (i + 1)) for i, sid in enumerate(ids)))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        table.focus()
        await pilot.press("down", "down", "down")  # alpha-4
        assert app.pane.selected == "alpha-4"

        await pilot.press("slash")
        search = app.query_one("#sessions-filter", Input)
        assert search.display and search.has_focus
        await pilot.press("A", "L", "p")  # case-insensitive
        await pilot.pause()
        assert row_ids(table) == ["alpha-1", "alpha-4"]
        assert app.pane.selected == "alpha-4"  # it still matches: still selected
        assert table.cursor_row == 1
        assert app.pane.border_title == "sessions (2/5)"

        await pilot.press("backspace", "backspace", "backspace", "b", "e")
        await pilot.pause()
        assert row_ids(table) == ["Beta-2"]
        assert app.pane.selected == "Beta-2"  # the old one is gone: the highlighted row is

        await pilot.press("q")  # typed into the filter, not a binding
        await pilot.pause()
        assert row_ids(table) == []
        assert app.pane.border_title == "sessions (0/5)"

        await pilot.press("escape")
        await pilot.pause()
        assert not search.display and search.value == ""
        assert table.has_focus
        assert row_ids(table) == ids
        assert app.pane.selected == "Beta-2"
        assert table.cursor_row == 1
        assert app.pane.border_title == "sessions (5)"


async def test_enter_keeps_the_filter_and_goes_back_to_the_table():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        app.pane.sync(by_id(view("one", 1000), view("two", 2000)), set(), True, NOW)
        await pilot.pause()
        await pilot.press("slash", "t", "w", "enter")
        await pilot.pause()
        assert app.table.has_focus
        assert row_ids(app.table) == ["two"]
        await pilot.press("escape")  # from the table too
        await pilot.pause()
        assert row_ids(app.table) == ["one", "two"]


# -- selection --------------------------------------------------------------------------------


async def test_highlighting_a_row_posts_selected_once_per_change():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        app.pane.sync(by_id(view("a", 1), view("b", 2), view("c", 3)), set(), True, NOW)
        await pilot.pause()
        assert app.selected == ["a"]  # the first row, once it exists
        app.table.focus()
        await pilot.press("down", "down", "down", "up")
        await pilot.pause()
        assert app.selected == ["a", "b", "c", "b"]


async def test_the_apps_session_is_selected_when_it_appears(fast_resort):
    app = Host(selected="wanted")
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(view("other", 1000))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        assert app.selected == []  # not the first row: the app asked for another session
        sessions["wanted"] = view("wanted", 2000)
        app.pane.sync(sessions, {"wanted"}, False, NOW)
        await pilot.pause()
        assert row_ids(app.table) == ["other", "wanted"]
        assert app.table.cursor_row == 1
        assert app.pane.selected == "wanted"
        assert app.selected == []  # the app already has it


async def test_the_apps_session_deep_in_the_list_is_loaded_and_selected():
    app = Host(selected="s-00700")
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(*(view(f"s-{i:05}", i * 10) for i in range(1000)))
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        assert app.table.row_count >= 701  # up to it (and the next page: it is near the end)
        assert row_ids(app.table)[700] == "s-00700"
        assert app.pane.selected == "s-00700"
        assert app.table.cursor_row == 700


# -- 10,000 sessions --------------------------------------------------------------------------


async def test_ten_thousand_sessions_load_in_pages_and_keys_stay_prompt(capsys):
    app = Host()
    async with app.run_test(size=(60, 30)) as pilot:
        sessions = by_id(*(view(f"s-{i:05}", i * 10, state="run", total=i) for i in range(10_000)))
        started = time.perf_counter()
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        first_sync = time.perf_counter() - started
        table = app.table
        assert table.row_count == PAGE
        assert app.pane.border_title == "sessions (10000)"
        table.focus()
        await pilot.pause()

        presses = []
        for _ in range(5):
            started = time.perf_counter()
            await pilot.press("down")
            presses.append(time.perf_counter() - started)
        assert app.pane.selected == "s-00005"

        await pilot.press("end")  # to the last loaded row: the next page comes in
        await pilot.pause()
        assert table.row_count == 2 * PAGE
        await pilot.press("end")
        await pilot.pause()
        assert table.row_count == 3 * PAGE
        for _ in range(12):
            await pilot.press("pagedown")
        await pilot.pause()
        assert table.row_count > 3 * PAGE
        assert row_ids(table) == [f"s-{i:05}" for i in range(table.row_count)]  # in order

        # Scrolling (the mouse wheel, no cursor move) loads more too.
        loaded = table.row_count
        table.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert table.row_count > loaded

        # An event for a session far below the loaded rows brings it to the top.
        sessions["s-09999"].last_activity = NOW + 1
        app.pane._last_resort = float("-inf")  # no need to wait out the 1 s throttle here
        started = time.perf_counter()
        app.pane.sync(sessions, {"s-09999"}, False, NOW)
        await pilot.pause()
        resort = time.perf_counter() - started
        assert row_ids(table)[0] == "s-09999"

        presses_loaded = []
        for _ in range(5):
            started = time.perf_counter()
            await pilot.press("down")
            presses_loaded.append(time.perf_counter() - started)
    with capsys.disabled():
        print(
            f"\n[sessions] 10k: first sync+render {first_sync * 1000:.0f} ms; "
            f"down key {min(presses) * 1000:.0f}-{max(presses) * 1000:.0f} ms with {PAGE} rows, "
            f"{min(presses_loaded) * 1000:.0f}-{max(presses_loaded) * 1000:.0f} ms with "
            f"{table.row_count} rows; re-sort+render {resort * 1000:.0f} ms"
        )


async def test_adding_ten_thousand_rows_in_one_go_for_comparison(capsys):
    """Measures why the pane pages: a plain DataTable given 10,000 rows at once."""

    class Plain(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

    app = Plain()
    async with app.run_test(size=(60, 30)) as pilot:
        table = app.query_one(DataTable)
        for key, *_ in sessions_module.COLUMNS:
            table.add_column(key, key=key)
        started = time.perf_counter()
        for i in range(10_000):
            sid = f"s-{i:05}"
            table.add_row(Text(sid), Text("run"), Text("42%"), Text("12"), Text("5s"), key=sid)
        added = time.perf_counter() - started
        await pilot.pause()
        settled = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n[sessions] 10k add_row: {added * 1000:.0f} ms, until idle {settled * 1000:.0f} ms"
        )


# -- hostile text -----------------------------------------------------------------------------


HOSTILE = [
    "[bold]x[/]",
    "\x1b[31mred\x1b[0m",
    "nul\x00bel\x07cr\rnl\n",
    "\u202eevil\u200b",
    "宽字符宽字符宽字符",
    "x" * 10_240,
]


async def test_hostile_ids_and_states_render_literally():
    app = Host()
    async with app.run_test(size=(60, 16)) as pilot:
        sessions = by_id(
            *(view(sid, 1000 * (i + 1), state=HOSTILE[-i - 1]) for i, sid in enumerate(HOSTILE))
        )
        app.pane.sync(sessions, set(), True, NOW)
        await pilot.pause()
        table = app.table
        assert table.row_count == len(HOSTILE)
        for sid in HOSTILE:
            for column in ("session", "state"):
                shown = cell(table, sid, column)
                assert isinstance(shown, Text) and not shown.spans  # nothing parsed as markup
                assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in shown.plain)
                assert "\u202e" not in shown.plain and "\u200b" not in shown.plain
                assert shown.cell_len <= 12
        assert cell(table, "[bold]x[/]", "session").plain == " [bold]x[/]"
        assert cell(table, "\x1b[31mred\x1b[0m", "session").plain == " ␛[31mred␛…"
        assert cell(table, "x" * 10_240, "session").plain == " " + "x" * 9 + "…"
        text = screen_text(app)
        assert "[bold]x[/]" in text and "␛[31mred" in text
        lines = text.splitlines()
        assert all(len(line) <= 60 for line in lines)
        assert lines[0].startswith("╭─ sessions (6) ")
        for line in lines[1:15]:  # the right border holds, wide characters and all
            assert line.rstrip().endswith("│") and cell_len(line.rstrip()) == 38

        # And they can be filtered and selected like any other.
        await pilot.press("slash", "[", "b")
        await pilot.pause()
        assert row_ids(table) == ["[bold]x[/]"]
        assert app.pane.selected == "[bold]x[/]"


# -- end to end -------------------------------------------------------------------------------


async def test_end_to_end_with_the_real_app(conn):
    clock_s = NOW / 1000
    memory = MemoryStore(conn)
    await memory.set(MemoryKey("session", "s1", "context"), {"goal": "x"})
    await TokenBudgetTracker("s2", 1000, redis=conn).track_request("r1", 950)
    app = MemdashApp(conn, session="s1", clock=lambda: clock_s)
    async with app.run_test(size=(140, 30)) as pilot:
        for _ in range(100):
            if app.feed.status == "connected" and app.query_one(DataTable).row_count == 2:
                break
            await pilot.pause(0.05)
        pane = app.query_one(SessionsPane)
        table = pane.table
        assert row_ids(table) == ["s2", "s1"]  # s2 was written last
        assert table.cursor_row == 1  # the app was started on s1
        assert app.model.selected == "s1"
        assert cell(table, "s2", "budget").plain == "95%"
        assert cell(table, "s2", "budget").style == f"bold {palette(app).bad}"
        assert pane.border_title == "sessions (2)"

        spy = Spy(table, "clear", "add_row", "update_row")
        budget = TokenBudgetTracker("s1", 1000, redis=conn)
        await budget.track_request("r2", 100)
        for _ in range(100):
            if cell(table, "s1", "budget").plain == "10%":
                break
            await pilot.pause(0.05)
        assert cell(table, "s1", "budget").plain == "10%"
        assert spy.count("clear") == spy.count("add_row") == 0
        for _ in range(60):  # s1 is the newest now (within the 1 s re-sort throttle)
            if row_ids(table) == ["s1", "s2"]:
                break
            await pilot.pause(0.05)
        assert row_ids(table) == ["s1", "s2"]
        assert table.cursor_row == 0 and app.model.selected == "s1"

        table.focus()
        await pilot.press("down")
        await pilot.pause()
        assert app.model.selected == "s2"  # the other panes follow

        await memory.set(MemoryKey("session", "s3", "context"), 1)
        for _ in range(60):
            if table.row_count == 3:
                break
            await pilot.pause(0.05)
        assert row_ids(table)[0] == "s3"
        assert app.model.selected == "s2"
        assert table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value == "s2"
        await asyncio.sleep(0)


# -- snapshot ---------------------------------------------------------------------------------


def snapshot_app() -> Host:
    return Host(selected="sess-0002")


async def fill(pilot: Any) -> None:
    pilot.app.pane.sync(
        by_id(
            view("sess-0001", 5_000, state="running", used=420, limit=1000, total=12),
            view("sess-0002", 200_000, state="waiting", used=750, limit=1000, total=12_345),
            view("a-very-long-session-id", 3 * 3_600_000, state="done", used=950, limit=1000),
            view("[bold]x[/]\x1b[31m", 5 * 86_400_000, state="[red]st\x00ate"),
            view("no-budget", 9 * 86_400_000, total=0),
        ),
        set(),
        True,
        NOW,
    )
    await pilot.pause()


def test_snapshot(snap_compare):
    assert snap_compare(snapshot_app(), terminal_size=(60, 16), run_before=fill)
