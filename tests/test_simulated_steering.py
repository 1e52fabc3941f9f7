"""The simulated agents are steered through the same path as a Claude Code session: one
``Steering.check`` where each hook would fire (notes read once, pause, a binding budget, the
task workflow's tool policy), against a real redis-server."""

from __future__ import annotations

import random
import time

from store import ConversationMemory, StatefulMemory, TokenBudgetTracker
from store.control import PAUSED_REASON, SessionControl
from store.feed import read_namespace
from store.integrations.simulated import SCENARIOS, SimulatedAgent, Simulation
from store.integrations.simulated_scenarios import PAUSED_WRAPUP
from store.notes import Notes
from store.steering import TASK_WORKFLOW

RECHECK = 0.01  # a held agent asks again this often (the default is seconds)


def new_agent(conn, session: str, seed: int = 1, **options) -> SimulatedAgent:
    return SimulatedAgent(
        conn, session, random.Random(seed), scenario=SCENARIOS[0], recheck=RECHECK, **options
    )


async def messages(conn, session: str, after: int = -1) -> list[dict]:
    """The retained messages numbered above ``after`` (the conversation is capped: it trims)."""
    history = await ConversationMemory(session, redis=conn).load()
    return [m for m in history if m["index"] > after]


async def newest(conn, session: str) -> int:
    history = await ConversationMemory(session, redis=conn).load()
    return history[-1]["index"] if history else -1


def ran_tools(history: list[dict]) -> list[dict]:
    """Tool messages of tools that ran (not refusals)."""
    return [
        m for m in history if m["role"] == "tool" and not (m.get("context") or {}).get("denied")
    ]


async def steps(agent: SimulatedAgent, n: int) -> None:
    for _ in range(n):
        await agent.step()


async def test_a_note_is_read_and_acknowledged_once(conn):
    agent = new_agent(conn, "demo-note")
    await agent.seed(30)
    await Notes("demo-note", conn).add("Please keep the public API unchanged.\nThanks!")
    for _ in range(200):
        await agent.step()
        if agent.written["note read"]:
            break
    await steps(agent, 60)  # more hooks: the note is not handed over again
    await agent.close()
    acks = [m for m in await messages(conn, "demo-note") if m["content"].startswith("Noted")]
    assert [(m["role"], m["content"]) for m in acks] == [
        ("assistant", "Noted the operator's note: Please keep the public API unchanged.…")
    ]
    assert agent.written["note read"] == 1
    (note,) = (await read_namespace(conn))["demo-note"].notes.notes.values()
    assert note.delivered is not None and note.delivered.event in {
        "UserPromptSubmit",
        "PostToolUse",
    }


async def test_a_paused_agent_runs_no_tool_until_resumed(conn):
    agent = new_agent(conn, "demo-pause")
    await agent.seed(30)
    while not (agent._pending and getattr(agent._pending[0], "func", None) == agent._use_tool):
        await agent.step()  # up to a tool call it is about to make: paused mid-turn
    control = SessionControl("demo-pause", conn)
    assert await control.pause(reason="checking something")
    before = await newest(conn, "demo-pause")
    started = time.monotonic()
    await steps(agent, 40)
    assert time.monotonic() - started >= 20 * RECHECK  # it waited between its prompts
    assert agent.held is not None and agent.held.startswith(PAUSED_REASON)
    assert agent.written["prompt blocked"] >= 2
    during = await messages(conn, "demo-pause", before)
    assert ran_tools(during) == []
    # the turn under way may finish its sentence, then a tool call is refused and it stops
    assert len(during) <= 4 and all(m["role"] in ("assistant", "tool") for m in during)
    refused = [n for n, m in enumerate(during) if m["role"] == "tool"]
    assert len(refused) == 1 and agent.written["tool denied"] == 1
    for n in refused:
        assert during[n]["context"]["denied"] is True
        assert (
            "refused by the PreToolUse hook: paused by the operator: checking something"
            in (during[n]["content"])
        )
        assert during[n + 1]["content"] == PAUSED_WRAPUP
    assert await control.resume()
    for _ in range(100):
        await agent.step()
        if ran_tools(await messages(conn, "demo-pause", before)):
            break
    await agent.close()
    assert agent.held is None
    assert ran_tools(await messages(conn, "demo-pause", before))


async def test_a_spent_binding_budget_holds_the_agent_until_the_limit_is_raised(conn):
    agent = new_agent(conn, "demo-bind", binding=True, tight=True)
    await agent.seed(30)
    budget = TokenBudgetTracker("demo-bind", agent.limit, redis=conn)
    status = await budget.status()
    assert status.binding and not status.spent
    for _ in range(800):
        await agent.step()
        if agent.held is not None:
            break
    assert agent.held is not None and "token budget of demo-bind spent" in agent.held
    assert (await budget.status()).spent
    assert agent.outcome is None  # held, not given up
    held_at = await newest(conn, "demo-bind")
    await steps(agent, 10)
    assert await newest(conn, "demo-bind") == held_at  # it writes nothing while held
    assert agent.written["prompt blocked"] >= 10
    used = (await budget.status()).used
    await budget.set_limit(used + 2_000_000, binding=True)
    for _ in range(50):
        await agent.step()
        if ran_tools(await messages(conn, "demo-bind", held_at)):
            break
    await agent.close()
    assert agent.held is None
    assert ran_tools(await messages(conn, "demo-bind", held_at))
    assert (await budget.status()).used > used


async def test_the_review_policy_refuses_an_edit_and_the_agent_reads_why(conn):
    agent = new_agent(conn, "demo-review")
    await agent.seed(30)
    task = await StatefulMemory.open("demo-review", name=TASK_WORKFLOW, redis=conn)
    await task.force_state("review", "the operator wants a look", actor="ops")
    agent._entered("review")  # as if it had moved there itself
    agent._pending.clear()
    edit = "Edit src/app.py: +1 -1 lines"
    agent._tool("Edit", edit)  # an edit it was about to make
    before = await newest(conn, "demo-review")
    await steps(agent, 4)  # PreToolUse, the refusal, the request, the agent's answer
    await agent.close()
    after = await messages(conn, "demo-review", before)
    assert after[0]["role"] == "tool" and after[0]["context"] == {"tool": "Edit", "denied": True}
    assert after[0]["content"] == (
        "Edit refused by the PreToolUse hook: workflow state 'review' denies Edit: "
        "the work is in review: no file edits until it is sent back to coding"
    )
    assert after[1]["role"] == "assistant" and "review" in after[1]["content"]
    assert edit not in [m["content"] for m in after]
    assert agent.written["tool denied"] == 1


async def test_a_simulation_shows_the_loop_and_counts_it(conn):
    sim = Simulation(conn, sessions=3, seed=11, rate=5_000.0, restart_delay=0.0, recheck=0.01)
    report = await sim.run(duration=60, max_ops=1500)
    assert report.errors == {}
    # review refusals happen on their own (the policy bites now and then)
    assert report.written["tool denied"] > 0
    views = await read_namespace(conn)
    refusals = [
        m
        for session in views
        for m in await messages(conn, session)
        if m["role"] == "tool" and "denies Edit" in m["content"]
    ]
    assert refusals
    # one agent's budget binds: it stops at the limit and waits (asking at its modest rate)
    bound = [s for s, v in views.items() if v.budget.binding]
    assert len(bound) == 1
    assert report.sessions[bound[0]] == "held" and report.written["prompt blocked"] > 0
    assert views[bound[0]].budget.spent
    for kind in ("note read", "tool denied", "prompt blocked"):
        assert kind in report.written


async def test_a_fresh_binding_agent_binds_from_its_first_turn(conn):
    agent = new_agent(conn, "demo-fresh", binding=True)
    await steps(agent, 4)  # the prompt, the task workflow's definition, the binding limit…
    await agent.close()
    status = await TokenBudgetTracker("demo-fresh", agent.limit, redis=conn).status()
    assert status.binding and status.limit == agent.limit
    view = (await read_namespace(conn))["demo-fresh"]
    assert view.task is not None and view.task.policies["review"]["deny"][0] == "Edit"
