import asyncio
from datetime import datetime

import pytest
import redis

from store.server import RedisServer, free_port
from store.sync import DistributedMemory


async def eventually(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_publish_and_subscribe_state(conn):
    received = []
    async with DistributedMemory(conn) as a, DistributedMemory(conn) as b:
        await b.subscribe_to_state("plan", received.append)
        state = {"step": 2, "at": datetime(2026, 11, 24, 7, 0), "text": "[bold]x[/] \x1b[31m"}
        assert await a.publish_state("plan", state) == 1
        await eventually(lambda: received == [state])


async def test_channels_live_under_the_namespace(conn):
    got = []
    pubsub = conn.client.pubsub()
    await pubsub.psubscribe("*")
    async with DistributedMemory(conn) as memory:
        await memory.subscribe_to_state("x", got.append)
        await memory.publish_state("x", 1)
        await eventually(lambda: got == [1])
    channels = set()
    for _ in range(10):  # every message that went by, under any channel name
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            channels.add(message["channel"])
    await pubsub.aclose()
    assert channels == {"test:sync:x"}


async def test_messages_arrive_in_order_and_async_callbacks_are_awaited(conn):
    seen = []

    async def slow(state):
        await asyncio.sleep(0.001)
        seen.append(state)

    async with DistributedMemory(conn) as memory:
        await memory.subscribe_to_state("n", slow)
        for i in range(100):
            await memory.publish_state("n", i)
        await eventually(lambda: len(seen) == 100)
    assert seen == list(range(100))


async def test_a_failing_callback_is_counted_and_the_listener_goes_on(conn):
    seen = []

    def picky(state):
        if state == "bad":
            raise RuntimeError("boom")
        seen.append(state)

    async with DistributedMemory(conn) as memory:
        await memory.subscribe_to_state("c", picky)
        for state in ("a", "bad", "b"):
            await memory.publish_state("c", state)
        await eventually(lambda: seen == ["a", "b"])
        assert memory.redis.callback_errors == 1


async def test_bad_channel_and_data_are_refused(conn):
    async with DistributedMemory(conn) as memory:
        with pytest.raises(ValueError, match="channel"):
            await memory.publish_state("", 1)
        with pytest.raises(TypeError):
            await memory.redis.publish("c", {"not": "text"})
        with pytest.raises(TypeError):
            await memory.publish_state("c", object())


async def test_close_stops_the_listener_cleanly(conn):
    memory = DistributedMemory(conn)
    await memory.subscribe_to_state("c", lambda s: None)
    listener = memory.redis._listener
    await memory.close()
    assert listener.done()
    assert await conn.client.pubsub_numsub("test:sync:c") == [("test:sync:c", 0)]


@pytest.fixture
def restartable_server(tmp_path):
    server = RedisServer(directory=tmp_path, port=free_port()).start()
    yield server
    server.stop()


async def test_listener_survives_a_redis_restart(restartable_server):
    received = []
    memory = DistributedMemory(restartable_server.url, namespace="test")
    publisher = DistributedMemory(restartable_server.url, namespace="test")
    try:
        await memory.subscribe_to_state("s", received.append)
        await publisher.publish_state("s", "before")
        await eventually(lambda: received == ["before"])

        restartable_server.kill()
        restartable_server.start()

        async def delivered() -> bool:
            try:
                return await publisher.publish_state("s", "after") > 0
            except redis.exceptions.ConnectionError:
                return False

        deadline = asyncio.get_running_loop().time() + 15
        while not await delivered():  # until the listener has resubscribed
            assert asyncio.get_running_loop().time() < deadline, "listener never came back"
            await asyncio.sleep(0.05)
        await eventually(lambda: "after" in received)
        assert memory.redis.reconnects >= 1
    finally:
        await memory.close()
        await publisher.close()


async def test_listener_waits_out_an_outage(restartable_server):
    """Redis down for a while (several failed resubscribe attempts), then back."""
    received = []
    memory = DistributedMemory(restartable_server.url, namespace="test")
    try:
        await memory.subscribe_to_state("s", received.append)
        restartable_server.kill()
        await asyncio.sleep(0.5)
        restartable_server.start()
        publisher = DistributedMemory(restartable_server.url, namespace="test")
        deadline = asyncio.get_running_loop().time() + 15
        while await publisher.publish_state("s", "back") == 0:
            assert asyncio.get_running_loop().time() < deadline, "listener never came back"
            await asyncio.sleep(0.05)
        await eventually(lambda: "back" in received)
        await publisher.close()
    finally:
        await memory.close()
