"""Usage example 3 of the six the store's API comes from, verbatim apart from its import lines
(kept byte-exact: not formatted,
and its implicit Optional ``context: dict = None`` is the example's)."""

# ruff: noqa: RUF013

from datetime import datetime

from store import ConversationMemory
from tests.events import capture_events


# fmt: off
class ContextAwareConversation(ConversationMemory):
    """Context-aware conversation memory"""

    async def add_message(self, role: str, content: str, context: dict = None):
        """Add message"""

        message = {
            "role": role,
            "content": content,
            "context": context or {},
            "timestamp": datetime.now()
        }

        await self.append(message)

        # Length limit (keep only recent 50 messages)
        if len(self.history) > 50:
            await self.trim_old_messages(keep=50)

    async def get_context_summary(self) -> str:
        """Get current context summary"""

        # Extract context from recent messages
        recent = self.history[-10:]

        summary = "\n".join([
            f"{msg['role']}: {msg['content'][:100]}"
            for msg in recent
        ])

        return summary
# fmt: on


async def test_seed_conversation_keeps_the_last_50_and_says_what_went(conn):
    conversation = ContextAwareConversation("s1", redis=conn)
    async with capture_events(conn) as log:
        for i in range(60):
            role = "user" if i % 2 == 0 else "assistant"
            await conversation.add_message(role, f"message {i} " + "w" * 120, {"turn": i})

    assert len(conversation.history) == 50
    assert [m["index"] for m in conversation.history] == list(range(10, 60))
    stored = await ContextAwareConversation("s1", redis=conn).load()
    assert stored == conversation.history
    assert (await conversation.count()).retained == 50
    assert all(isinstance(m["timestamp"], datetime) for m in stored)
    assert stored[0]["context"] == {"turn": 10}

    trims = [e for e in log.events if e.kind == "conversation.trim"]
    assert len(trims) == 10
    assert [e.payload["count"] for e in trims] == [1] * 10
    assert [e.payload["first"] for e in trims] == list(range(10))
    assert log.kinds().count("conversation.append") == 60
    assert [e.seq for e in log.events] == list(range(1, 71))
    markers = await conversation.trims()
    assert [(m.first, m.count, m.reason) for m in markers] == [(i, 1, "manual") for i in range(10)]

    summary = await conversation.get_context_summary()
    expected = [
        f"{'user' if i % 2 == 0 else 'assistant'}: " + (f"message {i} " + "w" * 120)[:100]
        for i in range(50, 60)
    ]
    assert summary == "\n".join(expected)
    assert summary == await ConversationMemory.get_context_summary(conversation)


async def test_seed_conversation_round_trips_hostile_text(conn):
    conversation = ContextAwareConversation("s2", redis=conn)
    text = '[bold]x[/] \x1b[31mred\x1b[0m \x00 "quoted" {}'
    await conversation.add_message("user", text, {"raw": text})
    fresh = ContextAwareConversation("s2", redis=conn)
    await fresh.load()
    assert fresh.history == conversation.history
    assert fresh.history[0]["content"] == text
    assert await fresh.get_context_summary() == f"user: {text}"
