import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from store import Connection
from store.feed import read_sessions
from store.workflow import (
    HISTORY_LIMIT,
    HISTORY_TRIM_TO,
    MAX_DATA_BYTES,
    RECENT_TRANSITIONS,
    DefinitionMismatchError,
    InvalidTransitionError,
    StatefulMemory,
    Transition,
    WorkflowSection,
)
from tests.events import capture_events, count_round_trips

FLOW = {
    "planning": ["coding"],
    "coding": ["testing"],
    "testing": ["review", "coding"],
    "review": ["done", "coding"],
    "done": [],
}


def machine(conn, session="s1", transitions=FLOW, initial="planning"):
    return StatefulMemory(session, transitions=transitions, initial=initial, redis=conn)


async def stored(conn, session="s1"):
    """Everything the workflow keeps for a session."""
    keys = conn.session(session)
    return (
        await conn.client.hgetall(keys.key("wf")),
        await conn.client.smembers(keys.key("wf:graph")),
        await conn.client.lrange(keys.key("wf:history"), 0, -1),
    )


def pairs(history):
    return [(t.from_state, t.to_state) for t in history]


async def test_transition_moves_records_and_mirrors(conn):
    flow = machine(conn)
    assert flow.current_state == "planning"
    await flow.transition("coding", {"plan": ["a", "b"]})
    await flow.transition("testing", {"at": datetime(2026, 11, 24, 6, 0)}, actor="ci")
    assert flow.current_state == "testing"
    newest_first = await flow.history()
    assert pairs(newest_first) == [("coding", "testing"), ("planning", "coding")]
    latest = newest_first[0]
    assert isinstance(latest, Transition)
    assert latest.data == {"at": datetime(2026, 11, 24, 6, 0)}
    assert (latest.actor, latest.forced, latest.reason) == ("ci", False, None)
    assert newest_first[1].actor == "agent"
    server_now = (await conn.client.time())[0]
    assert abs(latest.timestamp.timestamp() - server_now) < 5
    assert latest.timestamp.tzinfo is UTC
    status = await machine(conn).load()
    assert status.state == "testing"
    assert status.data == {"at": datetime(2026, 11, 24, 6, 0)}
    assert status.seq == latest.seq
    assert status.since == latest.timestamp


async def test_first_move_stores_the_definition_for_the_dashboard(conn):
    flow = machine(conn)
    assert await flow.definition() is None
    async with capture_events(conn) as log:
        await flow.transition("coding")
    assert log.kinds() == ["workflow.define", "workflow.transition"]
    assert [e.seq for e in log.events] == [1, 2]
    define = log.events[0].payload
    assert define["initial"] == "planning" and define["state"] == "planning"
    assert define["replaced"] is False
    assert define["definition"] == {"transitions": FLOW, "initial": "planning"}
    assert await flow.definition() == {"transitions": FLOW, "initial": "planning"}
    assert log.events[1].payload == {
        "from": "planning",
        "to": "coding",
        "actor": "agent",
        "forced": False,
        "data": None,
    }


async def test_define_is_idempotent_and_explicit(conn):
    flow = machine(conn)
    async with capture_events(conn) as log:
        assert await flow.define() is True
        assert await flow.define() is False  # already stored: no write, no event
    assert log.kinds() == ["workflow.define"]
    assert flow.current_state == "planning"


async def test_invalid_move_is_rejected_writes_nothing_and_is_announced(conn):
    flow = machine(conn)
    await flow.transition("coding")
    before = await stored(conn)
    async with capture_events(conn) as log:
        with pytest.raises(InvalidTransitionError, match=r"^coding -> done not allowed$") as info:
            await flow.transition("done", {"x": 1}, actor="operator")
    assert (info.value.from_state, info.value.to_state) == ("coding", "done")
    assert await stored(conn) == before
    assert log.kinds() == ["workflow.rejected"]
    assert log.events[0].payload == {"from": "coding", "to": "done", "actor": "operator"}
    assert flow.current_state == "coding"


async def test_the_stored_state_decides_not_the_mirror(conn):
    agent, other = machine(conn), machine(conn)
    await agent.transition("coding")
    assert other.current_state == "planning"  # stale mirror
    with pytest.raises(InvalidTransitionError, match=r"^coding -> coding not allowed$"):
        await other.transition("coding")
    assert other.current_state == "coding"  # the rejection told it the stored state
    await other.transition("testing")  # no load() needed: the script checks the stored state
    assert (await agent.load()).state == "testing" and agent.current_state == "testing"


async def test_concurrent_moves_from_one_state_let_exactly_one_win(conn):
    await machine(conn).define()
    flows = [machine(conn) for _ in range(20)]

    async def attempt(flow):
        try:
            await flow.transition("coding", {"by": id(flow)})
            return True
        except InvalidTransitionError:
            return False

    results = await asyncio.gather(*(attempt(f) for f in flows))
    assert results.count(True) == 1
    assert pairs(await flows[0].history()) == [("planning", "coding")]
    assert all(f.current_state == "coding" for f in flows)


async def test_concurrent_moves_over_separate_connections(conn):
    conns = [Connection(conn.url, namespace="test") for _ in range(4)]
    try:
        await machine(conn).define()
        flows = [machine(c) for c in conns for _ in range(5)]
        results = await asyncio.gather(
            *(f.transition("coding") for f in flows), return_exceptions=True
        )
        assert sum(r is not None and not isinstance(r, Exception) for r in results) == 1
        assert all(isinstance(r, InvalidTransitionError | int) for r in results)
        assert len(await flows[0].history()) == 1
    finally:
        for c in conns:
            await c.aclose()


async def test_each_mutation_is_one_round_trip(conn):
    flow = machine(conn)
    await flow.transition("coding")  # stores the definition, loads the scripts
    await flow.force_state("planning", "warm up")
    await flow.set_state("coding")
    await flow.record_transition("planning", "coding", datetime.now())
    async with count_round_trips(conn) as trips:
        await flow.transition("testing")
        await flow.force_state("review", "skip")
        await flow.set_state("coding", {"n": 1})
        await flow.record_transition("review", "coding", datetime.now())
        with pytest.raises(InvalidTransitionError):
            await flow.transition("done")
        await flow.history(limit=20)
        await flow.load()
        await flow.definition()
    assert trips.commands == ["EVALSHA"] * 5 + ["LRANGE", "HMGET", "HGET"]


async def test_events_are_ordered_and_seq_is_consecutive(conn):
    flow = machine(conn)
    async with capture_events(conn) as log:
        seqs = [await flow.transition("coding")]
        seqs.append(await flow.transition("testing"))
        with pytest.raises(InvalidTransitionError):
            await flow.transition("done")
        seqs.append(await flow.force_state("done", "shipped by hand", actor="operator"))
    assert log.kinds() == [
        "workflow.define",
        "workflow.transition",
        "workflow.transition",
        "workflow.rejected",
        "workflow.transition",
    ]
    assert [e.seq for e in log.events] == [1, 2, 3, 4, 5]
    assert seqs == [2, 3, 5]
    assert [t.seq for t in await flow.history()] == [5, 3, 2]


async def test_force_state_is_recorded_as_forced(conn):
    flow = machine(conn)
    await flow.transition("coding", {"kept": False})
    async with capture_events(conn) as log:
        await flow.force_state("done", "operator: abandon", actor="operator")
    assert flow.current_state == "done"
    latest = (await flow.history(limit=1))[0]
    assert (latest.from_state, latest.to_state, latest.forced) == ("coding", "done", True)
    assert (latest.reason, latest.actor, latest.data) == ("operator: abandon", "operator", None)
    assert log.events[0].kind == "workflow.transition"
    assert log.events[0].payload == {
        "from": "coding",
        "to": "done",
        "actor": "operator",
        "forced": True,
        "reason": "operator: abandon",
    }
    status = await flow.load()
    assert (status.state, status.data) == ("done", None)
    await flow.force_state("planning", "start over")  # out of a terminal state: forced is allowed
    assert (await flow.load()).state == "planning"


async def test_set_state_and_record_transition_are_the_seeds_two_halves(conn):
    flow = machine(conn)
    async with capture_events(conn) as log:
        await flow.set_state("coding", {"files": ["a.py"]})
        assert flow.current_state == "planning"  # usage example 5 reads it as the FROM state next
        assert (await machine(conn).load()).state == "coding"
        when = datetime(2026, 11, 24, 6, 0, 0, 123000, tzinfo=UTC)
        await flow.record_transition(from_state="planning", to_state="coding", timestamp=when)
    assert flow.current_state == "coding"
    assert log.kinds() == ["workflow.define", "workflow.state", "workflow.transition"]
    assert log.events[1].payload == {
        "from": "planning",
        "to": "coding",
        "actor": "agent",
        "data": {"files": ["a.py"]},
    }
    entry = (await flow.history())[0]
    assert pairs([entry]) == [("planning", "coding")]
    assert entry.data == {"files": ["a.py"]}  # the stored state's data
    assert entry.timestamp == when  # the caller's clock
    naive = datetime.now()
    await flow.set_state("testing")
    await flow.record_transition("coding", "testing", naive)
    assert abs((await flow.history(limit=1))[0].timestamp - naive.astimezone(UTC)) < timedelta(
        milliseconds=1
    )


async def test_set_state_refuses_a_stale_mirror(conn):
    agent, stale = machine(conn), machine(conn)
    await agent.transition("coding")
    before = await stored(conn)
    async with capture_events(conn) as log:
        with pytest.raises(
            InvalidTransitionError, match=r"^planning -> coding not allowed: the workflow is in"
        ) as info:
            await stale.set_state("coding", {"lost": "update"})
    assert info.value.current == "coding"
    assert await stored(conn) == before
    assert stale.current_state == "planning"  # left alone: load() refreshes it
    assert log.kinds() == ["workflow.rejected"]
    assert log.events[0].payload["expected"] == "planning"
    await stale.load()
    await stale.set_state("coding", {"now": "fresh"})  # same state: updates its data
    assert (await agent.load()).data == {"now": "fresh"}


async def test_record_transition_refuses_a_move_the_definition_lacks(conn):
    flow = machine(conn)
    await flow.define()
    before = await stored(conn)
    with pytest.raises(InvalidTransitionError, match=r"^planning -> done not allowed$"):
        await flow.record_transition("planning", "done", datetime.now())
    assert await stored(conn) == before


async def test_load_fills_the_mirror(conn):
    fresh = machine(conn)
    status = await fresh.load()
    assert (status.state, status.data, status.since, status.seq) == ("planning", None, None, 0)
    assert await conn.client.dbsize() == 0  # reading stores nothing
    await machine(conn).transition("coding", {"step": 1})
    other = machine(conn)
    assert other.current_state == "planning"
    status = await other.load()
    assert other.current_state == "coding" == status.state
    assert status.data == {"step": 1}


def test_is_valid_transition_reads_the_definition():
    flow = StatefulMemory("s", transitions=FLOW, initial="planning", redis="redis://unused:1")
    assert flow.is_valid_transition("testing", "review")
    assert flow.is_valid_transition("testing", "coding")
    assert not flow.is_valid_transition("planning", "done")
    assert not flow.is_valid_transition("done", "planning")
    assert not flow.is_valid_transition("nope", "coding")
    assert not flow.is_valid_transition("planning", "nope")
    assert not flow.is_valid_transition(["planning"], "coding")
    assert not flow.is_valid_transition("planning", ["coding"])
    assert flow.next_states() == ("coding",)
    assert flow.next_states("review") == ("done", "coding")
    assert flow.states == ("planning", "coding", "testing", "review", "done")


@pytest.mark.parametrize(
    ("transitions", "initial", "error", "match"),
    [
        ([("a", ["b"])], "a", TypeError, "mapping"),
        ({}, "a", ValueError, "at least one"),
        ({"a": ["b"]}, "a", ValueError, "target 'b' is not a state"),
        ({"a": []}, "b", ValueError, "initial state 'b'"),
        ({"a": "a"}, "a", TypeError, "iterable of state names"),
        ({"a": 3}, "a", TypeError, "iterable of state names"),
        ({"": []}, "", ValueError, "must not be empty"),
        ({"a\x1b[31m": []}, "a\x1b[31m", ValueError, "control characters"),
        ({"a" * 257: []}, "a" * 257, ValueError, "limit is 256"),
        ({"a": [1]}, "a", ValueError, "must be a string"),
        ({"a\ud800": []}, "a\ud800", ValueError, "surrogate"),
        ({"a": []}, None, ValueError, "initial must be a string"),
    ],
)
def test_bad_definitions_are_refused(transitions, initial, error, match):
    with pytest.raises(error, match=match):
        StatefulMemory("s", transitions=transitions, initial=initial, redis="redis://unused:1")


def test_bad_session_id_is_refused():
    with pytest.raises(ValueError, match="session_id"):
        StatefulMemory("", transitions=FLOW, initial="planning", redis="redis://unused:1")


def test_duplicate_targets_are_dropped_and_order_kept():
    flow = StatefulMemory(
        "s", transitions={"a": ("b", "a", "b"), "b": iter(["a"])}, initial="a", redis="redis://x:1"
    )
    assert flow.transitions == {"a": ("b", "a"), "b": ("a",)}


BAD_CALLS = [
    ("unknown state", lambda f: f.transition("shipping"), ValueError, "not a state"),
    ("state not a str", lambda f: f.transition(["coding"]), ValueError, "not a state"),
    ("empty actor", lambda f: f.transition("coding", actor=""), ValueError, "actor"),
    ("ansi actor", lambda f: f.transition("coding", actor="\x1b[2J"), ValueError, "actor"),
    ("data object", lambda f: f.transition("coding", {"a": object()}), TypeError, r"\['a'\]"),
    ("data nan", lambda f: f.transition("coding", float("nan")), ValueError, "JSON"),
    ("data too big", lambda f: f.transition("coding", "x" * MAX_DATA_BYTES), ValueError, "limit"),
    ("force unknown", lambda f: f.force_state("nowhere", "why"), ValueError, "not a state"),
    ("force no reason", lambda f: f.force_state("done", "  "), ValueError, "reason"),
    ("force reason type", lambda f: f.force_state("done", None), ValueError, "reason"),
    ("force long reason", lambda f: f.force_state("done", "r" * 1025), ValueError, "reason"),
    ("set unknown", lambda f: f.set_state("nowhere"), ValueError, "not a state"),
    ("set bad data", lambda f: f.set_state("coding", {1: "x"}), TypeError, "keys"),
    (
        "record unknown",
        lambda f: f.record_transition("a", "coding", datetime.now()),
        ValueError,
        "from_state 'a' is not a state",
    ),
    ("record when", lambda f: f.record_transition("planning", "coding", "now"), TypeError, "time"),
    (
        "record bad move",
        lambda f: f.record_transition("planning", "done", datetime.now()),
        InvalidTransitionError,
        "not allowed",
    ),
    ("history limit", lambda f: f.history(limit=0), ValueError, "limit"),
    ("history offset", lambda f: f.history(offset=-1), ValueError, "offset"),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_input_writes_nothing_and_publishes_nothing(conn, call, error, match):
    flow = machine(conn)
    await flow.define()
    before = await stored(conn), await conn.client.hgetall(conn.session("s1").meta)
    async with capture_events(conn) as log, count_round_trips(conn) as trips:
        with pytest.raises(error, match=match):
            await call(flow)
    assert log.events == []
    assert trips.commands == []  # refused before any Redis call
    assert (await stored(conn), await conn.client.hgetall(conn.session("s1").meta)) == before


async def test_bad_input_on_a_fresh_session_stores_nothing(conn):
    with pytest.raises(ValueError):
        await machine(conn).transition("nowhere")
    assert await conn.client.dbsize() == 0


HOSTILE = {
    "[bold]plan[/bold]": ["co\"ding' {}"],
    "co\"ding' {}": ["é 🚀 %3A:}{", "[bold]plan[/bold]"],
    "é 🚀 %3A:}{": ["back\\slash/ $datetime"],
    "back\\slash/ $datetime": [],
}


async def test_hostile_names_and_data_round_trip(conn):
    session = "al}ice{:x [red]"
    flow = machine(conn, session, HOSTILE, "[bold]plan[/bold]")
    data = {"t": '[bold]x[/] \x1b[31mred\x1b[0m \x00\x07 {"json": true}', "$k": "%3A"}
    async with capture_events(conn) as log:
        for state in ["co\"ding' {}", "é 🚀 %3A:}{", "back\\slash/ $datetime"]:
            await flow.transition(state, data, actor='agent [x]\\"')
        await flow.force_state("[bold]plan[/bold]", 'reason: \x1b[1m"bold"\n{}', actor="op")
    history = await flow.history()
    assert pairs(reversed(history)) == [
        ("[bold]plan[/bold]", "co\"ding' {}"),
        ("co\"ding' {}", "é 🚀 %3A:}{"),
        ("é 🚀 %3A:}{", "back\\slash/ $datetime"),
        ("back\\slash/ $datetime", "[bold]plan[/bold]"),
    ]
    assert all(t.data == data for t in history[1:])
    assert history[1].actor == 'agent [x]\\"'
    assert history[0].reason == 'reason: \x1b[1m"bold"\n{}'
    assert [e.session for e in log.events] == [session] * 5
    assert log.events[-2].payload["from"] == "é 🚀 %3A:}{"
    assert log.events[-2].payload["data"] == json.loads(json.dumps(data))
    assert await flow.definition() == {"transitions": HOSTILE, "initial": "[bold]plan[/bold]"}
    opened = await StatefulMemory.open(session, redis=conn)
    assert opened.current_state == "[bold]plan[/bold]"


async def test_history_is_capped_and_paged(conn):
    flow = machine(conn, transitions={"a": ["b"], "b": ["a"]}, initial="a")
    key = conn.session("s1").key("wf:history")
    for i in range(HISTORY_LIMIT):
        await flow.transition("b" if i % 2 == 0 else "a", i)
    assert await conn.client.llen(key) == HISTORY_LIMIT  # full, not over
    await flow.transition("b", HISTORY_LIMIT)  # over: trimmed to the newest HISTORY_TRIM_TO
    assert await conn.client.llen(key) == HISTORY_TRIM_TO
    for i in range(HISTORY_LIMIT + 1, HISTORY_LIMIT + 40):
        await flow.transition("b" if i % 2 == 0 else "a", i)
        assert HISTORY_TRIM_TO <= await conn.client.llen(key) <= HISTORY_LIMIT
    newest = HISTORY_LIMIT + 39
    everything = await flow.history(limit=HISTORY_LIMIT * 2)
    assert [t.data for t in everything] == list(range(newest, newest - len(everything), -1))
    page = await flow.history(limit=3, offset=10)
    assert [t.data for t in page] == [newest - 10, newest - 11, newest - 12]
    assert await flow.history(offset=HISTORY_LIMIT) == []


async def test_large_data_is_stored_but_not_carried_in_events(conn):
    flow = machine(conn)
    async with capture_events(conn) as log:
        await flow.transition("coding", "x" * 10_000)
    assert "data" not in log.events[-1].payload
    assert (await flow.history())[0].data == "x" * 10_000


async def test_another_definition_is_reported_not_mixed(conn):
    await machine(conn).transition("coding")
    before = await stored(conn)
    other = machine(conn, transitions={"planning": ["done"], "done": []})
    with pytest.raises(DefinitionMismatchError, match="define"):
        await other.transition("done")
    with pytest.raises(DefinitionMismatchError):
        await other.force_state("done", "try")
    with pytest.raises(DefinitionMismatchError):
        await other.load()
    assert await stored(conn) == before


async def test_define_replaces_and_keeps_a_known_state(conn):
    await machine(conn).transition("coding")
    wider = {**FLOW, "coding": ["testing", "done"]}
    flow = machine(conn, transitions=wider)
    async with capture_events(conn) as log:
        assert await flow.define(actor="operator") is True
    payload = log.events[0].payload
    assert (payload["replaced"], payload["state"], "reset" in payload) == (True, "coding", False)
    assert flow.current_state == "coding"
    await flow.transition("done")  # allowed only by the new definition
    with pytest.raises(DefinitionMismatchError):
        await machine(conn).load()  # the old definition is no longer the session's


async def test_define_resets_an_unknown_state_on_the_record(conn):
    await machine(conn).transition("coding")
    flow = machine(conn, transitions={"planning": ["done"], "done": []})
    async with capture_events(conn) as log:
        await flow.define(actor="operator")
    assert log.events[0].payload["reset"] == "coding"
    assert log.events[0].payload["state"] == "planning"
    assert flow.current_state == "planning"
    latest = (await flow.history())[0]
    assert (latest.from_state, latest.to_state, latest.forced) == ("coding", "planning", True)
    assert (latest.reason, latest.actor) == ("definition replaced", "operator")
    members = await conn.client.smembers(conn.session("s1").key("wf:graph"))
    assert members == {"planning", "done", "planning\0done"}


async def test_open_builds_the_stored_workflow_for_a_dashboard(conn):
    with pytest.raises(LookupError):
        await StatefulMemory.open("s1", redis=conn)
    await machine(conn).transition("coding")
    view = await StatefulMemory.open("s1", redis=conn)
    assert view.current_state == "coding"
    assert view.next_states() == ("testing",)
    await view.transition("testing", actor="operator")
    assert (await machine(conn).load()).state == "testing"


async def test_namespaces_do_not_see_each_other(conn):
    await machine(conn).transition("coding")
    other = machine(conn.with_namespace("other"))
    assert (await other.load()).state == "planning"
    await other.transition("coding")
    assert len(await machine(conn).history()) == 1


async def test_feed_section_follows_events_to_what_a_snapshot_reads(conn):
    section = WorkflowSection()
    followed = (await read_sessions(conn, ["s1"], [section]))["s1"]
    assert followed.workflow is None
    flow = machine(conn)
    async with capture_events(conn) as log:
        await flow.transition("coding", {"at": datetime(2026, 1, 1, 9, 0), "$k": 1})
        await flow.set_state("testing", {"half": "one"})
        await flow.record_transition("coding", "testing", datetime(2026, 1, 1, tzinfo=UTC))
        with pytest.raises(InvalidTransitionError):
            await flow.transition("done", actor="operator")
        for _ in range(RECENT_TRANSITIONS):
            await flow.transition("coding")
            await flow.transition("testing", [1, 2])
        await flow.force_state("review", "hand-checked", actor="operator")
        await flow.define()  # unchanged: no event
    for event in log.events:
        assert section.apply(followed, event), event.kind
    snapshot = (await read_sessions(conn, ["s1"], [section]))["s1"]
    assert followed.workflow == snapshot.workflow
    view = snapshot.workflow
    assert (view.state, view.data, view.initial) == ("review", None, "planning")
    assert view.next_states == ["done", "coding"]
    assert len(view.recent) == RECENT_TRANSITIONS and view.recent[0].forced
    assert followed.workflow.rejected == 1
    assert followed.workflow.last_rejected["to"] == "done"


async def test_feed_section_asks_for_a_re_read_when_events_are_not_enough(conn):
    section = WorkflowSection()
    followed = (await read_sessions(conn, ["s1"], [section]))["s1"]
    async with capture_events(conn) as log:
        await machine(conn).transition("coding", "x" * 5000)  # data too big for the event
        await machine(conn, transitions={"planning": []}).define()  # resets coding -> planning
    answers = [section.apply(followed, event) for event in log.events]
    assert answers == [True, False, False]
