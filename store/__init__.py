"""memdash's memory layer: Redis-backed memory for LLM agents, one atomic script per write."""

from .codec import MAX_VALUE_BYTES
from .connection import Connection, connect
from .events import ChangeEvent, MalformedEvent, parse_event
from .feed import Change, Feed, SessionView
from .keys import MemoryKey
from .memory import MemoryEntry, MemoryStore, SessionMemory, VersionConflictError
from .sync import DistributedMemory

__all__ = [
    "MAX_VALUE_BYTES",
    "Change",
    "ChangeEvent",
    "Connection",
    "DistributedMemory",
    "Feed",
    "MalformedEvent",
    "MemoryEntry",
    "MemoryKey",
    "MemoryStore",
    "SessionMemory",
    "SessionView",
    "VersionConflictError",
    "connect",
    "parse_event",
]
