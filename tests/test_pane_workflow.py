"""The #workflow pane: the pure layout/drawing of tui.panes.diagram, the pane in a tiny host app
with hand-built views, once end to end through MemdashApp and a real redis-server, and a
snapshot."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult

from store import SessionView, StatefulMemory
from store.workflow import Transition, WorkflowView
from tui.app import MemdashApp
from tui.panes import diagram as dg
from tui.panes.diagram import (
    ARROW_DOWN,
    ARROW_LEFT,
    DOWN,
    LEFT,
    RIGHT,
    UP,
    Diagram,
    Virtual,
    clean,
    draw,
    fit,
    layout,
)
from tui.panes.workflow import WorkflowPane

FLOW = {
    "planning": ["coding"],
    "coding": ["testing"],
    "testing": ["review", "coding"],
    "review": ["done", "coding"],
    "done": [],
}
HOOKS = {  # the Claude Code hook workflow
    "idle": ["prompting", "ended"],
    "prompting": ["tool", "responding", "idle"],
    "tool": ["tool", "responding"],
    "responding": ["tool", "idle", "ended"],
    "ended": [],
}
T0 = 1_764_000_000_000  # 2025-11-24 16:00:00 UTC
NOW = T0 + 425_000
WIDTH = 39  # the pane's text width in the app (44 less border, padding, scrollbar gutter)
HOST_CSS = "#workflow { width: 44; border: round $primary; padding: 0 1; }"
HOSTILE = [
    "[bold]x[/]",
    "\x1b[31mred\x1b[0m",
    "nul\x00bell\x07cr\r",
    "[link=http://evil]y[/link]",
    "z" * 256,
    "\u202eoverride",
]


def plain(lines: list[Text]) -> list[str]:
    return [line.plain for line in lines]


def grid_of(diagram: Diagram) -> list[str]:
    return plain(diagram.paint())


def styles_at(line: Text, needle: str) -> set[str]:
    """The styles of the spans covering the first occurrence of ``needle`` in ``line``."""
    start = line.plain.index(needle)
    end = start + len(needle)
    return {str(span.style) for span in line.spans if span.start < end and span.end > start}


def check_lines_connect(diagram: Diagram) -> None:
    """Every line in the grid ends at another line, a box or an arrow: nothing dangles."""
    grid = diagram.grid

    def mask(y: int, x: int) -> int:
        return grid.base.get((y, x), 0) | grid.extra.get((y, x), 0)

    def arrow(y: int, x: int) -> str | None:  # arrow heads belong to moves, names to states
        owner = grid.owner.get((y, x))
        return grid.glyph.get((y, x)) if isinstance(owner, frozenset) else None

    heads = {dg.ARROW_DOWN, dg.ARROW_LEFT, dg.ARROW_RIGHT}
    for y, x in grid.extra:
        if arrow(y, x) is not None:
            continue
        full = mask(y, x)
        if full & DOWN:
            assert mask(y + 1, x) & UP or arrow(y + 1, x) in heads, (y, x)
        if full & UP:
            assert mask(y - 1, x) & DOWN, (y, x)
        if full & RIGHT:
            assert mask(y, x + 1) & LEFT or arrow(y, x + 1) in heads, (y, x)
        if full & LEFT:
            assert mask(y, x - 1) & RIGHT or arrow(y, x - 1) in heads, (y, x)
    for y, x in list(grid.glyph):
        head = arrow(y, x)
        if head == ARROW_DOWN:
            assert mask(y - 1, x) & DOWN
            assert grid.owner.get((y + 1, x)) is not None  # a box's top border
        elif head == ARROW_LEFT:
            assert mask(y, x + 1) & LEFT
            assert grid.owner.get((y, x - 1))[0] == "box"
        elif head == dg.ARROW_RIGHT:
            assert mask(y, x - 1) & RIGHT
            assert grid.owner.get((y, x + 1))[0] == "box"


# -- layout --------------------------------------------------------------------------------


def test_layout_of_the_standard_workflow():
    graph = layout(FLOW, "planning")
    assert graph.layers == (("planning",), ("coding",), ("testing",), ("review",), ("done",))
    assert set(graph.forward) == {
        ("planning", "coding"),
        ("coding", "testing"),
        ("testing", "review"),
        ("review", "done"),
    }
    assert set(graph.back) == {("testing", "coding"), ("review", "coding")}
    assert graph.flat == () and graph.loops == frozenset()
    assert graph.drawable


def test_layout_of_the_hook_workflow_with_a_self_loop_and_a_long_move():
    graph = layout(HOOKS, "idle")
    assert graph.layers == (("idle",), ("prompting",), ("tool",), ("responding",), ("ended",))
    assert graph.loops == {"tool"}
    assert set(graph.back) == {
        ("prompting", "idle"),
        ("responding", "tool"),
        ("responding", "idle"),
    }
    # idle -> ended crosses three layers: a virtual point in each
    points = [n for row in graph.rows for n in row if isinstance(n, Virtual)]
    assert {(p.source, p.target, p.layer) for p in points} >= {
        ("idle", "ended", 1),
        ("idle", "ended", 2),
        ("idle", "ended", 3),
        ("prompting", "responding", 2),
    }


def test_unreachable_states_go_in_a_last_layer():
    graph = layout({"a": ["b"], "b": [], "orphan": ["a", "lost"], "lost": []}, "a")
    assert graph.layers == (("a",), ("b",), ("orphan", "lost"))
    assert graph.back == (("orphan", "a"),)
    assert graph.flat == (("orphan", "lost"),)


def test_targets_missing_from_the_keys_and_a_strange_initial_are_still_states():
    graph = layout({"a": ["b", "b", "c"]}, "nowhere")
    assert graph.layers[0] == ("nowhere",)
    assert set(graph.targets) == {"nowhere", "a", "b", "c"}
    assert graph.targets["a"] == ("b", "c")  # duplicates dropped
    assert layout({}, "only").layers == (("only",),)


def test_cycles_terminate_and_every_state_is_placed_once():
    ring = {f"s{i}": [f"s{(i + 1) % 50}"] for i in range(50)}
    complete = {f"k{i}": [f"k{j}" for j in range(20)] for i in range(20)}
    for transitions, initial in ((ring, "s0"), (complete, "k0")):
        graph = layout(transitions, initial)
        placed = [s for layer in graph.layers for s in layer]
        assert sorted(placed) == sorted(transitions)


def test_barycenter_ordering_removes_avoidable_crossings():
    transitions = {
        "top": ["a", "b"],
        "a": ["y"],
        "b": ["x"],
        "x": [],
        "y": [],
    }
    graph = layout(transitions, "top")
    a, b = graph.layers[1].index("a"), graph.layers[1].index("b")
    x, y = graph.layers[2].index("x"), graph.layers[2].index("y")
    assert (a < b) == (y < x)  # a -> y and b -> x do not cross


def test_big_definitions_lay_out_and_draw_fast():
    rng = random.Random(7)
    thirty = {f"state{i}": rng.sample([f"state{j}" for j in range(30)], 3) for i in range(30)}
    huge = {f"s{i}": [f"s{(i * 7 + k) % 1024}" for k in range(8)] for i in range(1024)}
    for transitions, initial in ((thirty, "state0"), (huge, "s0")):
        started = time.perf_counter()
        lines = Diagram(layout(transitions, initial), WIDTH).paint(initial, None, ())
        assert time.perf_counter() - started < 1.0
        assert all(line.cell_len <= WIDTH for line in lines)


# -- drawing -------------------------------------------------------------------------------


def test_the_standard_workflow_is_drawn_as_boxes_with_arrows_and_a_back_channel():
    diagram = Diagram(layout(FLOW, "planning"), WIDTH)
    assert diagram.drawn and diagram.unrouted == []
    text = grid_of(diagram)
    assert len(text) <= 25
    assert all(len(line) <= WIDTH for line in text)
    for state in FLOW:
        assert any(f"│ {state} " in line for line in text), state
    assert sum(line.count(ARROW_DOWN) for line in text) == 4  # the four forward moves
    assert sum(line.count(ARROW_LEFT) for line in text) == 1  # both back moves join at coding
    coding = next(line for line in text if "coding" in line)
    assert coding.rstrip().endswith("│◀──┐")
    testing = next(line for line in text if "testing" in line)
    assert "├──┤" in testing  # testing joins the channel on its way up to coding
    check_lines_connect(diagram)


def test_the_hook_workflow_fits_forty_columns():
    diagram = Diagram(layout(HOOKS, "idle"), WIDTH)
    assert diagram.drawn
    text = grid_of(diagram)
    assert len(text) <= 25 and all(len(line) <= WIDTH for line in text)
    assert any("tool ↻" in line for line in text)  # the self-loop
    assert diagram.unrouted == []
    check_lines_connect(diagram)


def test_current_previous_and_next_states_are_marked():
    diagram = Diagram(layout(FLOW, "planning"), WIDTH)
    lines = diagram.paint("testing", "coding", ["review", "coding"])
    text = plain(lines)
    row = next(k for k, line in enumerate(text) if "testing" in line)
    assert "┃ testing ┝" in text[row]  # heavy box, light line leaving it
    assert text[row - 1].strip().startswith("┏") and text[row + 1].strip().startswith("┗")
    assert "reverse" in " ".join(styles_at(lines[row], "testing"))
    assert any("│◆coding │" in line for line in text)  # the previous state
    assert dg.STYLE_PREVIOUS in styles_at(lines[text.index(next(t for t in text if "◆" in t))], "◆")
    review = next(k for k, line in enumerate(text) if "review" in line)
    assert dg.STYLE_NEXT in styles_at(lines[review], "review")
    # The arrow into review leaves the current state: green.
    arrow = review - 2
    assert dg.STYLE_NEXT_EDGE in styles_at(lines[arrow], ARROW_DOWN)
    # Repainting the same highlight is free; another one changes only weights and marks.
    assert diagram.paint("testing", "coding", ["review", "coding"]) is lines
    other = diagram.paint("review", "testing", ["done", "coding"])
    assert plain(other) != text
    light = str.maketrans("┏┓┗┛━┃┯┷┝┥┹┺◆", "┌┐└┘─│┬┴├┤┴┴ ")
    unmarked = [line.translate(light) for line in text]
    assert [line.translate(light) for line in plain(other)] == unmarked == grid_of(diagram)


def test_wide_layers_abbreviate_names_and_wider_still_become_a_list():
    fan = {"start": [f"a_rather_long_state_{i}" for i in range(4)]}
    fan.update({f"a_rather_long_state_{i}": [] for i in range(4)})
    diagram = Diagram(layout(fan, "start"), WIDTH)
    assert diagram.drawn
    text = grid_of(diagram)
    assert all(len(line) <= WIDTH for line in text)
    assert sum(line.count("…") for line in text) == 4
    check_lines_connect(diagram)

    wide = {"start": [f"s{i}" for i in range(12)], **{f"s{i}": [] for i in range(12)}}
    listed = Diagram(layout(wide, "start"), WIDTH)
    assert not listed.drawn
    text = plain(listed.paint("start", None, wide["start"]))
    assert text[0].startswith("▶ start → s0, s1")
    assert all(len(line) <= WIDTH for line in text)
    assert {line.split()[-1] for line in text[1:]} == {f"s{i}" for i in range(12)}


def test_moves_that_cannot_be_drawn_are_listed_under_the_drawing():
    transitions = {
        "new": ["triage"],
        "triage": ["in_progress", "wontfix", "duplicate"],
        "in_progress": ["blocked", "in_review"],
        "blocked": ["in_progress"],
        "in_review": ["in_progress", "merged"],
        "merged": [],
        "wontfix": [],
        "duplicate": [],
    }
    diagram = Diagram(layout(transitions, "new"), WIDTH)
    assert diagram.drawn
    lines = diagram.paint("in_review", "in_progress", transitions["in_review"])
    notes = [line for line in lines if line.plain.startswith("↺")]
    assert notes and all(" → " in line.plain for line in notes)
    routed = {edge for edge in transitions_edges(transitions) if edge not in diagram.unrouted}
    assert ("in_review", "in_progress") in diagram.unrouted or (
        "in_review",
        "in_progress",
    ) in routed
    for line in notes:  # the valid moves from the current state stand out
        if line.plain.startswith("↺ in_review"):
            assert line.style == dg.STYLE_NEXT_EDGE
    check_lines_connect(diagram)


def transitions_edges(transitions):
    return {(a, b) for a, targets in transitions.items() for b in targets}


def test_every_width_from_tiny_to_wide_works():
    for transitions, initial in ((FLOW, "planning"), (HOOKS, "idle")):
        graph = layout(transitions, initial)
        for width in range(1, 80):
            lines = Diagram(graph, width).paint(initial, None, transitions[initial])
            assert all(line.cell_len <= max(width, 12) for line in lines), width
            assert lines


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(names, st.lists(st.integers(0, 11), max_size=4), min_size=1, max_size=12),
    st.integers(12, 70),
)
def test_random_definitions_draw_without_dangling_lines(raw, width):
    states = list(raw)
    transitions = {s: [states[i % len(states)] for i in targets] for s, targets in raw.items()}
    graph = layout(transitions, states[0])
    assert sorted(s for layer in graph.layers for s in layer) == sorted(states)
    diagram = Diagram(graph, width)
    lines = diagram.paint(states[0], states[-1], transitions[states[0]])
    assert all(line.cell_len <= width for line in lines)
    if diagram.drawn:
        check_lines_connect(diagram)
        assert set(diagram.unrouted) <= set(graph.back) | set(graph.flat)


def test_hostile_names_are_drawn_literally_and_cropped():
    transitions = {name: [HOSTILE[(k + 1) % len(HOSTILE)]] for k, name in enumerate(HOSTILE)}
    lines = draw(transitions, HOSTILE[0], WIDTH, current=HOSTILE[1], previous=HOSTILE[0])
    text = "\n".join(plain(lines))
    assert "[bold]x[/]" in text
    assert "␛[31mred" in text and "\x1b" not in text
    assert "\x00" not in text and "\x07" not in text and "\r" not in text
    assert "\u202e" not in text
    assert all(line.cell_len <= WIDTH for line in lines)
    console = Console(width=80, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    for line in lines:
        console.print(line)
    exported = console.export_text()
    assert "[bold]x[/]" in exported  # printed as text, not as markup


def test_clean_and_fit():
    assert clean("a\x1b[1mb\x00\n\x7f\u202e") == "a␛[1mb␀⏎␡\N{REPLACEMENT CHARACTER}"
    assert clean("x" * 500, limit=10) == "x" * 10 + "…"
    assert fit("abcdef", 4) == "abc…" and fit("abc", 4) == "abc" and fit("abc", 0) == ""
    assert fit("中文中文", 5) == "中文…"


# -- the pane ------------------------------------------------------------------------------


class Host(App[None]):
    """Just the pane, sized as app.tcss sizes it."""

    CSS = HOST_CSS

    def __init__(self, view: SessionView | None, now_ms: int = NOW) -> None:
        super().__init__()
        self.view, self.clock_ms = view, now_ms

    def compose(self) -> ComposeResult:
        yield WorkflowPane(id="workflow", tz=UTC)

    def on_mount(self) -> None:
        self.query_one(WorkflowPane).show(self.view, self.clock_ms)


def session(
    state: str = "testing",
    transitions: dict[str, list[str]] | None = None,
    initial: str = "planning",
    recent: list[Transition] | None = None,
    rejected: int = 0,
    last_rejected: dict | None = None,
    data: object = None,
) -> SessionView:
    workflow = WorkflowView(
        state,
        data,
        T0 + 300_000,
        transitions if transitions is not None else FLOW,
        initial,
        recent if recent is not None else [],
    )
    workflow.rejected, workflow.last_rejected = rejected, last_rejected
    return SessionView("s1", seq=9, last_activity=T0 + 310_000, workflow=workflow)


def standard_session() -> SessionView:
    return session(
        data={"run": 7},
        recent=[
            Transition("coding", "testing", "ci", False, None, {"run": 7}, 9, T0 + 300_000),
            Transition("review", "coding", "ops", True, "tests flaky", None, 8, T0 + 200_000),
            Transition("testing", "review", "agent", False, None, {}, 7, T0 + 100_000),
            Transition("coding", "testing", "agent", False, None, {}, 6, T0 + 60_000),
            Transition("planning", "coding", "agent", False, None, {}, 5, T0),
        ],
        rejected=2,
        last_rejected={"from": "testing", "to": "done", "actor": "agent", "ts": T0 + 310_000},
    )


def screen_text(app: App[None]) -> list[str]:
    update = app.screen._compositor.render_update(full=True)
    return ["".join(segment.text for segment in strip) for strip in update.strips]


async def test_pane_shows_state_next_states_diagram_and_history():
    app = Host(standard_session())
    async with app.run_test(size=(44, 60)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        text = plain(pane.lines)
        assert text[0] == "● testing  since 16:05:00 · 2m05s"
        assert text[1] == "next → review · coding"
        assert text[2] == 'data {"run":7}'
        assert "▣ now" in text[3] and "◆ previous" in text[3]
        assert any("┃ testing ┝" in line for line in text)
        assert any("│◆coding │◀" in line for line in text)
        history = text[text.index(next(t for t in text if t.startswith("history"))) :]
        assert history[0].endswith("✗ 2 rejected")
        assert history[1].startswith("16:05:10 testing → done") and history[1].endswith("agent")
        assert history[2].strip() == "REJECTED not allowed"
        assert history[3].startswith("16:05:00 coding → testing") and history[3].endswith("ci")
        assert history[4].startswith("16:03:20 review → coding")
        assert history[5].strip() == "FORCED tests flaky"
        forced = pane.lines[text.index(history[5])]
        assert dg.STYLE_NEXT not in styles_at(forced, "FORCED")
        assert "bold red" in styles_at(forced, "FORCED")
        assert history[-1].startswith("16:00:00 planning → coding")
        assert all(len(line) <= WIDTH for line in text)
        screen = screen_text(app)
        assert all(len(line) == 44 for line in screen)
        assert "history" in "".join(screen)


async def test_pane_without_a_session_or_a_workflow():
    app = Host(None)
    async with app.run_test(size=(44, 20)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        assert plain(pane.lines) == ["no session selected"]
        pane.show(SessionView("s2"), NOW)
        assert plain(pane.lines) == ["no workflow in this session"]
        pane.show(session(recent=[]), NOW)
        assert "no transitions yet" in plain(pane.lines)


async def test_pane_final_state_and_a_state_set_without_a_recorded_move():
    moves = [Transition("review", "done", "agent", False, None, {}, 5, T0)]
    app = Host(session(state="done", recent=moves))
    async with app.run_test(size=(44, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        text = plain(pane.lines)
        assert text[1] == "next → none (a final state)"
        assert any("│◆review " in line for line in text)
        # set_state moved on but record_transition has not run yet: no previous marker
        pane.show(session(state="coding", recent=moves), NOW)
        assert not any("◆" in line for line in plain(pane.lines)[5:])
        pane.show(session(state="limbo", recent=moves), NOW)
        assert plain(pane.lines)[1] == "next → ? (not in the definition)"
        assert not any("┏" in line for line in plain(pane.lines))
        assert pane.border_subtitle == "5 states"


async def test_layout_is_cached_per_definition_and_width():
    app = Host(standard_session())
    async with app.run_test(size=(44, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        assert pane.layouts == 1
        handed = pane.renders
        pane.show(standard_session(), NOW)  # another session view, the same workflow
        assert pane.renders == handed  # nothing changed: nothing handed to Textual
        view = standard_session()
        started = time.perf_counter()
        for k in range(300):
            view.workflow.state = list(FLOW)[k % 5]
            pane.show(view, NOW + k)
        per_show = (time.perf_counter() - started) / 300
        assert pane.layouts == 1
        assert per_show < 0.004, per_show  # well under a 30 Hz frame
        view.workflow.transitions = {**FLOW, "done": ["planning"]}
        pane.show(view, NOW)
        assert pane.layouts == 2
        view.workflow.transitions["done"].append("coding")  # mutated in place, as the feed may
        pane.show(view, NOW)
        assert pane.layouts == 3


async def test_pane_redraws_for_a_new_width():
    app = Host(session(transitions=HOOKS, initial="idle", state="tool"))
    async with app.run_test(size=(44, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        assert pane.diagram is not None and pane.diagram.width == WIDTH
        pane.styles.width = 70
        await pilot.pause()
        assert pane.diagram.width == 65
        assert all(line.cell_len <= 65 for line in pane.lines)


async def test_hostile_names_actors_reasons_and_data_render_literally():
    transitions = {name: [HOSTILE[(k + 1) % len(HOSTILE)]] for k, name in enumerate(HOSTILE)}
    ansi_reason = "\x1b[2J\x1b[31m" + "[b]wipe[/b] " * 1000  # 12 kB
    moves = [
        Transition(HOSTILE[0], HOSTILE[1], "[i]actor\x1b[0m", True, ansi_reason, None, 3, T0),
        Transition(HOSTILE[4], HOSTILE[0], "a" * 300, False, None, {"k": "[b]"}, 2, T0),
    ]
    view = session(
        state=HOSTILE[1],
        transitions=transitions,
        initial=HOSTILE[0],
        recent=moves,
        rejected=1,
        last_rejected={"from": "[red]", "to": "\x1b[5m", "actor": None, "ts": "x"},
        data={"note": "[bold]" + "d" * 10_000, "ctl": "\x00\x1b"},
    )
    app = Host(view)
    async with app.run_test(size=(44, 60)) as pilot:
        await pilot.pause()
        pane = app.query_one(WorkflowPane)
        text = "\n".join(plain(pane.lines))
        for needle in ("[bold]x[/]", "␛[31mred", "[i]actor", "␛[2J␛[31m[b]wipe[/b]", "[red]"):
            assert needle in text, needle
        assert not any(ch in text for ch in "\x1b\x00\x07\r\u202e")
        assert all(line.cell_len <= WIDTH for line in pane.lines)
        # the markup-looking text carries no style of its own
        forced = next(line for line in pane.lines if "FORCED" in line.plain)
        assert styles_at(forced, "[b]wipe[/b]") == {"red"}
        screen = screen_text(app)
        assert all(len(line) == 44 for line in screen)
        assert "\x1b" not in "".join(screen)


async def test_end_to_end_through_the_app(conn):
    flow = StatefulMemory("s1", transitions=FLOW, initial="planning", redis=conn)
    await flow.transition("coding", {"plan": ["a"]})
    await flow.transition("testing", actor="ci")
    fixed = 1_764_000_000.0
    app = MemdashApp(conn, session="s1", clock=lambda: fixed)
    async with app.run_test(size=(140, 50)) as pilot:
        pane = app.query_one(WorkflowPane)

        async def until(condition) -> None:
            for _ in range(100):
                if condition():
                    return
                await pilot.pause(0.05)
            raise AssertionError(plain(pane.lines))

        await until(lambda: pane.lines and pane.lines[0].plain.startswith("● testing"))
        text = plain(pane.lines)
        assert any("┃ testing ┝" in line for line in text)
        assert any("│◆coding │" in line for line in text)
        await flow.force_state("planning", "restart: requirements changed", actor="ops")
        await until(lambda: pane.lines[0].plain.startswith("● planning"))
        text = plain(pane.lines)
        flag = next(k for k, line in enumerate(text) if "FORCED" in line)
        assert text[flag].strip() == "FORCED restart: requirements"  # the reason wraps once
        assert text[flag + 1].strip() == "changed"
        assert any("testing → planning" in line and line.endswith("ops") for line in text)
        with pytest.raises(Exception, match="not allowed"):
            await flow.transition("done")
        await until(lambda: any("✗ 1 rejected" in line.plain for line in pane.lines))
        await flow.transition("coding")
        await until(lambda: pane.lines[0].plain.startswith("● coding"))
        assert pane.layouts == 1


def test_snapshot(snap_compare):
    assert snap_compare(Host(standard_session()), terminal_size=(44, 30))


async def test_shows_before_mount_are_kept():
    pane = WorkflowPane(id="workflow", tz=UTC)
    pane.show(standard_session(), NOW)  # not mounted: nothing to draw on yet

    class Late(App[None]):
        CSS = HOST_CSS

        def compose(self) -> ComposeResult:
            yield pane

    async with Late().run_test(size=(44, 30)) as pilot:
        await pilot.pause()
        assert pane.lines[0].plain.startswith("● testing")
    await asyncio.sleep(0)
