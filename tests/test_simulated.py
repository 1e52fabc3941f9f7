"""The simulated agent and the paced simulation, against a real redis-server."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import ValidationError

from store import ConversationMemory, MemoryCache, MemoryKey, MemoryStore, StatefulMemory
from store.feed import read_namespace
from store.integrations.simulated import (
    FLOW,
    INITIAL,
    SCENARIOS,
    SimulatedAgent,
    Simulation,
)
from tests.events import capture_events

FAST = {"rate": 5_000.0, "restart_delay": 0.0}


async def test_a_short_simulation_fills_every_component(conn):
    sim = Simulation(conn, sessions=3, seed=11, **FAST)
    async with capture_events(conn) as log:
        report = await sim.run(duration=60, max_ops=600)
    assert report.ops == 600 and report.errors == {}
    views = await read_namespace(conn)
    assert set(report.sessions) == set(views) and len(views) >= 3
    assert all(session.startswith("demo-") for session in views)
    for session, view in views.items():
        assert view.context["repo"] and view.context["branch"] and view.context["task"], session
        assert view.budget.used > 0 and view.budget.totals["cache_read_input_tokens"] > 0
        assert view.budget.model in {"claude-sonnet-4-5", "claude-opus-4-1"}
        assert view.conversation.total > 0
        assert view.cache is not None and view.cache.stats.hits + view.cache.stats.misses > 0
        assert view.task.transitions == FLOW
    first_three = [views[session] for session in list(report.sessions)[:3]]
    assert all(view.task.state != INITIAL for view in first_three)  # seeded: moved on
    kinds = set(log.kinds())
    assert {"task.rejected", "budget.rejected", "conversation.trim", "cache.stats"} <= kinds
    assert any(view.conversation.first > 0 for view in views.values())  # trimmed
    assert sum(view.cache.stats.evictions for view in views.values()) > 0
    assert (
        sum(view.budget.rejected for view in views.values()) == report.written["budget rejection"]
    )
    assert "out of budget" in report.sessions.values()
    # what the report says it wrote is what the store holds
    assert sum(view.conversation.total for view in views.values()) == report.written["message"]
    assert sum(view.budget.requests for view in views.values()) == report.written["usage"]
    assert log.kinds().count("task.rejected") == report.written["refused move"]
    stored = [await MemoryCache.read_stats(session, redis=conn) for session in views]
    assert sum(s.stats.hits + s.stats.misses for s in stored) == report.cache["lookups"]
    assert report.cache["lookups"] == report.written["cache lookup"]


async def test_the_seeded_history_is_dated_over_the_last_minutes(conn):
    report = await Simulation(conn, sessions=2, seed=5, **FAST).run(max_ops=0)
    assert report.ops == 0 and report.seed_ops > 0
    for session in report.sessions:
        messages = await ConversationMemory(session, redis=conn).load()
        assert 30 <= len(messages) <= 50
        times = [m["timestamp"] for m in messages]
        assert times == sorted(times) and (times[-1] - times[0]).total_seconds() > 120
        roles = {m["role"] for m in messages}
        assert {"user", "assistant", "tool"} <= roles
        assert any(m.get("tokens") and m.get("model") for m in messages)


def agent(conn, namespace: str, seed: int) -> SimulatedAgent:
    return SimulatedAgent(
        conn.with_namespace(namespace),
        "demo-repro",
        random.Random(seed),
        scenario=SCENARIOS[0],
        tight=True,
        eager=True,
    )


async def written_by(conn, namespace: str) -> tuple:
    ns = conn.with_namespace(namespace)
    messages = await ConversationMemory("demo-repro", redis=ns).load()
    flow = await StatefulMemory.open("demo-repro", name="task", redis=ns)
    history = await flow.history(limit=100)
    views = await read_namespace(ns)
    view = views["demo-repro"]
    return (
        [(m["index"], m["role"], m["content"], m.get("tokens"), m.get("model")) for m in messages],
        [(t.from_state, t.to_state, t.data) for t in history],
        (view.budget.used, view.budget.limit, view.budget.rejected, view.budget.totals),
        view.context,
        await MemoryStore(ns).get(MemoryKey("session", "demo-repro", "plan")),
        (await MemoryCache.read_stats("demo-repro", redis=ns)).stats,
    )


async def test_the_same_seed_writes_the_same_session(conn):
    for namespace, seed in (("a", 3), ("b", 3), ("c", 4)):
        one = agent(conn, namespace, seed)
        await one.seed(40)
        for _ in range(150):
            await one.step()
        await one.close()
    a, b, c = [await written_by(conn, ns) for ns in "abc"]
    assert a == b
    assert a[0] != c[0]


async def test_a_simulation_repeats_its_sessions_with_its_seed(conn):
    first = await Simulation(conn.with_namespace("a"), sessions=3, seed=9, **FAST).run(max_ops=0)
    again = await Simulation(conn.with_namespace("b"), sessions=3, seed=9, **FAST).run(max_ops=0)
    other = await Simulation(conn.with_namespace("c"), sessions=3, seed=10, **FAST).run(max_ops=0)
    assert list(first.sessions) == list(again.sessions)
    assert first.written == again.written and first.seed_ops == again.seed_ops
    assert (list(other.sessions), other.written) != (list(first.sessions), first.written)


async def test_a_budget_that_runs_out_ends_the_session_and_a_new_one_starts(conn):
    sim = Simulation(conn, sessions=1, seed=2, **FAST)
    report = await sim.run(duration=60, max_ops=400)
    sessions = list(report.sessions)
    assert report.sessions[sessions[0]] == "out of budget"
    assert len(sessions) >= 2 and len(set(sessions)) == len(sessions)
    messages = await ConversationMemory(sessions[0], redis=conn).load()
    assert messages[-1]["role"] == "system" and "Out of token budget" in messages[-1]["content"]
    trims = await ConversationMemory(sessions[0], redis=conn).trims()
    assert "manual" in {marker.reason for marker in trims}  # compacted before giving up
    views = await read_namespace(conn)
    assert views[sessions[1]].budget is not None  # the fresh session got going


async def test_an_existing_session_id_is_not_reused(conn):
    first = await Simulation(conn, sessions=2, seed=1, **FAST).run(max_ops=0)
    second = await Simulation(conn, sessions=2, seed=1, **FAST).run(max_ops=0)
    assert not set(first.sessions) & set(second.sessions)
    assert all(session.endswith("-2") for session in second.sessions)
    assert len(await read_namespace(conn)) == 4


async def test_an_operator_move_is_followed_not_fought(conn):
    one = SimulatedAgent(conn, "demo-op", random.Random(1), scenario=SCENARIOS[1])
    await one.seed(35)
    operator = await StatefulMemory.open("demo-op", name="task", redis=conn)
    await operator.force_state("done", "shipped by hand", actor="ops")
    for _ in range(200):
        if one.finished:
            break
        await one.step()
    await one.close()
    assert one.outcome == "done"
    assert (await operator.load()).state == "done"


async def test_stop_ends_a_run_without_a_duration_and_reports_the_cache(conn):
    sim = Simulation(conn, sessions=2, seed=4, rate=200.0)
    run = asyncio.create_task(sim.run())
    while sim.ops < 20:
        await asyncio.sleep(0.01)
    sim.stop()
    report = await asyncio.wait_for(run, 10)
    assert report.ops >= 20
    stored = [await MemoryCache.read_stats(session, redis=conn) for session in report.sessions]
    assert sum(s.stats.hits + s.stats.misses for s in stored) == report.cache["lookups"]


@pytest.mark.parametrize(
    "settings",
    [
        {"sessions": 0},
        {"sessions": 1001},
        {"rate": 0.0},
        {"rate": -1.0},
        {"rate": float("nan")},
        {"rate": float("inf")},
        {"restart_delay": -1.0},
        {"prefix": ""},
        {"prefix": "a\nb"},
        {"colour": "blue"},
    ],
)
async def test_bad_settings_are_refused_before_anything_is_written(conn, settings):
    with pytest.raises(ValidationError):
        Simulation(conn, **settings)
    assert await conn.client.dbsize() == 0


@pytest.mark.parametrize("duration", [0, -1, float("nan"), "10"])
async def test_a_bad_duration_is_refused(conn, duration):
    with pytest.raises(ValueError, match="duration"):
        await Simulation(conn, seed=1).run(duration)
    assert await conn.client.dbsize() == 0
