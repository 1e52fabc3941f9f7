"""record_transcript: Claude Code transcript lines into a real store, through the public API.

The fixtures under tests/fixtures/claude/ are written from the documented transcript format: a
session file with a response split over three lines, a duplicate line, malformed lines,
non-conversation lines, sidechain lines and a synthetic API-error message; a subagent file; a
second project whose last line is still being written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pydantic_core
import pytest

from store import ConversationMemory, MemoryKey, MemoryStore, TokenBudgetTracker
from store.budget import COUNTS
from store.conversation import MAX_MESSAGE_BYTES
from store.feed import read_namespace
from store.integrations import transcript
from store.integrations.transcript import record_transcript

from .events import capture_events

PROJECTS = Path(__file__).parent / "fixtures" / "claude" / "projects"
SHOP = "3f1c2b9e-5d7a-4e1b-9a51-0c1d2e3f4a5b"
BLOG = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
SHOP_FILE = PROJECTS / "-home-alice-src-shop" / f"{SHOP}.jsonl"
AGENT_FILE = PROJECTS / "-home-alice-src-shop" / SHOP / "subagents" / "agent-a1b2c3d.jsonl"
BLOG_FILE = PROJECTS / "-home-alice-src-blog" / f"{BLOG}.jsonl"

# The session file's four requests: msg_01A (three lines; output_tokens 4, 30, then 120),
# msg_01S (sidechain), msg_01B, msg_01C. Fields: input, output, cache creation, cache read.
REQUESTS = {
    "msg_01A:req_011CPa1": (10, 120, 1000, 2000),
    "msg_01S:req_011CPs1": (50, 20, 0, 500),
    "msg_01B:req_011CPa2": (3, 60, 200, 3000),
    "msg_01C:req_011CPa3": (5, 80, 0, 3300),
}
SHOP_TOKENS = sum(sum(counts) for counts in REQUESTS.values())
AGENT_TOKENS = 40 + 25 + 100 + 900  # msg_01G; its copy of msg_01S is already counted


def budget(conn, session=SHOP):
    return TokenBudgetTracker(session, 1, redis=conn)


async def messages(conn, session=SHOP):
    return await ConversationMemory(session, redis=conn).load()


def line(uuid, kind="user", content="hi", session=SHOP, **fields) -> str:
    message = fields.pop("message", {"role": kind, "content": content})
    data = {"type": kind, "uuid": uuid, "sessionId": session, "message": message, **fields}
    return json.dumps(data) + "\n"


def response(uuid, message_id, blocks, usage, request="req_1", **fields) -> str:
    message = {
        "id": message_id,
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": blocks,
        "usage": dict(zip(COUNTS, usage, strict=True)),
    }
    return line(uuid, "assistant", message=message, requestId=request, **fields)


async def test_a_session_file_is_recorded_with_every_kind_of_line_counted(conn):
    result = await record_transcript(conn, SHOP_FILE)

    assert result.offset == SHOP_FILE.stat().st_size
    assert result.sessions == {SHOP}
    assert result.lines == 20
    assert result.messages_added == 12
    assert result.duplicates == 1  # the repeated tool-result line
    assert result.malformed == 4  # not JSON, cut off, not an object, no message
    assert result.ignored == 3  # summary, system, file-history-snapshot
    assert result.usage_added == 4  # the synthetic API error is not a request
    assert result.truncated == 0
    assert [m["context"]["uuid"] for m in await messages(conn)] == [
        "u-0001",
        "u-0002",
        "u-0003",
        "u-0004",
        "u-0005",
        "u-side-1",
        "u-side-2",
        "u-0006",
        "u-0007",
        "u-0008",
        "u-0009",
        "u-0010",
    ]


async def test_a_response_over_three_lines_counts_once_with_its_final_usage(conn):
    await record_transcript(conn, SHOP_FILE)

    status = await budget(conn).status()
    assert status.requests == len(REQUESTS)
    assert status.used == SHOP_TOKENS
    inputs, outputs, creation, reads = (sum(c) for c in zip(*REQUESTS.values(), strict=True))
    assert status.input_tokens == inputs
    assert status.output_tokens == outputs  # 120 for msg_01A, not 4 + 30 + 120 nor 4
    assert status.cache_creation_input_tokens == creation
    assert status.cache_read_input_tokens == reads
    # the response's tokens ride on its first line only, so per-message sums match the budget
    by_uuid = {m["context"]["uuid"]: m for m in await messages(conn)}
    assert by_uuid["u-0002"]["tokens"] == sum(REQUESTS["msg_01A:req_011CPa1"])
    assert "tokens" not in by_uuid["u-0003"] and "tokens" not in by_uuid["u-0004"]
    assert {by_uuid[u]["context"]["message_id"] for u in ("u-0002", "u-0003", "u-0004")} == {
        "msg_01A"
    }
    assert sum(m.get("tokens", 0) for m in by_uuid.values()) == status.used


async def test_lines_become_messages_with_roles_text_and_context(conn):
    await record_transcript(conn, SHOP_FILE)
    by_uuid = {m["context"]["uuid"]: m for m in await messages(conn)}

    prompt = by_uuid["u-0001"]
    assert (prompt["role"], prompt["content"]) == (
        "user",
        "The checkout total ignores the discount. Fix it.",
    )
    assert prompt["timestamp"] == datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    assert by_uuid["u-0002"]["content"] == "[thinking] Look at cart.py first."
    assert by_uuid["u-0002"]["model"] == "claude-sonnet-4-20250514"
    assert by_uuid["u-0002"]["context"]["parent_uuid"] == "u-0001"
    read = by_uuid["u-0004"]
    assert read["role"] == "assistant"
    assert read["content"] == '[tool_use Read] {"file_path": "/home/alice/src/shop/cart.py"}'
    assert read["context"]["tool_uses"] == [{"id": "toolu_01", "name": "Read"}]
    result = by_uuid["u-0005"]
    assert result["role"] == "tool"
    assert result["content"].startswith("def total(cart):")
    assert result["context"]["tool_use_ids"] == ["toolu_01"]
    failed = by_uuid["u-0007"]
    assert failed["role"] == "tool"
    assert failed["content"] == "[error] 1 failed: test_discount\n[image]"
    assert failed["context"]["is_error"] is True
    assert by_uuid["u-0008"]["content"].endswith("✔")
    screenshot = by_uuid["u-0010"]
    assert screenshot["role"] == "user"  # text and an image: not a tool result
    assert screenshot["content"] == "Thanks! Here is the screenshot.\n\n[image]"
    synthetic = by_uuid["u-0009"]
    assert synthetic["model"] == "<synthetic>" and "tokens" not in synthetic


async def test_sidechain_lines_go_to_the_parent_session_marked_as_sidechain(conn):
    await record_transcript(conn, SHOP_FILE)
    result = await record_transcript(conn, AGENT_FILE)

    assert result.sessions == {SHOP}
    assert (result.messages_added, result.usage_added) == (3, 1)
    by_uuid = {m["context"]["uuid"]: m for m in await messages(conn)}
    assert by_uuid["u-side-2"]["context"]["sidechain"] is True
    assert "agent_id" not in by_uuid["u-side-2"]["context"]
    agent = by_uuid["u-agent-2"]
    assert agent["context"]["sidechain"] is True
    assert agent["context"]["agent_id"] == "a1b2c3d"
    assert agent["model"] == "claude-3-5-haiku-20241022"
    assert "sidechain" not in by_uuid["u-0001"]["context"]
    # the subagent file's copy of msg_01S is another line (kept) but the same request (not)
    assert by_uuid["u-agent-3"]["content"] == by_uuid["u-side-2"]["content"]
    assert (await budget(conn).status()).used == SHOP_TOKENS + AGENT_TOKENS


async def test_recording_again_adds_nothing(conn):
    first = await record_transcript(conn, SHOP_FILE)
    before = (await budget(conn).status()).used

    again = await record_transcript(conn, SHOP_FILE)

    assert (again.messages_added, again.usage_added) == (0, 0)
    assert again.duplicates == first.messages_added + first.duplicates
    assert again.malformed == first.malformed
    assert (await budget(conn).status()).used == before
    assert (await ConversationMemory(SHOP, redis=conn).count()).total == first.messages_added


async def test_usage_is_not_recounted_once_the_budget_forgot_the_request_ids(conn):
    """The budget remembers request ids for 24 h; the conversation remembers line ids for good,
    and usage is recorded only with a new line, so a re-import a week later counts nothing."""
    await record_transcript(conn, SHOP_FILE)
    used = (await budget(conn).status()).used
    remembered = [key async for key in conn.client.scan_iter(match="*budget:req:*")]
    assert len(remembered) == len(REQUESTS)
    await conn.client.delete(*remembered)  # as if 24 hours had passed

    again = await record_transcript(conn, SHOP_FILE)

    assert again.usage_added == 0
    assert (await budget(conn).status()).used == used


async def test_usage_past_the_limit_is_recorded_not_refused(conn):
    tracker = TokenBudgetTracker(SHOP, 1000, redis=conn)
    await tracker.track_request("before", 10)  # stores the small limit

    result = await record_transcript(conn, SHOP_FILE)

    status = await tracker.status()
    assert result.usage_added == len(REQUESTS)
    assert status.limit == 1000
    assert status.used == 10 + SHOP_TOKENS and status.over_limit
    assert status.rejected == 0


async def test_only_complete_lines_are_read_and_the_offset_says_where_to_go_on(conn, tmp_path):
    path = tmp_path / "live.jsonl"
    first, second = line("l-1", content="one"), line("l-2", content="two")
    path.write_text(first + second[:20])  # the second line is being written

    result = await record_transcript(conn, path)

    assert result.offset == len(first.encode())
    assert (result.lines, result.messages_added, result.malformed) == (1, 1, 0)
    with path.open("a") as file:
        file.write(second[20:] + line("l-3", content="three"))
    more = await record_transcript(conn, path, offset=result.offset)
    assert (more.lines, more.messages_added, more.duplicates) == (2, 2, 0)
    assert more.offset == path.stat().st_size
    assert [m["content"] for m in await messages(conn)] == ["one", "two", "three"]
    # nothing new: nothing read
    idle = await record_transcript(conn, path, offset=more.offset)
    assert (idle.lines, idle.offset) == (0, more.offset)


async def test_a_file_shorter_than_the_offset_is_read_from_the_start(conn, tmp_path):
    path = tmp_path / "replaced.jsonl"
    path.write_text(line("r-1", content="new file"))

    result = await record_transcript(conn, path, offset=10_000)

    assert result.messages_added == 1
    assert result.offset == path.stat().st_size


async def test_the_blog_fixture_stops_before_its_unfinished_last_line(conn):
    result = await record_transcript(conn, BLOG_FILE)

    assert result.messages_added == 2
    assert result.offset < BLOG_FILE.stat().st_size
    assert BLOG_FILE.read_bytes()[: result.offset].endswith(b"\n")


@pytest.mark.parametrize("limit", [("BATCH_LINES", 2), ("BATCH_BYTES", 1)])
async def test_a_batch_never_splits_a_response(conn, tmp_path, monkeypatch, limit):
    monkeypatch.setattr(transcript, *limit)
    path = tmp_path / "batches.jsonl"
    parts = [
        response(f"p-{n}", "msg_long", [{"type": "text", "text": f"part {n}"}], (1, n * 10, 0, 0))
        for n in range(1, 6)
    ]
    path.write_text(line("q", content="go") + "".join(parts) + line("q2", content="next"))

    result = await record_transcript(conn, path)

    assert (result.messages_added, result.usage_added) == (7, 1)
    assert (await budget(conn).status()).used == 1 + 50  # the last line's output_tokens


async def test_a_response_read_in_two_calls_is_kept_whole_and_counted_once(conn, tmp_path):
    """A hook may read while a response is still being written: no line is lost, and its usage
    is the one seen first (as ccusage counts it)."""
    path = tmp_path / "halves.jsonl"
    parts = [
        response(f"h-{n}", "msg_h", [{"type": "text", "text": f"half {n}"}], (2, n, 0, 0))
        for n in (1, 2)
    ]
    path.write_text(parts[0])
    first = await record_transcript(conn, path)
    path.write_text(parts[0] + parts[1])

    second = await record_transcript(conn, path, offset=first.offset)

    assert (first.usage_added, second.usage_added) == (1, 0)
    assert second.messages_added == 1
    assert [m["content"] for m in await messages(conn)] == ["half 1", "half 2"]
    assert (await budget(conn).status()).used == 3


async def test_huge_tool_outputs_are_cut_with_a_note_never_refused(conn, tmp_path):
    path = tmp_path / "huge.jsonl"
    plain = "x" * (3 * 1024 * 1024)
    escaped = "\x01" * (600 * 1024)  # six bytes each as JSON
    wide = "é" * (400 * 1024)  # two bytes each: the cut must not split one
    path.write_text(
        "".join(
            line(
                f"big-{n}",
                message={
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": f"t{n}", "content": text}],
                },
            )
            for n, text in enumerate((plain, escaped, wide))
        )
    )

    result = await record_transcript(conn, path)

    assert (result.messages_added, result.truncated, result.malformed) == (3, 3, 0)
    for message, text in zip(await messages(conn), (plain, escaped, wide), strict=True):
        context = message["context"]
        original = len(text.encode())
        assert context["original_bytes"] == original
        kept, note = message["content"].split("\n[… memdash cut ")
        assert text.startswith(kept)
        assert context["cut_bytes"] == original - len(kept.encode()) > 0
        assert note.startswith(f"{context['cut_bytes']:,} of {original:,} bytes here")
        stored = pydantic_core.to_json({**message, "timestamp": ""})
        assert len(stored) <= MAX_MESSAGE_BYTES
    again = await record_transcript(conn, path)
    assert (again.duplicates, again.truncated) == (3, 0)


def test_fit_keeps_what_fits_and_says_what_it_cut():
    assert transcript.fit("short", 100) == ("short", 0, 5)
    text = "ab\x02" * 100
    content, cut, total = transcript.fit(text, 200)
    assert total == 300 and cut > 0
    assert len(pydantic_core.to_json(content)) - 2 <= 200
    assert content.startswith(text[: 300 - cut])


async def test_malformed_lines_are_skipped_and_counted(conn, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"\n"  # blank: nothing
        + b"\xff\xfe not utf-8\n"
        + b"null\n"
        + b'{"type": "user", "uuid": "no-session", "message": {"content": "x"}}\n'
        + b'{"type": "user", "uuid": "", "sessionId": "s", "message": {"content": "x"}}\n'
        + b'{"type": "assistant", "uuid": "a", "sessionId": "s", "message": {"content": 5}}\n'
        + b'{"type": "assistant", "uuid": "u", "sessionId": "s", "message": {"content": "x",'
        + b' "usage": {"input_tokens": -3}}}\n'
        + b'{"type": "user", "uuid": "bad\\u0007id", "sessionId": "s",'
        + b' "message": {"content": ""}}\n'
        + line("fine", content="still read").encode()
    )

    result = await record_transcript(conn, path)

    assert (result.malformed, result.messages_added, result.lines) == (7, 1, 9)
    assert [m["content"] for m in await messages(conn)] == ["still read"]


async def test_session_id_puts_every_line_in_one_session(conn):
    result = await record_transcript(conn, BLOG_FILE, session_id="chosen")

    assert result.sessions == {"chosen"}
    assert len(await messages(conn, "chosen")) == 2
    assert await messages(conn, BLOG) == []
    with pytest.raises(ValueError):
        await record_transcript(conn, BLOG_FILE, session_id="bad\nid")


async def test_the_session_context_is_written_only_when_there_is_none(conn, tmp_path):
    store = MemoryStore(conn)
    shop_key = MemoryKey(scope="session", user_id=SHOP, component="context")
    blog_key = MemoryKey(scope="session", user_id=BLOG, component="context")
    await store.set(shop_key, {"cwd": "/from/the/hook", "source": "startup"})

    await record_transcript(conn, SHOP_FILE)
    await record_transcript(conn, BLOG_FILE)

    assert await store.get(shop_key) == {"cwd": "/from/the/hook", "source": "startup"}
    entry = await store.get_entry(blog_key)
    assert entry.ttl is None
    assert entry.value == {
        "agent": "claude-code",
        "transcript_path": str(BLOG_FILE),
        "cwd": "/home/alice/src/blog",
        "git_branch": "draft",
        "version": "1.0.98",
        "model": "claude-opus-4-20250514",
    }
    skipped = tmp_path / "skip.jsonl"
    shutil.copy(BLOG_FILE, skipped)
    await record_transcript(conn, skipped, session_id="no-context", save_context=False)
    assert (
        await store.get(MemoryKey(scope="session", user_id="no-context", component="context"))
        is None
    )


async def test_a_subagent_file_alone_writes_no_context(conn):
    await record_transcript(conn, AGENT_FILE)

    key = MemoryKey(scope="session", user_id=SHOP, component="context")
    assert await MemoryStore(conn).get(key) is None


async def test_the_dashboard_feed_sees_the_recorded_session(conn):
    async with capture_events(conn) as log:
        await record_transcript(conn, SHOP_FILE)

    kinds = log.kinds()
    assert kinds.count("conversation.append") == 12
    assert kinds.count("budget.usage") == len(REQUESTS)
    assert kinds.count("memory.set") == 1
    view = (await read_namespace(conn))[SHOP]
    assert view.conversation.total == 12
    assert view.budget.used == SHOP_TOKENS
    assert view.context["cwd"] == "/home/alice/src/shop"
    assert view.context["model"] == "claude-sonnet-4-20250514"  # the main line's latest


async def test_mid_turn_a_trailing_response_is_shown_and_counted_when_whole(conn, tmp_path):
    """A hook reads while Claude Code may still write the response the file ends with: its
    lines are recorded at once, its usage only once a later read sees it whole (the larger
    counts of its last line), not from its first line alone."""
    path = tmp_path / "turn.jsonl"
    prompt = line("p-1", content="go")
    halves = [
        response(f"r-{n}", "msg_r", [{"type": "text", "text": f"part {n}"}], (5, 10 * n, 0, 0))
        for n in (1, 2)
    ]
    path.write_text(prompt + halves[0])
    first = await record_transcript(conn, path, complete=False)
    assert (first.messages_added, first.usage_added) == (2, 0)
    assert first.offset == len(prompt.encode())  # before the open response

    path.write_text(prompt + halves[0] + halves[1])
    second = await record_transcript(conn, path, offset=first.offset, complete=False)
    assert (second.messages_added, second.usage_added, second.offset) == (1, 0, first.offset)

    path.write_text(prompt + halves[0] + halves[1] + line("p-2", content="next"))
    third = await record_transcript(conn, path, offset=second.offset, complete=False)
    assert (third.messages_added, third.usage_added, third.duplicates) == (1, 1, 2)
    assert (await budget(conn).status()).used == 5 + 20  # the fuller counts of the last line
    assert [m["content"] for m in await messages(conn)] == ["go", "part 1", "part 2", "next"]
    again = await record_transcript(conn, path)  # a later import adds nothing
    assert (again.messages_added, again.usage_added) == (0, 0)


async def test_a_missing_file_raises_oserror(conn, tmp_path):
    with pytest.raises(OSError):
        await record_transcript(conn, tmp_path / "nope.jsonl")


async def test_what_is_sent_is_what_conversation_memory_would_send(conn, tmp_path):
    """The pipelined writes build the append's JSON and event head themselves: they must be
    exactly encode_message's, and the stored messages those of append_unique."""
    from store.conversation import encode_message

    path = tmp_path / "mixed.jsonl"
    path.write_text(
        SHOP_FILE.read_text(encoding="utf-8", errors="surrogateescape")
        + line("no-time", content='é \x01 \\ " ok')
    )
    result = transcript.TranscriptResult(offset=0)
    entries = []
    with open(path, "rb") as file:
        for batch, _ in transcript._batches(file, result, None, True):
            entries += batch or []
    assert entries
    for entry in entries:
        message = transcript._message(entry.line, 42 if entry.line.type == "assistant" else None)
        text, head = transcript._encode(message)
        if "timestamp" not in message:  # now: the same instant for both
            message["timestamp"] = datetime.now(UTC)
            text, head = transcript._encode(message)
        _, expected_text, expected_head = encode_message(message)
        assert (text.decode(), head.decode()) == (expected_text, expected_head)


async def test_a_long_file_is_written_in_pipelined_batches_in_order(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(transcript, "BATCH_LINES", 7)
    monkeypatch.setattr(transcript, "TICK_LINES", 3)
    monkeypatch.setattr(transcript, "READ_BYTES", 100)  # lines cut across reads
    path = tmp_path / "long.jsonl"
    lines = []
    for n in range(60):
        lines.append(line(f"q-{n}", content=f"question {n}"))
        lines.append(
            response(f"a-{n}", f"msg_{n}", [{"type": "text", "text": f"answer {n}"}], (1, n, 0, 0))
        )
    path.write_text("".join(lines))
    reached: list[int] = []

    result = await record_transcript(conn, path, progress=reached.append)

    assert (result.messages_added, result.usage_added, result.lines) == (120, 60, 120)
    stored = await messages(conn)
    assert [m["context"]["uuid"] for m in stored] == [
        uuid for n in range(60) for uuid in (f"q-{n}", f"a-{n}")
    ]
    assert (await budget(conn).status()).used == 60 + sum(range(60))
    # progress: bytes recorded so far, rising to the file's size
    assert reached == sorted(reached) and len(reached) > 10
    assert reached[-1] == path.stat().st_size
    assert all(path.read_bytes()[:done].endswith(b"\n") for done in reached)
    again = await record_transcript(conn, path)
    assert (again.messages_added, again.duplicates, again.usage_added) == (0, 120, 0)


async def test_a_restarted_store_without_the_scripts_is_written_all_the_same(conn, tmp_path):
    """NOSCRIPT on the pipelined path: the scripts are loaded and the calls sent again."""
    path = tmp_path / "flush.jsonl"
    path.write_text(SHOP_FILE.read_text())
    await record_transcript(conn, path)
    await conn.client.script_flush()
    path.write_text(
        SHOP_FILE.read_text()
        + line("late-q", content="one more")
        + response("late-a", "msg_late", [{"type": "text", "text": "ok"}], (1, 2, 3, 4))
    )

    result = await record_transcript(conn, path)

    assert (result.messages_added, result.usage_added, result.duplicates) == (2, 1, 13)
    assert (await budget(conn).status()).used == SHOP_TOKENS + 10


async def test_lines_json_loads_takes_are_read_as_before(conn, tmp_path):
    """pydantic_core's parser refuses a few things json.loads takes (a byte-order mark, lone
    surrogates): those lines are read as before, not counted malformed."""
    path = tmp_path / "odd.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + line("bom", content="with a BOM").encode()
        + line("sur", content="\ud800 alone").encode("utf-8", "surrogatepass")
        + json.dumps(
            {
                "type": "user",
                "uuid": "esc",
                "sessionId": SHOP,
                "message": {"role": "user", "content": "\ud800"},
            }
        ).encode()
        + b"\n{not json\n"
    )

    result = await record_transcript(conn, path)

    assert (result.messages_added, result.malformed) == (3, 1)
    assert [m["content"] for m in await messages(conn)] == ["with a BOM", "? alone", "?"]


# -- the import's faster paths -------------------------------------------------------------


def _line_fields(line):
    return {name: getattr(line, name) for name in transcript._Line._fields if name != "clean"}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"isSidechain": True, "isMeta": None, "agentId": "a1", "parentUuid": None},
        {"isSidechain": "true"},  # pydantic's lax bool: taken, by pydantic
        {"isSidechain": 1},
        {"isMeta": "no"},
        {"isSidechain": 2},  # refused
        {"timestamp": "2026-01-01T12:34:56Z"},
        {"timestamp": "2026-01-01T12:34:56.7Z"},
        {"timestamp": "2026-01-01T12:34:56.123456Z"},
        {"timestamp": "2026-01-01T12:34:56.1234567Z"},
        {"timestamp": "2026-01-01T12:34:56+02:00"},
        {"timestamp": "2026-02-30T12:34:56Z"},  # refused
        {"timestamp": 1767270896},
        {"timestamp": None},
        {"uuid": ""},
        {"uuid": "x" * 257},
        {"uuid": "bad\u0085id"},
        {"uuid": 5},
        {"sessionId": None},
        {"requestId": "r\x7f"},
        {"cwd": 5},
        {"message": {"content": None}},
        {"message": {"content": [{"type": "text", "text": "x"}, "loose"]}},
        {"message": {"content": [{"type": "text", "text": "x"}], "role": 3}},
        {"message": {"id": "m", "model": "x", "usage": {"input_tokens": 3}}},
        {"message": {"usage": {"input_tokens": 3.0}}},
        {"message": {"usage": {"input_tokens": "3"}}},
        {"message": {"usage": {"input_tokens": True}}},
        {"message": {"usage": {"input_tokens": False}}},
        {"message": {"usage": {"input_tokens": ""}}},
        {"message": {"usage": {"input_tokens": []}}},
        {"message": {"usage": {"input_tokens": 0.0}}},
        {"message": {"usage": {"input_tokens": None, "output_tokens": 0}}},
        {"message": {"usage": {"input_tokens": 10**12 + 1}}},
        {"message": {"usage": {"output_tokens": -1}}},
        {"message": {"usage": None, "id": None}},
        {"message": "text"},
    ],
)
def test_the_fast_line_check_takes_exactly_what_the_model_takes(changes):
    data = json.loads(line("u1", "assistant", content=[{"type": "text", "text": "hi"}]))
    data["timestamp"] = "2026-03-04T05:06:07.890Z"
    data["message"]["usage"] = dict(zip(COUNTS, (1, 2, 3, 4), strict=True))
    for name, value in changes.items():
        if name == "message" and isinstance(value, dict):
            data["message"] = {**data["message"], **value}
        else:
            data[name] = value
    data = pydantic_core.from_json(json.dumps(data))

    fast = transcript._fast_line(data, data["type"])
    try:
        model = transcript._Line.of(transcript._LineModel.model_validate(data), True)
    except pydantic_core.ValidationError:
        model = None

    if fast is None:  # not sure: pydantic decides, as _parse lets it
        return
    assert model is not None, "the fast check took a line the model refuses"
    assert _line_fields(fast) == _line_fields(model)
    assert fast.timestamp is None or fast.timestamp.isoformat() == model.timestamp.isoformat()


async def test_record_usage_many_records_what_record_usage_would(conn):
    at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    requests = [
        {
            "request_id": "r1",
            "tokens": 10,
            "timestamp": at,
            "model": "m1",
            "input_tokens": 4,
            "output_tokens": 6,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
        {"request_id": 'r"2', "tokens": 5, "sidechain": True, "input_tokens": 5, "model": "m2"},
        {"request_id": "r1", "tokens": 10, "timestamp": at},  # counted already: nothing
        {"request_id": "r3", "tokens": 0},
        {
            "request_id": "r4",
            "tokens": 7,
            "timestamp": at.replace(minute=9),
            "input_tokens": 2,
            "cache_read_input_tokens": 5,
        },
    ]
    one, many = (
        TokenBudgetTracker("one", 12, redis=conn),
        TokenBudgetTracker("many", 12, redis=conn),
    )
    await one.record_usage("r0", 1, enforce_limit=False)
    await many.record_usage_many([{"request_id": "r0", "tokens": 1}])
    async with capture_events(conn) as log:
        expected = []
        for request in requests:
            fields = dict(request)
            expected.append(
                await one.record_usage(
                    fields.pop("request_id"),
                    fields.pop("tokens"),
                    fields.pop("timestamp", None),
                    enforce_limit=False,
                    sidechain=fields.pop("sidechain", False),
                    **fields,
                )
            )
        got = await many.record_usage_many([*requests, {"request_id": "r0", "tokens": 1}])

    assert got == [*expected, expected[-1]._replace(duplicate=True)]
    assert await conn.client.hgetall(conn.session("many").key("budget")) == (
        await conn.client.hgetall(conn.session("one").key("budget"))
    )
    ignore = {"session_id": "", "as_of": None}
    assert replace(await one.status(), **ignore) == replace(await many.status(), **ignore)

    def shape(session):
        return [(e.kind, e.seq, e.payload) for e in log.events if e.session == session]

    assert shape("many") == shape("one") and len(shape("one")) == 4
    assert await many.record_usage_many([]) == []
    with pytest.raises(ValueError):
        await many.record_usage_many(
            [{"request_id": "ok", "tokens": 1}, {"request_id": "", "tokens": 1}]
        )
    with pytest.raises(TypeError):
        await many.record_usage_many([{"request_id": "ok", "tokens": 1, "enforce": False}])
    await conn.client.script_flush()  # NOSCRIPT: loaded and sent again
    assert (await many.record_usage_many([{"request_id": "r9", "tokens": 2}]))[0].used == 25


async def test_many_files_are_recorded_as_one_at_a_time_would(conn, tmp_path, monkeypatch):
    """record_transcripts: each file's writes overlap the next file's read; the store ends up
    as record_transcript of each in turn leaves it, and each file is reported done once all of
    it is written."""
    monkeypatch.setattr(transcript, "BATCH_LINES", 5)
    monkeypatch.setattr(transcript, "WRITES_AHEAD", 2)
    tree = tmp_path / "projects"
    shutil.copytree(PROJECTS, tree)
    paths = sorted(tree.rglob("*.jsonl"), key=str)
    paths.append(tmp_path / "missing.jsonl")
    done: list[tuple[str, transcript.TranscriptResult]] = []
    failed: list[str] = []
    reached: dict[str, list[int]] = {}

    def progress(path, offset):
        assert path not in [p for p, _ in done]  # progress comes before done
        reached.setdefault(path, []).append(offset)

    await transcript.record_transcripts(
        conn,
        paths,
        progress=progress,
        done=lambda path, result: done.append((path, result)),
        failed=lambda path, error: failed.append(path),
    )

    assert failed == [paths[-1]]
    assert [p for p, _ in done] == paths[:-1]
    other = conn.with_namespace("one-at-a-time")
    for path, result in done:
        alone = await record_transcript(other, path)
        assert (result.messages_added, result.usage_added, result.lines, result.malformed) == (
            alone.messages_added,
            alone.usage_added,
            alone.lines,
            alone.malformed,
        )
        assert reached[path][-1] == result.offset == alone.offset
    for session in (SHOP, BLOG):
        assert [m["content"] for m in await messages(conn, session)] == [
            m["content"] for m in await messages(other, session)
        ]
        ours, theirs = await budget(conn, session).status(), await budget(other, session).status()
        assert replace(ours, as_of=None) == replace(theirs, as_of=None)
