"""Per-key limits: requests per minute and a daily budget in USD, each answered with 429 + Retry-After.

The request limit is a sliding one-minute window per key, kept in memory (it protects the process).
The budget is read from the run log — every run's cost, failed attempts included, since the last
UTC midnight — so it holds across restarts. A key's own limits (``tierwise keys create --rpm …
--daily-budget-usd …``) win over the service-wide defaults (``TIERWISE_KEY_RPM``,
``TIERWISE_KEY_DAILY_BUDGET_USD``). A batch counts as one request; its items count against the budget.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nodes.cost import usd_text
from nodes.errors import BudgetExhausted, TooManyRequests
from nodes.storage import Database

WINDOW_S = 60.0


def seconds_to_utc_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next UTC midnight, when daily budgets reset."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


class Quotas:
    """Checks a key's request rate and spend before a run is accepted."""

    def __init__(
        self,
        db: Database,
        *,
        default_rpm: int | None,
        default_budget_usd: Decimal | None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.default_rpm = default_rpm
        self.default_budget_usd = default_budget_usd
        self.clock = clock
        self.wall_clock = wall_clock
        self._windows: dict[str, deque[float]] = {}

    def limits_of(self, key_name: str) -> tuple[int | None, Decimal | None]:
        """The key's request limit and daily budget (its own, else the defaults)."""
        rows = self.db.query("SELECT rpm, daily_budget_usd FROM api_keys WHERE name = ?", (key_name,))
        rpm, budget = self.default_rpm, self.default_budget_usd
        if rows:
            if rows[0]["rpm"] is not None:
                rpm = int(rows[0]["rpm"])
            if rows[0]["daily_budget_usd"] is not None:
                budget = Decimal(rows[0]["daily_budget_usd"])
        return rpm, budget

    def spent_today(self, key_name: str) -> Decimal:
        """What the key's runs have cost since the last UTC midnight."""
        midnight = self.wall_clock().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = self.db.query(
            "SELECT cost_usd FROM runs WHERE api_key_name = ? AND created_at >= ?",
            (key_name, midnight.strftime("%Y-%m-%dT%H:%M:%S")),
        )
        return sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))

    def admit(self, key_name: str) -> None:
        """Count one request for ``key_name``, or raise 429 when it is over a limit."""
        rpm, budget = self.limits_of(key_name)
        if budget is not None:
            spent = self.spent_today(key_name)
            if spent >= budget:
                raise BudgetExhausted(
                    f"this key has spent ${usd_text(spent)} today (UTC), its daily budget is ${usd_text(budget)}; "
                    "it resets at midnight UTC",
                    retry_after_s=seconds_to_utc_midnight(self.wall_clock()),
                )
        if rpm is None:
            return
        now = self.clock()
        window = self._windows.setdefault(key_name, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        if len(window) >= rpm:
            raise TooManyRequests(
                f"this key is limited to {rpm} requests per minute; wait before sending more",
                retry_after_s=window[0] + WINDOW_S - now,
            )
        window.append(now)
