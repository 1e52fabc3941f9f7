"""Usage example 1 of the six the store's API comes from, verbatim apart from its import line."""

from store import MemoryKey, MemoryStore


class SessionMemory(MemoryStore):
    """User session memory"""

    async def save_user_context(self, user_id: str, context: dict):
        """Save user context"""

        key = MemoryKey(scope="session", user_id=user_id, component="context")

        await self.set(key, context, ttl=3600)  # 1 hour

    async def load_user_context(self, user_id: str) -> dict:
        """Load user context"""

        key = MemoryKey(scope="session", user_id=user_id, component="context")

        return await self.get(key)


async def test_seed_session_memory_with_the_default_connection(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    memory = SessionMemory()  # redis=None: the resolved default connection
    context = {"task": "refactor auth", "files": ["a.py", "b.py"], "depth": {"n": 2}}
    await memory.save_user_context("user-1", context)
    assert await memory.load_user_context("user-1") == context
    assert (
        3590
        < await memory.ttl(MemoryKey(scope="session", user_id="user-1", component="context"))
        <= 3600
    )
    assert await memory.load_user_context("nobody") is None


async def test_store_session_memory_matches_the_seed(conn):
    from store import SessionMemory as Shipped

    await Shipped(conn).save_user_context("u", {"a": 1})
    assert await SessionMemory(conn).load_user_context("u") == {"a": 1}
