"""MemoryKey and the key layout.

Every key of session S in namespace NS is ``NS:{NS:S}:<component>``: the braces are the Redis
Cluster hash tag, so all of a session's keys share one slot and one Lua script may touch them
all. Parts that come from users are escaped so that no two sessions or keys can collide.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, field_validator

MAX_PART_LENGTH = 256
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "{": "%7B", "}": "%7D"})


def check_part(field: str, value: object) -> str:
    """Validate one user-supplied name (session id, scope, state…); errors name the field."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > MAX_PART_LENGTH:
        raise ValueError(f"{field} is {len(value)} characters; the limit is {MAX_PART_LENGTH}")
    for ch in value:
        if unicodedata.category(ch) == "Cc":
            raise ValueError(f"{field} must not contain control characters (found {ch!r})")
    return value


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"namespace {namespace!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
        )
    return namespace


def escape(part: str) -> str:
    """Reversible escaping of the characters that delimit keys and hash tags."""
    return part.translate(_ESCAPES)


class MemoryKey(BaseModel):
    """Address of one value: which scope, whose (the session), which component."""

    model_config = ConfigDict(frozen=True)

    scope: str
    user_id: str
    component: str

    def __init__(
        self, scope: Any = None, user_id: Any = None, component: Any = None, /, **kwargs: Any
    ) -> None:
        positional = {"scope": scope, "user_id": user_id, "component": component}
        kwargs.update({k: v for k, v in positional.items() if v is not None})
        super().__init__(**kwargs)

    @field_validator("scope", "user_id", "component", mode="before")
    @classmethod
    def _valid_part(cls, value: object, info: Any) -> str:
        return check_part(info.field_name, value)

    @property
    def session(self) -> str:
        return self.user_id


class NamespaceKeys:
    """Keys and channels shared by the whole namespace."""

    __slots__ = ("_sessions", "events", "namespace", "sessions")

    def __init__(self, namespace: str) -> None:
        self.namespace = check_namespace(namespace)
        self.sessions = f"{namespace}:sessions"  # ZSET session -> last activity (ms)
        self.events = f"{namespace}:events"  # pub/sub channel of change events
        self._sessions: dict[str, SessionKeys] = {}

    def session(self, session: str) -> SessionKeys:
        keys = self._sessions.get(session)
        if keys is None:
            if len(self._sessions) >= 4096:  # a bounded memo: key names are on the hot path
                self._sessions.clear()
            keys = self._sessions[session] = SessionKeys(self.namespace, session)
        return keys


class SessionKeys:
    """Keys of one session; all carry the same hash tag."""

    __slots__ = ("header", "namespace", "prefix", "session")

    def __init__(self, namespace: str, session: str) -> None:
        self.namespace = namespace
        self.session = session
        self.prefix = f"{namespace}:{{{namespace}:{escape(session)}}}:"
        # The start of every event of this session, as JSON (see _event.lua).
        self.header = '{"ns":' + json.dumps(namespace) + ',"session":' + json.dumps(session)

    @property
    def meta(self) -> str:
        """HASH: seq, created, last."""
        return self.prefix + "meta"

    @property
    def memory_index(self) -> str:
        """SET of this session's MemoryStore keys without the prefix (may list expired ones)."""
        return self.prefix + "mem"

    def memory(self, scope: str, component: str) -> str:
        """STRING: '<version> <updated ms> <value JSON>'."""
        return f"{self.prefix}{memory_member(scope, component)}"

    def key(self, component: str) -> str:
        """Key of a fixed component of the session (``budget``, ``conversation``…)."""
        return self.prefix + component


def memory_member(scope: str, component: str) -> str:
    """A value key without its session prefix; the member naming it in the memory index."""
    return f"mem:{escape(scope)}:{escape(component)}"


def split_memory_member(member: str) -> tuple[str, str]:
    """(scope, component) back from a memory index member."""
    _, scope, component = member.split(":", 2)
    return unquote(scope), unquote(component)
