"""Usage example 5 of the six the store's API comes from, verbatim apart from its import lines
(kept byte-exact: not formatted,
and its implicit Optional ``data: dict = None`` is the example's).

The example checks the move on the local mirror, then saves the state, then records the move: two
round trips. ``set_state`` writes only if the stored state still is the mirror, so even this
subclass cannot move twice from one state when callers race.
"""

# ruff: noqa: RUF013

import asyncio
from datetime import datetime

import pytest

from store import InvalidTransitionError, StatefulMemory
from tests.events import capture_events


# fmt: off
class WorkflowState(StatefulMemory):
    """Workflow state memory"""

    async def transition(self, state: str, data: dict = None):
        """State transition"""

        # Verify valid transition
        if not self.is_valid_transition(self.current_state, state):
            raise InvalidTransitionError(
                f"{self.current_state} -> {state} not allowed"
            )

        # Save state
        await self.set_state(state, data or {})

        # Record transition history
        await self.record_transition(
            from_state=self.current_state,
            to_state=state,
            timestamp=datetime.now()
        )


# fmt: on

TRANSITIONS = {
    "planning": ["coding"],
    "coding": ["testing"],
    "testing": ["review", "coding"],
    "review": ["done", "coding"],
    "done": [],
}


def workflow(conn, session="s1"):
    return WorkflowState(session, transitions=TRANSITIONS, initial="planning", redis=conn)


async def test_seed_workflow_walks_the_happy_path_and_records_it(conn):
    flow = workflow(conn)
    path = ["coding", "testing", "coding", "testing", "review", "done"]
    async with capture_events(conn) as log:
        for step, state in enumerate(path):
            await flow.transition(state, {"step": step, "at": datetime(2026, 1, 1, 9, step)})
            assert flow.current_state == state
    stored = list(reversed(await flow.history()))  # history() is newest first
    pairs = [(t.from_state, t.to_state) for t in stored]
    assert pairs == list(zip(["planning", *path[:-1]], path, strict=True))
    assert [t.data["step"] for t in stored] == list(range(len(path)))
    assert stored[1].data["at"] == datetime(2026, 1, 1, 9, 1)
    assert not any(t.forced for t in stored)
    assert (await flow.load()).state == "done"
    kinds = log.kinds()
    assert kinds[0] == "workflow.define"
    assert kinds[1:] == ["workflow.state", "workflow.transition"] * len(path)
    assert [e.seq for e in log.events] == list(range(1, len(kinds) + 1))

    with pytest.raises(InvalidTransitionError, match=r"^done -> coding not allowed$"):
        await flow.transition("coding")
    with pytest.raises(InvalidTransitionError, match=r"^done -> nowhere not allowed$"):
        await flow.transition("nowhere")
    assert len(await flow.history()) == len(path)


async def test_seed_invalid_move_raises_and_writes_nothing(conn):
    flow = workflow(conn)
    await flow.transition("coding")
    before = await conn.client.hgetall(conn.session("s1").key("wf"))
    with pytest.raises(InvalidTransitionError, match=r"^coding -> done not allowed$"):
        await flow.transition("done")
    assert await conn.client.hgetall(conn.session("s1").key("wf")) == before
    assert [(t.from_state, t.to_state) for t in await flow.history()] == [("planning", "coding")]


async def test_seed_workflow_cannot_move_twice_from_one_state(conn):
    flow = workflow(conn)
    await flow.load()

    async def attempt():
        try:
            await flow.transition("coding")
            return True
        except InvalidTransitionError:
            return False

    results = await asyncio.gather(*(attempt() for _ in range(20)))
    assert results.count(True) == 1
    assert [(t.from_state, t.to_state) for t in await flow.history()] == [("planning", "coding")]
    assert flow.current_state == "coding"
