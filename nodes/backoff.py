"""When to retry a failed model call on the same tier, and how long to wait first.

Retry is for transient upstream trouble (408, 409, 429, 5xx, timeouts, dropped connections); wrong
answers are escalation's business, not retry's. The delay is a pure function of the retry number,
the policy, a random source and the server's own advice, so its laws are tested without sleeping:

* with no usable ``Retry-After``: full jitter, ``uniform(0, min(cap, base * 2**retry))``;
* a server's ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date) wins when it is between
  0 and ``retry_after_cap_s`` (120 s, as openai-python does); a larger or nonsensical value is ignored.

``insufficient_quota`` is a 429 that no amount of waiting fixes, so it is never retried.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({408, 409, 429})
NEVER_RETRIED_CODES = frozenset({"insufficient_quota"})


@dataclass(frozen=True)
class BackoffPolicy:
    """The knobs of the delay function, in seconds."""

    base_s: float = 0.5
    cap_s: float = 8.0
    retry_after_cap_s: float = 120.0


def backoff_delay(retry: int, policy: BackoffPolicy, rng: random.Random, retry_after_s: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry).

    A sane server-given ``retry_after_s`` is returned as it is; otherwise a full-jitter exponential
    delay, never above ``policy.cap_s``.
    """
    if retry_after_s is not None and math.isfinite(retry_after_s) and 0 <= retry_after_s <= policy.retry_after_cap_s:
        return retry_after_s
    ceiling = min(policy.cap_s, policy.base_s * 2 ** min(retry, 62))
    return rng.uniform(0, ceiling)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The server's advised wait in seconds, from ``retry-after-ms`` or ``retry-after``; None if absent.

    ``headers`` must be case-insensitive or lower-cased. An HTTP-date is measured against ``now``.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def is_retryable(status: int, code: str | None = None, should_retry_header: str | None = None) -> bool:
    """Whether an HTTP error from the upstream may be retried on the same tier.

    The server's ``x-should-retry`` header wins when present; ``insufficient_quota`` never is.
    """
    if code in NEVER_RETRIED_CODES:
        return False
    if should_retry_header is not None and should_retry_header.lower() in ("true", "false"):
        return should_retry_header.lower() == "true"
    return status in RETRYABLE_STATUSES or status >= 500
