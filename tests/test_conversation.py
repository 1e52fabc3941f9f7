import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from store.conversation import (
    MAX_MESSAGE_BYTES,
    MAX_TRIM_MARKERS,
    PREVIEW_CHARS,
    RECENT_MESSAGES,
    ConversationMemory,
    ConversationMessage,
    ConversationSection,
    ConversationSpan,
    encode_message,
)
from store.feed import read_sessions
from store.scripts import source
from tests.events import capture_events, count_round_trips

HOSTILE = [
    "[bold]not markup[/bold] [link=x]y[/link]",
    "\x1b[31mred\x1b[0m \x1b]0;title\x07",
    "nul \x00 bell \x07 tab\t cr\r lf\n",
    'quotes " \' ` \\ \\" {}"index":7, $dict',
    '{"index":1,"role":"system"}',
    "é ü 中文 🙂 \u2028\u2029",
    "x" * 10_000,
    "",
]


async def stored_items(conn, session="s1"):
    return await conn.client.lrange(conn.session(session).key("conversation"), 0, -1)


async def test_append_numbers_messages_and_reads_them_back(conn):
    memory = ConversationMemory("s1", redis=conn)
    at = datetime(2026, 11, 24, 6, 0, 0, 123456)  # naive, like the usage examples' datetime.now()
    assert await memory.add_message("user", "hello") == 0
    assert await memory.append({"role": "assistant", "content": "hi", "timestamp": at}) == 1
    tool = {"role": "tool", "content": "ok", "context": {"tool": "grep"}, "tokens": 7, "model": "m"}
    assert await memory.append(tool) == 2
    first, second, third = memory.history
    assert first["index"] == 0 and first["role"] == "user" and first["content"] == "hello"
    assert first["context"] == {} and first["timestamp"].tzinfo is UTC
    assert abs(datetime.now(UTC) - first["timestamp"]) < timedelta(seconds=5)
    assert second["timestamp"] == at and second["timestamp"].tzinfo is None
    assert third == {
        "index": 2,
        "role": "tool",
        "content": "ok",
        "timestamp": third["timestamp"],
        "context": {"tool": "grep"},
        "tokens": 7,
        "model": "m",
    }
    assert await memory.page(0, 10) == memory.history
    raw = await stored_items(conn)  # self-describing items: number, then the message
    assert raw[1] == (
        '{"index":1,"role":"assistant","content":"hi","timestamp":"2026-11-24T06:00:00.123456",'
        '"context":{}}'
    )
    fresh = ConversationMemory("s1", redis=conn)
    assert fresh.history == []
    assert await fresh.load() == memory.history == fresh.history
    assert await fresh.load(last=2) == memory.history[1:]
    assert await fresh.load(last=0) == []
    assert await memory.count() == ConversationSpan(first=0, total=3)
    assert (await memory.count()).retained == 3


async def test_context_round_trips_through_the_codec(conn):
    memory = ConversationMemory("s1", redis=conn)
    context = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=9))),
        "$datetime": "not a tag",
        "nested": {"$dict": [1]},
        "files": ("a.py", "b.py"),  # a tuple comes back as a list, in history too
    }
    await memory.add_message("user", "$5 costs", context)
    assert memory.history[0]["context"]["files"] == ["a.py", "b.py"]
    assert await memory.page(0, 1) == memory.history
    assert memory.history[0]["context"]["at"] == context["at"]
    assert memory.history[0]["context"]["$datetime"] == "not a tag"


async def test_a_message_model_or_a_message_read_back_can_be_appended(conn):
    memory = ConversationMemory("s1", redis=conn)
    await memory.append(ConversationMessage(role="system", content="be brief"))
    copy = ConversationMemory("s2", redis=conn)
    (read,) = await memory.page(0, 1)
    assert await copy.append(read) == 0  # its "index" is the store's to assign
    assert (await copy.page(0, 1))[0] == read


@pytest.mark.parametrize(
    "message",
    [
        {"role": "robot", "content": "x"},
        {"role": "USER", "content": "x"},
        {"role": "user"},
        {"content": "x"},
        {"role": "user", "content": 5},
        {"role": "user", "content": None},
        {"role": "user", "content": b"bytes"},
        {"role": "user", "content": "x", "contnet": "typo"},
        {"role": "user", "content": "x", "tokens": -1},
        {"role": "user", "content": "x", "tokens": True},
        {"role": "user", "content": "x", "tokens": "5"},
        {"role": "user", "content": "x", "model": 3},
        {"role": "user", "content": "x", "model": "m" * 257},
        {"role": "user", "content": "x", "context": ["not", "a", "dict"]},
        {"role": "user", "content": "x", "context": {"bad": object()}},
        {"role": "user", "content": "x", "context": {"nan": float("nan")}},
        {"role": "user", "content": "x", "context": {1: "int key"}},
        {"role": "user", "content": "x", "timestamp": "2026-01-01T00:00:00"},
        {"role": "user", "content": "lone \ud800 surrogate"},
        {"role": "user", "content": "x" * MAX_MESSAGE_BYTES},
        {"role": "user", "content": "é" * (MAX_MESSAGE_BYTES // 2)},  # few chars, many bytes
        {"role": "user", "content": "x", "context": {"blob": "y" * MAX_MESSAGE_BYTES}},
        "user: hello",
        None,
    ],
)
async def test_bad_messages_raise_and_write_nothing(conn, message):
    memory = ConversationMemory("s1", redis=conn)
    async with capture_events(conn) as log:
        with pytest.raises(ValueError):
            await memory.append(message)
    assert await conn.client.dbsize() == 0
    assert log.events == []
    assert memory.history == []


async def test_the_size_limit_is_inclusive_of_the_whole_message(conn):
    memory = ConversationMemory("s1", redis=conn)
    _, text, _ = encode_message({"role": "user", "content": ""})
    content = "x" * (MAX_MESSAGE_BYTES - len(text))
    await memory.add_message("user", content)  # exactly at the limit: accepted
    assert (await memory.page(0, 1))[0]["content"] == content
    with pytest.raises(ValueError, match="limit"):
        await memory.add_message("user", content + "x")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.page(-1, 5), "start"),
        (lambda m: m.page(0, -1), "count"),
        (lambda m: m.page(0, 1.5), "count"),
        (lambda m: m.page("0", 1), "start"),
        (lambda m: m.trim_old_messages(-1), "keep"),
        (lambda m: m.trim_old_messages(True), "keep"),
        (lambda m: m.trim_old_messages(None), "keep"),
        (lambda m: m.load(last=-1), "last"),
        (lambda m: m.add_message("narrator", "x"), "role"),
    ],
)
async def test_bad_arguments_name_the_field_and_write_nothing(conn, call, field):
    memory = ConversationMemory("s1", redis=conn)
    with pytest.raises(ValueError, match=field):
        await call(memory)
    assert await conn.client.dbsize() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": "a\x1bb"}, "session_id"),
        ({"session_id": 5}, "session_id"),
        ({"session_id": "s", "max_messages": 0}, "max_messages"),
        ({"session_id": "s", "max_messages": 2.0}, "max_messages"),
    ],
)
def test_bad_construction_names_the_field(conn, kwargs, field):
    with pytest.raises(ValueError, match=field):
        ConversationMemory(**kwargs, redis=conn)


async def test_each_call_is_one_round_trip(conn):
    memory = ConversationMemory("s1", redis=conn, max_messages=3)
    for i in range(4):  # loads the scripts; the 4th append trims
        await memory.add_message("user", f"m{i}")
    await memory.trim_old_messages(2)
    await memory.count()
    async with count_round_trips(conn) as trips:
        await memory.add_message("user", "a")  # 3 kept, no trim
        await memory.add_message("user", "b")  # over the cap: append and trim, one script
        await memory.trim_old_messages(1)
        await memory.page(5, 2)
        await memory.count()
        await memory.load(last=5)
        await memory.trims()
    assert trips.commands == ["EVALSHA"] * 3 + ["LRANGE", "EVALSHA", "LRANGE", "LRANGE"]


async def test_append_events_carry_a_small_preview_and_consecutive_seqs(conn):
    memory = ConversationMemory("s1", redis=conn)
    big = "y" * 50_000
    async with capture_events(conn) as log:
        await memory.add_message("user", "hello [bold]x")
        await memory.append({"role": "assistant", "content": big, "tokens": 12, "model": "m-1"})
        await memory.add_message("system", "three")
    assert log.kinds() == ["conversation.append"] * 3
    assert [e.seq for e in log.events] == [1, 2, 3]
    assert all(e.session == "s1" and e.namespace == "test" for e in log.events)
    first, second, _ = memory.history
    assert log.events[0].payload == {
        "index": 0,
        "role": "user",
        "preview": "hello [bold]x",
        "length": 13,
        "timestamp": first["timestamp"].isoformat(),
    }
    assert log.events[1].payload == {
        "index": 1,
        "role": "assistant",
        "preview": big[:PREVIEW_CHARS],
        "length": 50_000,
        "timestamp": second["timestamp"].isoformat(),
        "tokens": 12,
        "model": "m-1",
    }
    server_now = (await conn.client.time())[0] * 1000
    assert abs(log.events[0].ts - server_now) < 5000


async def test_hostile_content_round_trips_exactly(conn):
    session = 'al}ice{:x [bold] "q"'
    memory = ConversationMemory(session, redis=conn)
    async with capture_events(conn) as log:
        for text in HOSTILE:
            await memory.add_message("user", text, {"echo": text, text[:50]: 1})
    read = await ConversationMemory(session, redis=conn).load()
    assert [m["content"] for m in read] == HOSTILE
    assert [m["context"] for m in read] == [{"echo": t, t[:50]: 1} for t in HOSTILE]
    assert read == memory.history
    assert [e.payload["preview"] for e in log.events] == [t[:PREVIEW_CHARS] for t in HOSTILE]
    assert {e.session for e in log.events} == {session}


async def test_concurrent_appenders_never_lose_or_duplicate_a_message(conn):
    shared = ConversationMemory("s1", redis=conn)
    others = [ConversationMemory("s1", redis=conn) for _ in range(3)]

    async def writer(memory, name, n):
        return [await memory.add_message("user", f"{name}-{i}") for i in range(n)]

    results = await asyncio.gather(
        *(writer(shared, f"shared{w}", 40) for w in range(5)),
        *(writer(memory, f"other{w}", 40) for w, memory in enumerate(others)),
    )
    indexes = sorted(i for result in results for i in result)
    assert indexes == list(range(8 * 40))
    stored = await ConversationMemory("s1", redis=conn).load()
    assert [m["index"] for m in stored] == indexes
    assert len({m["content"] for m in stored}) == 8 * 40
    by_content = {m["content"]: m["index"] for m in stored}
    for w, result in enumerate(results[:5]):  # each writer got the numbers of its own messages
        assert [by_content[f"shared{w}-{i}"] for i in range(40)] == result
    shared_indexes = [m["index"] for m in shared.history]
    assert shared_indexes == sorted(i for result in results[:5] for i in result)
    assert shared.history == [m for m in stored if m["index"] in set(shared_indexes)]


async def test_max_messages_trims_in_the_same_script_and_says_so(conn):
    memory = ConversationMemory("s1", redis=conn, max_messages=3)
    for i in range(3):
        await memory.add_message("user", f"m{i}")
    async with capture_events(conn) as log, count_round_trips(conn) as trips:
        assert await memory.add_message("assistant", "m3") == 3
    assert trips.commands == ["EVALSHA"]
    assert log.kinds() == ["conversation.append", "conversation.trim"]
    append, trim = log.events
    assert trim.seq == append.seq + 1 and trim.ts == append.ts
    assert trim.payload == {"count": 1, "first": 0, "last": 0, "reason": "auto"}
    assert [m["index"] for m in memory.history] == [1, 2, 3]
    assert [m["content"] for m in await memory.page(0, 10)] == ["m1", "m2", "m3"]
    assert await memory.count() == ConversationSpan(1, 4)
    (marker,) = await memory.trims()
    assert (marker.first, marker.last, marker.count, marker.reason) == (0, 0, 1, "auto")
    assert marker.seq == trim.seq and marker.ts == trim.ts
    assert abs(marker.time - datetime.now(UTC)) < timedelta(seconds=5)


async def test_manual_trim_keeps_numbers_and_marks_what_went(conn):
    memory = ConversationMemory("s1", redis=conn)
    for i in range(10):
        await memory.add_message("user", f"m{i}")
    async with capture_events(conn) as log:
        assert await memory.trim_old_messages(keep=4) == 6
        assert await memory.trim_old_messages(keep=4) == 0  # nothing to remove: no event
        assert await memory.trim_old_messages(keep=100) == 0
    assert log.kinds() == ["conversation.trim"]
    assert log.events[0].payload == {"count": 6, "first": 0, "last": 5, "reason": "manual"}
    assert [m["index"] for m in memory.history] == [6, 7, 8, 9]
    assert [m["content"] for m in await memory.page(5, 3)] == ["m6", "m7"]
    assert await memory.add_message("user", "m10") == 10  # numbering goes on
    assert await memory.trim_old_messages(keep=0) == 5
    assert memory.history == [] and await memory.page(0, 100) == []
    assert await memory.count() == ConversationSpan(11, 11)
    assert await memory.add_message("user", "m11") == 11
    assert [(t.first, t.last, t.count, t.reason) for t in await memory.trims()] == [
        (0, 5, 6, "manual"),
        (6, 10, 5, "manual"),
    ]


async def test_page_stays_right_when_another_instance_trims_or_appends(conn):
    reader = ConversationMemory("s1", redis=conn)
    writer = ConversationMemory("s1", redis=conn)
    for i in range(20):
        await writer.add_message("user", f"m{i}")
    assert await reader.count() == ConversationSpan(0, 20)
    assert [m["index"] for m in await reader.page(10, 3)] == [10, 11, 12]
    await writer.trim_old_messages(keep=15)  # the reader's numbering is now stale
    assert [m["index"] for m in await reader.page(10, 3)] == [10, 11, 12]
    assert [m["index"] for m in await reader.page(3, 4)] == [5, 6]
    assert await reader.page(0, 5) == []
    await writer.trim_old_messages(keep=2)
    assert [m["content"] for m in await reader.page(17, 10)] == ["m18", "m19"]
    for i in range(20, 25):
        await writer.add_message("user", f"m{i}")
    assert [m["index"] for m in await reader.page(22, 100)] == [22, 23, 24]
    assert await reader.page(25, 10) == [] and await reader.page(10**30, 10) == []


async def test_trim_markers_are_capped(conn):
    memory = ConversationMemory("s1", redis=conn, max_messages=1)
    client = conn.client
    sha = await client.script_load(source("conversation_append"))
    keys = conn.session("s1")
    _, text, head = encode_message({"role": "user", "content": "x"})
    async with client.pipeline(transaction=False) as pipe:
        for _ in range(MAX_TRIM_MARKERS + 5):
            pipe.evalsha(
                sha,
                3,
                keys.meta,
                conn.keys.sessions,
                keys.key("conversation"),
                "s1",
                keys.header,
                text,
                head,
                1,
            )
        await pipe.execute()
    markers = await memory.trims()
    assert len(markers) == MAX_TRIM_MARKERS
    assert [m.first for m in markers] == list(range(4, MAX_TRIM_MARKERS + 4))
    assert await memory.count() == ConversationSpan(MAX_TRIM_MARKERS + 4, MAX_TRIM_MARKERS + 5)


async def test_a_long_conversation_pages_only_its_window(conn):
    n = 100_000
    memory = ConversationMemory("long", redis=conn)
    client = conn.client
    sha = await client.script_load(source("conversation_append"))
    keys = conn.session("long")
    for start in range(0, n, 20_000):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, start + 20_000):
                _, text, head = encode_message({"role": "user", "content": f"message {i}"})
                args = (keys.key("conversation"), "long", keys.header, text, head)
                pipe.evalsha(sha, 3, keys.meta, conn.keys.sessions, *args)
            await pipe.execute()
    assert await memory.count() == ConversationSpan(0, n)
    near_end = await memory.page(n - 30, 50)
    assert [m["index"] for m in near_end] == list(range(n - 30, n))
    assert [m["content"] for m in near_end] == [f"message {i}" for i in range(n - 30, n)]
    near_start = await memory.page(7, 50)
    assert [m["content"] for m in near_start] == [f"message {i}" for i in range(7, 57)]
    await memory.trim_old_messages(keep=n - 1000)
    assert [m["index"] for m in await memory.page(990, 20)] == list(range(1000, 1010))
    assert [m["index"] for m in await memory.load(last=3)] == [n - 3, n - 2, n - 1]
    assert await memory.add_message("user", "one more") == n


async def test_context_summary_is_the_last_ten_lines(conn):
    memory = ConversationMemory("s1", redis=conn)
    for i in range(12):
        await memory.add_message("user" if i % 2 else "assistant", f"{i} " + "z" * 200)
    lines = (await memory.get_context_summary()).split("\n")
    assert len(lines) == 10
    assert lines[0] == "assistant: 2 " + "z" * 98
    assert lines[-1] == "user: 11 " + "z" * 97


async def test_namespaces_and_sessions_are_separate(conn):
    await ConversationMemory("s1", redis=conn).add_message("user", "mine")
    assert await ConversationMemory("s2", redis=conn).load() == []
    other = ConversationMemory("s1", redis=conn, namespace="other")
    assert await other.load() == []
    assert await other.add_message("user", "theirs") == 0
    assert [m["content"] for m in await ConversationMemory("s1", redis=conn).load()] == ["mine"]


async def snapshot(conn, session="s1"):
    return (await read_sessions(conn, [session], [ConversationSection()]))[session]


async def test_feed_section_follows_appends_and_trims_like_a_fresh_read(conn):
    section = ConversationSection()
    memory = ConversationMemory("s1", redis=conn, max_messages=12)
    assert (await snapshot(conn)).conversation is None
    await memory.add_message("user", "before the snapshot")
    view = await snapshot(conn)
    assert view.conversation.total == 1 and view.conversation.recent[0]["index"] == 0
    async with capture_events(conn) as log:
        for i in range(25):
            await memory.append(
                {"role": "assistant", "content": f"{i} " + "q" * 300, "tokens": i, "model": "m"}
            )
        await memory.trim_old_messages(keep=5)
    for event in log.events:
        assert section.apply(view, event), event
        view.seq = event.seq
    fresh = await snapshot(conn)
    assert view.conversation == fresh.conversation
    assert view.seq == fresh.seq
    conversation = fresh.conversation
    assert (conversation.first, conversation.total, conversation.retained) == (21, 26, 5)
    assert [m["index"] for m in conversation.recent] == [21, 22, 23, 24, 25]
    assert conversation.recent[-1]["preview"] == "24 " + "q" * (PREVIEW_CHARS - 3)
    assert conversation.recent[-1]["length"] == 303
    assert [(t.first, t.last, t.reason) for t in conversation.trims][-2:] == [
        (13, 13, "auto"),
        (14, 20, "manual"),
    ]
    assert len(conversation.trims) == RECENT_MESSAGES


async def test_feed_section_asks_for_a_re_read_when_an_event_does_not_fit(conn):
    section = ConversationSection()
    memory = ConversationMemory("s1", redis=conn)
    async with capture_events(conn) as log:
        await memory.add_message("user", "a")
        await memory.add_message("user", "b")
        await memory.trim_old_messages(keep=1)
    append_a, append_b, trim = log.events
    empty = await snapshot(conn, "nobody")
    assert not section.apply(empty, append_b)  # message 1 before message 0: missed one
    assert not section.apply(empty, trim)
    view = await snapshot(conn, "nobody")
    assert section.apply(view, append_a)
    broken = append_b.model_copy(update={"payload": {**append_b.payload, "index": "1"}})
    assert not section.apply(view, broken)
    assert not section.apply(view, append_b.model_copy(update={"kind": "conversation.edit"}))
    assert section.apply(view, append_b)
    assert not section.apply(view, trim.model_copy(update={"payload": {"first": 0}}))
    assert section.apply(view, trim)
    assert view.conversation.first == 1


async def test_history_stays_ordered_and_unique_across_loads_and_concurrent_appends(conn):
    memory = ConversationMemory("s1", redis=conn)
    for i in range(5):
        await memory.add_message("user", f"early {i}")
    appends = [memory.add_message("assistant", f"late {i}") for i in range(30)]
    await asyncio.gather(*appends, memory.load(), memory.load(last=10**30))
    # ordered, no duplicates, and none of this instance's own appends lost to a racing load
    assert [m["index"] for m in memory.history] == list(range(35))
    assert memory.history == await memory.page(0, 100) == await memory.load(last=10**30)


async def test_append_unique_stores_a_message_once_even_after_it_was_trimmed(conn):
    memory = ConversationMemory("u", redis=conn, max_messages=2)
    async with capture_events(conn) as events:
        assert await memory.append_unique({"role": "user", "content": "a"}, "id-a") == 0
        assert await memory.append_unique({"role": "user", "content": "a again"}, "id-a") is None
        assert await memory.append_unique({"role": "assistant", "content": "b"}, "id-b") == 1
        await memory.add_message("user", "c")  # trims "a"
        assert await memory.append_unique({"role": "user", "content": "a"}, "id-a") is None
    kinds = [e.kind for e in events.events]
    assert kinds == ["conversation.append"] * 3 + ["conversation.trim"]
    assert [m["content"] for m in await memory.load()] == ["b", "c"]
    assert await memory.count() == ConversationSpan(1, 3)
    with pytest.raises(ValueError):
        await memory.append_unique({"role": "user", "content": "x"}, "")


async def test_a_trim_says_why(conn):
    memory = ConversationMemory("why", redis=conn)
    for i in range(3):
        await memory.add_message("user", f"m{i}")
    assert await memory.trim_old_messages(1, reason="compact") == 2
    [marker] = await memory.trims()
    assert (marker.reason, marker.count) == ("compact", 2)
    view = (await read_sessions(conn, ["why"]))["why"]
    assert [m.reason for m in view.conversation.trims] == ["compact"]
    with pytest.raises(ValueError):
        await memory.trim_old_messages(0, reason='x","count":9')  # never reaches the JSON
    assert (await memory.count()).retained == 1


# -- append_unique_many: several messages of one session in one script call -------------------


async def test_append_unique_many_stores_what_append_unique_would_in_one_call(conn):
    one = ConversationMemory("one", redis=conn)
    many = ConversationMemory("many", redis=conn)
    at = datetime(2026, 11, 24, 6, 0, 0, 123456, tzinfo=UTC)
    batch = [
        ({"role": "user", "content": "q", "timestamp": at}, "a"),
        ({"role": "assistant", "content": "x", "timestamp": at, "tokens": 5, "model": "m"}, "b"),
        ({"role": "tool", "content": "again", "timestamp": at}, "a"),  # same id: skipped
    ] + [
        ({"role": "user", "content": h, "context": {"k": h}, "timestamp": at}, f"h{i}")
        for i, h in enumerate(HOSTILE)
    ]
    expected = [await one.append_unique(message, mid) for message, mid in batch]
    await ConversationMemory("warm", redis=conn).append_unique_many([])  # nothing: no call
    await ConversationMemory("warm", redis=conn).append_unique_many(
        [({"role": "user", "content": "x"}, "w")]
    )  # loads the script

    async with count_round_trips(conn) as trips:
        numbers = await many.append_unique_many(batch)

    assert numbers == expected == [0, 1, None, *range(2, 2 + len(HOSTILE))]
    assert trips.commands == ["EVALSHA"]  # one call
    assert [m["content"] for m in await stored_items_decoded(conn, "many")] == [
        m["content"] for m in await stored_items_decoded(conn, "one")
    ]
    assert (await stored_items(conn, "many")) == (await stored_items(conn, "one"))
    assert many.history == one.history
    assert await many.count() == await one.count()


async def stored_items_decoded(conn, session):
    from store.conversation import decode_messages

    return decode_messages(await stored_items(conn, session))


async def test_append_unique_many_skips_ids_stored_before_even_when_trimmed(conn):
    memory = ConversationMemory("s1", redis=conn)
    await memory.append_unique({"role": "user", "content": "first"}, "a")
    await memory.append_unique({"role": "user", "content": "second"}, "b")
    await memory.trim_old_messages(keep=0)

    numbers = await memory.append_unique_many(
        [
            ({"role": "user", "content": "a again"}, "a"),
            ({"role": "user", "content": "new"}, "c"),
            ({"role": "user", "content": "b again"}, "b"),
            ({"role": "user", "content": "new twice"}, "c"),
        ]
    )

    assert numbers == [None, 2, None, None]
    assert [m["content"] for m in await memory.load()] == ["new"]
    assert await memory.append_unique_many([({"role": "user", "content": "x"}, "c")]) == [None]


async def test_append_unique_many_announces_each_message_in_order(conn):
    memory = ConversationMemory("s1", redis=conn)
    await memory.append_unique({"role": "user", "content": "before"}, "id0")

    async with capture_events(conn) as log:
        await memory.append_unique_many(
            [({"role": "user", "content": f"m{i}"}, f"id{i % 4}") for i in range(6)]
        )

    assert log.kinds() == ["conversation.append"] * 3  # id1, id2, id3 (then id0, id1: known)
    assert [e.payload["index"] for e in log.events] == [1, 2, 3]
    assert [e.payload["preview"] for e in log.events] == ["m1", "m2", "m3"]
    assert [e.seq for e in log.events] == [2, 3, 4]  # the session's seqs, one each, in order
    assert len({e.ts for e in log.events}) == 1
    view = (await read_sessions(conn, ["s1"], [ConversationSection()]))["s1"]
    assert (view.conversation.total, view.conversation.recent[-1]["preview"]) == (4, "m3")
    # nothing new: no event, no seq taken
    async with capture_events(conn) as log:
        assert await memory.append_unique_many([({"role": "user", "content": "m"}, "id1")]) == [
            None
        ]
    assert log.events == []
    assert await conn.client.hget(conn.session("s1").meta, "seq") == "4"


async def test_append_unique_many_checks_everything_first_and_refuses_a_cap(conn):
    memory = ConversationMemory("s1", redis=conn)
    with pytest.raises(ValueError):
        await memory.append_unique_many(
            [({"role": "user", "content": "ok"}, "a"), ({"role": "narrator", "content": "x"}, "b")]
        )
    with pytest.raises(ValueError):
        await memory.append_unique_many([({"role": "user", "content": "ok"}, "")])
    with pytest.raises(ValueError):
        await memory.append_unique_many(
            [({"role": "user", "content": "x" * MAX_MESSAGE_BYTES}, "big")]
        )
    assert await stored_items(conn) == []
    assert await memory.append_unique_many([]) == []
    capped = ConversationMemory("s2", redis=conn, max_messages=3)
    with pytest.raises(ValueError, match="cap"):
        await capped.append_unique_many([({"role": "user", "content": "x"}, "a")])
    assert await stored_items(conn, "s2") == []


async def test_append_unique_many_takes_more_ids_than_one_command_holds(conn, monkeypatch):
    import store.conversation as conversation

    monkeypatch.setattr(conversation, "APPEND_MANY_CHUNK", 3)
    memory = ConversationMemory("s1", redis=conn)
    await memory.append_unique({"role": "user", "content": "m4"}, "id4")
    batch = [({"role": "user", "content": f"m{i}"}, f"id{i}") for i in range(10)]

    numbers = await memory.append_unique_many(batch + batch[:2])

    assert numbers == [1, 2, 3, 4, None, 5, 6, 7, 8, 9, None, None]
    assert [m["content"] for m in await memory.load()] == [
        "m4",
        *[f"m{i}" for i in range(10) if i != 4],
    ]


async def test_append_unique_many_after_a_script_flush(conn):
    """NOSCRIPT (a restarted server): the script is loaded and the call made again."""
    memory = ConversationMemory("s1", redis=conn)
    await memory.append_unique_many([({"role": "user", "content": "a"}, "a")])
    await conn.client.script_flush()

    assert await memory.append_unique_many(
        [({"role": "user", "content": "a"}, "a"), ({"role": "user", "content": "b"}, "b")]
    ) == [None, 1]
