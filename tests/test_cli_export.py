"""`memdash export` and `memdash status`, run as a user runs them: subprocesses against a real
redis-server, on sessions written through the public store API."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import (
    BudgetExceededError,
    Connection,
    ConversationMemory,
    MemoryCache,
    MemoryKey,
    MemoryStore,
    StatefulMemory,
    TokenBudgetTracker,
)
from store.report import read_export, read_status
from store.server import free_port

from .test_cli import env_for

MEMDASH = [sys.executable, "-m", "tui.cli"]
NS = "cli"
HOSTILE = "\x1b[31mred\x1b[0m [bold]markup[/bold] \x07bell\r\nline2\x00nul \u202eevil\x9b"
STEPS = {"draft": ["review"], "review": ["draft", "done"], "done": []}


def memdash(
    home: Path, url: str, *args: str, namespace: str = NS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEMDASH, *args, "--redis", url, "--namespace", namespace],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def export_json(home: Path, url: str, session: str, *extra: str) -> dict:
    out = memdash(home, url, "export", session, "--format", "json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def write_session(conn: Connection, session: str) -> None:
    """A session that used all five components."""
    store = MemoryStore(conn)
    await store.set(MemoryKey("session", session, "context"), {"task": "ship"}, ttl=3600)
    await store.set(MemoryKey("task", session, "plan"), ["a", "b"])
    budget = TokenBudgetTracker(session, 1000, redis=conn)
    await budget.track_request("r1", 300, input_tokens=200, output_tokens=100, model="m-1")
    await budget.track_request("r2", 100, input_tokens=60, output_tokens=40)
    with pytest.raises(BudgetExceededError):
        await budget.track_request("r3", 700)
    conversation = ConversationMemory(session, redis=conn)
    for n in range(6):
        await conversation.append(
            {
                "role": "user" if n % 2 == 0 else "assistant",
                "content": f"message {n}",
                "timestamp": datetime(2025, 1, 2, 3, 4, n, tzinfo=UTC),
                "tokens": n,
            }
        )
    await conversation.trim_old_messages(4)  # removes #0 and #1
    cache = MemoryCache(session, max_size=2, redis=conn)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.set("c", 3)  # evicts "a"
    await cache.get("a")
    await cache.get("b")
    await cache.get("c")
    await cache.flush_stats()
    await cache.aclose()
    workflow = StatefulMemory(session, transitions=STEPS, initial="draft", redis=conn)
    await workflow.transition("review", {"pr": 7})
    await workflow.force_state("draft", "needs work")
    await workflow.transition("review")


async def test_export_json_has_every_component_exactly(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        await write_session(conn, "alice")
        seq = int(await conn.client.hget(conn.session("alice").meta, "seq"))
    doc = export_json(isolated_env, redis_url, "alice")

    assert doc["format"] == "memdash.export/1"
    assert (doc["namespace"], doc["session"], doc["seq"]) == (NS, "alice", seq)
    created, last = (datetime.fromisoformat(doc[k]) for k in ("created", "last_activity"))
    generated = datetime.fromisoformat(doc["generated_at"])
    assert created.tzinfo == UTC and created <= last <= generated
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["last_activity"])

    context, plan = doc["context"]  # sorted by (scope, component)
    assert (context["scope"], context["component"], context["value"]) == (
        "session",
        "context",
        {"task": "ship"},
    )
    assert (context["version"], context["ttl"]) == (1, 3600)
    updated = datetime.fromisoformat(context["updated"])
    assert datetime.fromisoformat(context["expires_at"]) == updated + timedelta(seconds=3600)
    assert (plan["scope"], plan["value"], plan["version"], plan["ttl"], plan["expires_at"]) == (
        "task",
        ["a", "b"],
        2,
        None,
        None,
    )

    budget = doc["budget"]
    assert {k: budget[k] for k in ("limit", "used", "remaining", "used_pct", "rejected")} == {
        "limit": 1000,
        "used": 400,
        "remaining": 600,
        "used_pct": 40.0,
        "rejected": 1,
    }
    assert budget["requests"] == 2 and budget["model"] == "m-1"
    assert budget["totals"] == {
        "input_tokens": 260,
        "output_tokens": 140,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert sum(m["tokens"] for m in budget["per_minute"]) == 400
    assert budget["burn_rate"] == 400 / 5

    conversation = doc["conversation"]
    assert (conversation["total"], conversation["first"], conversation["retained"]) == (6, 2, 4)
    assert [m["index"] for m in conversation["messages"]] == [2, 3, 4, 5]
    assert conversation["messages"][0] == {
        "index": 2,
        "role": "user",
        "content": "message 2",
        "timestamp": "2025-01-02T03:04:02Z",
        "context": {},
        "tokens": 2,
        "model": None,
    }
    (trim,) = conversation["trims"]
    assert {k: trim[k] for k in ("first", "last", "count", "reason")} == {
        "first": 0,
        "last": 1,
        "count": 2,
        "reason": "manual",
    }

    cache = doc["cache"]
    assert {k: v for k, v in cache.items() if k != "updated"} == {
        "hits": 2,
        "misses": 1,
        "lookups": 3,
        "hit_ratio": 2 / 3,
        "sets": 3,
        "deletes": 0,
        "evictions": 1,
        "size": 2,
        "max_size": 2,
    }

    workflow = doc["workflow"]
    assert (workflow["state"], workflow["previous"], workflow["next_states"]) == (
        "review",
        "draft",
        ["draft", "done"],
    )
    assert (workflow["initial"], workflow["transitions"]) == ("draft", STEPS)
    moves = [
        (t["from_state"], t["to_state"], t["forced"], t["reason"], t["data"])
        for t in workflow["recent"]
    ]
    assert moves == [
        ("draft", "review", False, None, None),
        ("review", "draft", True, "needs work", None),
        ("draft", "review", False, None, {"pr": 7}),
    ]


async def test_export_window_and_text_format(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        await write_session(conn, "alice")
    doc = export_json(isolated_env, redis_url, "alice", "--messages", "2")
    assert [m["index"] for m in doc["conversation"]["messages"]] == [4, 5]
    assert doc["conversation"]["retained"] == 4
    doc = export_json(isolated_env, redis_url, "alice", "--messages", "0")
    assert doc["conversation"]["messages"] == [] and doc["conversation"]["total"] == 6

    out = memdash(isolated_env, redis_url, "export", "alice")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("session alice  namespace cli")
    for expected in (
        "session/context  v1  ttl 3600s",
        '{"task":"ship"}',
        "budget: 400 / 1,000 (40.0%), 600 remaining, 2 requests, 1 rejected",
        "conversation: 6 messages, 4 retained (from #2); the last 4:",
        "#0-#1 (2, manual)",
        "#5 assistant",
        "cache: 2 hits, 1 misses, ratio 66.7%, 1 evictions, size 2/2",
        "workflow: review since",
        "previous draft; next: draft, done",
        "forced: needs work",
    ):
        assert expected in text, expected


async def test_export_of_a_session_with_one_component(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        await TokenBudgetTracker("bob", 50, redis=conn).track_request("r", 5)
    doc = export_json(isolated_env, redis_url, "bob")
    assert doc["context"] == []
    assert (doc["conversation"], doc["cache"], doc["workflow"]) == (None, None, None)
    assert doc["budget"]["used"] == 5
    out = memdash(isolated_env, redis_url, "export", "bob")
    assert "conversation: none" in out.stdout and "workflow: none" in out.stdout


async def test_unknown_session_and_bad_arguments(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        await write_session(conn, "alice")
    for args in (("export", "nobody"), ("export", "nobody", "--format", "json")):
        out = memdash(isolated_env, redis_url, *args)
        assert (out.returncode, out.stdout) == (1, "")
        assert "no session 'nobody' in namespace 'cli'" in out.stderr
    # The session exists, but in another namespace.
    out = memdash(isolated_env, redis_url, "export", "alice", namespace="other")
    assert (out.returncode, out.stdout) == (1, "")
    out = memdash(isolated_env, redis_url, "export", "a\x07b")
    assert (out.returncode, out.stdout) == (2, "")
    assert "control characters" in out.stderr
    out = memdash(isolated_env, redis_url, "export", "alice", "--messages", "-1")
    assert out.returncode == 2 and out.stdout == ""
    out = memdash(isolated_env, redis_url, "status", namespace="bad ns!")
    assert out.returncode == 2 and "namespace" in out.stderr and out.stdout == ""


def test_unreachable_store(isolated_env):
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    out = memdash(isolated_env, url, "export", "alice", "--format", "json")
    assert (out.returncode, out.stdout) == (1, "")
    assert "cannot read the store at redis://:***@127.0.0.1" in out.stderr
    assert "secret" not in out.stderr

    out = memdash(isolated_env, url, "status")
    assert (out.returncode, out.stdout) == (1, "")
    assert "cannot reach the store" in out.stderr and "secret" not in out.stderr

    out = memdash(isolated_env, url, "status", "--format", "json")
    assert out.returncode == 1 and "cannot reach the store" in out.stderr
    doc = json.loads(out.stdout)
    assert (doc["format"], doc["reachable"], doc["namespace"]) == ("memdash.status/1", False, NS)
    assert doc["store"].startswith("redis://:***@127.0.0.1:") and "secret" not in out.stdout
    assert doc["error"] and (doc["sessions_total"], doc["sessions"]) == (0, [])


async def test_hostile_content_survives_json_and_stays_inert_in_text(redis_url, isolated_env):
    session = "evil [red]x[/red] \u202e"
    async with Connection(redis_url, namespace=NS) as conn:
        key = MemoryKey("session", session, "context")
        await MemoryStore(conn).set(key, {HOSTILE: HOSTILE})
        await ConversationMemory(session, redis=conn).append(
            {"role": "user", "content": HOSTILE, "context": {"k": HOSTILE}}
        )
        workflow = StatefulMemory(
            session, transitions={"[b]a": ["b"], "b": []}, initial="[b]a", redis=conn
        )
        await workflow.force_state("b", HOSTILE)

    out = memdash(isolated_env, redis_url, "export", session, "--format", "json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.isascii()  # every non-ASCII and control character is escaped
    doc = json.loads(out.stdout)
    assert doc["session"] == session
    assert doc["context"][0]["value"] == {HOSTILE: HOSTILE}
    message = doc["conversation"]["messages"][0]
    assert (message["content"], message["context"]) == (HOSTILE, {"k": HOSTILE})
    assert doc["workflow"]["recent"][0]["reason"] == HOSTILE

    texts = {}
    for command in ("export", "status"):
        out = memdash(isolated_env, redis_url, command, *([session] if command == "export" else []))
        assert out.returncode == 0, out.stderr
        for char in "\x1b\x07\r\x00\x9b\u202e":
            assert char not in out.stdout
        assert "evil [red]x[/red] \N{REPLACEMENT CHARACTER}" in out.stdout
        texts[command] = out.stdout.splitlines()
    # Each message stays on its own line, every character visible, markup literal.
    (line,) = [line for line in texts["export"] if line.startswith("  #0 user")]
    assert line.endswith("␛[31mred␛[0m [bold]markup[/bold] ␇bell⏎line2␀nul \ufffdevil\ufffd")
    assert "[b]a -> b" in "\n".join(texts["export"])
    assert texts["status"][3].split()[:4] == ["evil", "[red]x[/red]", "\ufffd", "b"]


async def test_status_lists_sessions_newest_first_with_headlines(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        await write_session(conn, "alice")
        await ConversationMemory("bob", redis=conn).add_message("user", "hi")
        await MemoryStore(conn).set(MemoryKey("session", "carol", "context"), 1)
        await MemoryStore(conn.with_namespace("other")).set(MemoryKey("s", "dave", "c"), 1)

    out = memdash(isolated_env, redis_url, "status", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["format"], doc["reachable"], doc["error"]) == ("memdash.status/1", True, None)
    assert doc["store"] == redis_url and doc["namespace"] == NS
    assert doc["sessions_total"] == 3
    assert [s["session"] for s in doc["sessions"]] == ["carol", "bob", "alice"]
    alice = doc["sessions"][2]
    assert {k: v for k, v in alice.items() if k not in ("last_activity", "age_seconds")} == {
        "session": "alice",
        "seq": alice["seq"],
        "state": "review",
        "budget_used": 400,
        "budget_limit": 1000,
        "budget_used_pct": 40.0,
        "messages": 6,
        "retained": 4,
        "cache_hit_ratio": 2 / 3,
    }
    assert alice["seq"] > 10 and alice["age_seconds"] >= 0
    carol = doc["sessions"][0]
    assert (carol["state"], carol["budget_used"], carol["messages"]) == (None, None, None)

    out = memdash(isolated_env, redis_url, "status", "--format", "json", "--limit", "1")
    doc = json.loads(out.stdout)
    assert doc["sessions_total"] == 3 and [s["session"] for s in doc["sessions"]] == ["carol"]

    out = memdash(isolated_env, redis_url, "status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"store {redis_url}  namespace {NS}  reachable  3 sessions"
    assert lines[2].split() == [
        "session",
        "state",
        "budget",
        "used",
        "messages",
        "hits",
        "last",
        "activity",
        "age",
    ]
    assert lines[5].split()[:6] == ["alice", "review", "40.0%", "400/1,000", "6", "66.7%"]
    # Aligned: every row's budget column ends where its header does.
    end = lines[2].index("budget") + len("budget")
    assert all(line[end - 1] in "%-" for line in lines[3:])


async def test_status_of_an_empty_namespace(redis_url, isolated_env):
    out = memdash(isolated_env, redis_url, "status")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"store {redis_url}  namespace {NS}  reachable  0 sessions"


async def test_status_pages_through_10000_sessions(redis_url, isolated_env):
    async with Connection(redis_url, namespace=NS) as conn:
        trackers = [TokenBudgetTracker(f"s{n:05}", 100, redis=conn) for n in range(10_000)]
        for start in range(0, len(trackers), 500):
            batch = trackers[start : start + 500]
            await asyncio.gather(*(t.track_request("r", 1 + n % 7) for n, t in enumerate(batch)))
        # Pages of 7 read every session once (a page size that does not divide the total).
        status = await read_status(conn, page_size=7)
        assert status.sessions_total == len(status.sessions) == 10_000
        assert len({s.session for s in status.sessions}) == 10_000

    out = memdash(isolated_env, redis_url, "status", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["sessions_total"] == len(doc["sessions"]) == 10_000
    assert sum(s["budget_used"] for s in doc["sessions"]) == sum(1 + n % 7 for n in range(500)) * 20
    times = [s["last_activity"] for s in doc["sessions"]]
    assert times == sorted(times, reverse=True)

    out = memdash(isolated_env, redis_url, "status")
    lines = out.stdout.splitlines()
    assert "10000 sessions (the 100 most recently active shown)" in lines[0]
    assert len(lines) == 2 + 1 + 100


async def test_export_is_one_consistent_read_while_keys_are_added(conn):
    """Each write below adds one key and one seq, so a consistent export has as many entries as
    its seq, even while the writer keeps adding keys between the export's round trips."""
    store = MemoryStore(conn)
    done = asyncio.Event()

    async def write() -> None:
        for n in range(300):
            await store.set(MemoryKey("k", "busy", f"c{n:03}"), n)
        done.set()

    await store.set(MemoryKey("k", "busy", "start"), 0)
    writer = asyncio.create_task(write())
    exports = 0
    while not done.is_set():
        doc = await read_export(conn, "busy", messages=0)
        assert len(doc.context) == doc.seq
        exports += 1
    await writer
    assert exports > 1
