"""Client-side pacing of each tier's upstream calls, so a big batch runs near the rate limit without 429 storms.

Without pacing, a batch of thousands of concurrent items hits the upstream all at once, most
requests bounce with 429, and the retries bunch up into further storms. A ``TierLimiter`` instead
lets a call go only when the tier's budget allows it, so calls leave at the rate the upstream grants.

**Refill model.** OpenAI's limits behave like continuously refilling buckets, and so do ours: one
bucket counts requests, the other counts tokens. Each refills at ``per_minute / 60`` units a second.
Its capacity is ``per_minute / 60 * burst_s`` units, and never less than 1. Each bucket starts
full. A call needs one request, plus the caller's estimate of its tokens. A token cost above the
whole capacity needs only a full bucket; the call then leaves the bucket in debt, so it can still
go through and the long-run rate still holds. This is how the upstream's own buckets work (see
``nodes.sandbox.limits``). ``settle`` corrects the estimate once the real usage is known, and a
correction may also leave debt. A ``None`` limit is not enforced until the upstream's
``x-ratelimit-limit-*`` headers make it known.

**FIFO fairness.** Callers are served in arrival order. Only the waiter at the head of the queue
reads the clock. It computes its own exact slot from the bucket levels and sleeps once until then,
so nobody polls. When it is served, it wakes only the next waiter. Nothing can jump the queue, and
grants never wake a thundering herd. While anyone is queued, a new caller queues behind them, even
when the bucket could serve it at once.

**AIMD.** Headers and 429s teach the limiter the upstream's real state:

* A server limit lower than the configured one replaces it.
* ``remaining == 0`` holds every caller until the bucket resets.
* A 429 holds every caller for the server's ``Retry-After`` and cuts the request rate by a factor
  (multiplicative decrease, down to a floor of 10% of the limit).
* Once the hold has ended, the rate climbs back by 1% of the limit a second (additive increase) and
  never exceeds the limit.

Several 429s that arrive while one 429's hold is still in force are answers to requests sent before
that hold began. They count as one congestion event and cut the rate only once.

Everything runs on one asyncio event loop, and nothing in here is thread-safe. The clock and the
sleep are injected, so tests can run on fake time.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "DECREASE_FACTOR",
    "MAX_HOLD_S",
    "MIN_HOLD_S",
    "MIN_RATE_FRACTION",
    "RECOVERY_PER_S",
    "Limiters",
    "TierLimiter",
    "parse_duration",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DECREASE_FACTOR = 0.85
"""Each 429 (one per congestion event) multiplies the effective request rate by this."""
MIN_RATE_FRACTION = 0.10
"""The effective request rate never drops below this fraction of the limit."""
RECOVERY_PER_S = 0.01
"""The effective request rate climbs back by this fraction of the limit per second without 429s."""
MIN_HOLD_S = 0.05
"""The shortest hold after a 429 that gives no advice."""
MAX_HOLD_S = 120.0
"""No single hold is longer than this, whatever the headers say (openai-python's Retry-After ceiling)."""

# Float slack for "the bucket holds exactly enough" and "the hold is over": after a fake clock has
# moved on by a computed 0.1 s, the refill can come to 0.9999999999999998 of the one unit needed.
_EPSILON = 1e-9

_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|μs|ns|m|s)"
_DURATION = re.compile(rf"(?:{_DURATION_PART})+")
_DURATION_PARTS = re.compile(_DURATION_PART)
# (multiplier, divisor) to seconds. Units below a second divide, so that "6ms" gives the float nearest 0.006.
_UNITS: dict[str, tuple[float, float]] = {
    "h": (3600.0, 1.0),
    "m": (60.0, 1.0),
    "s": (1.0, 1.0),
    "ms": (1.0, 1e3),
    "us": (1.0, 1e6),
    "µs": (1.0, 1e6),
    "μs": (1.0, 1e6),
    "ns": (1.0, 1e9),
}


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration such as ``x-ratelimit-reset-*`` carries, or None if it is not one.

    ``"6ms"`` gives 0.006, ``"0s"`` 0.0, ``"1m26.4s"`` 86.4, ``"2h3m"`` 7380.0 and ``"250us"`` 0.00025.
    A bare ``"0"`` is zero. A bare non-zero number has no unit, so it is rejected, and so are
    negative values.
    """
    value = text.strip().lower()
    if value == "0":
        return 0.0
    if not _DURATION.fullmatch(value):
        return None
    total = 0.0
    for number, unit in _DURATION_PARTS.findall(value):
        multiplier, divisor = _UNITS[unit]
        total += float(number) * multiplier / divisor
    return total if math.isfinite(total) else None


def _count(value: str | None) -> int | None:
    """A header's non-negative whole number, or None when it is absent or malformed."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return int(number)


def _smallest(*values: int | None) -> int | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be a positive number per minute or None (unlimited), got {value}")


@dataclass
class _Dimension:
    """One bucket (requests or tokens): its configured and learned limits and its current level."""

    configured: int | None
    learned: int | None = None
    level: float = 0.0

    @property
    def limit(self) -> int | None:
        """The configured limit, or the server's when that is lower or nothing was configured."""
        if self.learned is None:
            return self.configured
        if self.configured is None:
            return self.learned
        return min(self.configured, self.learned)


class TierLimiter:
    """Paces one tier's calls: requests per minute and tokens per minute, adapting to the upstream.

    Call ``acquire(estimate)`` before each upstream attempt (retries included), then ``settle`` when
    the response reports the real usage. Pass every response's headers to ``observe_headers`` (429s
    included), and call ``observe_rate_limited`` on every 429. ``rpm`` and ``tpm`` are the
    configured limits, and None means unlimited until the upstream's headers give a limit. Both
    buckets hold ``burst_s`` seconds of refill.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        burst_s: float = 1.0,
        headroom: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        _check_limit("rpm", rpm)
        if not 0 < headroom <= 1:
            raise ValueError(f"headroom must be in (0, 1], got {headroom}")
        self._headroom = headroom
        _check_limit("tpm", tpm)
        if not (math.isfinite(burst_s) and burst_s > 0):
            raise ValueError(f"burst_s must be a positive number of seconds, got {burst_s}")
        self._burst_s = burst_s
        self._clock = clock
        self._sleep = sleep
        self._requests = _Dimension(rpm)
        self._tokens = _Dimension(tpm)
        self._fraction = 1.0  # the AIMD share of the request limit in force
        now = clock()
        self._updated = now
        self._held_until = now
        self._no_decrease_until = -math.inf
        # Queued acquirers, oldest first. Each has a future that is set when it reaches the head.
        self._queue: deque[asyncio.Future[None]] = deque()
        self._granted = 0
        self._waited_s = 0.0
        self._rate_limited = 0
        for dimension in (self._requests, self._tokens):
            dimension.level = self._capacity(dimension)

    # -- the buckets -------------------------------------------------------------------------------

    def _per_minute(self, dimension: _Dimension) -> float | None:
        """The effective limit per minute (AIMD applies to requests only), or None when unlimited."""
        limit = dimension.limit
        if limit is None:
            return None
        fraction = self._fraction if dimension is self._requests else 1.0
        return limit * fraction * self._headroom

    def _capacity(self, dimension: _Dimension) -> float:
        per_minute = self._per_minute(dimension)
        return 0.0 if per_minute is None else max(1.0, per_minute / 60 * self._burst_s)

    def _advance(self, now: float) -> None:
        """Refill both buckets up to ``now``, and recover the request rate for the time since the hold ended.

        The refill runs at the rate in force at the start of the interval, so during recovery it
        is slightly low. A clock that goes backwards adds nothing.
        """
        elapsed = now - self._updated
        if elapsed < 0:
            return
        for dimension in (self._requests, self._tokens):
            per_minute = self._per_minute(dimension)
            if per_minute is not None:
                refilled = dimension.level + per_minute / 60 * elapsed
                dimension.level = min(self._capacity(dimension), refilled)
        recovering_since = max(self._updated, self._held_until)
        if self._fraction < 1.0 and now > recovering_since:
            self._fraction = min(1.0, self._fraction + RECOVERY_PER_S * (now - recovering_since))
        self._updated = now

    def _wait_s(self, tokens: int, now: float) -> float:
        """Seconds from ``now`` until a call costing ``tokens`` may go (0 if it may go now)."""
        wait = self._held_until - now
        if wait <= _EPSILON:
            wait = 0.0
        for dimension, amount in ((self._requests, 1.0), (self._tokens, float(tokens))):
            per_minute = self._per_minute(dimension)
            if per_minute is None or amount == 0:
                continue
            needed = min(amount, self._capacity(dimension))  # an oversized cost needs a full bucket
            deficit = needed - dimension.level
            if deficit > _EPSILON * needed:
                wait = max(wait, deficit / (per_minute / 60))
        return wait

    def _take(self, tokens: int) -> None:
        self._requests.level -= 1
        self._tokens.level -= tokens  # harmless when unlimited: the level is reset when a limit is learned
        self._granted += 1

    def _hold(self, now: float, seconds: float) -> None:
        """Let nobody through before ``now + seconds`` (capped at ``MAX_HOLD_S``); holds only extend."""
        self._held_until = max(self._held_until, now + min(max(seconds, 0.0), MAX_HOLD_S))

    # -- acquiring ---------------------------------------------------------------------------------

    async def acquire(self, tokens: int = 0) -> float:
        """Wait until one request costing ``tokens`` tokens may be sent, and take them; return the seconds waited.

        Callers are served in FIFO order. The caller at the head of the queue sleeps once, until
        its computed slot, and wakes again only if a hold or a debt appeared meanwhile. A cancelled
        caller leaves the queue and takes nothing.
        """
        if tokens < 0:
            raise ValueError(f"tokens must not be negative, got {tokens}")
        start = self._clock()
        if not self._queue:
            self._advance(start)
            if self._wait_s(tokens, start) <= 0:
                self._take(tokens)
                return 0.0
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            if self._queue[0] is not turn:
                await turn
            while True:
                now = self._clock()
                self._advance(now)
                delay = self._wait_s(tokens, now)
                if delay <= 0:
                    break
                await self._sleep(delay)
            self._take(tokens)
        finally:
            self._leave(turn)
        waited = max(0.0, now - start)
        self._waited_s += waited
        return waited

    def _leave(self, turn: asyncio.Future[None]) -> None:
        """Take ``turn`` off the queue and, if it was the head, hand the head to the next waiter."""
        was_head = self._queue[0] is turn
        self._queue.remove(turn)
        if was_head and self._queue and not self._queue[0].done():
            self._queue[0].set_result(None)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once a call's real usage is known: by ``estimated - actual``.

        An underestimate can push the bucket into debt, which delays later callers until it has
        refilled. The refund for an overestimate stops at the bucket's capacity.
        """
        if estimated_tokens < 0 or actual_tokens < 0:
            raise ValueError(f"token counts must not be negative, got {estimated_tokens}, {actual_tokens}")
        self._advance(self._clock())
        if self._tokens.limit is not None:
            corrected = self._tokens.level + estimated_tokens - actual_tokens
            self._tokens.level = min(self._capacity(self._tokens), corrected)

    # -- learning from the upstream ------------------------------------------------------------------

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Learn from one response's lower-cased ``x-ratelimit-*`` headers (send 429s here too).

        * A server limit replaces the configured one when that is None or higher. Both the account
          headers and the ``-project-`` headers count.
        * On the first limit learned for a bucket, the bucket starts at the server's remaining
          count, or full if no count was given.
        * ``remaining`` lowers the bucket to the server's count (never raises it), so a drained
          server bucket makes the next caller wait one refill interval — not the full ``reset``,
          which is the time until the server's bucket is full again.
        """
        now = self._clock()
        self._advance(now)
        for dimension, kind in ((self._requests, "requests"), (self._tokens, "tokens")):
            scopes = (kind, f"project-{kind}")
            server_limit = _smallest(*(_count(headers.get(f"x-ratelimit-limit-{scope}")) for scope in scopes))
            remaining = _smallest(*(_count(headers.get(f"x-ratelimit-remaining-{scope}")) for scope in scopes))
            if server_limit is not None and server_limit > 0:
                was_unlimited = dimension.limit is None
                dimension.learned = server_limit
                capacity = self._capacity(dimension)
                if was_unlimited:
                    dimension.level = capacity if remaining is None else min(capacity, float(remaining))
                dimension.level = min(dimension.level, capacity)
            if remaining is not None:
                # The server's count is the truth; a reply that overtook another can only make us
                # more careful, so the bucket is synced downwards, never up.
                dimension.level = min(dimension.level, float(remaining))

    def observe_rate_limited(self, retry_after_s: float | None) -> None:
        """Record a 429 from the upstream: hold every caller, and cut the request rate (AIMD).

        * The hold lasts ``retry_after_s``. Without usable advice, it lasts one refill interval of
          the current request rate, and never less than ``MIN_HOLD_S``.
        * The request bucket is emptied, so that pacing resumes smoothly after the hold instead of
          in a burst.
        * The effective request rate is multiplied by ``DECREASE_FACTOR``, but never drops below
          ``MIN_RATE_FRACTION`` of the limit. A 429 that arrives while an earlier 429's hold is
          still in force is part of the same congestion event: it extends the hold but does not
          cut the rate again.
        """
        now = self._clock()
        self._advance(now)
        self._rate_limited += 1
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s >= 0:
            hold_s = retry_after_s
        else:
            per_minute = self._per_minute(self._requests)
            hold_s = max(MIN_HOLD_S, 60 / per_minute if per_minute else 0.0)
        self._hold(now, hold_s)
        self._requests.level = min(self._requests.level, 0.0)
        if now >= self._no_decrease_until:
            self._fraction = max(MIN_RATE_FRACTION, self._fraction * DECREASE_FACTOR)
            self._no_decrease_until = now + min(max(hold_s, MIN_HOLD_S), MAX_HOLD_S)

    # -- metrics -----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, float | int | None]:
        """The limiter's state, for metrics. None means that dimension is unlimited.

        * ``rpm`` / ``tpm``: the effective rates in force.
        * ``rpm_limit`` / ``tpm_limit``: the limits, whether configured or learned from the server.
        * ``rate_fraction``: the AIMD share of ``rpm_limit`` in force.
        * ``available_requests`` / ``available_tokens``: the bucket levels, which may be negative
          (debt).
        * ``held_until``: the seconds from now until the current hold ends (0 if none).
        * ``waiting``: the callers in the queue.
        * ``granted``: the calls let through.
        * ``waited_s``: the total seconds callers have waited.
        * ``rate_limited``: the 429s observed.
        """
        now = self._clock()
        self._advance(now)
        requests_limit, tokens_limit = self._requests.limit, self._tokens.limit
        return {
            "rpm": self._per_minute(self._requests),
            "tpm": self._per_minute(self._tokens),
            "rpm_limit": requests_limit,
            "tpm_limit": tokens_limit,
            "rate_fraction": self._fraction,
            "available_requests": None if requests_limit is None else self._requests.level,
            "available_tokens": None if tokens_limit is None else self._tokens.level,
            "held_until": max(0.0, self._held_until - now),
            "waiting": len(self._queue),
            "granted": self._granted,
            "waited_s": self._waited_s,
            "rate_limited": self._rate_limited,
        }


class Limiters(Mapping[str, TierLimiter]):
    """One ``TierLimiter`` per tier name, all sharing one clock, sleep and burst.

    ``limits`` maps each tier to its ``(rpm, tpm)``, where None means unlimited until learned. An
    unknown tier raises ``KeyError``.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[int | None, int | None]],
        *,
        burst_s: float = 1.0,
        headroom: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._by_tier = {
            tier: TierLimiter(rpm, tpm, burst_s=burst_s, headroom=headroom, clock=clock, sleep=sleep)
            for tier, (rpm, tpm) in limits.items()
        }

    def __getitem__(self, tier: str) -> TierLimiter:
        try:
            return self._by_tier[tier]
        except KeyError:
            raise KeyError(f"no rate limiter for tier {tier!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_tier)

    def __len__(self) -> int:
        return len(self._by_tier)

    def snapshot(self) -> dict[str, dict[str, float | int | None]]:
        """Every tier's ``TierLimiter.snapshot()``, by tier name."""
        return {tier: limiter.snapshot() for tier, limiter in self._by_tier.items()}
