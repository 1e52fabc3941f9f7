"""TokenBudgetTracker: a session's token budget, checked and debited in one atomic script.

A session's budget lives in the hash ``NS:{NS:<session>}:budget`` (used, limit, rejected,
requests, the totals of each breakdown field, the last model). Next to it:
``…:budget:minutes`` (HASH epoch minute -> tokens, the last 60 minutes, for burn rate) and
``…:budget:req:<request id>`` (STRING, tokens, 24 h TTL: the request ids already counted).

Where the limit lives: the first script that writes a budget stores the limit of the tracker
that ran it; after that the stored limit wins over any tracker's, and only :meth:`set_limit`
(an operator, e.g. from the dashboard) changes it. ``reset`` keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .connection import Connection, resolve
from .keys import MAX_PART_LENGTH, check_part

MAX_TOKENS = 10**12
"""Most tokens one request may record (keeps every sum exact in Lua's doubles)."""
MAX_LIMIT = 10**15
MAX_MODEL_LENGTH = 128
REQUEST_ID_TTL = 86400
"""Seconds a recorded request id is remembered (a repeat within it counts once); the number is
also written in budget_debit.lua, to keep the call short."""
WINDOW_MINUTES = 60
"""Per-minute usage is kept for this many minutes (budget_debit.lua has it too)."""

COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""Breakdown fields that are token counts; each has a running total in the budget hash."""
BREAKDOWN = (*COUNTS, "model")
CONTEXT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
"""What a request sent the model: together, how full its context window was."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, as keys.check_part refuses
_EXCEEDED = re.compile(r"Token exceeded: (-?\d+) > (-?\d+)")


class BudgetExceededError(Exception):
    """A request needs more tokens than the budget has left; nothing was debited.

    Takes a message (as the usage examples raise it) or ``tokens`` and ``remaining`` (as the tracker
    does); either way ``tokens`` and ``remaining`` are set when the message carries them.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        tokens: int | None = None,
        remaining: int | None = None,
        limit: int | None = None,
        request_id: str | None = None,
    ) -> None:
        if message is None:
            message = f"Token exceeded: {tokens} > {remaining}"
        elif tokens is None and remaining is None:
            match = _EXCEEDED.search(message)
            if match:
                tokens, remaining = int(match[1]), int(match[2])
        super().__init__(message)
        self.tokens, self.remaining = tokens, remaining
        self.limit, self.request_id = limit, request_id


class BudgetDebit(NamedTuple):
    """Outcome of a recorded request: the budget right after it."""

    used: int
    limit: int
    duplicate: bool = False
    """The request id was already counted (within 24 h): nothing changed, no event."""

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """What the dashboard shows for one session's budget, read in one round trip."""

    session_id: str
    used: int
    limit: int
    rejected: int
    requests: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    model: str | None
    per_minute: tuple[tuple[datetime, int], ...] = field(repr=False)
    """(minute start, UTC; tokens) for the last 60 minutes, oldest first, the current last."""
    as_of: datetime
    """Server time of the read."""
    limit_stored: bool
    """False: nothing was recorded yet and ``limit`` is this tracker's own."""
    binding: bool = False
    """The limit binds the agent: once spent, its hooks refuse tools and prompts."""
    context_tokens: int | None = None
    """How full the context window was at the latest request (input + cache tokens)."""

    @property
    def spent(self) -> bool:
        """A binding limit is used up: the agent is held until it is raised or reset."""
        return self.binding and self.used >= self.limit

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def over_limit(self) -> bool:
        """Usage recorded with ``enforce_limit=False`` (or a lowered limit) went past it."""
        return self.used > self.limit

    def burn_rate(self, minutes: int = 5) -> float:
        """Tokens per minute over the last ``minutes`` minutes (the current one included)."""
        minutes = _check_minutes(minutes)
        return sum(tokens for _, tokens in self.per_minute[-minutes:]) / minutes

    def time_to_exhaustion(self, minutes: int = 5) -> timedelta | None:
        """At the recent burn rate, how long until nothing remains; None when nothing burns."""
        rate = self.burn_rate(minutes)
        if rate <= 0:
            return None
        return timedelta(minutes=self.remaining / rate)


def _check_count(name: str, value: object, maximum: int = MAX_TOKENS) -> int:
    if type(value) is not int:
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} must be between 0 and {maximum}, not {value}")
    return value


def check_limit(limit: object) -> int:
    if type(limit) is not int:
        raise ValueError(f"limit must be an int, not {type(limit).__name__}")
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


def parse_tokens(text: str) -> int:
    """A limit as people type it: ``700000``, ``700,000``, ``700k``, ``1.5m``; ValueError
    unless it is a number of tokens from 1 to :data:`MAX_LIMIT` (the CLI's and the
    dashboard's)."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(cleaned[-1:], 1)
    number = cleaned[:-1] if scale != 1 else cleaned
    try:
        value = round(float(number) * scale)
    except (ValueError, OverflowError):
        value = 0
    if not 0 < value <= MAX_LIMIT:
        raise ValueError(f"not a number of tokens from 1 to {MAX_LIMIT:,}: {text!r}")
    return value


def check_request_id(request_id: object) -> str:
    # the common case without the per-character loop of check_part (this is the hot path)
    if (
        type(request_id) is str
        and 0 < len(request_id) <= MAX_PART_LENGTH
        and not _CONTROL.search(request_id)
    ):
        return request_id
    return check_part("request_id", request_id)


def _check_minutes(minutes: object) -> int:
    if type(minutes) is not int or not 1 <= minutes <= WINDOW_MINUTES:
        raise ValueError(f"minutes must be an int from 1 to {WINDOW_MINUTES}, not {minutes!r}")
    return minutes


def _breakdown_args(breakdown: Mapping[str, Any]) -> list[object]:
    """Validated name/value pairs for budget_debit.lua; a value of None means not given."""
    args: list[object] = []
    for name, value in breakdown.items():
        if name not in BREAKDOWN:
            hint = " (the flag is enforce_limit)" if name == "enforce" else ""
            raise TypeError(
                f"unexpected keyword argument {name!r}{hint}; the breakdown fields are "
                + ", ".join(BREAKDOWN)
            )
        if value is None:
            continue
        if name == "model":
            check_part("model", value)
            if len(value) > MAX_MODEL_LENGTH:
                raise ValueError(
                    f"model is {len(value)} characters; the limit is {MAX_MODEL_LENGTH}"
                )
        else:
            _check_count(name, value)
        args += (name, value)
    return args


def request_key(budget: str, request_id: str) -> str:
    """The key that remembers a counted request id: '<prefix>budget:req:<id>'."""
    return budget + ":req:" + request_id


def _epoch_ms(timestamp: object) -> int:
    if not isinstance(timestamp, datetime):
        raise ValueError(f"timestamp must be a datetime, not {type(timestamp).__name__}")
    return round(timestamp.timestamp() * 1000)  # naive: local time, as datetime.timestamp()


def _series(
    buckets: Mapping[str, str], now_minute: int, minutes: int
) -> tuple[tuple[datetime, int], ...]:
    first = now_minute - minutes + 1
    return tuple(
        (datetime.fromtimestamp(m * 60, tz=UTC), int(buckets.get(str(m), 0)))
        for m in range(first, now_minute + 1)
    )


def _server_minute(time: list[int]) -> tuple[int, datetime]:
    seconds, micros = time
    return seconds // 60, datetime.fromtimestamp(seconds + micros / 1e6, tz=UTC)


class TokenBudgetTracker:
    """A session's token budget: how much is used and left, enforced atomically.

    ``limit`` is this tracker's intent: it is stored with the budget by the first write to it
    (see the module docstring); once stored, the stored limit wins.
    Every mutation is one script that also publishes one event: ``budget.usage``,
    ``budget.rejected``, ``budget.limit`` or ``budget.reset``.
    """

    def __init__(
        self,
        session_id: str,
        limit: int,
        *,
        redis: Connection | aioredis.Redis | str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.session_id = check_part("session_id", session_id)
        self.default_limit = check_limit(limit)
        self.redis: Connection = resolve(redis, namespace)
        self._keys = self.redis.session(session_id)
        self._budget = self._keys.key("budget")
        self._minutes = self._budget + ":minutes"

    @property
    def namespace(self) -> str:
        return self.redis.namespace

    async def get_remaining_budget(self) -> int:
        """Tokens left (never below 0)."""
        used, limit = await self.redis.client.hmget(self._budget, ("used", "limit"))
        return max(int(limit or self.default_limit) - int(used or 0), 0)

    async def track_request(self, request_id: str, tokens: int, **breakdown: Any) -> BudgetDebit:
        """Debit ``tokens`` if they fit, else raise :class:`BudgetExceededError`.

        The check and the debit are one script, so concurrent callers can never overspend.
        A rejection debits nothing but is counted and announced (``budget.rejected``).
        A ``request_id`` already counted in the last 24 h is not counted again: the result has
        ``duplicate=True`` and nothing changes (no event).
        """
        return await self._debit(request_id, tokens, None, True, breakdown)

    async def record_usage(
        self,
        request_id: str,
        tokens: int,
        timestamp: datetime | None = None,
        *,
        enforce_limit: bool = True,
        sidechain: bool = False,
        **breakdown: Any,
    ) -> BudgetDebit:
        """Record a request's usage; like :meth:`track_request`, but says when it happened.

        ``sidechain=True``: a subagent's request (counted the same, but its input and cache
        tokens do not say how full the session's own context window is).

        By default the limit is enforced (atomically), so a subclass that checks
        :meth:`get_remaining_budget` first and then records cannot overspend in a race either.
        ``enforce_limit=False`` records usage that already happened (e.g. read back from a
        transcript) even past the limit; its event then says ``"enforce_limit": false`` and,
        when it went past, ``"over_limit": true``. Request ids are deduplicated either way.
        ``timestamp`` (naive: local time) puts the tokens in that minute's bucket if it is
        within the last hour of server time (none at all if older) and rides in the event.
        """
        if type(enforce_limit) is not bool:
            raise ValueError(f"enforce_limit must be a bool, not {type(enforce_limit).__name__}")
        at = None if timestamp is None else _epoch_ms(timestamp)
        return await self._debit(request_id, tokens, at, enforce_limit, breakdown, sidechain)

    async def _debit(
        self,
        request_id: str,
        tokens: int,
        at: int | None,
        enforce_limit: bool,
        breakdown: Mapping[str, Any],
        sidechain: bool = False,
    ) -> BudgetDebit:
        check_request_id(request_id)
        _check_count("tokens", tokens)
        args: list[object] = [request_id, tokens, self.default_limit]
        if not enforce_limit:
            args += ("record", 1)
        if sidechain:
            args += ("sidechain", 1)
        if at is not None:
            args += ("at", at)
        if breakdown:
            args += _breakdown_args(breakdown)
        try:
            counted, used, limit = await self.redis.run("budget_debit", self._keys, (), args)
        except ResponseError as e:
            message = str(e)
            if message.startswith("EXCEEDED "):
                _, remaining, limit = message.split()
                raise BudgetExceededError(
                    tokens=tokens, remaining=int(remaining), limit=int(limit), request_id=request_id
                ) from None
            raise
        return BudgetDebit(used, limit, not counted)

    async def record_usage_many(self, requests: Sequence[Mapping[str, Any]]) -> list[BudgetDebit]:
        """:meth:`record_usage` with ``enforce_limit=False`` for several requests, in ONE script
        call (``budget_debit_many.lua``): each request is deduplicated, counted and announced
        (its own ``budget.usage`` event) exactly as that call records it, in the order given.

        Each request is a mapping of ``record_usage``'s arguments: ``request_id``, ``tokens``
        and optionally ``timestamp``, ``sidechain`` and the breakdown fields. All are checked
        first: a bad one raises (ValueError, TypeError) and nothing is written.
        """
        flat: list[object] = []
        keys = [self._budget, self._minutes]
        for request in requests:
            fields = dict(request)
            request_id = check_request_id(fields.pop("request_id", None))
            tokens = _check_count("tokens", fields.pop("tokens", None))
            timestamp = fields.pop("timestamp", None)
            sidechain = fields.pop("sidechain", False)
            if type(sidechain) is not bool:
                raise ValueError(f"sidechain must be a bool, not {type(sidechain).__name__}")
            options: list[object] = [request_id, tokens]
            if sidechain:
                options += ("sidechain", 1)
            if timestamp is not None:
                options += ("at", _epoch_ms(timestamp))
            options += _breakdown_args(fields)
            flat += (len(options), *options)
            keys.append(request_key(self._budget, request_id))
        if len(keys) == 2:
            return []
        import pydantic_core

        args = (self.default_limit, REQUEST_ID_TTL, WINDOW_MINUTES, pydantic_core.to_json(flat))
        reply = await self.redis.run("budget_debit_many", self._keys, keys, args)
        return [
            BudgetDebit(reply[i + 1], reply[i + 2], not reply[i]) for i in range(0, len(reply), 3)
        ]

    async def set_limit(self, limit: int | None, *, binding: bool | None = None) -> None:
        """Replace the stored limit (an operator's decision; wins over every tracker's).

        ``binding=True`` makes it bind the agent (its hooks refuse tools and prompts once it is
        spent), ``False`` lifts that, None keeps what is stored. ``limit=None`` keeps the stored
        limit (to bind or lift only); LookupError when there is none yet.
        """
        if binding is not None and type(binding) is not bool:
            raise ValueError(f"binding must be a bool or None, not {type(binding).__name__}")
        value = "" if limit is None else check_limit(limit)
        flag = "" if binding is None else ("1" if binding else "0")
        seq = await self.redis.run("budget_set_limit", self._keys, (), (value, flag))
        if not seq:
            raise LookupError(f"session {self.session_id!r} has no budget limit to keep")

    async def reset(self) -> None:
        """Start over: zero usage, rejections, breakdown totals and buckets; keep the limit.

        Remembered request ids are kept, so a request counted before the reset and recorded
        again after it still counts once.
        """
        await self.redis.run("budget_reset", self._keys, (), (self.default_limit,))

    async def usage_per_minute(self, minutes: int = WINDOW_MINUTES) -> list[tuple[datetime, int]]:
        """Tokens debited in each of the last ``minutes`` minutes (server clock), oldest first;
        minutes without usage are 0."""
        minutes = _check_minutes(minutes)
        async with self.redis.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hgetall(self._minutes)
            time, buckets = await pipe.execute()
        now_minute, _ = _server_minute(time)
        return list(_series(buckets, now_minute, minutes))

    async def status(self) -> BudgetStatus:
        """Everything about the budget, read together (one MULTI/EXEC)."""
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._budget)
            pipe.hgetall(self._minutes)
            pipe.time()
            budget, buckets, time = await pipe.execute()
        now_minute, as_of = _server_minute(time)
        counts = {name: int(budget.get(name, 0)) for name in COUNTS}
        return BudgetStatus(
            session_id=self.session_id,
            used=int(budget.get("used", 0)),
            limit=int(budget.get("limit", self.default_limit)),
            rejected=int(budget.get("rejected", 0)),
            requests=int(budget.get("requests", 0)),
            **counts,
            model=budget.get("model"),
            per_minute=_series(buckets, now_minute, WINDOW_MINUTES),
            as_of=as_of,
            limit_stored="limit" in budget,
            binding=budget.get("binding") == "1",
            context_tokens=int(budget["context"]) if "context" in budget else None,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.session_id!r}, {self.default_limit}, "
            f"namespace={self.namespace!r})"
        )


@dataclass(slots=True)
class BudgetView:
    """The budget part of a session's feed view (``store.feed``): totals and per-minute usage."""

    used: int = 0
    limit: int | None = None
    rejected: int = 0
    requests: int = 0
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    model: str | None = None
    minutes: dict[int, int] = field(default_factory=dict)  # epoch minute -> tokens
    binding: bool = False
    context_tokens: int | None = None  # how full the context window was at the latest request
    context_at: int = 0  # when that request was made (ms)

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def spent(self) -> bool:
        """A binding limit is used up: the agent is held."""
        return self.binding and self.limit is not None and self.used >= self.limit

    def burn_rate(self, now_ms: int, minutes: int = 5) -> float:
        """Tokens per minute over the ``minutes`` minutes up to ``now_ms`` (server time)."""
        current = now_ms // 60000
        return sum(self.minutes.get(m, 0) for m in range(current - minutes + 1, current + 1)) / (
            minutes
        )

    def time_to_exhaustion(self, now_ms: int, minutes: int = 5) -> timedelta | None:
        rate = self.burn_rate(now_ms, minutes)
        remaining = self.remaining
        if rate <= 0 or remaining is None:
            return None
        return timedelta(minutes=remaining / rate)


class BudgetSection:
    """Feed section (see ``store.feed.Section``): a session's :class:`BudgetView`."""

    name = "budget"
    kinds = ("budget.",)

    def queue_reads(self, pipe: Any, keys: Any) -> int:
        pipe.hgetall(keys.key("budget"))
        pipe.hgetall(keys.key("budget") + ":minutes")
        return 2

    def build(self, results: Any) -> BudgetView | None:
        budget, buckets = results
        if not budget and not buckets:
            return None
        return BudgetView(
            used=int(budget.get("used", 0)),
            limit=int(budget["limit"]) if "limit" in budget else None,
            rejected=int(budget.get("rejected", 0)),
            requests=int(budget.get("requests", 0)),
            totals={name: int(budget.get(name, 0)) for name in COUNTS},
            model=budget.get("model"),
            minutes={int(m): int(t) for m, t in buckets.items()},
            binding=budget.get("binding") == "1",
            context_tokens=int(budget["context"]) if "context" in budget else None,
            context_at=int(budget.get("context_at", 0)),
        )

    def apply(self, view: Any, event: Any) -> bool:
        payload, kind = event.payload, event.kind
        budget = view.budget
        if budget is None:
            budget = view.budget = BudgetView()
        try:
            if kind == "budget.usage":
                budget.used, budget.limit = int(payload["used"]), int(payload["limit"])
                budget.requests += 1
                for name in COUNTS:
                    budget.totals[name] += int(payload.get(name, 0))
                budget.model = payload.get("model", budget.model)
                self._bucket(budget, event.ts, payload.get("at"), int(payload["tokens"]))
                self._context(budget, event.ts, payload)
            elif kind == "budget.rejected":
                budget.rejected, budget.limit = int(payload["rejected"]), int(payload["limit"])
            elif kind == "budget.limit":
                budget.limit = int(payload["limit"])
                budget.binding = payload.get("binding") is True
            elif kind == "budget.reset":
                view.budget = BudgetView(
                    limit=int(payload["limit"]), binding=payload.get("binding") is True
                )
            else:
                return False
        except (KeyError, TypeError, ValueError):
            return False
        return True

    @staticmethod
    def _context(budget: BudgetView, now_ms: int, payload: Mapping[str, Any]) -> None:
        """The same context-window bookkeeping as budget_debit.lua."""
        if payload.get("sidechain") is True:
            return
        parts = [payload.get(name) for name in CONTEXT_FIELDS]
        if all(part is None for part in parts):
            return
        when = int(payload.get("at", now_ms))
        if when >= budget.context_at:
            budget.context_tokens = sum(int(part or 0) for part in parts)
            budget.context_at = when

    @staticmethod
    def _bucket(budget: BudgetView, now_ms: int, at: int | None, tokens: int) -> None:
        """The same per-minute bookkeeping as budget_debit.lua, so views equal snapshots."""
        if tokens <= 0:
            return
        minute = now_ms // 60000
        bucket = minute if at is None else min(int(at) // 60000, minute)
        if bucket <= minute - WINDOW_MINUTES:
            return
        if bucket in budget.minutes:
            budget.minutes[bucket] += tokens
            return
        budget.minutes[bucket] = tokens
        for old in [m for m in budget.minutes if m <= minute - WINDOW_MINUTES]:
            del budget.minutes[old]
