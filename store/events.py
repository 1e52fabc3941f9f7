"""The change-event contract: one event per mutation, published by the same script as the write.

Every Lua script that mutates a session starts with ``_event.lua``: it takes the session's next
sequence number, touches the namespace's session registry and publishes the event, all inside the
one atomic EVALSHA. Readers (the feed, the dashboard) parse with :func:`parse_event`; anything
that does not parse is the reader's to count and skip.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_EVENT_BYTES = 64 * 1024
"""Events carry small payloads; a message bigger than this on the channel is not ours."""


class ChangeEvent(BaseModel):
    """One change to one session, in that session's order."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    namespace: str = Field(alias="ns")
    session: str
    kind: str
    seq: int = Field(ge=1)
    ts: int = Field(description="server time of the write, ms since the epoch")
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)


class MalformedEvent(ValueError):
    """A message on the event channel that is not a ChangeEvent."""


def parse_event(data: str | bytes) -> ChangeEvent:
    if len(data) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"event of {len(data)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        return ChangeEvent.model_validate_json(data)
    except ValidationError as e:
        raise MalformedEvent(str(e)) from None
