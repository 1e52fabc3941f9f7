"""memdash's memory layer: Redis-backed memory for LLM agents, one atomic script per write."""

from .budget import BudgetDebit, BudgetExceededError, BudgetStatus, TokenBudgetTracker
from .cache import CacheSample, CacheSnapshot, CacheStats, MemoryCache
from .codec import MAX_VALUE_BYTES
from .connection import Connection, connect
from .conversation import ConversationMemory, ConversationMessage, ConversationSpan, TrimMarker
from .events import ChangeEvent, MalformedEvent, parse_event
from .feed import Change, Feed, SessionView
from .keys import MemoryKey
from .memory import MemoryEntry, MemoryStore, SessionMemory, VersionConflictError
from .sync import DistributedMemory
from .workflow import (
    DefinitionMismatchError,
    InvalidTransitionError,
    StatefulMemory,
    Transition,
    WorkflowStatus,
)

__all__ = [
    "MAX_VALUE_BYTES",
    "BudgetDebit",
    "BudgetExceededError",
    "BudgetStatus",
    "CacheSample",
    "CacheSnapshot",
    "CacheStats",
    "Change",
    "ChangeEvent",
    "Connection",
    "ConversationMemory",
    "ConversationMessage",
    "ConversationSpan",
    "DefinitionMismatchError",
    "DistributedMemory",
    "Feed",
    "InvalidTransitionError",
    "MalformedEvent",
    "MemoryCache",
    "MemoryEntry",
    "MemoryKey",
    "MemoryStore",
    "SessionMemory",
    "SessionView",
    "StatefulMemory",
    "TokenBudgetTracker",
    "Transition",
    "TrimMarker",
    "VersionConflictError",
    "WorkflowStatus",
    "connect",
    "parse_event",
]
