"""Steering: what the operator decided, turned into an answer for the agent's next hook.

Three things reach a running agent through its hooks (Claude Code's, or any agent that asks
before each step, like the demo's simulated agents):

- **Notes** (:mod:`store.notes`): handed over with the next hook that can carry context, marked
  delivered in the same script that reads them (``steer.lua``), so each is delivered once.
- **Holds**: a paused session (:class:`store.control.SessionControl`) or a spent *binding*
  budget (:meth:`store.budget.TokenBudgetTracker.set_limit` with ``binding=True``) refuses every
  tool call and blocks new prompts, with a reason both the model and the person can read.
- **Tool policy**: the session's task workflow (a named workflow, ``task``, see
  :data:`TASK_TRANSITIONS`) may deny tools by name pattern in its current state.

:meth:`Steering.check` reads all of it in one script (one round trip) and returns a
:class:`Decision`; :meth:`Decision.hook_output` is the JSON Claude Code reads from the hook.
Everything here is advice the caller applies fail-open: a store error raises, and the hook
answers as if memdash were absent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis

from .connection import Connection, SessionBound
from .control import PAUSED_REASON
from .keys import SessionKeys
from .notes import Handed, Notes, delivery_by, format_for_agent, handed, note_keys
from .workflow import StatefulMemory, ToolPolicy, check_policies, workflow_key

log = logging.getLogger(__name__)

TASK_WORKFLOW = "task"
"""Name of the workflow an operator (or the agent) steps, beside the automatic activity one."""

FILE_EDIT_TOOLS = ("Edit", "MultiEdit", "Write", "NotebookEdit")

TASK_TRANSITIONS: dict[str, list[str]] = {
    "planning": ["coding"],
    "coding": ["testing", "review"],
    "testing": ["review", "coding"],
    "review": ["done", "coding"],
    "done": [],
}
TASK_INITIAL = "planning"
TASK_POLICIES: dict[str, dict[str, Any]] = {
    "review": {
        "deny": list(FILE_EDIT_TOOLS),
        "reason": "the work is in review: no file edits until it is sent back to coding",
    },
}
"""The default task workflow: planning → coding → testing → review → done; review sends the
work back to coding, and denies file edits."""
TASK_DEFINITION: dict[str, Any] = {
    "transitions": TASK_TRANSITIONS,
    "initial": TASK_INITIAL,
    "policies": TASK_POLICIES,
}


def task_workflow(
    session_id: str,
    redis: Connection | aioredis.Redis | str | None = None,
    *,
    definition: Mapping[str, Any] | None = None,
    namespace: str | None = None,
) -> StatefulMemory:
    """A session's task workflow: ``definition`` (a project's, as stored: ``{"transitions",
    "initial", ["policies"]}``) or :data:`TASK_DEFINITION`."""
    return StatefulMemory.from_definition(
        session_id,
        TASK_DEFINITION if definition is None else definition,
        name=TASK_WORKFLOW,
        redis=redis,
        namespace=namespace,
    )


Delivery = Literal["always", "unless_held", ""]

CONTEXT_EVENTS = ("SessionStart", "UserPromptSubmit", "PostToolUse", "PostToolUseFailure")
"""Hook events whose ``additionalContext`` reaches the model, and so can carry notes."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What one hook should answer, and the notes it carries."""

    event: str
    deny: str | None = None
    """PreToolUse: refuse the tool call, with this reason (the model reads it)."""
    block: str | None = None
    """UserPromptSubmit: refuse the prompt, with this reason."""
    notes: Handed = field(default_factory=lambda: Handed(1, 0, (), 0))
    """Notes handed over (already marked delivered): pass them on, or release them."""

    @property
    def context(self) -> str | None:
        return format_for_agent(self.notes.notes) if self.notes else None

    def hook_output(self) -> dict[str, Any]:
        """The hook's JSON answer for Claude Code (``{}``: nothing to say)."""
        if self.deny is not None:
            return {
                "hookSpecificOutput": {
                    "hookEventName": self.event,
                    "permissionDecision": "deny",
                    "permissionDecisionReason": self.deny,
                }
            }
        if self.block is not None:
            return {"decision": "block", "reason": self.block}
        context = self.context
        if context is None:
            return {}
        return {"hookSpecificOutput": {"hookEventName": self.event, "additionalContext": context}}


def spent_reason(session: str, used: int, limit: int) -> str:
    return f"token budget of {session} spent: {used:,} of {limit:,}; raise it in memdash"


_policy_cache: dict[str, dict[str, ToolPolicy]] = {}


def _policies(definition: str) -> dict[str, ToolPolicy]:
    """The tool policies of a stored definition (parsed once per distinct definition). One
    that does not parse (written by something else) denies nothing: fail-open, logged; the
    session's other holds still apply."""
    policies = _policy_cache.get(definition)
    if policies is None:
        try:
            data = json.loads(definition)
            policies = check_policies(data.get("policies"), data["transitions"])
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("a task workflow's tool policies are unreadable, none applied: %s", error)
            policies = {}
        if len(_policy_cache) >= 64:
            _policy_cache.clear()
        _policy_cache[definition] = policies
    return policies


class Steering(SessionBound):
    """One session's steering, read by the hooks of its agent."""

    @staticmethod
    def keys_of(session: SessionKeys) -> tuple[str, ...]:
        return (
            session.key("budget"),
            session.key("control"),
            session.key(workflow_key(TASK_WORKFLOW)),
            *note_keys(session),
        )

    async def check(
        self,
        event: str,
        *,
        tool: str | None = None,
        deliver: Delivery | None = None,
        goes_on: bool | None = None,
    ) -> Decision:
        """The answer for hook ``event`` (``tool``: the tool it is about). Notes are handed over
        on :data:`CONTEXT_EVENTS` (not with a blocked prompt); ``deliver=""`` hands none (a
        subagent's hooks: the notes are for the main agent). ``goes_on`` (default: prompts and
        tool hooks) clears the session's waiting-for-a-person mark."""
        if deliver is None:
            if event == "UserPromptSubmit":
                deliver = "unless_held"
            elif event in CONTEXT_EVENTS:
                deliver = "always"
            else:
                deliver = ""
        if goes_on is None:
            goes_on = event in (
                "UserPromptSubmit",
                "PreToolUse",
                "PostToolUse",
                "PostToolUseFailure",
            )
        reply = await self.redis.run(
            "steer",
            self._session,
            self._keys,
            (deliver, "1" if goes_on else "", delivery_by(event, tool)),
        )
        used_text, limit_text, binding, paused, reason, state, definition, *rest = reply
        notes = handed(rest)
        used = int(used_text)
        limit = int(limit_text) if limit_text != "" else None
        held: str | None = None
        if paused:
            held = PAUSED_REASON
            if reason:
                why = json.loads(reason)
                if why:
                    held = f"{PAUSED_REASON}: {why}"
        elif binding == "1" and limit is not None and used >= limit:
            held = spent_reason(self.session_id, used, limit)
        if event == "PreToolUse":
            deny = held
            if deny is None and tool and state and definition:
                policy = _policies(definition).get(state)
                if policy is not None and policy.denies(tool):
                    deny = policy.refusal(state, tool)
            return Decision(event, deny=deny, notes=notes)
        if event == "UserPromptSubmit" and held is not None:
            return Decision(event, block=held, notes=notes)
        return Decision(event, notes=notes)

    async def release(self, decision: Decision) -> bool:
        """The hook's answer never reached the agent: its notes are pending again."""
        return await Notes(self.session_id, self.redis).release(decision.notes)
