"""`memdash demo`'s pieces, headless: the simulated agents as the child process the demo starts,
the dashboard driven by Pilot, both on the private server."""

from __future__ import annotations

import subprocess

import pytest

from tests.test_app import SIZE, table, until
from tests.test_cli import MEMDASH, env_for
from tui.app import MemdashApp
from tui.commands import demo
from tui.panes.budget import BudgetPane
from tui.panes.cache import CachePane
from tui.panes.history import HistoryPane
from tui.panes.workflow import WorkflowPane


def filled(app: MemdashApp) -> bool:
    view = app.selected_view()
    if view is None or None in (view.budget, view.cache, view.conversation, view.task):
        return False
    workflow = app.query_one(WorkflowPane)
    # The simulated agents step the task workflow (as Claude Code sessions have one, with its
    # tool policies); the pane shows it (a line about a pause or a wait may come first).
    heads = [line.plain for line in workflow.lines[:3]]
    return (
        not app.query_one(BudgetPane).has_class("-empty")
        and not app.query_one(CachePane).has_class("-empty")
        and app.query_one(HistoryPane).border_title != f"history (0/{view.conversation.total})"
        and any(head.startswith(f"● {view.task.state}") for head in heads)
    )


async def test_the_demo_fills_every_pane_and_keeps_moving(redis_url, tmp_path):
    log = tmp_path / "demo.log"
    with demo.simulation(redis_url, "demo", sessions=3, rate=40.0, seed=8, log=log) as agents:
        app = MemdashApp(redis_url, namespace="demo")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: table(app).row_count == 3, timeout=30)
            await until(pilot, lambda: filled(app), timeout=30)
            view = app.selected_view()
            assert view.session.startswith("demo-") and view.context["branch"]
            sessions = app.feed.sessions.values()
            await until(pilot, lambda: all(v.conversation.total >= 30 for v in sessions))
            seq = max(v.seq for v in app.feed.sessions.values())
            await until(pilot, lambda: max(v.seq for v in app.feed.sessions.values()) > seq + 10)
        assert agents.poll() is None, log.read_text()  # runs as long as the dashboard does
    assert agents.returncode == 0, log.read_text()
    output = log.read_text()
    assert "summary: " in output and "errors: none" in output


def test_the_agents_stop_even_when_the_dashboard_fails(redis_url, tmp_path):
    with pytest.raises(RuntimeError), demo.simulation(redis_url, "demo", rate=5.0) as agents:
        raise RuntimeError("the dashboard crashed")
    assert agents.poll() is not None


def test_help_says_where_the_demo_writes(tmp_path):
    out = subprocess.run(
        [*MEMDASH, "demo", "--help"], env=env_for(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "namespace 'demo'" in " ".join(out.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "argument --rate: must be a number greater than 0"),
        (["--sessions", "0"], "argument --sessions: must be at least 1"),
        (["--sessions", "9"], "argument --sessions: at most 8"),
    ],
)
def test_bad_arguments_exit_2_before_starting_anything(tmp_path, args, message):
    out = subprocess.run(
        [*MEMDASH, "demo", *args], env=env_for(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / "memdash").exists()  # no embedded server was started
