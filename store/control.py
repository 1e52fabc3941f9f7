"""SessionControl: the operator's hold on a running agent, and the agent's call for a person.

- **Pause.** ``pause()`` makes every tool call of the session's agent be denied ("paused by the
  operator") and its prompts be blocked, until ``resume()``: the hooks read it (see
  :mod:`store.steering`). Both are events (``control.pause``), shown in the history.
- **Waiting for a person.** Claude Code's ``Notification`` (a permission prompt, an idle prompt)
  and ``PermissionRequest`` hooks call :meth:`SessionControl.set_waiting`; the next prompt or
  tool clears it (``control.waiting``, ``waiting`` null). A dashboard sorts such sessions first.

Layout: ``<prefix>control``, a HASH: ``paused`` ("1"), ``paused_at`` (ms), ``paused_by`` and
``pause_reason`` (JSON strings), ``waiting`` (JSON ``{"ts","kind","message"[,"tool"]}``);
``<prefix>control:log``, a LIST of pauses and resumes ``{"ts","paused","actor","reason",
"after"}`` (oldest first, the last :data:`LOG_ENTRIES`; ``after`` is the conversation's newest
message number then, so the history shows it in place).
One script per operation: ``control_pause.lua``, ``control_waiting.lua``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .connection import SessionBound
from .keys import SessionKeys, check_part

MAX_WAITING_CHARS = 1000
"""Most of a notification's message kept (the rest is cut with an ellipsis)."""
PAUSED_REASON = "paused by the operator"
LOG_ENTRIES = 100


@dataclass(frozen=True, slots=True)
class Waiting:
    """The agent waits for a person: why (``permission_prompt``, ``idle_prompt``…) and what it
    said."""

    ts: int
    kind: str
    message: str
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class PauseEntry:
    """A pause or a resume, for the history."""

    ts: int
    paused: bool
    actor: str
    reason: str | None
    after: int  # the conversation's newest message number then (-1: none)


def parse_entry(data: dict[str, Any]) -> PauseEntry:
    return PauseEntry(
        int(data["ts"]),
        data["paused"] is True,
        str(data["actor"]),
        data.get("reason"),
        int(data["after"]),
    )


@dataclass(slots=True)
class ControlView:
    """The control part of a session's feed view."""

    paused: bool = False
    paused_at: int | None = None
    paused_by: str | None = None
    pause_reason: str | None = None
    waiting: Waiting | None = None
    log: list[PauseEntry] = field(default_factory=list)  # oldest first


def parse_waiting(raw: str | None) -> Waiting | None:
    if raw is None:
        return None
    data = json.loads(raw) if isinstance(raw, str) else raw
    if data is None:
        return None
    return Waiting(int(data["ts"]), str(data["kind"]), str(data["message"]), data.get("tool"))


class SessionControl(SessionBound):
    """Pause/resume a session's agent; mark it waiting for a person."""

    @staticmethod
    def keys_of(session: SessionKeys) -> tuple[str, ...]:
        """The control hash, its log, and the conversation's counter (pauses are shown after
        the newest message)."""
        control = session.key("control")
        return control, control + ":log", session.key("conversation") + ":n"

    async def pause(self, *, actor: str = "operator", reason: str | None = None) -> bool:
        """Hold the agent; False when it was paused already (nothing written)."""
        return await self._pause(True, actor, reason)

    async def resume(self, *, actor: str = "operator") -> bool:
        """Let the agent go on; False when it was not paused."""
        return await self._pause(False, actor, None)

    async def _pause(self, pause: bool, actor: str, reason: str | None) -> bool:
        check_part("actor", actor)
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise ValueError("reason must be a string of at most 1000 characters")
        changed = await self.redis.run(
            "control_pause",
            self._session,
            self._keys,
            ("1" if pause else "0", json.dumps(actor), json.dumps(reason)),
        )
        return bool(changed)

    async def set_waiting(self, kind: str, message: str, tool: str | None = None) -> None:
        """The agent waits for a person (``kind`` e.g. ``permission_prompt``)."""
        check_part("kind", kind)
        if not isinstance(message, str):
            raise ValueError(f"message must be a string, not {type(message).__name__}")
        if len(message) > MAX_WAITING_CHARS:
            message = message[: MAX_WAITING_CHARS - 1] + "…"
        waiting: dict[str, Any] = {"kind": kind[:64], "message": message}
        if tool:
            waiting["tool"] = tool[:128]
        text = json.dumps(waiting, ensure_ascii=False)
        await self.redis.run("control_waiting", self._session, self._keys[:1], (text,))

    async def clear_waiting(self) -> bool:
        """The agent goes on; False when it was not waiting."""
        return bool(await self.redis.run("control_waiting", self._session, self._keys[:1], ("",)))

    async def status(self) -> ControlView:
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._keys[0])
            pipe.lrange(self._keys[1], 0, -1)
            raw, log = await pipe.execute()
        return build_control(raw, log) or ControlView()


def build_control(raw: dict[str, str], log: Sequence[str] = ()) -> ControlView | None:
    if not raw and not log:
        return None
    return ControlView(
        paused=raw.get("paused") == "1",
        paused_at=int(raw["paused_at"]) if "paused_at" in raw else None,
        paused_by=json.loads(raw["paused_by"]) if "paused_by" in raw else None,
        pause_reason=json.loads(raw["pause_reason"]) if "pause_reason" in raw else None,
        waiting=parse_waiting(raw.get("waiting")),
        log=[parse_entry(json.loads(entry)) for entry in log],
    )


class ControlSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`ControlView`."""

    name = "control"
    kinds = ("control.",)

    def queue_reads(self, pipe: Any, keys: SessionKeys) -> int:
        pipe.hgetall(keys.key("control"))
        pipe.lrange(keys.key("control") + ":log", 0, -1)
        return 2

    def build(self, results: Sequence[Any]) -> ControlView | None:
        return build_control(results[0], results[1])

    def apply(self, view: Any, event: Any) -> bool:
        payload = event.payload
        control: ControlView | None = view.control
        if control is None:
            control = view.control = ControlView()
        try:
            if event.kind == "control.pause":
                control.paused = payload["paused"] is True
                control.log.append(parse_entry(payload))
                del control.log[:-LOG_ENTRIES]
                if control.paused:
                    control.paused_at = event.ts
                    control.paused_by = payload.get("actor")
                    control.pause_reason = payload.get("reason")
                else:
                    control.paused_at = control.paused_by = control.pause_reason = None
                return True
            if event.kind == "control.waiting":
                control.waiting = parse_waiting(payload["waiting"])
                return True
        except (KeyError, TypeError, ValueError):
            return False
        return False
