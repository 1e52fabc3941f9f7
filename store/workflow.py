"""StatefulMemory: a workflow state machine per session, each move one atomic script.

The definition (state -> allowed next states) is stored with the session, so a dashboard can draw
the diagram and offer valid next states, and so a script can check a move against the STORED
current state: two agents racing from the same state cannot both move (one wins, the other gets
:class:`InvalidTransitionError`).

Layout (all under the session's hash tag, see ``SessionKeys.key``):

- ``<prefix>wf``: HASH ``state``, ``data`` (JSON of the current state's data), ``since`` (ms the
  state was entered), ``seq`` (event seq of that change), ``digest`` (of the definition),
  ``def`` (the definition as JSON ``{"transitions": {state: [targets]}, "initial": state}``).
- ``<prefix>wf:graph``: SET of every state name and every allowed move ``from\\0to`` (state names
  hold no control characters, so the NUL separator is unambiguous).
- ``<prefix>wf:history``: LIST of transitions, NEWEST FIRST, each the JSON array
  ``[from, to, actor, forced, reason, data, seq, ts]`` (the fields of :class:`Transition`, in
  order: an array parses in half the time of an object). At most :data:`HISTORY_LIMIT` are
  kept; when a move goes over, the oldest are trimmed down to :data:`HISTORY_TRIM_TO`, so the
  trim runs once per 32 moves.

Scripts (one per operation): ``workflow_define.lua``, ``workflow_transition.lua``,
``workflow_force.lua``, ``workflow_set_state.lua``, ``workflow_record.lua``. Each checks that the
stored definition is this object's (by digest): if none is stored yet it is stored first
(:meth:`StatefulMemory.define`, one extra round trip, once per session); if another one is stored,
:class:`DefinitionMismatchError` is raised and nothing is written: definitions are replaced only by
an explicit ``define()``, never mixed.

Events (payload fields; data rides along only when its JSON is at most 2 KiB):

- ``workflow.define``: digest, initial, replaced, [previous (digest)], [reset (the state that
  left)], state, [definition (when its JSON is at most 2 KiB)].
- ``workflow.transition``: from, to, actor, forced, [reason (forced)], [data (not forced)],
  [at (ms, record_transition's timestamp)].
- ``workflow.state`` (set_state): from, to, actor, [data].
- ``workflow.rejected`` (a refused move; nothing is written): from (the stored state), to,
  actor, [expected (set_state's mirror)].

:class:`WorkflowSection` is the feed's section: a :class:`WorkflowView` per session.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import partial
from typing import Any, NamedTuple, Self

import pydantic_core
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.exceptions import ResponseError

from . import codec
from .connection import Connection, resolve
from .keys import SessionKeys, check_part

HISTORY_LIMIT = 1000
"""Most transitions kept per session (_workflow.lua holds the same number)."""

HISTORY_TRIM_TO = 968
"""What a trim keeps: between this many and HISTORY_LIMIT transitions are kept once full."""

RECENT_TRANSITIONS = 10
"""Newest transitions a :class:`WorkflowView` (the feed's snapshot) holds."""

MAX_DATA_BYTES = 64 * 1024
"""Largest JSON of a state's data: it is kept in the state and in each of up to 1000 history
entries, so the limit is lower than :data:`store.codec.MAX_VALUE_BYTES`."""

MAX_REASON_CHARS = 1024
MAX_STATES = 1024
MAX_MOVES = 16384
EVENT_DATA_BYTES = 2048
"""Data up to this size rides in ``workflow.transition``/``workflow.state`` events."""

DEFAULT_ACTOR = "agent"


class InvalidTransitionError(Exception):
    """A move the definition does not allow from the stored state, or from a stale one."""

    def __init__(
        self,
        message: str,
        *,
        from_state: str | None = None,
        to_state: str | None = None,
        current: str | None = None,
    ) -> None:
        super().__init__(message)
        self.from_state, self.to_state, self.current = from_state, to_state, current


class DefinitionMismatchError(Exception):
    """The session has another workflow definition stored than this object's."""


class Transition(NamedTuple):
    """One history entry (stored as a JSON array of these fields, in this order)."""

    from_state: str
    to_state: str
    actor: str
    forced: bool
    reason: str | None  # why it was forced
    data: Any  # the data the move set (null for forced moves)
    seq: int  # the session seq of the event that recorded it
    ts: int  # ms since the epoch: the server's clock, or record_transition's timestamp

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)


class WorkflowStatus(NamedTuple):
    """The stored current state, as :meth:`StatefulMemory.load` reads it."""

    state: str
    data: Any
    since: datetime | None  # None: nothing stored yet (the state is the initial one)
    seq: int  # session seq of the change that entered the state; 0 when nothing is stored


def _check_state(what: str, value: object) -> str:
    check_part(what, value)
    try:
        value.encode()  # type: ignore[union-attr]
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (found a lone surrogate)") from None
    return value  # type: ignore[return-value]


def _normalise(transitions: object, initial: object) -> tuple[dict[str, tuple[str, ...]], str]:
    """Validated ``state -> targets`` (duplicates dropped, order kept) and initial state.

    Every target must itself be a key: a terminal state is listed with no targets
    (``"done": []``), so a misspelt target is an error rather than a silent dead end.
    """
    if not isinstance(transitions, Mapping):
        raise TypeError(
            "transitions must be a mapping of state -> allowed next states, "
            f"not {type(transitions).__name__}"
        )
    if not transitions:
        raise ValueError("transitions must define at least one state")
    if len(transitions) > MAX_STATES:
        raise ValueError(f"transitions has {len(transitions)} states; the limit is {MAX_STATES}")
    graph: dict[str, tuple[str, ...]] = {}
    moves = 0
    for state, targets in transitions.items():
        _check_state("transitions state", state)
        if isinstance(targets, str | bytes) or not isinstance(targets, Iterable):
            raise TypeError(
                f"transitions[{state!r}] must be an iterable of state names, "
                f"not {type(targets).__name__}"
            )
        checked = [_check_state(f"transitions[{state!r}] target", t) for t in targets]
        graph[state] = tuple(dict.fromkeys(checked))
        moves += len(graph[state])
    if moves > MAX_MOVES:
        raise ValueError(f"transitions has {moves} moves; the limit is {MAX_MOVES}")
    for state, targets in graph.items():
        for target in targets:
            if target not in graph:
                raise ValueError(
                    f"transitions[{state!r}]: target {target!r} is not a state; "
                    f"list terminal states with no targets, e.g. {target!r}: []"
                )
    _check_state("initial", initial)
    if initial not in graph:
        raise ValueError(f"initial state {initial!r} is not a state of transitions")
    return graph, initial  # type: ignore[return-value]


def _check_actor(actor: object) -> str:
    return check_part("actor", actor)


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a string, not {type(reason).__name__}")
    if not reason.strip():
        raise ValueError("reason must not be empty: say why the state is forced")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"reason is {len(reason)} characters; the limit is {MAX_REASON_CHARS}")
    try:
        reason.encode()
    except UnicodeEncodeError:
        raise ValueError("reason must be valid Unicode text (found a lone surrogate)") from None
    return reason


MAX_POLICY_PATTERNS = 64
RESERVED_NAMES = frozenset(
    {"workflow", "memory", "budget", "conversation", "cache", "notes", "control", "resync"}
)
"""Names a named workflow cannot take: its events are ``<name>.*``, and these kinds are taken."""
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_workflow_name(name: object) -> str | None:
    """None (the session's workflow) or a short lowercase name (a second one, e.g. ``task``)."""
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise ValueError(
            f"workflow name {name!r} must be 1-32 of a-z, 0-9, '_' (starting with a letter) and "
            f"not one of {', '.join(sorted(RESERVED_NAMES))}"
        )
    return name


def workflow_key(name: str | None) -> str:
    """The component key of a session's workflow hash: ``wf``, or ``wf.<name>``."""
    return "wf" if name is None else f"wf.{name}"


class ToolPolicy(BaseModel):
    """Which tools an agent may not use while the workflow is in a state, and why.

    ``deny`` holds tool-name patterns (shell-style, case-sensitive: ``Edit``, ``mcp__*``,
    ``*`` for every tool); ``reason`` is what the agent and the operator read when a call is
    refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    deny: tuple[str, ...] = Field(min_length=1, max_length=MAX_POLICY_PATTERNS)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)

    @field_validator("deny")
    @classmethod
    def _patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _check_state("tool pattern", pattern)
        return patterns

    def denies(self, tool: str) -> bool:
        return any(fnmatchcase(tool, pattern) for pattern in self.deny)

    def refusal(self, state: str, tool: str) -> str:
        """What the agent reads when ``tool`` is refused in ``state``."""
        why = self.reason or f"{tool} is not allowed in this state"
        return f"workflow state {state!r} denies {tool}: {why}"


def check_policies(
    policies: Mapping[str, Any] | None, graph: Mapping[str, Any]
) -> dict[str, ToolPolicy]:
    """Validated ``state -> ToolPolicy``; every state named must be a state of ``graph``."""
    if policies is None:
        return {}
    if not isinstance(policies, Mapping):
        raise TypeError(
            f"policies must be a mapping of state -> policy, not {type(policies).__name__}"
        )
    checked: dict[str, ToolPolicy] = {}
    for state, policy in policies.items():
        if state not in graph:
            raise ValueError(f"policies[{state!r}]: {state!r} is not a state of transitions")
        try:
            checked[state] = (
                policy if isinstance(policy, ToolPolicy) else ToolPolicy.model_validate(policy)
            )
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'policy'}: {err['msg']}" for err in e.errors()
            )
            raise ValueError(f"policies[{state!r}]: {problems}") from None
    return checked


def _encode_data(data: Any) -> str:
    return "null" if data is None else codec.encode(data, limit=MAX_DATA_BYTES)


def _since(ms: str | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


_new_transition = partial(tuple.__new__, Transition)


def decode_history(items: list[str]) -> list[Transition]:
    """Stored history entries as Transitions, in one parse."""
    if not items:
        return []
    text = "[" + ",".join(items) + "]"
    entries = pydantic_core.from_json(text)
    if "$" in text:  # codec tags can only sit in data, and only if a "$" is there
        for entry in entries:
            entry[5] = codec.untag(entry[5])
    return list(map(_new_transition, entries))


class StatefulMemory:
    """A session's workflow: a state, its data, the definition, and a capped history.

    ``current_state`` is a local mirror of the stored state: ``initial`` until :meth:`load`, then
    updated by this object's own moves (and by a rejected :meth:`transition`, which learns the
    stored state for free). Moves are always checked against the stored state, never the mirror.

    :meth:`set_state` + :meth:`record_transition` are the two halves of the usage examples'
    ``transition`` (check on the mirror, save the state, record the move): ``set_state`` leaves
    the mirror alone (usage example 5 still reads it as the FROM state afterwards) and
    ``record_transition`` advances it. :meth:`transition` does both atomically in one script.
    """

    def __init__(
        self,
        session_id: str,
        *,
        transitions: Mapping[str, Iterable[str]],
        initial: str,
        policies: Mapping[str, Any] | None = None,
        name: str | None = None,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.session_id = _check_state("session_id", session_id)
        graph, self.initial = _normalise(transitions, initial)
        self.transitions: dict[str, tuple[str, ...]] = graph
        self.policies: dict[str, ToolPolicy] = check_policies(policies, graph)
        self.name = check_workflow_name(name)
        self.current_state: str = self.initial
        self.redis: Connection = resolve(redis, namespace)
        self._session = self.redis.session(session_id)
        self._key = self._session.key(workflow_key(self.name))
        self._history_key = self._key + ":history"
        # A named workflow's scripts get its hash as KEYS[3] (see _workflow.lua).
        self._keys: tuple[str, ...] = () if self.name is None else (self._key,)
        self._targets = {state: frozenset(targets) for state, targets in graph.items()}
        definition: dict[str, Any] = {"transitions": graph, "initial": self.initial}
        if self.policies:
            definition["policies"] = {
                state: policy.model_dump(exclude_none=True)
                for state, policy in self.policies.items()
            }
        self._definition_json = json.dumps(definition)
        if len(self._definition_json) > codec.MAX_VALUE_BYTES:
            raise ValueError(
                f"the definition is {len(self._definition_json)} bytes as JSON; "
                f"the limit is {codec.MAX_VALUE_BYTES}"
            )
        canonical_definition: dict[str, Any] = {
            "initial": self.initial,
            "transitions": {s: sorted(t) for s, t in graph.items()},
        }
        if self.policies:  # a definition without policies keeps the digest it always had
            canonical_definition["policies"] = definition["policies"]
        canonical = json.dumps(canonical_definition, sort_keys=True)
        self._digest = hashlib.sha1(canonical.encode()).hexdigest()[:16]
        self._members = [*graph, *(f"{a}\0{b}" for a, targets in graph.items() for b in targets)]
        self._moves: dict[tuple[str, str], str] = {}

    @classmethod
    async def open(
        cls,
        session_id: str,
        *,
        name: str | None = None,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> Self:
        """The workflow stored for ``session_id`` (its definition, state loaded): for a dashboard,
        which does not know the definition. LookupError when the session has none."""
        conn = resolve(redis, namespace)
        check_part("session_id", session_id)
        key = conn.session(session_id).key(workflow_key(check_workflow_name(name)))
        stored = await conn.client.hget(key, "def")
        if stored is None:
            what = "workflow" if name is None else f"{name} workflow"
            raise LookupError(f"session {session_id!r} has no {what} stored")
        machine = cls.from_definition(session_id, json.loads(stored), name=name, redis=conn)
        await machine.load()
        return machine

    @classmethod
    def from_definition(
        cls,
        session_id: str,
        definition: Mapping[str, Any],
        *,
        name: str | None = None,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> Self:
        """A workflow from a definition as it is stored (``{"transitions", "initial",
        ["policies"]}``): one read back from the store, or a project's file."""
        return cls(
            session_id,
            transitions=definition["transitions"],
            initial=definition["initial"],
            policies=definition.get("policies"),
            name=name,
            redis=redis,
            namespace=namespace,
        )

    @property
    def namespace(self) -> str:
        return self.redis.namespace

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.transitions)

    def is_valid_transition(self, from_state: str, to_state: str) -> bool:
        """Whether the definition allows ``from_state -> to_state`` (unknown states: False)."""
        targets = self._targets.get(from_state) if type(from_state) is str else None
        return targets is not None and type(to_state) is str and to_state in targets

    def next_states(self, state: str | None = None) -> tuple[str, ...]:
        """Allowed moves from ``state`` (default: the mirror), in definition order."""
        return self.transitions[self._known(self.current_state if state is None else state)]

    def _known(self, state: object, what: str = "state") -> str:
        if type(state) is not str or state not in self._targets:
            raise ValueError(f"{what} {state!r} is not a state of this workflow")
        return state

    def _move(self, state: str, actor: str) -> str:
        """One script argument for a move: digest, target, target and actor as JSON (see
        workflow_transition.lua); memoised, as a workflow has few (state, actor) pairs."""
        key = (state, actor)
        move = self._moves.get(key) if type(actor) is str else None
        if move is None:
            _check_actor(actor)
            if len(self._moves) >= 1024:
                self._moves.clear()
            move = f"{self._digest}{state}\0{json.dumps(state)}\0{json.dumps(actor)}"
            self._moves[key] = move
        return move

    async def _run(self, script: str, args: tuple[Any, ...]) -> Any:
        """Run a move; stores the definition first if the session has none yet."""
        for _ in range(2):
            try:
                return await self.redis.run(script, self._session, self._keys, args)
            except ResponseError as e:
                message = str(e)
                if message == "UNDEFINED":
                    await self._define(DEFAULT_ACTOR)
                    continue
                if message.startswith("REDEFINED "):
                    raise self._mismatch(message.split(" ", 1)[1]) from None
                raise
        raise RuntimeError(f"workflow {self.session_id!r}: the definition keeps disappearing")

    def _mismatch(self, stored: str) -> DefinitionMismatchError:
        return DefinitionMismatchError(
            f"session {self.session_id!r} has another workflow definition stored "
            f"(digest {stored}, this one is {self._digest}); define() replaces it, "
            "StatefulMemory.open() uses it"
        )

    async def _define(self, actor: str) -> tuple[bool, str]:
        changed, state = await self.redis.run(
            "workflow_define",
            self._session,
            self._keys,
            (self._digest, self._definition_json, self.initial, json.dumps(actor), *self._members),
        )
        return bool(changed), state

    async def define(self, *, actor: str = DEFAULT_ACTOR) -> bool:
        """Store this definition for the session, replacing another one; False if already stored.

        On a replacement the state is kept if the new definition has it, else it goes back to
        ``initial`` (recorded in the history as forced, reason "definition replaced"). Publishes
        ``workflow.define`` when something changed. Updates ``current_state``.
        """
        _check_actor(actor)
        changed, self.current_state = await self._define(actor)
        return changed

    async def definition(self) -> dict[str, Any] | None:
        """The definition stored for the session, ``{"transitions": {state: [targets]},
        "initial": state}``; None until the first define() or move."""
        stored = await self.redis.client.hget(self._key, "def")
        return None if stored is None else json.loads(stored)

    async def load(self) -> WorkflowStatus:
        """Read the stored state into ``current_state``; one round trip."""
        digest, state, data, since, seq = await self.redis.client.hmget(
            self._key, "digest", "state", "data", "since", "seq"
        )
        if digest is None:
            self.current_state = self.initial
            return WorkflowStatus(self.initial, None, None, 0)
        if digest != self._digest:
            raise self._mismatch(digest)
        self.current_state = state
        return WorkflowStatus(state, codec.decode(data), _since(since), int(seq))

    async def transition(self, state: str, data: Any = None, *, actor: str = DEFAULT_ACTOR) -> int:
        """Move from the STORED state to ``state`` with ``data`` (JSON, <= MAX_DATA_BYTES);
        returns the event's seq.

        One script checks the move against the stored state and definition, sets the state and
        appends to the history; a move the definition does not allow raises
        :class:`InvalidTransitionError` ("a -> b not allowed", a being the stored state), writes
        nothing, and publishes ``workflow.rejected`` so a dashboard sees the attempt.
        """
        move = self._move(self._known(state), actor)
        text = _encode_data(data)
        try:
            seq = await self._run("workflow_transition", (move, text))
        except ResponseError as e:
            message = str(e)
            if message.startswith("INVALID "):
                current = self.current_state = message[8:]
                raise InvalidTransitionError(
                    f"{current} -> {state} not allowed",
                    from_state=current,
                    to_state=state,
                    current=current,
                ) from None
            raise
        self.current_state = state
        return seq

    async def force_state(self, state: str, reason: str, *, actor: str = DEFAULT_ACTOR) -> int:
        """Operators' move to any known state, allowed or not; recorded as forced with
        ``reason``. The new state's data is null. Returns the event's seq."""
        move = self._move(self._known(state), actor)
        seq = await self._run("workflow_force", (move, json.dumps(_check_reason(reason))))
        self.current_state = state
        return seq

    async def set_state(self, state: str, data: Any = None, *, actor: str = DEFAULT_ACTOR) -> int:
        """Save ``state`` and its ``data`` (first half of usage example 5's transition); returns
        the seq.

        No check against the definition (the example checked the mirror), but the write happens only
        if the stored state still is ``current_state``, the state the caller checked from: else
        :class:`InvalidTransitionError`, nothing written, ``workflow.rejected`` published, and
        the mirror left alone (call :meth:`load`). Does not advance ``current_state``: see
        :meth:`record_transition`. Publishes ``workflow.state``.
        """
        move = self._move(self._known(state), actor)
        text = _encode_data(data)
        expected = self.current_state
        try:
            return await self._run("workflow_set_state", (move, expected, text))
        except ResponseError as e:
            message = str(e)
            if message.startswith("STALE "):
                current = message[6:]
                raise InvalidTransitionError(
                    f"{expected} -> {state} not allowed: the workflow is in {current} now",
                    from_state=expected,
                    to_state=state,
                    current=current,
                ) from None
            raise

    async def record_transition(
        self,
        from_state: str,
        to_state: str,
        timestamp: datetime,
        *,
        actor: str = DEFAULT_ACTOR,
    ) -> int:
        """Append ``from_state -> to_state`` to the history (second half of usage example 5's
        transition) with the stored state's data, and advance ``current_state`` to ``to_state``.

        ``timestamp`` is when the move happened (a naive datetime is local time, as
        ``datetime.timestamp`` reads it). The pair must be an allowed move
        (:class:`InvalidTransitionError` otherwise: forced moves go through
        :meth:`force_state`). Publishes ``workflow.transition``; returns its seq.
        """
        self._known(from_state, "from_state")
        self._known(to_state, "to_state")
        if not isinstance(timestamp, datetime):
            raise TypeError(f"timestamp must be a datetime, not {type(timestamp).__name__}")
        if not self.is_valid_transition(from_state, to_state):
            raise InvalidTransitionError(
                f"{from_state} -> {to_state} not allowed", from_state=from_state, to_state=to_state
            )
        move = self._move(to_state, actor)
        ms = round(timestamp.timestamp() * 1000)
        seq = await self._run("workflow_record", (move, json.dumps(from_state), ms))
        self.current_state = to_state
        return seq

    async def history(self, limit: int = 50, *, offset: int = 0) -> list[Transition]:
        """Transitions NEWEST FIRST: ``limit`` of them after skipping the ``offset`` newest
        (one LRANGE; at most the last HISTORY_LIMIT are kept, at least HISTORY_TRIM_TO)."""
        if type(limit) is not int or limit < 1:
            raise ValueError(f"limit must be an int >= 1, not {limit!r}")
        if type(offset) is not int or offset < 0:
            raise ValueError(f"offset must be an int >= 0, not {offset!r}")
        return decode_history(
            await self.redis.client.lrange(self._history_key, offset, offset + limit - 1)
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.session_id!r}, current_state={self.current_state!r}, "
            f"namespace={self.namespace!r})"
        )


@dataclass(slots=True)
class WorkflowView:
    """The workflow part of a session's feed view (``store.feed``): state, definition, and the
    newest transitions. Older ones are read with :meth:`StatefulMemory.history` in pages."""

    state: str
    data: Any
    since: int | None  # server ms the state was entered
    transitions: dict[str, list[str]]  # the stored definition, for drawing the diagram
    initial: str
    recent: list[Transition] = field(default_factory=list)  # newest first
    # Seen on the event stream only (rejections are not stored, so a re-read forgets them):
    rejected: int = field(default=0, compare=False)
    last_rejected: dict[str, Any] | None = field(default=None, compare=False)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """state -> tool policy as stored (``{"deny": [patterns], "reason": …}``)."""

    @property
    def next_states(self) -> list[str]:
        return self.transitions.get(self.state, [])

    @property
    def policy(self) -> dict[str, Any] | None:
        """The current state's tool policy, if it has one."""
        return self.policies.get(self.state)


class WorkflowSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`WorkflowView`.

    ``WorkflowSection()`` follows the session's workflow (events ``workflow.*``, view
    ``SessionView.workflow``); ``WorkflowSection("task")`` a named one (``task.*``,
    ``SessionView.task``)."""

    def __init__(self, workflow: str | None = None) -> None:
        self.workflow = check_workflow_name(workflow)
        self.name = workflow or "workflow"
        self.kinds = (f"{self.name}.",)
        self._component = workflow_key(self.workflow)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        name = keys.key(self._component)
        pipe.hmget(name, "state", "data", "since", "def")
        pipe.lrange(name + ":history", 0, RECENT_TRANSITIONS - 1)
        return 2

    def build(self, results: Sequence[Any]) -> WorkflowView | None:
        (state, data, since, stored), items = results
        if state is None or stored is None:
            return None
        definition = json.loads(stored)
        return WorkflowView(
            state,
            codec.decode(data) if data is not None else None,
            int(since) if since is not None else None,
            definition["transitions"],
            definition["initial"],
            decode_history(items),
            policies=definition.get("policies") or {},
        )

    def apply(self, view: Any, event: Any) -> bool:
        """Follow moves; a payload without what the view needs (large data, a big or reset
        definition) or anything malformed asks for a re-read."""
        payload, kind = event.payload, event.kind.removeprefix(self.kinds[0])
        workflow: WorkflowView | None = getattr(view, self.name)
        try:
            if kind == "define":
                definition = payload.get("definition")
                if definition is None or "reset" in payload:
                    return False
                policies = definition.get("policies") or {}
                if workflow is None:
                    setattr(
                        view,
                        self.name,
                        WorkflowView(
                            payload["state"],
                            None,
                            event.ts,
                            definition["transitions"],
                            definition["initial"],
                            policies=policies,
                        ),
                    )
                else:
                    workflow.transitions = definition["transitions"]
                    workflow.initial = definition["initial"]
                    workflow.policies = policies
                return True
            if workflow is None:
                return False
            if kind == "rejected":
                workflow.rejected += 1
                workflow.last_rejected = {**payload, "ts": event.ts}
                return True
            to = payload["to"]
            if type(to) is not str or to not in workflow.transitions:
                return False
            if kind == "state":
                if "data" not in payload:
                    return False
                workflow.state, workflow.since = to, event.ts
                workflow.data = codec.untag(payload["data"])
                return True
            if kind != "transition":
                return False
            forced = payload["forced"] is True
            if not forced and "data" not in payload:
                return False
            data = None if forced else codec.untag(payload["data"])
            at = payload.get("at")  # record_transition: the state was set by set_state
            if at is None:
                workflow.state, workflow.data, workflow.since = to, data, event.ts
            entry = Transition(
                payload["from"],
                to,
                payload["actor"],
                forced,
                payload.get("reason"),
                data,
                event.seq,
                event.ts if at is None else at,
            )
            workflow.recent.insert(0, entry)
            del workflow.recent[RECENT_TRANSITIONS:]
            return True
        except (KeyError, TypeError, AttributeError):
            return False
