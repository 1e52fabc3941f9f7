"""A simulated coding agent, and a paced crowd of them: demo data and load, written the way a real
agent's memory is written (through the public ``store`` API only, so every write is validated,
atomic and announced).

A :class:`SimulatedAgent` works on one canned task (``simulated_scenarios``) in one session: it
moves the session's task workflow (``store.steering``'s default: planning → coding → testing →
review → done; tests fail and reviews bounce now and then, and it sometimes tries a move the
workflow refuses), talks (user, assistant and tool messages, capped so trims happen), spends
tokens from a budget (one agent's runs out, another's binds), reads files through a small LRU
cache (hits, misses, evictions) and keeps its session context.

It is steered like a Claude Code session, through the same path: one
:meth:`store.steering.Steering.check` where a hook would fire. Before each turn
(``UserPromptSubmit``): a block (paused, or a spent binding budget) means the turn does not
start; the agent waits and asks again every ``recheck`` seconds. Before each tool call
(``PreToolUse``): a deny (a hold, or the task workflow's policy: review denies edits) means the
tool does not run; the refusal goes into the conversation as the tool's result, and the agent
wraps up its turn. After each tool call (``PostToolUse``) and with each prompt: operator notes
handed over are acknowledged in the conversation ("Noted the operator's note: …"), once each.

A :class:`Simulation` runs N agents at an overall target rate of store operations per second.
It first writes each session a few minutes of history at once, so a dashboard looks alive from
the first second, then paces; a session that is done or out of budget is followed, after a
pause, by a fresh one (new id). Same seed, same sessions and content (the timing differs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from asyncio import FIRST_COMPLETED
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import accumulate
from posixpath import dirname
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from ..budget import BudgetExceededError, TokenBudgetTracker
from ..cache import MemoryCache
from ..connection import Connection
from ..control import PAUSED_REASON
from ..conversation import ConversationMemory
from ..keys import MemoryKey
from ..memory import SessionMemory
from ..notes import Note
from ..steering import TASK_INITIAL, TASK_TRANSITIONS, Decision, Steering, task_workflow
from ..workflow import InvalidTransitionError
from . import simulated_scenarios as text
from .simulated_scenarios import SCENARIOS, Scenario

FLOW: dict[str, list[str]] = TASK_TRANSITIONS  # the task workflow, as Claude Code sessions have
INITIAL = TASK_INITIAL  # (and its policies: review denies file edits)
SKIPS = {"planning": "testing", "coding": "done", "testing": "done", "review": "testing"}
"""The move an impatient agent tries from each state; FLOW allows none of them."""
PHASE_TURNS = {"planning": (2, 3), "coding": (6, 14), "testing": (1, 3), "review": (1, 1)}
MODELS = ("claude-sonnet-4-5", "claude-sonnet-4-5", "claude-opus-4-1")

MAX_MESSAGES = 50  # per conversation, as usage example 3 keeps
CACHE_SIZE = 16  # of ~25 keys a task reads: misses and evictions keep coming
SEED_MESSAGES = (30, 45)  # history written at once when a simulation starts
GENEROUS_LIMITS = (2_000_000, 3_000_000, 5_000_000)
TYPICAL_REQUEST = 20_000
TIGHT_REQUESTS = (16, 22)  # a tight budget holds this many typical requests…
TIGHT_AFTER_SEED = (14, 22)  # …or, for a seeded session, this many more than its history used
TIGHT_CHANCE = 0.25  # of a replacement session getting a tight budget
TEST_FAILURE_CHANCES = (0.55, 0.4, 0.2, 0.0)  # by how many runs failed before
STRUGGLING_FAILURE_CHANCES = (1.0, 1.0, 0.5, 0.0)  # a tight budget's agent: stuck in a fix loop
REVIEW_BOUNCES = (0.4, 0.3, 0.0)  # chance a review sends the work back, by bounces before
SKIP_CHANCE = 0.12  # of trying a refused move when leaving a state
WRITE_CHANCE = 0.15  # of a coding turn rewriting a whole file rather than editing it
REVIEW_EDIT_CHANCE = 0.5  # of reaching for an edit in review (the policy refuses it), once a stint
RECHECK = 2.0  # seconds a held agent (paused, or its binding budget spent) waits between prompts
NOTE_PREVIEW = 100  # characters of a note's first line an acknowledgement quotes
COMPACT_KEEP = 12  # messages kept when a budget refusal makes the agent compact
SMALLEST_REQUEST = 8_000  # below this many tokens left, the agent gives up
MAX_REJECTIONS = 2
BINDING_SLOT = 2  # the slot whose first agent has a binding budget (the last, with fewer)
MAX_SESSIONS = 1000
RESTART_DELAY = 8.0  # seconds before a finished session's slot starts a new one
ERROR_PAUSE = 0.5  # seconds a slot waits after a store error
MAX_LAG = 0.5  # seconds of backlog the pacer catches up on after a slow spell

Outcome = Literal["done", "out of budget"]
WRITTEN_KINDS = (
    "message",
    "trim",
    "usage",
    "budget rejection",
    "workflow definition",
    "transition",
    "refused move",
    "context",
    "cache lookup",
    "note read",
    "tool denied",
    "prompt blocked",
)
"""What ``written`` counts (a :class:`SimulationReport` has each, 0 when none happened)."""
Op = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


class SimulatedAgent:
    """One coding agent's session. Each :meth:`step` is one store operation (a message, a
    request's usage, a move, a context write, a batch of cache lookups…); the agent plans them a
    turn at a time from its ``rng``, so the same seed writes the same session."""

    def __init__(
        self,
        conn: Connection,
        session_id: str,
        rng: random.Random,
        *,
        scenario: Scenario,
        tight: bool = False,
        binding: bool = False,
        eager: bool = False,
        max_messages: int = MAX_MESSAGES,
        cache_size: int = CACHE_SIZE,
        recheck: float = RECHECK,
        written: Counter[str] | None = None,
    ) -> None:
        self.session_id = session_id
        self.scenario = scenario
        self.rng = rng
        self.eager = eager  # tries a refused move the first time it leaves a state
        self.tight = tight
        # A binding budget holds the agent (its hooks refuse) once spent, instead of refusing
        # requests: usage is recorded after the fact, as Claude Code's is, and may go past it.
        self.binding = binding
        self.recheck = recheck
        self.written: Counter[str] = written if written is not None else Counter()
        self.model = rng.choice(MODELS)
        if tight or binding:
            self.limit = rng.randint(*TIGHT_REQUESTS) * TYPICAL_REQUEST
        else:
            self.limit = rng.choice(GENEROUS_LIMITS)
        self.memory = SessionMemory(conn)
        self.budget = TokenBudgetTracker(session_id, self.limit, redis=conn)
        self.conversation = ConversationMemory(session_id, max_messages=max_messages, redis=conn)
        self.cache = MemoryCache(session_id, max_size=cache_size, redis=conn)
        self.workflow = task_workflow(session_id, conn)
        self.steering = Steering(session_id, conn)
        self.state = INITIAL
        self.outcome: Outcome | None = None
        self.held: str | None = None  # why the last prompt was blocked (None: not held)
        self._due = 0.0  # monotonic time a held agent asks again
        self.appended = 0
        self._pending: deque[Op] = deque()
        self._turn = 0  # turns taken in the current state
        self._turns = rng.randint(*PHASE_TURNS[INITIAL])  # turns this state lasts
        self._requests = self._rejections = self._failures = self._bounces = 0
        self._review_edit = False  # reached for an edit in this review stint already
        self._output = 0  # output tokens of the latest request, for the reply's message
        self._touched: list[str] = []
        self._last_tests: dict[str, Any] | None = None
        self._virtual: datetime | None = None  # while seeding: the made-up time of the history
        keys = [
            *(f"read:{f}" for f in scenario.files),
            f"read:{scenario.test_file}",
            *(f"symbol:{s}" for s in scenario.symbols),
            *(f"grep:{s}" for s in scenario.symbols),
            *(f"test:{t}" for t in scenario.tests),
            *text.GENERIC_KEYS,
        ]
        rng.shuffle(keys)
        self._keys = keys  # a few hot keys, a long tail (Zipf weights)
        self._weights = list(accumulate(1 / (rank + 1) for rank in range(len(keys))))

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def hold_wait(self) -> float:
        """Seconds until a held agent asks again (0: now, or not held)."""
        if self.held is None:
            return 0.0
        return max(self._due - time.monotonic(), 0.0)

    async def step(self) -> None:
        """One store operation (nothing once finished). A held agent first waits until it is
        due to ask again (see ``recheck``): it never spins."""
        if self.finished:
            return
        if self.held is not None and (wait := self.hold_wait()) > 0:
            await asyncio.sleep(wait)
        if not self._pending:
            self._queue(self._prompt)  # a turn starts where a prompt would be submitted
        await self._pending.popleft()()

    async def seed(self, messages: int) -> int:
        """Write about ``messages`` messages of history at once, dated over the last minutes;
        returns the operations it took. A tight budget is written under a loose limit, then
        capped to run out a few requests later (as an operator would, with ``set_limit``)."""
        self._virtual = datetime.now(UTC) - timedelta(minutes=self.rng.uniform(8, 14))
        if self.tight:
            loose = max(GENEROUS_LIMITS)
            self.budget = TokenBudgetTracker(self.session_id, loose, redis=self.budget.redis)
        ops = 0
        try:
            while self.appended < messages and not self.finished and self.held is None:
                await self.step()
                ops += 1
            await self.cache.flush_stats()  # the cache pane fills now, not in 250 ms
            if (self.tight or self.binding) and not self.finished:  # runs out soon, whatever
                used = (await self.budget.status()).used  # the history used
                self.limit = used + self.rng.randint(*TIGHT_AFTER_SEED) * TYPICAL_REQUEST
                await self.budget.set_limit(self.limit, binding=True if self.binding else None)
                ops += 1
        finally:
            self._virtual = None
        return ops

    async def close(self) -> None:
        """Report the cache's last statistics."""
        await self.cache.aclose()

    # -- planning a turn: a list of operations --------------------------------------------

    def _plan_turn(self) -> None:
        self._turn += 1
        last = self._turn >= self._turns
        {
            "planning": self._plan_planning,
            "coding": self._plan_coding,
            "testing": self._plan_testing,
            "review": self._plan_review,
        }.get(self.state, self._plan_done)(last)

    def _queue(self, *ops: Op) -> None:
        self._pending.extend(ops)

    def _fill(self, template: str, **extra: Any) -> str:
        s, rng = self.scenario, self.rng
        file = rng.choice(s.files)
        fields = {
            "task": s.task,
            "task_lower": s.task[0].lower() + s.task[1:],
            "file": file,
            "dir": dirname(file) or ".",
            "symbol": rng.choice(s.symbols),
            "test_file": s.test_file,
            "test": rng.choice(s.tests),
            "edit": rng.choice(s.edits),
            "failure": rng.choice(s.failures),
            "branch": s.branch,
            "count": rng.randint(2, 9),
        }
        return template.format(**(fields | extra))

    def _reply(self, template: str, **extra: Any) -> None:
        """An assistant message, after the request that produced it."""
        self._queue(self._request, partial(self._say, "assistant", self._fill(template, **extra)))

    def _tool(self, tool: str, content: str, wrapup: str = "") -> None:
        """A tool call: asked for (PreToolUse), run (its result), then PostToolUse. ``wrapup``:
        what the agent says if the task workflow's policy refuses it."""
        self._queue(partial(self._use_tool, tool, content, wrapup))

    def _user(self, content: str) -> None:
        self._queue(partial(self._say, "user", content))

    def _plan_planning(self, last: bool) -> None:
        rng, s = self.rng, self.scenario
        if self._turn == 1 and self._requests == 0:  # a new session: the dashboard draws its
            self._queue(self._define)  # workflow from the first second
            if self.binding and self._virtual is None:  # (a seeded one binds after its history)
                self._queue(self._bind)
        if self._turn == 1:
            self._user(self._fill(rng.choice(text.PLANNING_OPENERS)))
            self._queue(self._save_context)
        self._queue(self._lookups)
        self._reply(rng.choice(text.PLANNING_REPLIES))
        file = rng.choice(s.files)
        if rng.random() < 0.5:
            self._tool("Read", f"Read {file} ({rng.randint(80, 600)} lines)")
        else:
            symbol = rng.choice(s.symbols)
            self._tool("Grep", f"Grep '{symbol}': {rng.randint(2, 30)} matches in {file} and more")
        if last:
            plan = "\n".join(f"{n}. {step}" for n, step in enumerate(s.plan, 1))
            self._reply(f"Plan:\n{plan}")
            self._queue(self._save_plan)
            self._user(rng.choice(text.APPROVALS))
            self._move("coding", {"plan": f"{len(s.plan)} steps"})

    def _plan_coding(self, last: bool) -> None:
        rng, s = self.rng, self.scenario
        if rng.random() < 0.3:
            self._user(rng.choice(s.asks))
        self._queue(self._lookups)
        file = rng.choice(s.files)
        self._reply(rng.choice(text.CODING_REPLIES), file=file)
        if rng.random() < WRITE_CHANCE:
            self._tool("Write", f"Write {file}: {rng.randint(40, 400)} lines")
        else:
            self._tool("Edit", f"Edit {file}: +{rng.randint(3, 80)} -{rng.randint(0, 40)} lines")
        if file not in self._touched:
            self._touched.append(file)
            self._queue(self._save_context)
        if rng.random() < 0.4:
            self._reply(rng.choice(text.CODING_FOLLOWUPS))
        if last:
            self._move("testing", {"files": len(self._touched)})

    def _plan_testing(self, last: bool) -> None:
        rng, s = self.rng, self.scenario
        self._queue(self._lookups)
        self._reply(rng.choice(text.TESTING_REPLIES))
        passed = rng.randint(18, 140)
        chances = STRUGGLING_FAILURE_CHANCES if self.tight else TEST_FAILURE_CHANCES
        fails = rng.random() < chances[min(self._failures, 3)]
        seconds = rng.uniform(0.8, 14)
        if fails:
            self._failures += 1
            test = rng.choice(s.tests)
            self._tool(
                "Bash",
                f"$ pytest {s.test_file} -q\nFAILED {s.test_file}::{test}\n"
                f"1 failed, {passed} passed in {seconds:.2f}s",
            )
            self._last_tests = {"passed": passed, "failed": 1, "failing": test}
            self._queue(self._save_context)
            self._reply(rng.choice(text.TEST_FAILED), test=test)
            self._move("coding", {"failing": test})
            return
        self._tool("Bash", f"$ pytest {s.test_file} -q\n{passed} passed in {seconds:.2f}s")
        self._last_tests = {"passed": passed, "failed": 0}
        self._queue(self._save_context)
        self._reply(rng.choice(text.TEST_PASSED), passed=passed)
        if last:
            self._move("review", {"passed": passed})

    def _plan_review(self, last: bool) -> None:
        rng, s = self.rng, self.scenario
        self._queue(self._lookups)
        changed, added, removed = len(self._touched) + 1, rng.randint(40, 400), rng.randint(5, 200)
        self._tool(
            "Bash",
            f"$ git diff --stat main...{s.branch}\n {changed} files changed, "
            f"{added} insertions(+), {removed} deletions(-)",
        )
        self._reply(rng.choice(text.REVIEW_REPLIES), changed=changed, added=added, removed=removed)
        if not self._review_edit and rng.random() < REVIEW_EDIT_CHANCE:
            self._review_edit = True  # the policy refuses it: the turn ends there
            file = rng.choice(s.files)
            self._reply(rng.choice(text.REVIEW_EDITS), file=file)
            wrapup = self._fill(rng.choice(text.POLICY_WRAPUPS), file=file)
            edit = f"Edit {file}: +{rng.randint(1, 6)} -{rng.randint(0, 4)} lines"
            self._tool("Edit", edit, wrapup)
            return  # the verdict comes next turn
        if rng.random() < REVIEW_BOUNCES[min(self._bounces, 2)]:
            self._bounces += 1
            note = rng.choice(s.review_notes)
            self._user(note)
            self._move("coding", {"review": note})
            return
        self._user(rng.choice(text.REVIEW_OK))
        self._move("done", {"approved": True})
        self._reply(rng.choice(text.DONE_REPLIES))
        self._queue(self._save_context, partial(self._finish, "done"))

    def _plan_done(self, last: bool) -> None:
        """Someone (an operator) moved the workflow to done: wrap up."""
        self._queue(self._save_context, partial(self._finish, "done"))

    def _move(self, target: str, data: dict[str, Any]) -> None:
        skip = SKIPS[self.state]
        # Not while seeding: a refusal is dated by the server, now, so in the back-dated history
        # it would show as the newest move, from a state the session left minutes "ago".
        wanted = self.eager or self.rng.random() < SKIP_CHANCE
        if wanted and self._virtual is None:
            self.eager = False
            self._queue(
                partial(self._say, "assistant", text.SKIP_EXCUSES[self.state]),
                partial(self._try_skip, skip),
            )
        self._queue(partial(self._transition, target, data))

    # -- operations: one store call each (two for a seeded move) ----------------------------

    async def _prompt(self) -> None:
        """UserPromptSubmit: the turn starts (planned now), or is blocked and waits."""
        decision = await self.steering.check("UserPromptSubmit")
        if decision.block is not None:
            self.written["prompt blocked"] += 1
            self.held = decision.block
            self._due = time.monotonic() + self.recheck
            return
        self.held = None
        self._plan_turn()
        first = self._pending[0] if self._pending else None
        after_prompt = isinstance(first, partial) and first.args[:1] == ("user",)
        self._acknowledge(decision, at=1 if after_prompt else 0)

    async def _use_tool(self, tool: str, content: str, wrapup: str) -> None:
        """PreToolUse: run the tool (its result, then PostToolUse), or read the refusal."""
        decision = await self.steering.check("PreToolUse", tool=tool)
        if decision.deny is None:
            self._pending.extendleft(
                reversed(
                    (
                        partial(self._say, "tool", content, tool=tool),
                        partial(self._after_tool, tool),
                    )
                )
            )
            return
        self.written["tool denied"] += 1
        reason = decision.deny
        if reason.startswith(PAUSED_REASON):
            wrapup = text.PAUSED_WRAPUP
        elif reason.startswith(f"token budget of {self.session_id} spent"):
            wrapup = text.SPENT_WRAPUP
        refusal = text.REFUSED_TOOL.format(tool=tool, reason=reason)
        self._pending.clear()  # the rest of the turn needed the tool
        self._queue(partial(self._say, "tool", refusal, tool=tool, denied=True), self._request)
        if wrapup:
            self._queue(partial(self._say, "assistant", wrapup))
        else:  # refused in a state it did not expect (an operator moved the task): catch up
            self._queue(
                partial(self._say, "assistant", self._fill(self.rng.choice(text.POLICY_WRAPUPS))),
                self._resync,
            )

    async def _after_tool(self, tool: str) -> None:
        """PostToolUse: notes handed over with the tool's result are acknowledged."""
        self._acknowledge(await self.steering.check("PostToolUse", tool=tool))

    def _acknowledge(self, decision: Decision, at: int = 0) -> None:
        """Say, next (after ``at`` queued operations), that each note handed over was read."""
        for n, note in enumerate(decision.notes.notes):
            self._pending.insert(at + n, partial(self._noted, note, decision))

    async def _noted(self, note: Note, decision: Decision) -> None:
        lines = note.text.strip().splitlines() or [""]
        first = lines[0].strip()
        if len(first) > NOTE_PREVIEW or len(lines) > 1:
            first = first[:NOTE_PREVIEW].rstrip() + "…"
        message = text.NOTED.get(note.kind, text.NOTED["note"]).format(first=first)
        try:
            await self._say("assistant", message, tokens=False)
        except (RedisError, OSError):
            # Never written: unless it acknowledged some of them already, hand the notes back
            # (the next hook delivers them again) and forget the other acknowledgements.
            if note is decision.notes.notes[0]:
                with contextlib.suppress(RedisError, OSError):
                    await self.steering.release(decision)
                self._pending = deque(op for op in self._pending if not _noting(op, decision))
            raise
        self.written["note read"] += 1

    def _now(self) -> datetime:
        if self._virtual is None:
            return datetime.now(UTC)
        step = timedelta(seconds=self.rng.uniform(2, 12))
        self._virtual = min(self._virtual + step, datetime.now(UTC))
        return self._virtual

    def _usage(self) -> Usage:
        rng = self.rng
        context = 6_000 + 450 * len(self.conversation.history)  # grows until trimmed
        return Usage(
            input_tokens=rng.randint(40, 2_500),
            output_tokens=rng.randint(120, 1_800),
            cache_creation_input_tokens=rng.randint(500, 4_000) if rng.random() < 0.3 else 0,
            cache_read_input_tokens=int(context * rng.uniform(0.75, 0.95)),
        )

    async def _request(self) -> None:
        usage = self._usage()
        self._requests += 1
        request_id = f"{self.session_id}/req-{self._requests}"
        breakdown = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "model": self.model,
        }
        try:
            if self._virtual is None and self.binding:  # as Claude Code's: recorded, not asked
                await self.budget.record_usage(
                    request_id, usage.total, enforce_limit=False, **breakdown
                )
            elif self._virtual is None:
                await self.budget.track_request(request_id, usage.total, **breakdown)
            else:  # history: in the minute it is dated, so the burn rate has a past
                await self.budget.record_usage(request_id, usage.total, self._now(), **breakdown)
        except BudgetExceededError as refused:
            self.written["budget rejection"] += 1
            self._refused(refused.remaining or 0, refused.limit or self.limit)
            return
        self.written["usage"] += 1
        self._output = usage.output_tokens

    def _refused(self, remaining: int, limit: int) -> None:
        """The budget said no: compact the conversation and go on, or give up."""
        self._rejections += 1
        self._pending.clear()  # the reply that needed the request will not come
        if remaining < SMALLEST_REQUEST or self._rejections >= MAX_REJECTIONS:
            notice = text.OUT_OF_BUDGET.format(used=limit - remaining, limit=limit)
            self._queue(
                partial(self._say, "system", notice),
                self._save_context,
                partial(self._finish, "out of budget"),
            )
            return
        notice = self.rng.choice(text.BUDGET_NOTICES).format(remaining=remaining, keep=COMPACT_KEEP)
        self._queue(partial(self._say, "system", notice), self._compact)

    async def _say(
        self,
        role: str,
        content: str,
        *,
        tool: str | None = None,
        denied: bool = False,
        tokens: bool = True,
    ) -> None:
        message: dict[str, Any] = {"role": role, "content": content, "timestamp": self._now()}
        if role == "assistant" and self._output and tokens:
            message["tokens"], message["model"] = self._output, self.model
            self._output = 0
        if tool is not None:
            message["context"] = {"tool": tool, "denied": True} if denied else {"tool": tool}
        first = self._first_retained()
        await self.conversation.append(message)
        self.appended += 1
        self.written["message"] += 1
        if self._first_retained() > first:  # max_messages trimmed the oldest in the same call
            self.written["trim"] += 1

    def _first_retained(self) -> int:
        history = self.conversation.history
        return history[0]["index"] if history else 0

    async def _compact(self) -> None:
        if await self.conversation.trim_old_messages(COMPACT_KEEP):
            self.written["trim"] += 1

    async def _try_skip(self, target: str) -> None:
        try:
            await self.workflow.transition(target, actor="agent")
        except InvalidTransitionError as refused:
            self.written["refused move"] += 1
            self._pending.appendleft(partial(self._say, "system", f"workflow: {refused}"))
            return
        self._entered(target)  # somebody moved the workflow so that it was allowed: go along

    async def _transition(self, target: str, data: dict[str, Any]) -> None:
        try:
            if self._virtual is None:
                await self.workflow.transition(target, data, actor="agent")
            else:  # history: usage example 5's two halves, so the move is dated with the messages
                flow = self.workflow
                await flow.set_state(target, data, actor="agent")
                await flow.record_transition(flow.current_state, target, self._now(), actor="agent")
        except InvalidTransitionError as refused:
            # An operator moved the workflow meanwhile: carry on from where it is now.
            self.written["refused move"] += 1
            self._pending.clear()
            self._entered(refused.current or self.workflow.current_state)
            return
        self.written["transition"] += 1
        self._entered(target)

    def _entered(self, state: str) -> None:
        if state != self.state:
            self._review_edit = False
        self.state = state
        self._turn = 0
        self._turns = self.rng.randint(*PHASE_TURNS.get(state, (1, 1)))

    async def _resync(self) -> None:
        """Go on from the task workflow's stored state."""
        status = await self.workflow.load()
        if status.state != self.state:
            self._entered(status.state)

    async def _define(self) -> None:
        if await self.workflow.define(actor="agent"):
            self.written["workflow definition"] += 1

    async def _bind(self) -> None:
        """A fresh session's binding budget: its limit binds the agent from the start."""
        await self.budget.set_limit(self.limit, binding=True)

    async def _save_context(self) -> None:
        s = self.scenario
        context = {
            "task": s.task,
            "repo": s.repo,
            "branch": s.branch,
            "phase": self.state,
            "model": self.model,
            "files_touched": list(self._touched),
            "last_test_run": self._last_tests,
            "requests": self._requests,
        }
        await self.memory.save_user_context(self.session_id, context)
        self.written["context"] += 1

    async def _save_plan(self) -> None:
        plan = {"steps": list(self.scenario.plan), "branch": self.scenario.branch}
        await self.memory.set(MemoryKey("session", self.session_id, "plan"), plan)
        self.written["context"] += 1

    async def _lookups(self) -> None:
        """Reads through the cache: hot files hit, the tail misses and evicts."""
        rng, cache = self.rng, self.cache
        count = rng.randint(3, 8)
        for key in rng.choices(self._keys, cum_weights=self._weights, k=count):
            if await cache.get(key) is None:
                await cache.set(key, f"<contents of {key}>")
        self.written["cache lookup"] += count

    async def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome


def _noting(op: Op, decision: Decision) -> bool:
    """Whether ``op`` acknowledges a note of ``decision``."""
    return isinstance(op, partial) and len(op.args) == 2 and op.args[1] is decision


class SimulationSettings(BaseModel):
    """What a :class:`Simulation` is asked to do, checked before anything is written."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    sessions: int = Field(4, ge=1, le=MAX_SESSIONS)
    rate: float = Field(20.0, gt=0, allow_inf_nan=False)
    seed: int | None = None
    prefix: str = Field("demo", min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    max_messages: int = Field(MAX_MESSAGES, ge=1)
    cache_size: int = Field(CACHE_SIZE, ge=1)
    restart_delay: float = Field(RESTART_DELAY, ge=0, allow_inf_nan=False)
    recheck: float = Field(RECHECK, gt=0, allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """What a run wrote. ``ops`` are the paced operations, ``seed_ops`` the history written at
    the start; ``written`` counts what the store holds more of (a message, a trim…)."""

    seed: int
    sessions: dict[str, str]  # session id -> "running", "held", "done" or "out of budget"
    written: dict[str, int]
    errors: dict[str, int]  # exception name -> how many operations it failed
    seed_ops: int
    ops: int
    elapsed: float  # seconds, the whole run
    paced: float  # seconds of paced operation
    cache: dict[str, int]  # lookups, hits, misses, evictions over every session

    @property
    def rate(self) -> float:
        """Achieved paced operations per second."""
        return self.ops / self.paced if self.paced > 0 else 0.0


class _Pacer:
    """Hands out one ticket per operation at ``rate`` a second on average (Poisson arrivals, so
    activity looks natural), to whichever agent asks next."""

    def __init__(
        self, rate: float, rng: random.Random, stop: asyncio.Event, max_ops: int | None
    ) -> None:
        self._rate, self._rng, self._stop, self._left = rate, rng, stop, max_ops
        self._next = time.monotonic()
        self.spent = asyncio.Event()  # every ticket of max_ops is out

    async def ticket(self) -> bool:
        """Wait for the next slot; False when the run is over."""
        if self._stop.is_set() or self._left == 0:
            return False
        if self._left is not None:
            self._left -= 1
            if self._left == 0:
                self.spent.set()
        now = time.monotonic()
        at = max(self._next, now - MAX_LAG)
        self._next = at + self._rng.expovariate(self._rate)
        if at > now:
            return await _sleep(at - now, self._stop)
        return True


async def _sleep(seconds: float, *until: asyncio.Event) -> bool:
    """Sleep unless one of ``until`` is set first; False when one is."""
    if any(event.is_set() for event in until):
        return False
    if seconds <= 0:
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in until]
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return not done


class Simulation:
    """N simulated agents writing into ``conn`` at ``rate`` operations a second overall.

    ``await run(duration)`` returns a :class:`SimulationReport`; ``stop()`` ends it early (the
    operations in flight complete, the caches report their statistics). One run per instance.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        on_note: Callable[[str], None] | None = None,
        **settings: Any,
    ) -> None:
        self.settings = SimulationSettings(**settings)
        self.conn = conn
        self.seed = self.settings.seed
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**32)
        self._note = on_note or (lambda line: None)
        self.written: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.seed_ops = self.ops = 0
        self.sessions: dict[str, str] = {}
        self.live: dict[int, SimulatedAgent] = {}  # slot -> its current agent
        scenarios = list(SCENARIOS)
        random.Random(self.seed).shuffle(scenarios)
        self._scenarios = scenarios
        self._generation: dict[int, int] = {}
        self._cache: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._ran = False

    def stop(self) -> None:
        """End the run (from the run's event loop)."""
        self._stop.set()

    async def run(
        self, duration: float | None = None, *, max_ops: int | None = None
    ) -> SimulationReport:
        """Seed every session, then pace operations until ``duration`` seconds have passed
        (None: until :meth:`stop`) or ``max_ops`` paced operations are done."""
        if duration is not None and not (
            isinstance(duration, int | float) and math.isfinite(duration) and duration > 0
        ):
            raise ValueError(f"duration must be a positive number of seconds, not {duration!r}")
        if max_ops is not None and (type(max_ops) is not int or max_ops < 0):
            raise ValueError(f"max_ops must be an int >= 0, not {max_ops!r}")
        if self._ran:
            raise RuntimeError("a Simulation runs once; make a new one")
        self._ran = True
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        timer = loop.call_later(duration, self._stop.set) if duration is not None else None
        paced_from = started
        try:
            for slot in range(self.settings.sessions):
                await self._start(slot)
            seeds = await asyncio.gather(
                *(agent.seed(agent.rng.randint(*SEED_MESSAGES)) for agent in self.live.values())
            )
            self.seed_ops = sum(seeds)
            for agent in self.live.values():
                if agent.binding:
                    self._note(
                        f"{agent.session_id}: binding budget of {agent.limit:,} tokens "
                        "(it stops there until the limit is raised)"
                    )
                elif agent.tight:
                    self._note(f"{agent.session_id}: budget capped at {agent.limit:,} tokens")
            self._note(f"seeded {len(seeds)} sessions with {self.seed_ops:,} operations")
            paced_from = time.monotonic()
            pacer = _Pacer(self.settings.rate, random.Random(self.seed), self._stop, max_ops)
            results = await asyncio.gather(
                *(self._drive(slot, pacer) for slot in list(self.live)), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        finally:
            if timer is not None:
                timer.cancel()
            self._stop.set()
            for agent in list(self.live.values()):
                await self._retire(agent)
        ended = time.monotonic()
        return SimulationReport(
            seed=self.seed,
            sessions=dict(self.sessions),
            written={kind: self.written[kind] for kind in WRITTEN_KINDS} | dict(self.written),
            errors=dict(self.errors),
            seed_ops=self.seed_ops,
            ops=self.ops,
            elapsed=ended - started,
            paced=ended - paced_from,
            cache=dict(self._cache),
        )

    async def _start(self, slot: int) -> SimulatedAgent:
        """A new agent in ``slot``: its scenario, budget and manner follow from the seed."""
        generation = self._generation.get(slot, -1) + 1
        count = self.settings.sessions
        scenario = self._scenarios[(slot + generation * count) % len(self._scenarios)]
        session_id = await self._fresh_id(scenario)
        self._generation[slot] = generation
        rng = random.Random(f"{self.seed}/{slot}/{generation}")
        first = generation == 0
        agent = SimulatedAgent(
            self.conn,
            session_id,
            rng,
            scenario=scenario,
            tight=(slot == 0 and first) or (not first and rng.random() < TIGHT_CHANCE),
            # one agent of two or more has a binding budget: it stops at the limit and waits
            # for an operator to raise it
            binding=first and count > 1 and slot == min(BINDING_SLOT, count - 1),
            eager=slot == min(1, count - 1) and first,
            max_messages=self.settings.max_messages,
            cache_size=self.settings.cache_size,
            recheck=self.settings.recheck,
            written=self.written,
        )
        self.live[slot] = agent
        self.sessions[agent.session_id] = "running"
        self._note(
            f"started {agent.session_id}: {scenario.task} "
            f"(budget {agent.limit:,} tokens, {agent.model})"
        )
        return agent

    async def _fresh_id(self, scenario: Scenario) -> str:
        """``<prefix>-<slug>``, with a number if this namespace already has that session."""
        base = f"{self.settings.prefix}-{scenario.slug}"
        for n in range(1, 100_000):
            candidate = base if n == 1 else f"{base}-{n}"
            if candidate in self.sessions:
                continue
            if await self.conn.client.zscore(self.conn.keys.sessions, candidate) is None:
                return candidate
        raise RuntimeError(f"no free session id like {base!r}")

    async def _retire(self, agent: SimulatedAgent) -> None:
        await agent.close()
        stats = agent.cache.stats
        self._cache.update(
            lookups=stats.hits + stats.misses,
            hits=stats.hits,
            misses=stats.misses,
            evictions=stats.evictions,
        )
        if agent.outcome is not None:
            self.sessions[agent.session_id] = agent.outcome
        elif agent.held is not None:
            self.sessions[agent.session_id] = "held"

    async def _drive(self, slot: int, pacer: _Pacer) -> None:
        """One slot: step its agent at the pacer's tickets; when the agent finishes, pause and
        start another. Store errors are counted and waited out; anything else ends the run."""
        try:
            while True:
                try:
                    agent = self.live.get(slot) or await self._start(slot)
                    if agent.finished:
                        self._note(f"{agent.session_id}: {agent.outcome}")
                        del self.live[slot]
                        await self._retire(agent)
                        delay = self.settings.restart_delay
                        if not await _sleep(delay, self._stop, pacer.spent):
                            return
                        continue
                    if agent.held is not None:  # asks again at its modest rate, not per ticket
                        wait = agent.hold_wait()
                        if wait > 0 and not await _sleep(wait, self._stop, pacer.spent):
                            return
                    if not await pacer.ticket():
                        return
                    held = agent.held
                    await agent.step()
                    self.ops += 1
                    if agent.held != held:
                        said = f"held: {agent.held}" if agent.held else "goes on"
                        self._note(f"{agent.session_id}: {said}")
                except (RedisError, OSError) as error:
                    self.errors[type(error).__name__] += 1
                    if self.errors.total() == 1:
                        self._note(f"store error (counted, retrying): {error}")
                    if not await _sleep(ERROR_PAUSE, self._stop):
                        return
        except BaseException:
            self._stop.set()
            raise
