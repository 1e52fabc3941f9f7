"""#workflow: the session's state machine drawn as a diagram, and its recent transitions.

Top to bottom: whether the agent waits for a person (and what it asked) or is paused; the
current state (since when, for how long), the valid next states, the state's data and its tool
policy (the patterns it denies, and why); a legend; the diagram (see
:mod:`tui.panes.diagram`: boxes in layers, the current state heavy and reversed, the
previous one marked ◆, the valid next ones green); then the transition history, newest
first, forced moves flagged with their reason, and the count of rejected attempts seen on the
stream. A session with a task workflow (``view.task``, stepped by
the operator) shows that one, with the automatic activity workflow as one line under its state.

``show()`` may run 30 times a second: the diagram is laid out and drawn once per definition and
width, and repainted only when the current or previous state changes.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from store import SessionView
from store.workflow import Transition, WorkflowView

from ..text import clock_time, duration
from .base import Pane, set_border_subtitle, set_border_title
from .diagram import (
    PREVIOUS_MARK,
    STYLE_CURRENT_BOX,
    STYLE_CURRENT_LABEL,
    STYLE_NEXT,
    STYLE_NOTE,
    STYLE_PREVIOUS,
    Diagram,
    clean,
    fit,
    layout,
)

DEFAULT_WIDTH = 39  # the app's 44 columns less border, padding and the scrollbar gutter
STYLE_TIME = "dim"
STYLE_FORCED = "bold red"
STYLE_REASON = "red"
STYLE_TITLE = "bold"
STYLE_WAITING = "bold black on yellow"
STYLE_PAUSED = "bold white on magenta"


def _line(*parts: tuple[str, str] | str) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        else:
            text.append(*part)
    return text


def _split(text: str, cells: int) -> tuple[str, str]:
    """The first ``cells`` of ``text``, broken at a space when one is near, and the rest."""
    if cell_len(text) <= cells:
        return text, ""
    head = fit(text, cells + 1)[:-1]  # the characters that fit, without the ellipsis
    space = head.rfind(" ")
    if space > len(head) // 2:
        head = head[:space]
    return head, text[len(head) :].lstrip()


def _copy(transitions: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot to compare the next view's definition with (the feed mutates views)."""
    return {k: v.copy() if isinstance(v, list) else v for k, v in transitions.items()}


class WorkflowPane(VerticalScroll, Pane):
    """Attributes down: the app calls :meth:`show`; ``tz`` (default: local time) is for the
    clock times shown, and lets tests pin them."""

    DEFAULT_CSS = """
    WorkflowPane {
        height: 1fr;
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
    }
    WorkflowPane > Static {
        width: 1fr;
        height: auto;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """
    PARTS = ("workflow-head", "workflow-diagram", "workflow-history")

    def __init__(self, *, tz: tzinfo | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tz = tz
        set_border_title(self, "workflow")
        self._view: SessionView | None = None
        self._now_ms = 0
        self._definition: tuple[dict[str, Any], str] | None = None
        self._diagram: Diagram | None = None
        self._rendered_width = 0
        self._shown: list[list[Text] | None] = [None, None, None]
        self._statics: list[Static] = []
        self.lines: list[Text] = []  # what the pane shows, one Text per line
        self.renders = 0  # how often a part was handed to Textual (tests and curiosity)
        self.layouts = 0  # how often the diagram was laid out

    def compose(self) -> ComposeResult:
        self._statics = [Static(id=part) for part in self.PARTS]
        yield from self._statics

    def on_mount(self) -> None:
        self._refresh_body()

    def on_resize(self) -> None:
        if self._width() != self._rendered_width:
            self._refresh_body()

    # -- the contract --------------------------------------------------------------------

    def show(self, view: SessionView | None, now_ms: int) -> None:
        self._view, self._now_ms = view, now_ms
        if self.is_mounted:
            self._refresh_body()

    @property
    def diagram(self) -> Diagram | None:
        """The diagram of the shown definition (None: no workflow shown)."""
        return self._diagram

    # -- rendering -----------------------------------------------------------------------

    def _width(self) -> int:
        width = self.scrollable_content_region.width
        return width if width > 0 else DEFAULT_WIDTH

    def _refresh_body(self) -> None:
        """Rebuild the three parts; hand Textual only those that changed (converting Text to
        Content costs more than building it)."""
        width = self._rendered_width = self._width()
        view = self._view
        # The task workflow (stepped by the operator, with tool policies) is the main one when
        # the session has it; the automatic activity workflow is then one line of the head.
        task: WorkflowView | None = view.task if view is not None else None
        activity: WorkflowView | None = view.workflow if view is not None else None
        workflow = task if task is not None else activity
        if view is None:
            parts = [[_line(("no session selected", STYLE_NOTE))], [], []]
            set_border_subtitle(self, "")
        elif workflow is None:
            parts = [[_line(("no workflow in this session", STYLE_NOTE))], [], []]
            set_border_subtitle(self, "")
        else:
            parts = self._parts(workflow, width, activity if task is not None else None)
        if view is not None:
            parts[0][:0] = self._steering(view, width)
        self.lines = [line for part in parts for line in part]
        for k, lines in enumerate(parts):
            shown = self._shown[k]
            if shown is lines or shown == lines:  # the diagram's paint is cached: same object
                continue
            # The part's height is its line count: a layout (of the whole screen) only when
            # that changed, not on every new duration or history line.
            layout = shown is None or len(shown) != len(lines)
            self._shown[k] = lines
            self.renders += 1
            static = self._statics[k]
            if static.display != bool(lines):
                static.display = bool(lines)
            static.update(Text("\n", no_wrap=True).join(lines), layout=layout)

    def _diagram_for(self, workflow: WorkflowView, width: int) -> Diagram:
        transitions = workflow.transitions if isinstance(workflow.transitions, Mapping) else {}
        known = self._definition
        if (
            self._diagram is None
            or known is None
            or known[1] != workflow.initial
            or known[0] != transitions
        ):
            self._definition = (_copy(transitions), workflow.initial)
            self._diagram = Diagram(layout(transitions, workflow.initial), width)
            self.layouts += 1
        elif self._diagram.width != width:
            self._diagram = Diagram(self._diagram.layout, width)
        return self._diagram

    def _parts(
        self, workflow: WorkflowView, width: int, activity: WorkflowView | None = None
    ) -> list[list[Text]]:
        """The head (state, next states, data, policy, legend), the diagram, the history;
        ``activity``: the activity workflow shown as a line under a task workflow's state."""
        state = workflow.state
        recent: list[Transition] = list(workflow.recent or ())
        previous = None
        if recent and recent[0].to_state == state and recent[0].from_state != state:
            previous = recent[0].from_state
        diagram = self._diagram_for(workflow, width)
        upcoming = list(diagram.layout.targets.get(state, ()))
        states = diagram.layout.states
        subtitle = f"{states} state{'s' if states != 1 else ''}"
        if activity is not None:
            subtitle = f"task · {subtitle}"
        set_border_subtitle(self, subtitle)

        head = [self._status(workflow, width)]
        if activity is not None:
            head.append(self._activity_line(activity, width))
        if state in diagram.layout.targets:
            head.extend(self._next_line(upcoming, width))
        else:  # a hand-set or stale state: say so rather than call it final
            head.append(_line(("next → ? (not in the definition)", STYLE_NOTE)))
        if workflow.data is not None:
            head.append(self._data_line(workflow.data, width))
        head.extend(self._policy_lines(workflow, width))
        head.append(
            _line(
                ("▣ now", STYLE_CURRENT_BOX),
                "  ",
                (PREVIOUS_MARK + " previous", STYLE_PREVIOUS),
                "  ",
                ("□ next", STYLE_NEXT),
                ("  ↻ to itself" if diagram.layout.loops else "", STYLE_NOTE),
            )
        )
        head.append(Text())
        history = [Text(), *self._history(workflow, recent, width)]
        for line in itertools.chain(head, history):
            line.truncate(width, overflow="ellipsis")
        return [head, diagram.paint(state, previous, upcoming), history]

    def _status(self, workflow: WorkflowView, width: int) -> Text:
        line = _line(("●", STYLE_CURRENT_BOX))
        line.append(" " + fit(clean(workflow.state), max(8, width - 24)) + " ", STYLE_CURRENT_LABEL)
        since = workflow.since
        if isinstance(since, int):
            line.append(f" since {clock_time(since, self.tz)}", STYLE_TIME)
            if self._now_ms >= since:
                line.append(f" · {duration(self._now_ms - since)}", STYLE_TIME)
        return line

    def _activity_line(self, activity: WorkflowView, width: int) -> Text:
        """``activity ● tool since 21:07:19 · 12s``: what the agent is doing right now."""
        line = _line(("activity ", STYLE_NOTE), ("● ", STYLE_NOTE))
        line.append(fit(clean(activity.state), max(8, width - 32)), "bold")
        since = activity.since
        if isinstance(since, int) and self._now_ms >= since:
            line.append(f" · {duration(self._now_ms - since)}", STYLE_TIME)
        return line

    @staticmethod
    def _policy_lines(workflow: WorkflowView, width: int) -> list[Text]:
        """The current state's tool policy: ``⊘ denies Edit, Write`` and its reason (≤ 2
        lines), or nothing when the state allows every tool."""
        policy = workflow.policy if isinstance(workflow.policies, Mapping) else None
        if not isinstance(policy, Mapping):
            return []
        deny = policy.get("deny")
        patterns = [clean(p, 64) for p in deny] if isinstance(deny, list) else []
        if not patterns:
            return []
        lines = [_line(("⊘ denies ", STYLE_FORCED))]
        for k, pattern in enumerate(patterns):  # flowing onto at most two lines
            part = pattern + ("," if k < len(patterns) - 1 else "")
            if lines[-1].cell_len + 1 + cell_len(part) > width and lines[-1].cell_len > 9:
                if len(lines) == 2:
                    lines[-1].append(" …", STYLE_NOTE)
                    break
                lines.append(_line(" " * 8))
            if lines[-1].cell_len > 9:
                lines[-1].append(" ")
            lines[-1].append(fit(part, width - 9), "bold")
        reason = policy.get("reason")
        if isinstance(reason, str) and reason:
            first, rest = _split(clean(reason, width * 3), width - 2)
            lines.append(_line("  ", (first, STYLE_REASON)))
            if rest:
                lines.append(_line("  ", (fit(rest, width - 2), STYLE_REASON)))
        return lines

    def _steering(self, view: SessionView, width: int) -> list[Text]:
        """Above everything: the agent waits for a person (and what it said), or is paused."""
        control = view.control
        if control is None:
            return []
        lines: list[Text] = []
        waiting = control.waiting
        if waiting is not None:
            title = _line((" ⚑ waiting for a person ", STYLE_WAITING))
            title.append(f" {clock_time(waiting.ts, self.tz)}", STYLE_TIME)
            lines.append(title)
            what = clean(waiting.message, width * 3)
            if waiting.tool:
                what = f"{clean(waiting.tool, 64)}: {what}"
            first, rest = _split(what, width - 2)
            lines.append(_line("  ", (first, "bold")))
            if rest:
                lines.append(_line("  ", (fit(rest, width - 2), "bold")))
        if control.paused:
            title = _line((" ‖ paused ", STYLE_PAUSED))
            if control.paused_by:
                title.append(" by " + fit(clean(control.paused_by, 64), 16), STYLE_NOTE)
            if isinstance(control.paused_at, int):
                title.append(f" since {clock_time(control.paused_at, self.tz)}", STYLE_TIME)
            lines.append(title)
            lines.append(_line(("  the agent is held · P resumes", STYLE_NOTE)))
        if lines:
            lines.append(Text())
        for line in lines:
            line.truncate(width, overflow="ellipsis")
        return lines

    @staticmethod
    def _next_line(upcoming: list[str], width: int) -> list[Text]:
        """``next → a · b``, flowing onto at most three lines."""
        if not upcoming:
            return [_line(("next → none (a final state)", STYLE_NOTE))]
        lines = [_line(("next → ", STYLE_NOTE))]
        for k, state in enumerate(upcoming):
            name = fit(clean(state), width - 7)
            part = name + (" · " if k < len(upcoming) - 1 else "")
            if lines[-1].cell_len + len(part) > width and lines[-1].cell_len > 7:
                if len(lines) == 3:
                    lines[-1].append("…", STYLE_NOTE)
                    break
                lines.append(_line("       "))
            lines[-1].append(name, STYLE_NEXT)
            if part != name:
                lines[-1].append(" · ", STYLE_NOTE)
        return lines

    @staticmethod
    def _data_line(data: Any, width: int) -> Text:
        try:
            text = json.dumps(data, default=str, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            text = repr(data)
        return _line(("data ", STYLE_NOTE), (fit(clean(text, width * 2), width - 5), ""))

    def _history(self, workflow: WorkflowView, recent: list[Transition], width: int) -> list[Text]:
        """Newest first; the last rejected attempt (seen on the stream) among them by time."""
        title = _line(("history", STYLE_TITLE), ("  newest first", STYLE_NOTE))
        rejected = workflow.rejected if isinstance(workflow.rejected, int) else 0
        if rejected:
            flag = f"✗ {rejected} rejected"
            title.append(" " * max(1, width - title.cell_len - len(flag)))
            title.append(flag, STYLE_FORCED)
        lines = [title]
        attempt = workflow.last_rejected if rejected else None
        if not isinstance(attempt, Mapping):
            attempt = None
        if not recent and attempt is None:
            lines.append(_line(("no transitions yet", STYLE_NOTE)))
        for move in recent:
            if attempt is not None and self._newer(attempt.get("ts"), getattr(move, "ts", 0)):
                lines.extend(self._rejection(attempt, rejected, width))
                attempt = None
            lines.extend(self._transition(move, width))
        if attempt is not None:
            lines.extend(self._rejection(attempt, rejected, width))
        return lines

    @staticmethod
    def _newer(ts: object, than: object) -> bool:
        try:
            return int(ts) >= int(than)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return True

    def _entry(self, ts: object, source: object, target: object, actor: object, width: int) -> Text:
        """``HH:MM:SS from → to`` and the actor at the right."""
        actor_text = fit(clean(actor, 64), 10) if actor is not None else ""
        room = width - 9 - (cell_len(actor_text) + 1 if actor_text else 0)
        line = _line((clock_time(ts, self.tz) + " ", STYLE_TIME))
        line.append(self._move(source, target, room))
        if actor_text:
            gap = width - line.cell_len - cell_len(actor_text)
            line.append(" " * max(1, gap) + actor_text, STYLE_NOTE)
        return line

    def _rejection(self, attempt: Mapping[str, Any], count: int, width: int) -> list[Text]:
        line = self._entry(
            attempt.get("ts"), attempt.get("from"), attempt.get("to"), attempt.get("actor"), width
        )
        del count  # the title has it
        return [line, _line(" " * 9, ("REJECTED", STYLE_FORCED), (" not allowed", STYLE_NOTE))]

    @staticmethod
    def _move(source: object, target: object, cells: int) -> Text:
        """``from → to`` in ``cells``: the target keeps at least half when both are long."""
        a, b = clean(source, 64), clean(target, 64)
        room = max(8, cells - 3)
        a = fit(a, max(4, room - min(cell_len(b), room // 2)))
        b = fit(b, max(4, room - cell_len(a)))
        return _line(a, (" → ", STYLE_NOTE), (b, "bold"))

    def _transition(self, move: Transition, width: int) -> list[Text]:
        try:
            source, target, actor, forced, reason, _, _, ts = move
        except (TypeError, ValueError):
            return [_line(("? " + clean(move, 64), STYLE_NOTE))]
        line = self._entry(ts, source, target, actor, width)
        if forced is not True:
            return [line]
        flag = _line(" " * 9, ("FORCED", STYLE_FORCED))
        if not reason:
            return [line, flag]
        first, rest = _split(clean(reason, width * 3), width - 16)
        flag.append(" " + first, STYLE_REASON)
        if not rest:
            return [line, flag]
        return [line, flag, _line(" " * 9, (fit(rest, width - 9), STYLE_REASON))]
