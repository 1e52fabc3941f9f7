"""Usage example 2 of the six the store's API comes from, verbatim apart from its import lines
(kept out of the formatter).

The example checks the budget and then records, two round trips; record_usage enforces the limit
atomically by default, so even this subclass cannot overspend when callers race.
"""

import asyncio
from datetime import datetime

import pytest

from store import BudgetExceededError, TokenBudgetTracker


# fmt: off
class ContextualTokenBudget(TokenBudgetTracker):
    """Contextual token budget tracking"""

    async def track_request(self, request_id: str, tokens_used: int):
        """Track tokens per request"""

        # Check budget
        remaining = await self.get_remaining_budget()

        if tokens_used > remaining:
            raise BudgetExceededError(
                f"Token exceeded: {tokens_used} > {remaining}"
            )

        # Record token usage
        await self.record_usage(
            request_id=request_id,
            tokens=tokens_used,
            timestamp=datetime.now()
        )
# fmt: on


async def test_seed_budget_tracks_and_raises_on_overspend(conn):
    budget = ContextualTokenBudget("s1", 1000, redis=conn)
    await budget.track_request("r1", 400)
    assert await budget.get_remaining_budget() == 600
    with pytest.raises(BudgetExceededError, match=r"^Token exceeded: 700 > 600$") as info:
        await budget.track_request("r2", 700)
    assert (info.value.tokens, info.value.remaining) == (700, 600)
    await budget.track_request("r3", 600)
    assert await budget.get_remaining_budget() == 0
    status = await budget.status()
    assert (status.used, status.requests) == (1000, 2)
    assert status.rejected == 0  # the example's own check refused r2 before asking the server


async def test_seed_budget_cannot_overspend_when_callers_race(conn):
    budget = ContextualTokenBudget("s1", 1000, redis=conn)

    async def attempt(i):
        try:
            await budget.track_request(f"r{i}", 100)
            return True
        except BudgetExceededError:
            return False

    results = await asyncio.gather(*(attempt(i) for i in range(25)))
    assert results.count(True) == 10
    status = await budget.status()
    assert (status.used, status.requests) == (1000, 10)
    assert await budget.get_remaining_budget() == 0


async def test_seed_budget_with_the_default_connection(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    budget = ContextualTokenBudget("s1", 1000)  # redis=None: the resolved default connection
    await budget.track_request("r1", 250)
    assert await budget.get_remaining_budget() == 750
    await budget.redis.aclose()
