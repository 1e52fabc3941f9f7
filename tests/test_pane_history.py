"""#history: paging through Redis, follow / stay put, trim markers, literal content."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from rich.style import Style
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.strip import Strip

from store import Connection, SessionView
from store.conversation import ConversationMemory, ConversationView
from store.feed import read_sessions
from tui.panes.history import MAX_PAGES, PAGE_SIZE, HistoryPane

NOW_MS = 1_767_268_800_000  # 2026-01-01 12:00:00 UTC
ROLES = ("user", "assistant", "system", "tool")


class Host(App[None]):
    """Only the pane, sized and bordered as the dashboard's tcss does."""

    CSS = "HistoryPane { height: 1fr; border: round $primary; }"

    def __init__(self, conn: Connection, *, close_conn: bool = False) -> None:
        super().__init__()
        self.conn = conn
        self.close_conn = close_conn

    def compose(self) -> ComposeResult:
        yield HistoryPane(self.conn, id="history")

    async def on_unmount(self) -> None:
        if self.close_conn:
            await self.conn.aclose()


def message(i: int, content: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "role": ROLES[i % 4],
        "content": f"message {i}" if content is None else content,
        "timestamp": datetime(2026, 1, 1, 12, i // 60 % 60, i % 60),
        **extra,
    }


async def append(memory: ConversationMemory, start: int, stop: int) -> None:
    for i in range(start, stop):
        await memory.append(message(i))


async def write_raw(conn: Connection, session: str, count: int, chunk: int = 50_000) -> None:
    """``count`` messages in the very format conversation_append.lua stores, without the
    script's events: raw RPUSH in big batches (a million in a few seconds)."""
    key = conn.session(session).key("conversation")
    for low in range(0, count, chunk):
        items = [
            f'{{"index":{i},"role":"{ROLES[i % 4]}","content":"message {i}",'
            f'"timestamp":"2026-01-01T12:00:00","context":{{}}}}'
            for i in range(low, min(low + chunk, count))
        ]
        await conn.client.rpush(key, *items)
    await conn.client.set(key + ":n", count)


async def view_of(conn: Connection, session: str = "s1") -> SessionView:
    return (await read_sessions(conn, [session]))[session]


def pane_lines(pane: HistoryPane) -> list[str]:
    """The pane's content lines as drawn now."""
    return [pane.render_line(y).text for y in range(pane.scrollable_content_region.height)]


def screen_lines(app: App[None]) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def until(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.005)


def loaded(pane: HistoryPane) -> bool:
    return not any("loading" in line for line in pane_lines(pane))


async def show(pilot: Pilot[None], pane: HistoryPane, view: SessionView | None) -> list[str]:
    pane.show(view, NOW_MS)
    await pilot.pause()
    await until(pilot, lambda: loaded(pane))
    await pilot.pause()
    return pane_lines(pane)


def style_of(strip: Strip, text: str) -> Style:
    for segment in strip:
        if text in segment.text:
            return segment.style or Style()
    raise AssertionError(f"{text!r} not in {strip.text!r}")


# -- behaviour --------------------------------------------------------------------------------


async def test_no_session_and_empty_session(conn):
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, None)
        assert lines[0].startswith("no session selected")
        assert pane.border_title == "history"
        lines = await show(pilot, pane, SessionView("s1"))
        assert lines[0].startswith("no messages yet")
        assert pane.border_title == "history (0/0)"


async def test_shows_messages_in_order_with_roles_times_and_tokens(conn):
    memory = ConversationMemory("s1", redis=conn)
    await memory.append(message(0, "hello there"))
    await memory.append(message(1, "hi! how can I help?", tokens=1234, model="m"))
    await memory.append(message(2, "be brief"))
    await memory.append(message(3, "lookup(x) -> 42", tokens=7))
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        assert pane.border_title == "history (4/4)"
        assert [line.split()[:2] for line in lines[:4]] == [
            ["12:00:00", "user"],
            ["12:00:01", "assistant"],
            ["12:00:02", "system"],
            ["12:00:03", "tool"],
        ]
        assert "hello there" in lines[0]
        assert "hi! how can I help?" in lines[1] and lines[1].rstrip().endswith("1,234 tok")
        assert "tok" not in lines[0] and "tok" not in lines[2]
        assert lines[3].rstrip().endswith("7 tok")
        assert lines[4].strip() == ""
        strips = [pane.render_line(y) for y in range(4)]
        for strip, role, colour in zip(
            strips, ROLES, ("cyan", "green", "magenta", "yellow"), strict=True
        ):
            assert style_of(strip, role).color.name == colour
            assert style_of(strip, role).bold
        content = style_of(strips[0], "hello there")
        assert content.color is None or content.color.name not in ("cyan", "green")
        assert not content.bold


async def test_trim_marker_before_first_retained_message(conn):
    memory = ConversationMemory("s1", redis=conn, max_messages=5)
    await append(memory, 0, 12)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        assert pane.border_title == "history (5/12)"
        assert lines[0].strip() == "… 7 older messages trimmed (auto)"
        assert "message 7" in lines[1] and "message 11" in lines[5]
        assert lines[6].strip() == ""
        await memory.trim_old_messages(2)
        lines = await show(pilot, pane, await view_of(conn))
        assert lines[0].strip() == "… 10 older messages trimmed (auto, manual)"
        assert "message 10" in lines[1] and "message 11" in lines[2]
        assert pane.border_title == "history (2/12)"


async def test_follows_new_messages_while_at_the_bottom(conn):
    memory = ConversationMemory("s1", redis=conn)
    await append(memory, 0, 50)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:  # 10 content lines
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        assert "message 49" in lines[-1] and "message 40" in lines[0]
        assert pane.following
        await append(memory, 50, 53)
        lines = await show(pilot, pane, await view_of(conn))
        assert "message 52" in lines[-1] and "message 43" in lines[0]
        assert pane.following
        assert pane.border_subtitle == "#43\N{EN DASH}52"
        # auto-trimming while following: still the newest at the bottom
        capped = ConversationMemory("s1", redis=conn, max_messages=20)
        for i in range(53, 60):
            await capped.append(message(i))
        lines = await show(pilot, pane, await view_of(conn))
        assert "message 59" in lines[-1]
        assert pane.following


async def test_stays_put_while_the_user_reads_higher_up(conn):
    memory = ConversationMemory("s1", redis=conn)
    await append(memory, 0, 50)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        await show(pilot, pane, await view_of(conn))
        pane.scroll_to(y=30, animate=False)
        await pilot.pause()
        assert not pane.following
        before = pane_lines(pane)
        assert "message 30" in before[0]
        await append(memory, 50, 55)  # new messages arrive below
        assert await show(pilot, pane, await view_of(conn)) == before
        assert pane.scroll_offset.y == 30
        await memory.trim_old_messages(40)  # 15 old ones go above: the same messages stay
        lines = await show(pilot, pane, await view_of(conn))
        assert lines == before
        assert pane.scroll_offset.y == 30 - 15 + 1  # the marker line came in
        pane.scroll_home(animate=False)
        await pilot.pause()
        assert pane_lines(pane)[0].strip() == "… 15 older messages trimmed (manual)"
        # back at the bottom: following again
        pane.scroll_end(animate=False)
        await pilot.pause()
        assert pane.following
        await append(memory, 55, 57)
        lines = await show(pilot, pane, await view_of(conn))
        assert "message 56" in lines[-1]


async def test_key_bindings_scroll_when_focused(conn):
    memory = ConversationMemory("s1", redis=conn)
    await append(memory, 0, 50)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        await show(pilot, pane, await view_of(conn))
        pane.focus()
        await pilot.press("home")
        await until(pilot, lambda: pane.scroll_offset.y == 0)
        await until(pilot, lambda: "message 0" in pane_lines(pane)[0])
        assert not pane.following
        await pilot.press("end")
        await until(pilot, lambda: pane.following)


async def test_switching_sessions_resets_to_the_bottom_of_the_new_one(conn):
    await append(ConversationMemory("s1", redis=conn), 0, 40)
    await append(ConversationMemory("s2", redis=conn), 100, 103)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        await show(pilot, pane, await view_of(conn, "s1"))
        pane.scroll_home(animate=False)
        await pilot.pause()
        lines = await show(pilot, pane, await view_of(conn, "s2"))
        assert ["message 100" in lines[0], "message 102" in lines[2]] == [True, True]
        assert pane.border_title == "history (3/3)"
        assert pane.following


async def test_pages_from_redis_as_the_user_scrolls(conn):
    count = 20_000
    await write_raw(conn, "s1", count)
    app = Host(conn)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        assert f"message {count - 1}" in lines[-1]
        assert pane.fetched <= PAGE_SIZE  # the newest page only
        pane.scroll_home(animate=False)
        assert "loading" in pane_lines(pane)[0]  # never waits on Redis to draw
        await until(pilot, lambda: loaded(pane))
        assert "message 0" in pane_lines(pane)[0]
        # jump about: each place reads its page(s), the cache stays bounded
        for y in range(0, count, 997):
            pane.scroll_to(y=y, animate=False)
            await pilot.pause()
            await until(pilot, lambda: loaded(pane))
            assert f"message {y}" in pane_lines(pane)[0]
            assert pane.cached_pages <= MAX_PAGES
        assert pane.fetched <= pane.fetches * PAGE_SIZE
        assert pane.fetched < count // 2  # never the whole conversation
        # a page read once is not read again while it is cached
        fetches = pane.fetches
        pane.scroll_to(y=count - 100, animate=False)
        await pilot.pause()
        pane.scroll_to(y=count - 150, animate=False)
        await pilot.pause()
        await until(pilot, lambda: loaded(pane))
        assert pane.fetches <= fetches + 1


async def test_a_million_messages_open_fast_and_never_load_whole(conn):
    count = 1_000_000
    started = time.perf_counter()
    await write_raw(conn, "s1", count)
    built = time.perf_counter()
    app = Host(conn)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(HistoryPane)
        read = time.perf_counter()
        view = await view_of(conn)
        shown = time.perf_counter()
        pane.show(view, NOW_MS)
        await until(pilot, lambda: loaded(pane))
        opened = time.perf_counter()
        lines = pane_lines(pane)
        assert f"message {count - 1}" in lines[-1]
        assert f"message {count - 38}" in lines[0]
        assert pane.border_title == "history (1,000,000/1,000,000)"
        at_open = pane.fetched
        assert at_open <= 2 * PAGE_SIZE
        # and the oldest message is one jump away
        pane.scroll_home(animate=False)
        await pilot.pause()
        await until(pilot, lambda: loaded(pane))
        assert "message 0" in pane_lines(pane)[0]
        assert pane.fetched <= 3 * PAGE_SIZE
        print(
            f"\n1M messages: written in {built - started:.2f}s, view read in "
            f"{(shown - read) * 1000:.1f} ms, show() to first real lines "
            f"{(opened - shown) * 1000:.1f} ms with {at_open} messages read; "
            f"{pane.fetched} read after a jump to the oldest"
        )


async def test_open_with_the_real_dashboard(conn):
    from tui.app import MemdashApp

    memory = ConversationMemory("s1", redis=conn)
    await append(memory, 0, 30)
    app = MemdashApp(conn, session="s1", clock=lambda: NOW_MS / 1000)
    async with app.run_test(size=(160, 50)) as pilot:
        pane = app.query_one("#history", HistoryPane)
        await until(pilot, lambda: app.feed.status == "connected")
        await until(pilot, lambda: "message 29" in "".join(pane_lines(pane)))
        await append(memory, 30, 32)  # live: the feed's events reach the pane
        await until(pilot, lambda: "message 31" in "".join(pane_lines(pane)))
        assert pane.border_title == "history (32/32)"


# -- hostile content ----------------------------------------------------------------------

HOSTILE = [
    "[bold]x[/]",
    "\x1b[31mred\x1b[0m",
    "nul\x00bel\x07bs\x08",
    "cr\rover",
    "two\nlines\r\nthree",
    "tab\there",
    "bidi\u202eevil\u2066",
    "wide 漢字漢字 and emoji 🎉",
    "[link=https://x]click[/link] [/]",
    "0123456789" * 1024,  # 10 kB
]


async def test_hostile_content_renders_literally_and_the_screen_holds(conn):
    memory = ConversationMemory("s1", redis=conn)
    for i, content in enumerate(HOSTILE):
        await memory.append(message(i, content, tokens=10**9 if i == 9 else None))
    app = Host(conn)
    async with app.run_test(size=(80, 16)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        screen = screen_lines(app)
        assert len(screen) == 16
        for line in screen:
            assert all(ch >= " " and ch != "\x7f" for ch in line), repr(line)
            assert len(line) <= 80
        text = "\n".join(lines)
        assert "[bold]x[/]" in text
        assert "␛[31mred␛[0m" in text
        assert "nul␀bel␇bs␈" in text
        assert "cr␍over" in text
        assert "two⏎lines⏎three" in text
        assert "tab⇥here" in text
        assert "bidi\N{REPLACEMENT CHARACTER}evil\N{REPLACEMENT CHARACTER}" in text
        assert "[link=https://x]click[/link] [/]" in text
        assert lines[9].rstrip().endswith("… 1,000,000,000 tok")
        plain = pane.rich_style  # content is drawn in the pane's own style, nothing added
        assert style_of(pane.render_line(0), "[bold]x[/]") == plain
        assert style_of(pane.render_line(1), "red") == plain
        assert style_of(pane.render_line(8), "click") == plain
        for y in range(len(HOSTILE)):
            assert pane.render_line(y).cell_length == pane.scrollable_content_region.width


async def test_hostile_stored_items_show_an_error_not_a_crash(conn):
    """Items written by something other than the store: odd roles, a broken item."""
    key = conn.session("s1").key("conversation")
    await conn.client.rpush(
        key,
        '{"index":0,"role":"[red]\\u001b[5mx","content":"ok","timestamp":"2026-01-01T12:00:00"}',
        '{"index":1,"role":"user","content":["not","text"],"timestamp":"2026-01-01T12:00:01"}',
        '{"index":2,"role":"漢字漢字漢字","content":"wide","timestamp":"2026-01-01T12:00:02"}',
    )
    await conn.client.set(key + ":n", 3)
    app = Host(conn)
    async with app.run_test(size=(80, 12)) as pilot:
        pane = app.query_one(HistoryPane)
        lines = await show(pilot, pane, await view_of(conn))
        assert lines[0].split()[1] == "[red]␛[5…"
        assert "['not', 'text']" in lines[1]
        assert lines[2].startswith("12:00:02 漢字漢字… wide")  # the role column holds
        await conn.client.rpush(key, "{not json")
        await conn.client.set(key + ":n", 4)
        # the feed cannot read it either; the pane pages it in and says what went wrong
        view = SessionView("s1", conversation=ConversationView(0, 4))
        pane.show(view, NOW_MS)
        await until(pilot, lambda: any("could not read" in line for line in pane_lines(pane)))
        assert len(screen_lines(app)) == 12


# -- snapshot -----------------------------------------------------------------------------

SNAPSHOT = [
    ("user", "What's the weather in Paris?", None),
    ("assistant", "Let me check.\nCalling the weather tool…", 18),
    ("tool", '{"city": "Paris", "temp_c": 21, "sky": "clear"}', 31),
    ("assistant", "It is 21 °C and clear in Paris. " * 4, 1204),
    ("user", "[bold]thanks[/] \x1b[1m!", None),
    ("system", "Conversation summarised.", None),
]


def test_snapshot(snap_compare, redis_url):
    conn = Connection(redis_url, namespace="test")

    async def run_before(pilot: Pilot[None]) -> None:
        memory = ConversationMemory("s1", redis=conn, max_messages=12)
        for i in range(15):
            role, content, tokens = SNAPSHOT[i % len(SNAPSHOT)]
            await memory.append(
                {
                    "role": role,
                    "content": content,
                    "timestamp": datetime(2026, 1, 1, 12, 0, i * 3),
                    **({"tokens": tokens} if tokens else {}),
                }
            )
        pane = pilot.app.query_one(HistoryPane)
        pane.show(await view_of(conn), NOW_MS)
        await until(pilot, lambda: loaded(pane))
        await pilot.pause()

    assert snap_compare(Host(conn, close_conn=True), terminal_size=(80, 20), run_before=run_before)
