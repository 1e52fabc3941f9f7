"""#history: the selected session's conversation, read from Redis a page at a time.

A line-API ``ScrollView`` (after Toolong's ``LogLines``): every message is ONE display line
(time, role, content flattened to one line, token count when known), and when the oldest
messages were trimmed ONE marker line comes first. Display line ``y`` is therefore message
``y - marker + first``: plain arithmetic, whatever the conversation's length, and nothing needs
to know how long any other message is.

Messages are read in pages of :data:`PAGE_SIZE`, aligned on message numbers (page ``p`` holds
``p * PAGE_SIZE`` …), by one worker at a time, newest request first, skipping pages that
scrolled out of view while they waited (an exclusive worker group, cancelled when the session
changes). At most :data:`MAX_PAGES` pages are kept (a Textual ``LRUCache``: least recently drawn
go first), each holding only the first :data:`SNIPPET_CHARS` characters of a message.
``render_line`` never waits: a line whose page is not here yet draws as "…loading" and asks for
it; the newest messages come with the feed's view (previews) and draw at once.

Drawn message lines are kept too (:data:`STRIPS`, by row, width and style): a new message moves
every line up one, and only the new line is drawn. A new message changes the virtual height
without laying out the whole screen (unless the scrollbar comes or goes).

Messages never change once appended, so pages are never re-read: the last one is extended
with what was appended since (only the new messages are read), and trims only move ``first``.

Between the messages, where they happened, come the operator's steering *asides* (from the
feed's view, never read from Redis here): each note (``view.notes``) after the message that was
the newest when it was written (``note.after``), with a second line saying whether the agent has
it yet ("◌ pending") or when and by which hook it was delivered ("✓ delivered 21:07:19 after
Bash"); each pause and resume (``view.control.log``) the same way. There are a few hundred at
most, so line arithmetic stays cheap: message ``i`` is display line ``marker + (i - first) +
asides before i`` (a bisect), and a line maps back to a message by a binary search.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.events import Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from store import Connection, SessionView
from store.control import PauseEntry
from store.conversation import ConversationMemory, ConversationView
from store.notes import Note

from ..text import VISIBLE, clock_time
from .base import Pane, set_border_subtitle, set_border_title

PAGE_SIZE = 200
"""Messages read per Redis request (one LRANGE)."""

MAX_PAGES = 8
"""Pages kept in memory (more only if a very tall pane shows more at once)."""

STRIPS = 512
"""Message lines kept drawn (by row, width and style): a new message moves every line up one,
and the lines still in view are not laid out and rendered again."""

MAX_WANTED = 16
"""Pages waiting to be read; older requests are dropped (they scrolled away)."""

SNIPPET_CHARS = 1000
"""Characters kept of each message: a line never shows more than that."""

ROLE_WIDTH = 9  # len("assistant")

ROLE_STYLES = {
    "user": Style(color="cyan", bold=True),
    "assistant": Style(color="green", bold=True),
    "system": Style(color="magenta", bold=True),
    "tool": Style(color="yellow", bold=True),
}
DIM = Style(dim=True)
MARKER_STYLE = Style(color="yellow", italic=True)
ERROR_STYLE = Style(color="red")
NOTE_STYLE = Style(color="bright_blue", bold=True)
NOTE_TEXT_STYLE = Style(color="bright_blue")
PENDING_STYLE = Style(color="yellow", bold=True)
DELIVERED_STYLE = Style(color="green")
PAUSE_STYLE = Style(color="magenta", bold=True)


def flatten(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` (its first ``limit`` characters) as one line that shows every character."""
    return text[:limit].replace("\r\n", "\n").translate(VISIBLE)


class Row(NamedTuple):
    """What a message's line needs; ``more``: the content goes on beyond ``text``."""

    index: int
    role: str
    clock: str
    tokens: int | None
    text: str
    more: bool


def _clock(timestamp: Any) -> str:
    if not isinstance(timestamp, datetime):
        return "--:--:--"
    if timestamp.tzinfo is not None:  # an aware time is shown on the local clock
        timestamp = timestamp.astimezone()
    return timestamp.strftime("%H:%M:%S")


def _tokens(message: dict[str, Any]) -> int | None:
    tokens = message.get("tokens")
    return tokens if type(tokens) is int and tokens >= 0 else None


def row_from_message(message: dict[str, Any]) -> Row:
    """A row from a stored message (``ConversationMemory.page``)."""
    content = message.get("content")
    content = content if isinstance(content, str) else str(content)
    return Row(
        message["index"],
        flatten(str(message.get("role")), ROLE_WIDTH + 1),
        _clock(message.get("timestamp")),
        _tokens(message),
        flatten(content),
        len(content) > SNIPPET_CHARS,
    )


def row_from_preview(preview: dict[str, Any]) -> Row:
    """A row from a feed preview (``ConversationView.recent``): maybe only the content's start."""
    text = preview.get("preview")
    text = text if isinstance(text, str) else str(text)
    length = preview.get("length")
    return Row(
        preview["index"],
        flatten(str(preview.get("role")), ROLE_WIDTH + 1),
        _clock(preview.get("timestamp")),
        _tokens(preview),
        flatten(text),
        type(length) is int and length > len(text),
    )


class _Page:
    """Rows of one page; numbers below ``upto`` that are not in ``rows`` were trimmed."""

    __slots__ = ("error", "rows", "upto")

    def __init__(self, base: int) -> None:
        self.rows: dict[int, Row] = {}
        self.upto = base
        self.error: str | None = None


class Aside(NamedTuple):
    """One line of a steering aside: line ``part`` of ``item`` (a Note: 2 lines, a PauseEntry:
    1), drawn after message ``anchor``."""

    anchor: int
    item: Note | PauseEntry
    part: int


def _asides_key(view: SessionView | None) -> tuple[object, ...]:
    """What the asides depend on (cheap: a few hundred notes at most, and only on a change)."""
    if view is None:
        return ()
    notes = view.notes.notes if view.notes is not None else {}
    log = view.control.log if view.control is not None else []
    return (
        tuple((note.id, note.delivered) for note in notes.values()),
        len(log),
        log[-1] if log else None,
    )


# What a message line shows when its row is not at hand.
_LOADING = "loading"
_TRIMMED = "trimmed"


class HistoryPane(Pane, ScrollView, can_focus=True):
    """The conversation of the selected session: one line per message, newest at the bottom.

    Follows new messages while scrolled to the bottom; otherwise stays on the messages shown
    (also when older ones are trimmed away above them). ``fetches`` / ``fetched`` count the page
    reads and messages read for the current session.
    """

    DEFAULT_CSS = """
    HistoryPane {
        overflow-x: hidden;
        overflow-y: auto;
        padding: 0 1;
        border-subtitle-align: right;
        &:focus {
            background-tint: $foreground 5%;
        }
    }
    """

    def __init__(self, conn: Connection, *, tz: tzinfo | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn = conn
        self.tz = tz  # for the clock times of notes and pauses (default: local time)
        set_border_title(self, "history")
        self.fetches = 0
        self.fetched = 0
        self._generation = 0
        self._session: str | None = None
        self._memory: ConversationMemory | None = None
        self._memory_error: str | None = None
        self._first = 0
        self._total = 0
        self._marker = 0  # 1 when messages were trimmed: the marker line comes first
        self._marker_text = ""
        self._lines = 0
        self._recent: dict[int, Row] = {}
        # Least recently drawn first out (Textual's LRUCache; grown when a tall pane shows more).
        self._pages: LRUCache[int, _Page] = LRUCache(MAX_PAGES)
        self._failed: set[int] = set()  # pages whose read failed: read again on a change
        self._strips: LRUCache[tuple[object, ...], Strip] = LRUCache(STRIPS)
        self._wanted: dict[int, None] = {}  # pages to read, newest request last
        self._loading = False
        self._in_flight: int | None = None
        self._follow = True
        self._shown_once = False  # show() has drawn the current session at least once
        self._view: SessionView | None = None
        self._asides_shown: tuple[object, ...] = ()
        self._asides: list[Aside] = []  # every aside line, in display order
        self._anchors: list[int] = []  # their anchors (sorted): bisect counts lines before i

    # -- attributes down --------------------------------------------------------------------

    def show(self, view: SessionView | None, now_ms: int) -> None:
        session = view.session if view is not None else None
        conversation: ConversationView | None = view.conversation if view is not None else None
        first, total = (conversation.first, conversation.total) if conversation else (0, 0)
        asides = _asides_key(view)
        self._view = view
        if session != self._session or total < self._total or first < self._first:
            self._reset(session)  # another session, or this one was deleted and begun again
        elif (
            (first, total) == (self._first, self._total)
            and self._shown_once
            and asides == self._asides_shown
            and not self._failed
        ):
            return  # another component of the session changed: nothing to redraw here
        self._shown_once = True
        # Where the reader is: the message at the top, and how far below the top it is drawn.
        kept = self._message_at(self.scroll_offset.y) if not self._follow else None
        kept_offset = self._line_of(kept) - self.scroll_offset.y if kept is not None else 0
        old_first, old_marker = self._first, self._marker
        self._first, self._total = first, total
        self._marker = 1 if first > 0 else 0
        self._marker_text = self._trim_text(conversation) if self._marker else ""
        self._asides_shown = asides
        self._build_asides(view)
        self._lines = self._marker + total - first + len(self._asides)
        self._recent = {}
        if conversation is not None:
            for preview in conversation.recent:
                if type(preview.get("index")) is int:
                    self._recent[preview["index"]] = row_from_preview(preview)
        for page in self._failed:
            self._pages.discard(page)  # a failed read is tried again on the next change
        self._failed.clear()
        set_border_title(
            self, "history" if session is None else f"history ({total - first:,}/{total:,})"
        )
        follow = self._follow
        self._set_height(self._lines)
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        elif kept is not None and kept >= first:  # keep the same messages in view
            target = max(0, self._line_of(kept) - kept_offset)
            if target != self.scroll_offset.y:
                self.scroll_to(y=target, animate=False, force=True)
        else:
            shift = (first - old_first) - (self._marker - old_marker)
            if shift:  # the top message went: keep the view where the messages moved to
                self.scroll_to(y=max(0, self.scroll_offset.y - shift), animate=False, force=True)
        self._update_subtitle()
        self.refresh()

    def _set_height(self, lines: int) -> None:
        """``virtual_size`` is a layout reactive: every new message laid out the whole screen
        again. Only when the scrollbar comes or goes does the layout change; otherwise the
        scrollbar is told the new height (as Textual's own resize path does) and no more."""
        size = Size(0, lines)
        if size == self.virtual_size:
            return
        scroll_update = getattr(self, "_scroll_update", None)
        bar = lines > self.container_size.height  # overflow-y: auto
        if not self.is_mounted or scroll_update is None or bar != self.show_vertical_scrollbar:
            self.virtual_size = size
            return
        self.set_reactive(HistoryPane.virtual_size, size)
        scroll_update(size)

    def _reset(self, session: str | None) -> None:
        self.workers.cancel_group(self, "history-pages")  # the old session's reads
        self._generation += 1
        self._session = session
        self._memory = None
        self._memory_error = None
        if session is not None:
            try:
                self._memory = ConversationMemory(session, redis=self.conn)
            except ValueError as error:
                self._memory_error = flatten(str(error), 200)
        self._first = self._total = self._marker = self._lines = 0
        self._recent = {}
        self._pages.clear()
        self._failed.clear()
        self._wanted.clear()
        self._loading = False
        self._in_flight = None
        self._follow = True
        self.fetches = self.fetched = 0
        self._shown_once = False
        self._asides_shown = ()
        self._asides = []
        self._anchors = []

    def _build_asides(self, view: SessionView | None) -> None:
        """Every aside line, in order: by the message it follows, then by time."""
        items: list[tuple[int, int, int, Note | PauseEntry]] = []
        if view is not None:
            low, high = self._first - 1, self._total - 1
            if view.notes is not None:
                for note in view.notes.notes.values():
                    items.append((min(max(note.after, low), high), note.ts, 1, note))
            if view.control is not None:
                for entry in view.control.log:
                    items.append((min(max(entry.after, low), high), entry.ts, 0, entry))
        items.sort(key=lambda item: item[:3])
        self._asides = [
            Aside(anchor, item, part)
            for anchor, _, _, item in items
            for part in range(2 if isinstance(item, Note) else 1)
        ]
        self._anchors = [aside.anchor for aside in self._asides]

    # -- line arithmetic (messages and asides) ----------------------------------------------

    def _line_of(self, index: int) -> int:
        """The display line of message ``index``."""
        return self._marker + (index - self._first) + bisect_left(self._anchors, index)

    def _last_message_at_or_before(self, line: int) -> int:
        """The greatest message number drawn at or above display ``line`` (first - 1: none)."""
        low, high = self._first - 1, self._total - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self._line_of(middle) <= line:
                low = middle
            else:
                high = middle - 1
        return low

    def _message_at(self, line: int) -> int | None:
        """The message drawn at ``line`` or, on an aside, the next one (None: none below)."""
        index = self._last_message_at_or_before(line)
        if index < self._first or self._line_of(index) != line:
            index += 1
        return index if index < self._total else None

    @staticmethod
    def _trim_text(conversation: ConversationView | None) -> str:
        first = conversation.first if conversation else 0
        noun = "message" if first == 1 else "messages"
        reasons = sorted({marker.reason for marker in conversation.trims}) if conversation else []
        why = f" ({', '.join(flatten(str(r), 16) for r in reasons)})" if reasons else ""
        return f"… {first:,} older {noun} trimmed{why}"

    # -- scrolling ------------------------------------------------------------------------

    @property
    def following(self) -> bool:
        """Whether new messages scroll into view (the pane is scrolled to the bottom)."""
        return self._follow

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._follow = round(new_value) >= self.max_scroll_y
        self._update_subtitle()

    def on_resize(self, event: Resize) -> None:
        if self._follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
        self._update_subtitle()

    def _visible_messages(self) -> tuple[int, int]:
        """Numbers of the first and one past the last message line in view."""
        top = self.scroll_offset.y
        height = max(self.scrollable_content_region.height, 1)
        if not self._asides:  # plain arithmetic
            start = top - self._marker + self._first
            low = max(start, self._first)
            return low, max(low, min(start + height, self._total))
        low = self._message_at(top)
        if low is None:
            return self._total, self._total
        high = self._last_message_at_or_before(top + height - 1) + 1
        return low, max(low, high)

    def _update_subtitle(self) -> None:
        low, high = self._visible_messages()
        set_border_subtitle(self, f"#{low:,}\N{EN DASH}{high - 1:,}" if high > low else "")

    # -- drawing --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        line = self.scroll_offset.y + y
        if line >= self._lines:
            notice = ""
            if line == 0:
                notice = "no session selected" if self._session is None else "no messages yet"
            return self._strip(Text(notice, style=DIM), width, style)
        if line < self._marker:
            return self._strip(Text(self._marker_text, style=MARKER_STYLE), width, style)
        if self._asides:
            before = self._last_message_at_or_before(line)
            if before < self._first or self._line_of(before) != line:  # an aside's line
                aside = line - self._marker - (before - self._first + 1)
                return self._aside_strip(self._asides[aside], width, style)
            index = before
        else:
            index = line - self._marker + self._first
        row = self._row(index)
        if isinstance(row, Row):
            return self._message_strip(row, width, style)
        if row is _LOADING:
            text = Text(f"…loading message {index:,}", style=DIM)
        elif row is _TRIMMED:
            text = Text(f"… message {index:,} was trimmed", style=MARKER_STYLE)
        else:
            text = Text(f"⚠ {row}", style=ERROR_STYLE)
        return self._strip(text, width, style)

    def _row(self, index: int) -> Row | str:
        """The row of message ``index``, or what to show instead (asking for its page)."""
        page = index // PAGE_SIZE
        entry = self._pages.get(page)  # and now the most recently drawn
        if entry is not None:
            row = entry.rows.get(index)
            if row is not None:
                return row
            if index < entry.upto:
                return _TRIMMED
        preview = self._recent.get(index)
        if preview is not None:
            if preview.more:  # the whole message is worth a read
                self._want(page)
            return preview
        if self._memory_error is not None:
            return self._memory_error
        if entry is not None and entry.error is not None:
            return entry.error
        self._want(page)
        return _LOADING

    def _message_strip(self, row: Row, width: int, style: Style) -> Strip:
        key = (row, width, style)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._draw_message(row, width, style)
            self._strips.set(key, strip)
        return strip

    def _draw_message(self, row: Row, width: int, style: Style) -> Strip:
        head = Text(f"{row.clock} ", style=DIM)
        role = Text(row.role, ROLE_STYLES.get(row.role, DIM))
        role.truncate(ROLE_WIDTH, overflow="ellipsis", pad=True)  # in cells: a wide role fits
        head.append_text(role)
        head.append(" ")
        tail = f" {row.tokens:,} tok" if row.tokens is not None else ""
        room = width - head.cell_len - len(tail)
        if room < 8:  # too narrow for the token count: content first
            tail = ""
            room = width - head.cell_len
        line = Text(style=style, no_wrap=True, end="")
        line.append_text(head)
        if room > 0:
            content = Text(row.text + ("…" if row.more else ""))
            content.truncate(room, overflow="ellipsis", pad=bool(tail))
            line.append_text(content)
            line.append(tail, DIM)
        return self._strip(line, width, style)

    def _aside_strip(self, aside: Aside, width: int, style: Style) -> Strip:
        """A note (its text; then pending or delivered) or a pause/resume, literally."""
        item = aside.item
        line = Text(style=style, no_wrap=True, end="")
        if isinstance(item, Note):
            if aside.part == 1:
                line.append(" " * (ROLE_WIDTH + 10))
                if item.delivered is None:
                    line.append("◌ pending: the agent has not read it yet", PENDING_STYLE)
                else:
                    when = clock_time(item.delivered.ts, self.tz)
                    how = flatten(item.delivered.describe(), 80)
                    line.append(f"✓ delivered {when} {how}", DELIVERED_STYLE)
                if item.author != "operator":
                    line.append(f" · from {flatten(item.author, 40)}", DIM)
                return self._strip(line, width, style)
            line.append(f"{clock_time(item.ts, self.tz)} ", DIM)
            label = Text("✎ context" if item.kind == "context" else "✎ note", NOTE_STYLE)
            label.truncate(ROLE_WIDTH, overflow="ellipsis", pad=True)
            line.append_text(label)
            line.append(" ")
            line.append(flatten(item.text), NOTE_TEXT_STYLE)
            return self._strip(line, width, style)
        line.append(f"{clock_time(item.ts, self.tz)} ", DIM)
        label = Text("‖ paused" if item.paused else "▸ resumed", PAUSE_STYLE)
        label.truncate(ROLE_WIDTH, overflow="ellipsis", pad=True)
        line.append_text(label)
        line.append(f" by {flatten(item.actor, 40)}", DIM)
        if item.reason:
            line.append(": ")
            line.append(flatten(item.reason, 200))
        return self._strip(line, width, style)

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        line = Text(style=style, no_wrap=True, end="")
        line.append_text(text)
        line.truncate(width, overflow="ellipsis")
        return Strip(line.render(self.app.console), line.cell_len).crop_extend(0, width, style)

    # -- paging ---------------------------------------------------------------------------

    def _want(self, page: int) -> None:
        if self._memory is None or page == self._in_flight:
            return
        self._wanted.pop(page, None)
        self._wanted[page] = None
        while len(self._wanted) > MAX_WANTED:
            del self._wanted[next(iter(self._wanted))]
        if not self._loading:
            self._loading = True
            self.run_worker(
                self._load(self._generation),
                name="history-pages",
                group="history-pages",
                exclusive=True,  # one reader; _reset cancels it when the session changes
                exit_on_error=False,
            )

    def _page_in_view(self, page: int) -> bool:
        low, high = self._visible_messages()
        return page * PAGE_SIZE < high and (page + 1) * PAGE_SIZE > low

    async def _load(self, generation: int) -> None:
        """Read wanted pages one at a time, newest request first, while they are in view."""
        try:
            while generation == self._generation and self._wanted:
                page, _ = self._wanted.popitem()
                if self._page_in_view(page):
                    self._in_flight = page
                    await self._fetch(page, generation)
                    if generation == self._generation:
                        self._in_flight = None
        finally:
            if generation == self._generation:
                self._loading = False
                self._in_flight = None

    async def _fetch(self, page: int, generation: int) -> None:
        memory = self._memory
        base, end = page * PAGE_SIZE, (page + 1) * PAGE_SIZE
        entry = self._pages.get(page)
        start = max(base, self._first, entry.upto if entry is not None else base)
        total = self._total  # every number below this was appended: absent means trimmed
        if memory is None or start >= min(end, total):
            return
        error: str | None = None
        try:
            messages = await memory.page(start, end - start)
            rows = [row_from_message(message) for message in messages]
        except Exception as exc:  # a lost connection or a malformed item: say so in the lines
            rows, error = [], flatten(f"could not read messages: {type(exc).__name__}: {exc}", 300)
        if generation != self._generation:
            return
        entry = self._pages.get(page)
        if entry is None:
            entry = _Page(base)
            self._pages.grow(self._pages_in_view() + 1)  # never drop a page in view
            self._pages.set(page, entry)
        if error is not None:
            entry.error = error
            self._failed.add(page)
        else:
            self.fetches += 1
            self.fetched += len(rows)
            for row in rows:
                entry.rows[row.index] = row
            upto = max(min(end, total), rows[-1].index + 1 if rows else start)
            entry.upto = max(entry.upto, upto)
        self.refresh()

    def _pages_in_view(self) -> int:
        low, high = self._visible_messages()
        return (max(high, low + 1) - 1) // PAGE_SIZE - low // PAGE_SIZE + 1

    @property
    def cached_pages(self) -> int:
        return len(self._pages)
