import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from store.budget import (
    MAX_LIMIT,
    MAX_TOKENS,
    BudgetDebit,
    BudgetExceededError,
    TokenBudgetTracker,
)
from tests.events import capture_events, count_round_trips


def budget_key(conn, session="s1"):
    return conn.session(session).key("budget")


async def server_minute(conn) -> datetime:
    seconds, _ = await conn.client.time()
    return datetime.fromtimestamp(seconds // 60 * 60, tz=UTC)


async def test_track_request_debits_and_reports_what_remains(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    assert await budget.get_remaining_budget() == 1000  # nothing stored yet: the tracker's limit
    assert await budget.track_request("r1", 400) == BudgetDebit(used=400, limit=1000)
    debit = await budget.track_request("r2", 100)
    assert (debit.used, debit.remaining, debit.duplicate) == (500, 500, False)
    assert await budget.get_remaining_budget() == 500
    status = await budget.status()
    assert (status.used, status.limit, status.remaining, status.requests, status.rejected) == (
        500,
        1000,
        500,
        2,
        0,
    )
    assert status.limit_stored and not status.over_limit


async def test_overspend_raises_debits_nothing_and_is_counted_and_announced(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    await budget.track_request("r1", 400)
    async with capture_events(conn) as log:
        with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 700 > 600$") as info:
            await budget.track_request("r2", 700)
    error = info.value
    assert (error.tokens, error.remaining, error.limit, error.request_id) == (700, 600, 1000, "r2")
    assert isinstance(error, Exception)
    assert await budget.get_remaining_budget() == 600
    status = await budget.status()
    assert (status.used, status.requests, status.rejected) == (400, 1, 1)
    assert log.kinds() == ["budget.rejected"]
    assert log.events[0].payload == {
        "request_id": "r2",
        "tokens": 700,
        "remaining": 600,
        "used": 400,
        "limit": 1000,
        "rejected": 1,
    }


async def test_a_request_that_exactly_fits_is_accepted(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    assert (await budget.track_request("all", 1000)).remaining == 0
    assert (await budget.track_request("nothing", 0)).used == 1000  # 0 more always fits
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 1 > 0$"):
        await budget.track_request("one more", 1)


async def test_a_rejection_before_any_usage_stores_the_limit(conn):
    budget = TokenBudgetTracker("s1", 100, redis=conn)
    with pytest.raises(BudgetExceededError):
        await budget.track_request("r1", 101)
    stored = await conn.client.hgetall(budget_key(conn))
    assert stored == {"limit": "100", "rejected": "1"}


async def test_the_exception_also_takes_the_seeds_message(conn):
    error = BudgetExceededError("Token exceeded: 700 > 600")
    assert (str(error), error.tokens, error.remaining) == ("Token exceeded: 700 > 600", 700, 600)
    other = BudgetExceededError("out of tokens")
    assert (other.tokens, other.remaining) == (None, None)


async def test_record_usage_enforces_the_limit_by_default(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    await budget.record_usage("r1", 900, datetime.now())
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 200 > 100$"):
        await budget.record_usage("r2", 200, timestamp=datetime.now())
    assert (await budget.status()).used == 900


async def test_record_usage_without_enforcement_records_past_the_limit_and_says_so(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    async with capture_events(conn) as log:
        within = await budget.record_usage("r1", 600, enforce_limit=False)
        over = await budget.record_usage("r2", 600, enforce_limit=False)
    assert within == BudgetDebit(600, 1000) and over == BudgetDebit(1200, 1000)
    assert over.remaining == 0
    assert await budget.get_remaining_budget() == 0
    assert log.events[0].payload["enforce_limit"] is False
    assert "over_limit" not in log.events[0].payload
    assert log.events[1].payload == {
        "request_id": "r2",
        "tokens": 600,
        "used": 1200,
        "limit": 1000,
        "enforce_limit": False,
        "over_limit": True,
    }
    status = await budget.status()
    assert status.over_limit and status.remaining == 0
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 1 > 0$"):
        await budget.track_request("r3", 1)
    assert (await budget.track_request("r4", 0)).used == 1200  # 0 tokens always fit


async def test_concurrent_callers_in_one_process_never_overspend(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)

    async def attempt(i):
        try:
            await budget.record_usage(f"r{i}", 100)
            return True
        except BudgetExceededError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(25)))
    assert results.count(True) == 10
    status = await budget.status()
    assert (status.used, status.requests, status.rejected) == (1000, 10, 15)


async def test_a_request_id_counts_once(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    await budget.track_request("r1", 300)
    async with capture_events(conn) as log:
        again = await budget.track_request("r1", 300)
        recorded = await budget.record_usage("r1", 999, enforce_limit=False)
        # a duplicate is recognised before the limit: it neither debits nor is rejected
        too_big = await budget.track_request("r1", 5000)
    assert again == recorded == too_big == BudgetDebit(300, 1000, duplicate=True)
    assert log.events == []
    status = await budget.status()
    assert (status.used, status.requests, status.rejected) == (300, 1, 0)
    remembered = budget_key(conn) + ":req:r1"
    assert 86390 < await conn.client.ttl(remembered) <= 86400


async def test_a_rejected_request_id_can_be_retried(conn):
    budget = TokenBudgetTracker("s1", 100, redis=conn)
    with pytest.raises(BudgetExceededError):
        await budget.track_request("big", 500)
    await budget.set_limit(1000)
    assert (await budget.track_request("big", 500)).used == 500


async def test_the_first_writer_stores_the_limit_and_set_limit_overrides_it(conn):
    first = TokenBudgetTracker("s1", 1000, redis=conn)
    second = TokenBudgetTracker("s1", 5000, redis=conn)
    assert await second.get_remaining_budget() == 5000  # nothing stored yet
    await first.track_request("r1", 100)
    assert await second.get_remaining_budget() == 900  # the stored limit wins
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 1000 > 900$"):
        await second.track_request("r2", 1000)
    async with capture_events(conn) as log:
        await second.set_limit(2000)
    assert log.kinds() == ["budget.limit"]
    assert log.events[0].payload == {
        "limit": 2000,
        "previous": 1000,
        "used": 100,
        "binding": False,
    }
    assert await first.get_remaining_budget() == 1900
    assert (await first.status()).limit == 2000


async def test_set_limit_on_a_fresh_budget_and_below_usage(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    async with capture_events(conn) as log:
        await budget.set_limit(300)
        await budget.track_request("r1", 300)
        await budget.set_limit(100)  # below what is used: nothing more fits
    assert log.events[0].payload == {"limit": 300, "previous": None, "used": 0, "binding": False}
    assert log.events[2].payload == {"limit": 100, "previous": 300, "used": 300, "binding": False}
    assert await budget.get_remaining_budget() == 0
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 1 > 0$"):
        await budget.track_request("r2", 1)


async def test_reset_zeroes_usage_but_keeps_the_limit_and_the_seen_request_ids(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    await budget.set_limit(800)
    await budget.track_request("r1", 500, input_tokens=400, output_tokens=100, model="m")
    with pytest.raises(BudgetExceededError):
        await budget.track_request("r2", 500)
    async with capture_events(conn) as log:
        await budget.reset()
    assert log.kinds() == ["budget.reset"]
    assert log.events[0].payload == {"limit": 800, "previous_used": 500, "binding": False}
    status = await budget.status()
    assert (status.used, status.limit, status.rejected, status.requests) == (0, 800, 0, 0)
    assert (status.input_tokens, status.output_tokens, status.model) == (0, 0, None)
    assert all(tokens == 0 for _, tokens in status.per_minute)
    assert not await conn.client.exists(budget_key(conn) + ":minutes")
    assert (await budget.track_request("r1", 500)).duplicate  # counted before the reset
    assert (await budget.track_request("r2", 500)).used == 500


async def test_reset_of_an_untouched_budget_stores_the_trackers_limit(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    async with capture_events(conn) as log:
        await budget.reset()
    assert log.events[0].payload == {"limit": 1000, "previous_used": 0}
    assert await conn.client.hgetall(budget_key(conn)) == {"limit": "1000"}


async def test_breakdown_totals_and_last_model(conn):
    budget = TokenBudgetTracker("s1", 100_000, redis=conn)
    async with capture_events(conn) as log:
        await budget.track_request(
            "r1",
            1500,
            input_tokens=1000,
            output_tokens=200,
            cache_creation_input_tokens=300,
            model="claude-sonnet-4",
        )
        await budget.record_usage(
            "r2", 700, cache_read_input_tokens=500, output_tokens=200, model="claude-haiku"
        )
        await budget.track_request("r3", 10, model=None, input_tokens=None)  # None: not given
    status = await budget.status()
    assert (
        status.input_tokens,
        status.output_tokens,
        status.cache_creation_input_tokens,
        status.cache_read_input_tokens,
        status.model,
        status.used,
        status.requests,
    ) == (1000, 400, 300, 500, "claude-haiku", 2210, 3)
    assert log.events[0].payload == {
        "request_id": "r1",
        "tokens": 1500,
        "used": 1500,
        "limit": 100_000,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_creation_input_tokens": 300,
        "model": "claude-sonnet-4",
    }
    assert log.events[2].payload == {
        "request_id": "r3",
        "tokens": 10,
        "used": 2210,
        "limit": 100_000,
    }


async def test_large_numbers_stay_exact(conn):
    budget = TokenBudgetTracker("s1", MAX_LIMIT, redis=conn)
    async with capture_events(conn) as log:
        await budget.track_request("r1", MAX_TOKENS, input_tokens=MAX_TOKENS)
        await budget.track_request("r2", MAX_TOKENS - 1)
    assert log.events[1].payload["used"] == 2 * MAX_TOKENS - 1
    assert log.events[1].payload["limit"] == MAX_LIMIT
    status = await budget.status()
    assert (status.used, status.input_tokens) == (2 * MAX_TOKENS - 1, MAX_TOKENS)
    assert await budget.get_remaining_budget() == MAX_LIMIT - 2 * MAX_TOKENS + 1


BAD_CALLS = [
    ("track_request", ("r", -1), {}, ValueError, "tokens"),
    ("track_request", ("r", True), {}, ValueError, "tokens"),
    ("track_request", ("r", 1.5), {}, ValueError, "tokens"),
    ("track_request", ("r", "10"), {}, ValueError, "tokens"),
    ("track_request", ("r", MAX_TOKENS + 1), {}, ValueError, "tokens"),
    ("track_request", ("", 1), {}, ValueError, "request_id"),
    ("track_request", ("x" * 257, 1), {}, ValueError, "request_id"),
    ("track_request", ("a\nb", 1), {}, ValueError, "request_id"),
    ("track_request", ("a\x9bb", 1), {}, ValueError, "request_id"),
    ("track_request", (7, 1), {}, ValueError, "request_id"),
    ("track_request", (None, 1), {}, ValueError, "request_id"),
    ("track_request", ("r", 1), {"input_tokens": -1}, ValueError, "input_tokens"),
    ("track_request", ("r", 1), {"output_tokens": 2.0}, ValueError, "output_tokens"),
    ("track_request", ("r", 1), {"cache_read_input_tokens": False}, ValueError, "cache_read"),
    ("track_request", ("r", 1), {"model": 5}, ValueError, "model"),
    ("track_request", ("r", 1), {"model": ""}, ValueError, "model"),
    ("track_request", ("r", 1), {"model": "m" * 129}, ValueError, "model"),
    ("track_request", ("r", 1), {"model": "m\x1b[31m"}, ValueError, "model"),
    ("track_request", ("r", 1), {"input_token": 5}, TypeError, "input_token"),
    ("track_request", ("r", 1), {"timestamp": datetime.now()}, TypeError, "timestamp"),
    ("record_usage", ("r", -5), {}, ValueError, "tokens"),
    ("record_usage", ("r", 1, "2026-11-24"), {}, ValueError, "timestamp"),
    ("record_usage", ("r", 1), {"enforce_limit": 0}, ValueError, "enforce_limit"),
    ("record_usage", ("r", 1), {"enforce": False}, TypeError, "enforce_limit"),
    ("record_usage", ("r", 1), {"user": "x"}, TypeError, "user"),
    ("set_limit", (0,), {}, ValueError, "limit"),
    ("set_limit", (-10,), {}, ValueError, "limit"),
    ("set_limit", (True,), {}, ValueError, "limit"),
    ("set_limit", ("100",), {}, ValueError, "limit"),
    ("set_limit", (MAX_LIMIT + 1,), {}, ValueError, "limit"),
    ("usage_per_minute", (0,), {}, ValueError, "minutes"),
    ("usage_per_minute", (61,), {}, ValueError, "minutes"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "error", "names"), BAD_CALLS)
async def test_bad_input_raises_writes_nothing_and_publishes_nothing(
    conn, method, args, kwargs, error, names
):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    async with capture_events(conn) as log:
        with pytest.raises(error, match=names):
            await getattr(budget, method)(*args, **kwargs)
    assert log.events == []
    assert await conn.client.dbsize() == 0


@pytest.mark.parametrize(
    ("session_id", "limit", "names"),
    [
        ("s1", 0, "limit"),
        ("s1", -1, "limit"),
        ("s1", True, "limit"),
        ("s1", 1.5, "limit"),
        ("s1", None, "limit"),
        ("s1", MAX_LIMIT + 1, "limit"),
        ("", 100, "session_id"),
        ("a\x00b", 100, "session_id"),
        (42, 100, "session_id"),
    ],
)
async def test_the_constructor_validates(conn, session_id, limit, names):
    with pytest.raises(ValueError, match=names):
        TokenBudgetTracker(session_id, limit, redis=conn)


async def test_the_largest_valid_inputs_are_accepted(conn):
    budget = TokenBudgetTracker("s" * 256, MAX_LIMIT, redis=conn)
    debit = await budget.track_request("r" * 256, MAX_TOKENS, model="m" * 128)
    assert debit.used == MAX_TOKENS


async def test_each_mutation_is_one_round_trip(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    await budget.track_request("warm", 1)  # load each script once
    await budget.set_limit(1000)
    await budget.reset()
    async with count_round_trips(conn) as trips:
        await budget.track_request("r1", 100)
        await budget.track_request("r1", 100)  # duplicate
        with pytest.raises(BudgetExceededError):
            await budget.track_request("r2", 5000)
        await budget.record_usage("r3", 10, datetime.now(), input_tokens=5, model="m")
        await budget.record_usage("r4", 5000, enforce_limit=False)
        await budget.set_limit(2000)
        await budget.reset()
        await budget.get_remaining_budget()
    assert trips.commands == ["EVALSHA"] * 7 + ["HMGET"]
    async with count_round_trips(conn) as trips:
        await budget.status()
    assert trips.commands == ["MULTI", "HGETALL", "HGETALL", "TIME", "EXEC"]  # one pipeline
    async with count_round_trips(conn) as trips:
        await budget.usage_per_minute()
    assert trips.commands == ["TIME", "HGETALL"]  # one pipeline


async def test_events_are_ordered_with_consecutive_seq(conn):
    budget = TokenBudgetTracker("s1", 1000, redis=conn)
    other = TokenBudgetTracker("s2", 1000, redis=conn)
    async with capture_events(conn) as log:
        await budget.track_request("r1", 600)
        with pytest.raises(BudgetExceededError):
            await budget.track_request("r2", 600)
        await budget.track_request("r1", 600)  # duplicate: no event
        await other.track_request("r1", 1)
        await budget.set_limit(2000)
        await budget.record_usage("r3", 600, enforce_limit=False)
        await budget.reset()
    mine = [e for e in log.events if e.session == "s1"]
    assert [e.kind for e in mine] == [
        "budget.usage",
        "budget.rejected",
        "budget.limit",
        "budget.usage",
        "budget.reset",
    ]
    assert [e.seq for e in mine] == [1, 2, 3, 4, 5]
    assert [(e.kind, e.seq) for e in log.events if e.session == "s2"] == [("budget.usage", 1)]
    assert all(e.namespace == "test" for e in log.events)
    server_now = (await conn.client.time())[0] * 1000
    assert all(abs(e.ts - server_now) < 5000 for e in log.events)


async def test_usage_is_bucketed_per_minute(conn):
    budget = TokenBudgetTracker("s1", 1_000_000, redis=conn)
    before = await server_minute(conn)
    await budget.track_request("now-1", 100)
    await budget.record_usage("now-2", 50, datetime.now())  # naive: local time
    await budget.track_request("zero", 0)  # no tokens, no bucket
    ten_ago = datetime.now(UTC) - timedelta(minutes=10)
    await budget.record_usage("backfill", 70, ten_ago, enforce_limit=False)
    await budget.record_usage("too-old", 1000, datetime.now(UTC) - timedelta(hours=2))
    await budget.record_usage("future", 5, datetime.now(UTC) + timedelta(hours=1))  # clamped
    after = await server_minute(conn)
    series = await budget.usage_per_minute()
    assert len(series) == 60
    assert series[-1][0] == after and series[0][0] == after - timedelta(minutes=59)
    assert [t for t, _ in series] == sorted(t for t, _ in series)
    by_minute = dict(series)
    assert by_minute[ten_ago.replace(second=0, microsecond=0)] == 70
    assert sum(tokens for _, tokens in series) == 100 + 50 + 70 + 5  # too-old: no bucket
    # the minute may turn over during the test: then "now" is spread over two buckets
    assert by_minute[before] + (by_minute[after] if after != before else 0) == 100 + 50 + 5
    assert (await budget.status()).used == 100 + 50 + 70 + 1000 + 5
    last_five = await budget.usage_per_minute(5)
    assert len(last_five) == 5 and last_five == series[-5:]
    ttl = await conn.client.ttl(budget_key(conn) + ":minutes")
    assert 3600 < ttl <= 3660


async def test_minutes_that_left_the_window_are_dropped(conn):
    budget = TokenBudgetTracker("s1", 1_000_000, redis=conn)
    minutes_key = budget_key(conn) + ":minutes"
    now = int((await server_minute(conn)).timestamp()) // 60
    await conn.client.hset(minutes_key, mapping={str(now - 61): 9, str(now - 60): 8, now - 59: 7})
    await budget.track_request("r1", 100)  # the first debit of a minute prunes
    fields = await conn.client.hgetall(minutes_key)
    assert str(now - 61) not in fields and str(now - 60) not in fields
    assert fields.get(str(now - 59)) in ("7", None)  # None: the minute turned over meanwhile
    assert sum(tokens for _, tokens in await budget.usage_per_minute()) in (107, 100)


async def test_status_has_a_series_burn_rate_and_time_to_exhaustion(conn):
    budget = TokenBudgetTracker("s1", 10_000, redis=conn)
    assert (await budget.status()).time_to_exhaustion() is None  # nothing burns
    await budget.track_request("r1", 1000)
    status = await budget.status()
    assert len(status.per_minute) == 60
    assert (
        status.per_minute[-1][0] <= status.as_of < status.per_minute[-1][0] + timedelta(minutes=1)
    )
    assert status.burn_rate(5) == 200.0
    assert status.burn_rate(1) in (1000.0, 0.0)  # 0 if the minute turned over meanwhile
    assert status.time_to_exhaustion(5) == timedelta(minutes=9000 / 200)
    with pytest.raises(ValueError, match="minutes"):
        status.burn_rate(0)
    assert "per_minute" not in repr(status)


async def test_untouched_budget_status(conn):
    status = await TokenBudgetTracker("s1", 500, redis=conn).status()
    assert (status.used, status.limit, status.remaining, status.requests) == (0, 500, 500, 0)
    assert not status.limit_stored and status.model is None
    assert await conn.client.dbsize() == 0


async def test_hostile_text_round_trips(conn):
    session = 'al}ice{:x [bold]"q"'
    request_id = '[bold]r[/] "quoted" \\back\\ {"json": true} ünï 🚀 /slash'
    model = 'claude "x" [red]\\'
    budget = TokenBudgetTracker(session, 1000, redis=conn)
    async with capture_events(conn) as log:
        await budget.track_request(request_id, 10, model=model)
        with pytest.raises(BudgetExceededError) as info:
            await budget.track_request(request_id + "2", 5000)
    assert info.value.request_id == request_id + "2"
    assert [e.session for e in log.events] == [session, session]
    assert log.events[0].payload["request_id"] == request_id
    assert log.events[0].payload["model"] == model
    assert log.events[1].payload["request_id"] == request_id + "2"
    assert (await budget.status()).model == model
    assert (await budget.track_request(request_id, 10)).duplicate
    plain = "ünï 🚀 [bold]{x}</b> ' \x7e"  # no quotes or backslashes: sent to JSON as is
    async with capture_events(conn) as log:
        await budget.track_request(plain, 1)
    assert log.events[0].payload["request_id"] == plain


async def test_namespaces_do_not_share_budgets(conn):
    mine = TokenBudgetTracker("s1", 1000, redis=conn)
    theirs = TokenBudgetTracker("s1", 1000, redis=conn, namespace="other")
    await mine.track_request("r1", 300)
    assert await theirs.get_remaining_budget() == 1000
    assert (await theirs.track_request("r1", 100)).used == 100  # ids are per namespace, too
    assert await mine.get_remaining_budget() == 700
    assert (
        await conn.client.exists("other:{other:s1}:budget", "other:{other:s1}:budget:req:r1") == 2
    )


async def test_the_seeds_subclass_style_cannot_recurse_into_itself(conn):
    """record_usage and track_request both debit directly, so a subclass may build one on
    the other (as usage example 2 does) without looping."""

    class Tracked(TokenBudgetTracker):
        async def record_usage(self, request_id, tokens, timestamp=None, **kwargs):
            return await self.track_request(request_id, tokens)

    assert (await Tracked("s1", 100, redis=conn).record_usage("r1", 10)).used == 10


CHILD = """
import asyncio, json, os, random, sys

from store import Connection
from store.budget import BudgetExceededError, TokenBudgetTracker

LIMIT, COROUTINES, ATTEMPTS = {limit}, {coroutines}, {attempts}


async def main(process):
    conn = Connection(os.environ["MEMDASH_REDIS_URL"], namespace="test")
    budget = TokenBudgetTracker("shared", LIMIT, redis=conn)
    await conn.client.incr("test:ready")
    while not await conn.client.exists("test:go"):
        await asyncio.sleep(0.002)
    accepted, rejected, tokens = 0, 0, 0

    async def worker(w):
        nonlocal accepted, rejected, tokens
        rng = random.Random(process * 1000 + w)
        for k in range(ATTEMPTS):
            n = rng.randint(1, 100)
            try:
                await budget.track_request(f"p{{process}}-w{{w}}-{{k}}", n)
            except BudgetExceededError:
                rejected += 1
            else:
                accepted += 1
                tokens += n

    await asyncio.gather(*(worker(w) for w in range(COROUTINES)))
    print(json.dumps({{"accepted": accepted, "rejected": rejected, "tokens": tokens}}))
    await conn.aclose()


asyncio.run(main(int(sys.argv[1])))
"""


@pytest.mark.slow
async def test_many_processes_never_push_used_above_the_limit(conn, redis_url):
    limit, processes, coroutines, attempts = 5000, 4, 16, 8
    code = CHILD.format(limit=limit, coroutines=coroutines, attempts=attempts)
    env = {**os.environ, "MEMDASH_REDIS_URL": redis_url, "MEMDASH_NAMESPACE": "test"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(p)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    try:
        for _ in range(1500):  # all connected, then all start at once
            if int(await conn.client.get("test:ready") or 0) == processes:
                break
            await asyncio.sleep(0.01)
        await conn.client.set("test:go", 1)
        outputs = []
        for child in children:
            out, err = await asyncio.to_thread(child.communicate, timeout=60)
            assert child.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    status = await TokenBudgetTracker("shared", limit, redis=conn).status()
    accepted = sum(o["accepted"] for o in outputs)
    rejected = sum(o["rejected"] for o in outputs)
    assert accepted + rejected == processes * coroutines * attempts
    assert status.used <= limit
    assert status.used == sum(o["tokens"] for o in outputs)
    assert (status.requests, status.rejected) == (accepted, rejected)
    assert status.used > limit - 100  # demand was ~5x the limit: it got (nearly) used up


def test_limits_are_parsed_as_people_type_them():
    from store.budget import MAX_LIMIT, parse_tokens

    for text, tokens in [("700000", 700_000), ("700,000", 700_000), ("700k", 700_000),
                         ("1.5m", 1_500_000), (" 2M ", 2_000_000)]:  # fmt: skip
        assert parse_tokens(text) == tokens
    for bad in ("0", "-5", "lots", "", "nan", "1e30", str(MAX_LIMIT + 1)):
        with pytest.raises(ValueError, match="number of tokens"):
            parse_tokens(bad)
