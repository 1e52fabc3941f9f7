"""Notes: what an operator tells a running agent, delivered to it exactly once.

An operator writes a note to a session (the dashboard's ``n``, ``memdash note``, or
:meth:`Notes.add`); the agent reads it with its next hook that can carry context (see
:mod:`store.steering`) or asks for it (``memdash mcp``'s ``notes_read``). Delivery marks the
notes in the same script that hands them over (``notes_deliver.lua``, or ``steer.lua`` for a
hook), so two readers racing cannot both get a note; a reader that could not pass them on
releases them (``notes_release.lua``) and the next one delivers them.

Layout (all under the session's hash tag):

- ``<prefix>notes``: HASH id -> note JSON ``{"id","kind","author","ts","after","text"}``:
  ``kind`` is ``note`` (typed by an operator) or ``context`` (a summary of an operator's edit of
  the session context), ``after`` the number of the conversation's newest message when it was
  written (-1: none yet), so the history shows the note where it was written.
- ``<prefix>notes:state``: HASH ``last`` (the newest id), ``delivered`` (every id up to it was
  delivered: notes go out in order, all pending at once), ``deliveries`` (deliveries made: each
  is numbered, so only the newest can be released).
- ``<prefix>notes:delivered``: HASH id -> ``{"ts","n","event","tool"}``: when, in which
  delivery and by which hook.

At most :data:`KEEP_NOTES` notes are kept: each new one drops the oldest if it was delivered
(pending notes are never dropped).

Events: ``notes.add`` (the note; ``text`` when its JSON is at most 16 KiB), ``notes.delivered``
(``first``, ``last``, ``event``, [``tool``]), ``notes.released`` (``first``, ``last``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .connection import SessionBound
from .keys import SessionKeys, check_part

MAX_NOTE_BYTES = 8 * 1024
"""Largest note, in UTF-8 bytes of its text."""

KEEP_NOTES = 200
"""Notes kept per session (delivered ones beyond it are dropped, oldest first)."""

MAX_SUMMARY_CHARS = 1200
"""Longest summary of a context edit (see :func:`context_change_summary`)."""

Kind = Literal["note", "context"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """When a note was delivered, and by what (a hook event, and the tool it followed)."""

    ts: int  # server ms
    event: str
    tool: str | None = None

    def describe(self) -> str:
        """``after Bash``, ``with the prompt``, ``at session start``, ``read by the agent``."""
        if self.tool:
            return f"after {self.tool}"
        return {
            "UserPromptSubmit": "with the prompt",
            "SessionStart": "at session start",
            "notes_read": "read by the agent",
        }.get(self.event, f"by {self.event}")


@dataclass(frozen=True, slots=True)
class Note:
    """One operator note."""

    id: int
    kind: Kind
    author: str
    ts: int  # server ms it was written
    after: int  # the conversation's newest message number then (-1: none)
    text: str
    delivered: Delivery | None = None

    @property
    def pending(self) -> bool:
        return self.delivered is None


def check_text(text: object) -> str:
    """A note's text: a non-empty string of at most :data:`MAX_NOTE_BYTES` bytes of UTF-8."""
    if not isinstance(text, str):
        raise ValueError(f"a note must be a string, not {type(text).__name__}")
    if not text.strip():
        raise ValueError("a note must not be empty")
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise ValueError("a note must be valid Unicode text (found a lone surrogate)") from None
    if size > MAX_NOTE_BYTES:
        raise ValueError(f"a note is at most {MAX_NOTE_BYTES} bytes; this one is {size}")
    return text


def delivery_by(event: str, tool: str | None = None) -> str:
    """The ``by`` argument of the delivery scripts: a JSON object body without braces."""
    by = '"event":' + json.dumps(event[:64])
    if tool:
        by += ',"tool":' + json.dumps(tool[:128])
    return by


def parse_note(raw: str, delivered: str | None = None) -> Note:
    data = json.loads(raw)
    delivery = None
    if delivered is not None:
        info = json.loads(delivered)
        delivery = Delivery(int(info["ts"]), str(info["event"]), info.get("tool"))
    return Note(
        int(data["id"]),
        data["kind"],
        str(data["author"]),
        int(data["ts"]),
        int(data["after"]),
        str(data["text"]),
        delivery,
    )


@dataclass(frozen=True, slots=True)
class Handed:
    """Notes one reader was handed (ids ``first..last``, delivery number ``number``), to pass
    on or to release."""

    first: int
    last: int
    notes: tuple[Note, ...]
    number: int = 0

    def __bool__(self) -> bool:
        return bool(self.notes)


def handed(reply: Sequence[Any]) -> Handed:
    """A delivery script's reply ``[first, last, number, note JSON…]`` as :class:`Handed`."""
    first, last, number, *raw = reply
    return Handed(int(first), int(last), tuple(parse_note(r) for r in raw), int(number))


def format_for_agent(notes: Sequence[Note]) -> str:
    """The text an agent reads: each note literally, said to come from the operator."""
    parts = []
    for note in notes:
        if note.kind == "context":
            parts.append(f"[memdash] The operator changed this session's context:\n{note.text}")
        else:
            parts.append(f"[memdash] Note from the operator ({note.author}):\n{note.text}")
    return "\n\n".join(parts)


def note_keys(keys: SessionKeys) -> tuple[str, str, str]:
    """(notes, notes:state, notes:delivered) of a session."""
    base = keys.key("notes")
    return base, base + ":state", base + ":delivered"


class Notes(SessionBound):
    """A session's operator notes."""

    keys_of = staticmethod(note_keys)

    async def add(self, text: str, *, author: str = "operator", kind: Kind = "note") -> int:
        """Store a note for the agent (pending until delivered); returns its id."""
        check_text(text)
        check_part("author", author)
        if kind not in ("note", "context"):
            raise ValueError(f"kind must be 'note' or 'context', not {kind!r}")
        note_id, _ = await self.redis.run(
            "notes_add",
            self._session,
            (*self._keys, self._session.key("conversation") + ":n"),
            (json.dumps(text, ensure_ascii=False), kind, json.dumps(author), KEEP_NOTES),
        )
        return int(note_id)

    async def deliver(self, event: str, tool: str | None = None) -> Handed:
        """Take every pending note, marked delivered by ``event`` (and ``tool``) in the same
        step; an empty :class:`Handed` when none is pending."""
        reply = await self.redis.run(
            "notes_deliver", self._session, self._keys, (delivery_by(event, tool),)
        )
        return handed(reply)

    async def release(self, delivery: Handed) -> bool:
        """Undo ``delivery`` (it never reached the agent): its notes are pending again, unless
        a later delivery happened. True when released."""
        if not delivery:
            return False
        released = await self.redis.run(
            "notes_release",
            self._session,
            self._keys,
            (delivery.first, delivery.last, delivery.number),
        )
        return bool(released)

    async def list(self) -> list[Note]:
        """Every kept note, oldest first, with its delivery (one MULTI/EXEC)."""
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._keys[0])
            pipe.hgetall(self._keys[2])
            notes, delivered = await pipe.execute()
        return build_notes(notes, delivered)

    async def pending(self) -> list[Note]:
        return [note for note in await self.list() if note.pending]


def build_notes(notes: dict[str, str], delivered: dict[str, str]) -> list[Note]:
    out = [parse_note(raw, delivered.get(id_)) for id_, raw in notes.items()]
    out.sort(key=lambda note: note.id)
    return out


def context_change_summary(before: Any, after: Any, limit: int = MAX_SUMMARY_CHARS) -> str:
    """A short, bounded account of what changed between two JSON values, key by key:
    ``set task = "ship it"``, ``removed owner``, ``changed budget.limit: 10 -> 20``."""
    lines: list[str] = []
    _diff("", before, after, lines)
    if not lines:
        return "no change"
    text = ""
    for n, line in enumerate(lines):
        more = f"… and {len(lines) - n} more changes"
        if len(text) + len(line) + 1 > limit - len(more) - 1:
            return text + more
        text += line + "\n"
    return text.rstrip("\n")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _diff(path: str, before: Any, after: Any, lines: list[str]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            name = f"{path}.{key}" if path else str(key)
            if key not in after:
                lines.append(f"removed {name}")
            else:
                _diff(name, before[key], after[key], lines)
        for key in after:
            if key not in before:
                name = f"{path}.{key}" if path else str(key)
                lines.append(f"set {name} = {_short(after[key])}")
        return
    name = path or "the context"
    lines.append(f"changed {name}: {_short(before, 60)} -> {_short(after)}")


@dataclass(slots=True)
class NotesView:
    """The notes part of a session's feed view: every kept note, by id."""

    notes: dict[int, Note] = field(default_factory=dict)

    @property
    def pending(self) -> list[Note]:
        return [note for note in self.notes.values() if note.pending]


class NotesSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`NotesView`."""

    name = "notes"
    kinds = ("notes.",)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        notes, _, delivered = note_keys(keys)
        pipe.hgetall(notes)
        pipe.hgetall(delivered)
        return 2

    def build(self, results: Sequence[Any]) -> NotesView | None:
        notes, delivered = results
        if not notes:
            return None
        return NotesView({note.id: note for note in build_notes(notes, delivered)})

    def apply(self, view: Any, event: Any) -> bool:
        payload, kind = event.payload, event.kind
        notes: NotesView | None = view.notes
        try:
            if kind == "notes.add":
                if "text" not in payload:
                    return False  # a long note: read it
                if notes is None:
                    notes = view.notes = NotesView()
                note = Note(
                    int(payload["id"]),
                    payload["kind"],
                    str(payload["author"]),
                    int(payload["ts"]),
                    int(payload["after"]),
                    str(payload["text"]),
                )
                notes.notes[note.id] = note
                old = note.id - KEEP_NOTES  # as notes_add.lua drops it
                if old in notes.notes and not notes.notes[old].pending:
                    del notes.notes[old]
                return True
            if notes is None:
                return False
            first, last = int(payload["first"]), int(payload["last"])
            if kind == "notes.delivered":
                delivery = Delivery(event.ts, str(payload["event"]), payload.get("tool"))
                for note_id in range(first, last + 1):
                    note = notes.notes.get(note_id)
                    if note is not None:
                        notes.notes[note_id] = _with(note, delivery)
                return True
            if kind == "notes.released":
                for note_id in range(first, last + 1):
                    note = notes.notes.get(note_id)
                    if note is not None:
                        notes.notes[note_id] = _with(note, None)
                return True
        except (KeyError, TypeError, ValueError):
            return False
        return False


def _with(note: Note, delivery: Delivery | None) -> Note:
    return Note(note.id, note.kind, note.author, note.ts, note.after, note.text, delivery)
