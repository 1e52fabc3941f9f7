"""#sessions: every session by last activity; selecting one drives the other panes.

Sessions whose agent waits for a person (``control.waiting``) come first, marked ``waiting`` in
the state column; a paused session shows ``‖paused`` there (``‖ waits``: both).

Columns: session id, workflow state (the task workflow's when there is one), budget used %
(green < 70 %, yellow < 90 %, red from 90 %; blank without a limit), messages
(``ConversationView.total``: every message ever appended, trimmed ones included — the history
pane shows what is retained), and age (time since the last event, humanised from the app clock).

How it stays cheap with 10,000 sessions:

- **Rows are keyed by session id and updated in place.** ``sync`` rewrites only the cells whose
  text changed (``DataTable.update_cell``); it never clears or rebuilds the table.
- **Order (newest activity first) is re-established at most once a second.** A changed
  ``last_activity`` or a new session marks the order dirty; the re-sort runs at once if the last
  one was more than :data:`RESORT_INTERVAL` ago, else on a timer. It adds the new rows (at the
  bottom) and then calls ``DataTable.sort`` only if the rows are not already in order. The
  selected row stays selected (the cursor follows its key).
- **Pages.** Adding 10,000 rows in one go costs ~0.8 s on a 2-core machine (0.25 s of add_row,
  then 0.55 s measuring them on the next idle): far over a 100 ms key press. The table holds a
  prefix of the sorted sessions: the first :data:`PAGE` rows, and another page whenever the
  cursor or the scroll position comes within :data:`PREFETCH` rows of the end. A loaded prefix
  only grows (a session pushed below it by newer ones stays loaded), so events never remove
  rows (only a session that is gone from the store loses its row).
- **A changed row repaints alone.** ``DataTable.update_cell`` repaints the whole table (every
  visible row rendered again) for each cell; :meth:`SessionTable.update_row` writes a row's
  changed cells and repaints that row only. A sync runs inside ``App.batch_update``.
- **Ages** tick for the visible rows only (and on scroll), when one of them is due to change
  (each second while under a minute old, then each minute, hour, day): an idle table whose
  sessions are older than a minute wakes once a minute, not once a second.
- **Filter** (``/``): the rows whose id contains the typed text (case-insensitive). A keystroke
  is a user action, not an event: rows that stop matching are removed (one by one when a few,
  by clearing the table and adding back the first page when many), then the matches are added.
  The selected session stays selected while it matches.

Untrusted text (ids, state names) is shown literally: ``Text`` built from plain strings, control
and invisible formatting characters replaced by visible glyphs, cropped with an ellipsis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Input
from textual.widgets.data_table import ColumnKey, RowKey

from store import SessionView

from ..text import age_due, clean, humanise_age, humanise_count
from ..widgets import Palette, palette, threshold_colour
from .base import set_border_title

PAGE = 200  # rows added at a time
PREFETCH = 40  # add the next page when the cursor or the view is this close to the end
RESORT_INTERVAL = 1.0  # seconds between re-sorts under live updates
AGE_INTERVAL = 60.0  # the longest wait between looks at the visible rows' ages
AGE_GAP = 1.0  # the shortest: rows due within a second of each other change in one repaint
SLACK = 0.15
"""Seconds a re-sort or an age tick waits past its time, so that the app's next sync (a repaint
while events come) does it in the same frame; the timer does it when no sync comes."""
REMOVE_ONE_BY_ONE = 32  # above this many rows to drop on a filter change, clear and re-add

# (key, header, width, justify). The table has no cell padding: widths include the gaps. They
# add up to 35 = the pane's 38 columns - 2 border - 1 scrollbar (app.tcss: #sessions width 38).
COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    ("session", " session", 12, "left"),
    ("state", "state", 8, "left"),
    ("budget", "bud%", 5, "right"),
    ("messages", "msgs", 5, "right"),
    ("age", "age", 5, "right"),
)
SESSION_WIDTH = 10  # characters of the id shown (after the leading space, before the gap)
STATE_WIDTH = 7
PAUSED_MARK = "‖paused"
WAITING_MARK = "waiting"
PAUSED_WAITING_MARK = "‖ waits"
WAITING_STYLE = "bold black on yellow"
PAUSED_STYLE = "bold magenta"

Cells = tuple[tuple[str, str], tuple[str, str], str, str]  # (state, style), (budget, style), …


def display(value: str, width: int, justify: str = "left") -> Text:
    """``value`` as a literal one-line Text of at most ``width`` cells (ellipsis when cut)."""
    plain = clean(value, limit=width + 8)  # controls, bidi and zero-width shown as glyphs
    text = Text(plain, no_wrap=True, overflow="ellipsis", justify=justify, end="")  # type: ignore[arg-type]
    text.truncate(width, overflow="ellipsis")
    return text


def budget_cell(view: SessionView, colours: Palette | None = None) -> tuple[str, str]:
    """("42%", colour): the colour as #budget's gauge has it (``threshold_colour`` of the
    theme's ``palette``; bold from the red threshold); blank without a budget or a limit."""
    budget = view.budget
    if budget is None or budget.limit is None:
        return "", ""
    pct = 100.0 * budget.used / budget.limit if budget.limit > 0 else 100.0
    colours = colours if colours is not None else Palette()
    style = threshold_colour(pct, colours)
    return f"{min(int(pct), 999)}%", f"bold {style}" if style == colours.bad else style


def waits(view: SessionView) -> bool:
    """The session's agent waits for a person: such sessions sort first."""
    return view.control is not None and view.control.waiting is not None


def state_cell(view: SessionView) -> tuple[str, str]:
    """The state column: ``waiting`` (for a person) or ``‖paused`` before the workflow state
    (the task workflow's when the session has one)."""
    control = view.control
    paused = control is not None and control.paused
    if waits(view):
        return (PAUSED_WAITING_MARK if paused else WAITING_MARK), WAITING_STYLE
    if paused:
        return PAUSED_MARK, PAUSED_STYLE
    workflow = view.task if view.task is not None else view.workflow
    return (str(workflow.state) if workflow is not None else ""), ""


def cells_of(view: SessionView, now_ms: int, colours: Palette | None = None) -> Cells:
    state = state_cell(view)
    messages = humanise_count(view.conversation.total) if view.conversation is not None else ""
    age = humanise_age(now_ms - view.last_activity) if view.last_activity else ""
    return state, budget_cell(view, colours), messages, age


class SessionCell(Text):
    """The session column's cell: the displayed (cleaned, cropped) id, and the real one, which
    ``DataTable.sort`` needs (its key function sees cells, not row keys)."""

    def __init__(self, session: str) -> None:
        shown = display(session, SESSION_WIDTH)
        super().__init__(" " + shown.plain, no_wrap=True, overflow="ellipsis", end="")
        self.session = session


class SessionTable(DataTable[Any]):
    """A row-cursor DataTable whose home/end go to the first/last row (DataTable's scroll
    sideways in row mode, and this table never needs to). ``end`` reaches the last *loaded*
    row, which loads the next page."""

    BINDINGS = [
        Binding("home", "scroll_top", "First", show=False),
        Binding("end", "scroll_bottom", "Last", show=False),
    ]

    def update_row(self, row_key: str, cells: Mapping[str, object]) -> None:
        """Write some cells of one row (by column key) and repaint that row alone.

        ``update_cell`` repaints the whole table for each cell: with a row per session, a
        busy namespace rendered every visible row again for every event. The render caches
        are keyed on ``_update_count``, so bumping it is what drops the row's stale render;
        the rows not repainted keep what is on screen (their cells did not change)."""
        key = RowKey(row_key)
        data = self._data[key]
        for column, value in cells.items():
            data[ColumnKey(column)] = value
        self._update_count += 1
        self.refresh_row(self._row_locations.get(key))


class SessionsPane(Vertical):
    """Every session, newest activity first. Attributes down: the app calls :meth:`sync`;
    messages up: :class:`SessionsPane.Selected` when the highlighted session changes."""

    DEFAULT_CSS = """
    SessionsPane > #sessions-table {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    SessionsPane > #sessions-filter {
        display: none;  /* until `/`; hidden from the start so it never takes the first focus */
    }
    """
    BINDINGS = [Binding("escape", "close_filter", "Clear filter", show=False)]

    class Selected(Message):
        """The user highlighted another session (or the first one appeared)."""

        def __init__(self, session: str) -> None:
            super().__init__()
            self.session = session

    def __init__(
        self,
        *,
        selected: str | None = None,
        clock: Callable[[], float] | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._views: Mapping[str, SessionView] = {}
        self._activity: dict[str, tuple[bool, int]] = {}  # (waiting, last_activity) sorted by
        self._order: list[str] = []  # every matching session, newest first
        self._order_dirty = False
        self._rows: list[str] = []  # the table's rows, in table order (a prefix of _order)
        self._shown: dict[str, Cells] = {}  # the cells as last written, per row
        self._limit = PAGE
        self._filter = ""
        self._selected = selected
        self._pending = False  # the app asked for _selected and its row is not there yet
        self._parked: str | None = None  # where our own changes left the cursor
        self._last_resort = float("-inf")
        self._resort_timer: Timer | None = None
        self._now_ms = 0
        self._now_at = time.monotonic()
        self._clock = clock  # seconds; None: the time of the last sync, moved on
        self._reconciling = False
        self._age_timer: Timer | None = None
        self._age_due: int | None = None  # clock ms of the next look at the ages
        self._table: SessionTable | None = None

    # -- composition ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        search = Input(placeholder="filter sessions", id="sessions-filter")
        search.can_focus = False  # while hidden: an app's AUTO_FOCUS "*" must not pick it
        yield search
        self._table = SessionTable(id="sessions-table", cursor_type="row", cell_padding=0)
        yield self._table

    def on_mount(self) -> None:
        table = self.table
        for key, label, width, justify in COLUMNS:
            table.add_column(Text(label, justify=justify), width=width, key=key)  # type: ignore[arg-type]
        self._pending = self._selected is not None
        self.watch(table, "scroll_y", self._on_scroll, init=False)
        self.watch(self.app, "theme", self._recolour, init=False)
        self._update_title()

    @property
    def table(self) -> SessionTable:
        return cast(SessionTable, self._table)

    @property
    def selected(self) -> str | None:
        return self._selected

    @property
    def settled(self) -> bool:
        """No re-sort is waiting: the rows are in the order of the last sync."""
        return not self._order_dirty and self._resort_timer is None

    # -- attributes down --------------------------------------------------------------------

    def sync(
        self, sessions: Mapping[str, SessionView], changed: set[str], everything: bool, now_ms: int
    ) -> None:
        """Bring the rows up to date with ``sessions`` (``changed`` ids, or all of them)."""
        with self.app.batch_update():
            self._sync(sessions, changed, everything, now_ms)

    def _sync(
        self, sessions: Mapping[str, SessionView], changed: set[str], everything: bool, now_ms: int
    ) -> None:
        self._views = sessions
        self._now_ms, self._now_at = now_ms, time.monotonic()
        colours = palette(self.app)
        due: int | None = None
        if everything:
            candidates: Any = sessions.keys()
            if len(self._activity) != len(sessions) or any(
                sid not in sessions for sid in self._activity
            ):
                self._activity = {s: a for s, a in self._activity.items() if s in sessions}
                self._order_dirty = True
        else:
            candidates = changed
        for sid in candidates:
            view = sessions.get(sid)
            if view is None:  # deleted: its row goes with the next re-sort
                if self._activity.pop(sid, None) is not None:
                    self._order_dirty = True
                continue
            rank = (waits(view), view.last_activity)
            if self._activity.get(sid) != rank:
                self._activity[sid] = rank
                self._order_dirty = True
            if sid in self._shown:
                self._write_cells(sid, view, now_ms, colours)
                if view.last_activity:
                    row_due = age_due(view.last_activity, now_ms)
                    due = row_due if due is None else min(due, row_due)
        if self._order_dirty:
            self._schedule_resort()
        if due is not None:
            self._arm_ages(due)
        if self._age_due is not None and self._clock_ms() >= self._age_due:
            self._tick_ages()  # due: in this frame rather than one of the timer's own
        self._update_title()

    def open_filter(self) -> None:
        search = self.query_one(Input)
        search.display = search.can_focus = True
        search.focus()

    # -- ordering ---------------------------------------------------------------------------

    def _schedule_resort(self) -> None:
        wait = self._last_resort + RESORT_INTERVAL - time.monotonic()
        if wait <= 0:
            self._resort()
        elif self._resort_timer is None:
            self._resort_timer = self.set_timer(wait + SLACK, self._resort, name="sessions-resort")

    def _resort(self) -> None:
        if self._resort_timer is not None:
            self._resort_timer.stop()
            self._resort_timer = None
        self._last_resort = time.monotonic()
        self._compute_order()
        self._reconcile(keep_loaded=True)

    def _compute_order(self) -> None:
        views, needle = self._views, self._filter
        ids = [s for s in views if needle in s.lower()] if needle else list(views)
        # Waiting for a person first, then newest first; ties as the registry orders them
        # (ZREVRANGE: the greater id first).
        ids.sort(key=lambda s: (waits(views[s]), views[s].last_activity, s), reverse=True)
        self._order = ids
        self._order_dirty = False

    def _reconcile(self, *, keep_loaded: bool) -> None:
        """Make the table hold a prefix of ``_order``, in that order, keeping the selection."""
        self._reconciling = True
        try:
            self._reconcile_rows(keep_loaded=keep_loaded)
        finally:
            self._reconciling = False

    def _reconcile_rows(self, *, keep_loaded: bool) -> None:
        self._adopt_cursor()  # a key press not yet handled must not be undone below
        table, views = self.table, self._views
        order = self._order
        position = {sid: i for i, sid in enumerate(order)}
        wanted = self._limit
        if keep_loaded and self._rows:
            wanted = max(wanted, 1 + max((position.get(s, -1) for s in self._rows), default=-1))
        if self._selected in position:
            wanted = max(wanted, position[self._selected] + 1)
        target = [s for s in order[:wanted] if s in views]
        self._limit = max(wanted, PAGE)
        keep = set(target)
        extra = [s for s in self._rows if s not in keep]
        if len(extra) > REMOVE_ONE_BY_ONE:
            table.clear()  # many rows at once (a filter keystroke): cheaper than one by one
            self._rows, self._shown = [], {}
        elif extra:
            for sid in extra:
                table.remove_row(sid)
                del self._shown[sid]
            self._rows = [s for s in self._rows if s in keep]
        now_ms = self._clock_ms()
        colours = palette(self.app)
        added = [s for s in target if s not in self._shown]
        for sid in added:
            cells = cells_of(views[sid], now_ms, colours)
            table.add_row(SessionCell(sid), *self._texts(cells), key=sid)
            self._shown[sid] = cells
        self._rows.extend(added)
        if added:
            self._tick_ages()
        if self._rows != target:
            table.sort("session", key=lambda cell: position[cell.session])
            self._rows = target
        self._place_cursor()
        self._update_title()

    def _place_cursor(self) -> None:
        """After our own row changes: the cursor back on the selected session's row; if that
        row is gone (filtered out, deleted), the row now under the cursor is the selection."""
        table = self.table
        if self._selected is not None and self._selected in self._shown:
            index = table.get_row_index(self._selected)
            if table.cursor_row != index:
                table.move_cursor(row=index)
            self._pending = False
        elif not self._pending:
            self._adopt_cursor()
        self._parked = self._cursor_key()

    def _adopt_cursor(self) -> None:
        """The session under the cursor becomes the selection (posting ``Selected``), unless
        the app's session has not appeared yet and the cursor is where our changes left it."""
        session = self._cursor_key()
        if session is None or session == self._selected:
            return
        if self._pending and session == self._parked:
            return
        self._pending = False
        self._selected = session
        self.post_message(self.Selected(session))

    def _cursor_key(self) -> str | None:
        table = self.table
        if not 0 <= table.cursor_row < table.row_count:
            return None
        row_key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        return row_key.value

    # -- cells ------------------------------------------------------------------------------

    @staticmethod
    def _texts(cells: Cells) -> tuple[Text, Text, Text, Text]:
        (state, state_style), (budget, style), messages, age = cells
        if state_style:  # a steering mark (ours, not the agent's text)
            state_text = Text(state, style=state_style, no_wrap=True, end="")
            state_text.truncate(STATE_WIDTH, overflow="ellipsis")
        else:
            state_text = display(state, STATE_WIDTH)
        budget_text = Text(budget, style=style, justify="right", no_wrap=True, end="")
        return (
            state_text,
            budget_text,
            Text(messages, justify="right", no_wrap=True, end=""),
            Text(age, justify="right", no_wrap=True, end=""),
        )

    def _write_cells(
        self, sid: str, view: SessionView, now_ms: int, colours: Palette | None = None
    ) -> None:
        """Update the row of ``sid`` in place: only the cells whose text changed."""
        old = self._shown[sid]
        new = cells_of(view, now_ms, colours if colours is not None else palette(self.app))
        if new == old:
            return
        texts = self._texts(new)
        self.table.update_row(
            sid,
            {
                key: text
                for (key, *_), before, after, text in zip(COLUMNS[1:], old, new, texts, strict=True)
                if before != after
            },
        )
        self._shown[sid] = new

    def _recolour(self) -> None:
        """The theme changed: the budget column's colours are the theme's."""
        colours = palette(self.app)
        for sid in self._rows:
            view = self._views.get(sid)
            if view is not None:
                self._write_cells(sid, view, self._clock_ms(), colours)

    def _clock_ms(self) -> int:
        if self._clock is not None:
            return int(self._clock() * 1000)
        return self._now_ms + int((time.monotonic() - self._now_at) * 1000)

    def _visible_rows(self) -> range:
        table = self.table
        top = int(table.scroll_y)
        height = table.scrollable_content_region.height
        return range(top, min(top + height, len(self._rows)))

    def _tick_ages(self) -> None:
        """Bring the visible rows' ages up to date, and look again when the first of them is
        due to change (at the latest after :data:`AGE_INTERVAL`)."""
        if self._age_timer is not None:
            self._age_timer.stop()
        self._age_timer = self._age_due = None
        if not self._rows:
            return
        now_ms = self._clock_ms()
        colours = palette(self.app)
        due: int | None = None
        for index in self._visible_rows():
            sid = self._rows[index]
            view = self._views.get(sid)
            if view is not None:
                self._write_cells(sid, view, now_ms, colours)
                if view.last_activity:
                    row_due = age_due(view.last_activity, now_ms)
                    due = row_due if due is None else min(due, row_due)
        if due is not None:  # at most once a second, whatever the rows' phases
            self._arm_ages(max(due, now_ms + int(min(AGE_GAP, AGE_INTERVAL) * 1000)), now_ms)

    def _arm_ages(self, due_ms: int, now_ms: int | None = None) -> None:
        """Look at the ages at clock ``due_ms`` (or after AGE_INTERVAL, if sooner), unless a
        look is already planned by then."""
        if self._age_due is not None and self._age_due <= due_ms:
            return
        if self._age_timer is not None:
            self._age_timer.stop()
        now_ms = self._clock_ms() if now_ms is None else now_ms
        delay = min(max(due_ms - now_ms, 0) / 1000 + SLACK, AGE_INTERVAL)
        self._age_due = due_ms
        self._age_timer = self.set_timer(delay, self._tick_ages, name="session-ages")

    # -- paging -----------------------------------------------------------------------------

    def _on_scroll(self, _old: float, _new: float) -> None:
        self._maybe_load_more()
        self._tick_ages()

    def _maybe_load_more(self) -> None:
        loaded = len(self._rows)
        if loaded >= len(self._order):
            return
        if self._reconciling:  # a scroll caused by our own cursor move: look again after it
            self.call_after_refresh(self._maybe_load_more)
            return
        table = self.table
        bottom = table.scroll_y + table.scrollable_content_region.height
        if table.cursor_row >= loaded - PREFETCH or bottom >= loaded - PREFETCH:
            self._limit = loaded + PAGE
            self._reconcile(keep_loaded=True)

    # -- filter -----------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sessions-filter":
            event.stop()
            self._set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "sessions-filter":
            event.stop()
            self.table.focus()

    def _set_filter(self, value: str) -> None:
        needle = value.lower()
        if needle == self._filter:
            return
        self._filter = needle
        self._limit = PAGE
        self._compute_order()
        self._reconcile(keep_loaded=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_filter":
            return self.query_one(Input).display or bool(self._filter)
        return True

    def action_close_filter(self) -> None:
        search = self.query_one(Input)
        with search.prevent(Input.Changed):
            search.value = ""
        self._set_filter("")
        search.display = search.can_focus = False
        self.table.focus()

    def _update_title(self) -> None:
        total = len(self._views)
        count = f"{len(self._order)}/{total}" if self._filter else f"{total}"
        set_border_title(self, f"sessions ({count})")

    # -- messages up ------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Where the cursor is now, not where it was when posted (our own changes may have
        # moved it since): the selection first, then maybe a page (which keeps the selection).
        self._adopt_cursor()
        self._maybe_load_more()
