"""memdash's memory layer: Redis-backed memory for LLM agents, one atomic script per write."""

# Names load on first use (PEP 562): `memdash hook` runs once per agent event and must not pay
# for importing every component, redis-py and pydantic just to hand a payload on.
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .budget import BudgetDebit, BudgetExceededError, BudgetStatus, TokenBudgetTracker
    from .cache import CacheSample, CacheSnapshot, CacheStats, MemoryCache
    from .codec import MAX_VALUE_BYTES
    from .connection import Connection, connect
    from .control import ControlView, SessionControl, Waiting
    from .conversation import ConversationMemory, ConversationMessage, ConversationSpan, TrimMarker
    from .events import ChangeEvent, MalformedEvent, parse_event
    from .feed import Change, Feed, SessionView
    from .keys import MemoryKey
    from .memory import MemoryEntry, MemoryStore, SessionMemory, VersionConflictError
    from .notes import Note, Notes
    from .sessions import Deletion, Sessions
    from .steering import Decision, Steering
    from .sync import DistributedMemory
    from .workflow import (
        DefinitionMismatchError,
        InvalidTransitionError,
        StatefulMemory,
        ToolPolicy,
        Transition,
        WorkflowStatus,
    )

_HOME = {
    "BudgetDebit": "budget",
    "BudgetExceededError": "budget",
    "BudgetStatus": "budget",
    "TokenBudgetTracker": "budget",
    "CacheSample": "cache",
    "CacheSnapshot": "cache",
    "CacheStats": "cache",
    "MemoryCache": "cache",
    "MAX_VALUE_BYTES": "codec",
    "Connection": "connection",
    "ControlView": "control",
    "SessionControl": "control",
    "Waiting": "control",
    "Note": "notes",
    "Notes": "notes",
    "Deletion": "sessions",
    "Sessions": "sessions",
    "Decision": "steering",
    "Steering": "steering",
    "ToolPolicy": "workflow",
    "connect": "connection",
    "ConversationMemory": "conversation",
    "ConversationMessage": "conversation",
    "ConversationSpan": "conversation",
    "TrimMarker": "conversation",
    "ChangeEvent": "events",
    "MalformedEvent": "events",
    "parse_event": "events",
    "Change": "feed",
    "Feed": "feed",
    "SessionView": "feed",
    "MemoryKey": "keys",
    "MemoryEntry": "memory",
    "MemoryStore": "memory",
    "SessionMemory": "memory",
    "VersionConflictError": "memory",
    "DistributedMemory": "sync",
    "DefinitionMismatchError": "workflow",
    "InvalidTransitionError": "workflow",
    "StatefulMemory": "workflow",
    "Transition": "workflow",
    "WorkflowStatus": "workflow",
}


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "ControlView",
    "ConversationMemory",
    "ConversationMessage",
    "ConversationSpan",
    "Decision",
    "DefinitionMismatchError",
    "Deletion",
    "DistributedMemory",
    "Feed",
    "InvalidTransitionError",
    "MalformedEvent",
    "MemoryCache",
    "MemoryEntry",
    "MemoryKey",
    "MemoryStore",
    "Note",
    "Notes",
    "SessionControl",
    "SessionMemory",
    "SessionView",
    "Sessions",
    "StatefulMemory",
    "Steering",
    "TokenBudgetTracker",
    "ToolPolicy",
    "Transition",
    "TrimMarker",
    "VersionConflictError",
    "Waiting",
    "WorkflowStatus",
    "connect",
    "parse_event",
]
