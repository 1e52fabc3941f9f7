"""Test helper: collect the change events a block of code publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from store import ChangeEvent, Connection, parse_event


class EventLog:
    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


@asynccontextmanager
async def capture_events(conn: Connection, settle: float = 0.05) -> AsyncIterator[EventLog]:
    """Subscribe to the namespace's channel, run the block, then gather what arrived."""
    log = EventLog()
    pubsub = conn.client.pubsub()
    await pubsub.subscribe(conn.keys.events)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        yield log
        deadline = asyncio.get_running_loop().time() + settle
        while True:
            timeout = deadline - asyncio.get_running_loop().time()
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=max(timeout, 0)
            )
            if message is None:
                if timeout <= 0:
                    break
                continue
            log.events.append(parse_event(message["data"]))
            deadline = asyncio.get_running_loop().time() + settle
    finally:
        await pubsub.aclose()


_HANDSHAKE = ("HELLO", "CLIENT SETINFO", "AUTH", "SELECT")


class RoundTrips:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def __len__(self) -> int:
        return len(self.commands)


@asynccontextmanager
async def count_round_trips(conn: Connection) -> AsyncIterator[RoundTrips]:
    """Commands that clients sent to the server during the block (MONITOR, minus Lua's own calls
    and the handshake redis-py sends when it opens a new pooled connection)."""
    trips = RoundTrips()
    sentinel = "memdash-test-sentinel"
    monitor = conn.client.monitor()
    async with monitor as m:
        yield trips
        await conn.client.echo(sentinel)
        while True:
            info = await asyncio.wait_for(m.next_command(), 5)
            if info["client_type"] == "lua" or info["command"].startswith(_HANDSHAKE):
                continue
            if info["command"].startswith(f"ECHO {sentinel}"):
                break
            trips.commands.append(info["command"].split(" ", 1)[0].upper())
