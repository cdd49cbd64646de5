"""Upstream rate limits the way OpenAI enforces them: a refilling token bucket per model name.

Each model gets up to two buckets, one counting requests (``rate_limit_rpm``) and one counting tokens
(``rate_limit_tpm``). A bucket refills continuously at ``per_minute / 60`` units a second up to its
capacity, ``per_minute / 60 * burst_s`` units (never less than 1), and starts full.

A request is admitted when every bucket holds what it needs; it then takes its cost from each at
once. A token cost larger than the whole capacity only needs a full bucket (otherwise the request
could never pass); taking it leaves the bucket in debt, so the long-run rate still holds. A request
that is not admitted takes nothing, and learns the exact time until it would be admitted.

Nothing here reads a clock: callers pass ``now`` (seconds, from the sandbox's injectable clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["LimitKind", "Admission", "BucketView", "RateLimiter", "TokenBucket"]

LimitKind = Literal["requests", "tokens"]

# Float slack for "the bucket holds exactly enough": a fake clock that advances by 0.1 s from a
# value like 0.2 measures 0.09999999999999998 s, which must still count as 0.1 s of refill.
_EPSILON = 1e-9


@dataclass
class TokenBucket:
    """A continuously refilling bucket; ``level`` may go below zero after an oversized take."""

    rate: float
    capacity: float
    level: float
    updated: float

    @classmethod
    def full(cls, per_minute: int, burst_s: float, now: float) -> TokenBucket:
        """A full bucket refilling ``per_minute / 60`` a second and holding ``burst_s`` of it (at least 1)."""
        rate = per_minute / 60
        capacity = max(1.0, rate * burst_s)
        return cls(rate=rate, capacity=capacity, level=capacity, updated=now)

    def refill(self, now: float) -> None:
        """Add what has flowed in since the last update; a clock that goes backwards adds nothing."""
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_s(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount`` (or is full, if ``amount`` exceeds the capacity)."""
        needed = min(amount, self.capacity)
        if self.level + _EPSILON >= needed:
            return 0.0
        return (needed - self.level) / self.rate

    def take(self, amount: float) -> None:
        """Remove ``amount``; the level may go negative."""
        self.level -= amount

    def remaining(self) -> int:
        """Whole units available now, never negative."""
        return max(0, math.floor(self.level + _EPSILON))

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        if self.level + _EPSILON >= self.capacity:
            return 0.0
        return (self.capacity - self.level) / self.rate


@dataclass(frozen=True)
class BucketView:
    """One bucket's state for the ``x-ratelimit-*`` headers."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class Admission:
    """The outcome of ``RateLimiter.admit``.

    ``limited_by`` is ``None`` when the request was admitted (and has been taken from the buckets);
    otherwise it names the bucket that refused it (``requests`` first when both do) and ``retry_after_s``
    is the time until both buckets would admit it. ``requests``/``tokens`` describe the buckets after the
    decision, or are ``None`` when that limit is not configured.
    """

    limited_by: LimitKind | None
    retry_after_s: float
    requests: BucketView | None
    tokens: BucketView | None


@dataclass
class _ModelBuckets:
    requests: TokenBucket | None
    tokens: TokenBucket | None


@dataclass
class RateLimiter:
    """Per-model request and token buckets for one configuration (``None`` limits are not enforced)."""

    rpm: int | None
    tpm: int | None
    burst_s: float = 1.0
    _buckets: dict[str, _ModelBuckets] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether any limit is configured."""
        return self.rpm is not None or self.tpm is not None

    def admit(self, model: str, tokens: int, now: float) -> Admission:
        """Admit one request for ``model`` costing ``tokens``, taking from its buckets, or refuse it."""
        buckets = self._buckets.get(model)
        if buckets is None:
            buckets = _ModelBuckets(
                requests=None if self.rpm is None else TokenBucket.full(self.rpm, self.burst_s, now),
                tokens=None if self.tpm is None else TokenBucket.full(self.tpm, self.burst_s, now),
            )
            self._buckets[model] = buckets
        request_wait = token_wait = 0.0
        if buckets.requests is not None:
            buckets.requests.refill(now)
            request_wait = buckets.requests.wait_s(1)
        if buckets.tokens is not None:
            buckets.tokens.refill(now)
            token_wait = buckets.tokens.wait_s(tokens)
        limited_by: LimitKind | None = None
        if request_wait > 0:
            limited_by = "requests"
        elif token_wait > 0:
            limited_by = "tokens"
        else:
            if buckets.requests is not None:
                buckets.requests.take(1)
            if buckets.tokens is not None:
                buckets.tokens.take(tokens)
        return Admission(
            limited_by=limited_by,
            retry_after_s=max(request_wait, token_wait),
            requests=_view(buckets.requests, self.rpm),
            tokens=_view(buckets.tokens, self.tpm),
        )


def _view(bucket: TokenBucket | None, limit: int | None) -> BucketView | None:
    if bucket is None or limit is None:
        return None
    return BucketView(limit=limit, remaining=bucket.remaining(), reset_s=bucket.reset_s())
