"""Usage example 6 of the six the store's API comes from, verbatim apart from its import lines."""

import asyncio
import json

from store import DistributedMemory


class RedisBackedMemory(DistributedMemory):
    """Redis-backed distributed memory"""

    async def publish_state(self, channel: str, state: dict):
        """Publish state"""

        await self.redis.publish(channel, json.dumps(state))

    async def subscribe_to_state(self, channel: str, callback):
        """Subscribe to state"""

        async def on_message(message):
            state = json.loads(message["data"])
            await callback(state)

        await self.redis.subscribe(channel, callback=on_message)


async def test_seed_distributed_memory(redis_url, monkeypatch):
    monkeypatch.setenv("MEMDASH_REDIS_URL", redis_url)
    monkeypatch.setenv("MEMDASH_NAMESPACE", "test")
    received = []

    async def callback(state):
        received.append(state)

    listener, speaker = RedisBackedMemory(), RedisBackedMemory()
    try:
        await listener.subscribe_to_state("agents", callback)  # returns once subscribed
        await speaker.publish_state("agents", {"agent": "a1", "status": "coding"})
        for _ in range(200):
            if received:
                break
            await asyncio.sleep(0.01)
        assert received == [{"agent": "a1", "status": "coding"}]
    finally:
        await listener.close()
        await speaker.close()
