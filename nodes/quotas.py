"""The callers' limits: requests per minute and a daily budget in USD per key, answered 429 + Retry-After.

Both are kept in the store, so they hold across restarts and across every instance sharing it:

* **Requests per minute** is a sliding one-minute window: each admitted request is a row in
  ``key_requests``; a request is refused while the key already has ``rpm`` rows in the last 60 s,
  with ``Retry-After`` the time until the oldest leaves the window. The read-count-insert sequence
  holds the store's lock on the key, so two instances never admit one request too many.
* **The daily budget** is read from the run log — every run's cost, failed attempts included, since
  the last UTC midnight.

A key's own limits (``tierwise keys create --rpm … --daily-budget-usd …``) win over the service-wide
defaults (``TIERWISE_KEY_RPM``, ``TIERWISE_KEY_DAILY_BUDGET_USD``). A batch counts as one request;
its items count against the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nodes.cost import usd_text
from nodes.errors import BudgetExhausted, TooManyRequests
from nodes.store import Store, utc_stamp

WINDOW_S = 60.0
PURGE_EVERY_S = 60.0


def seconds_to_utc_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next UTC midnight, when daily budgets reset."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


class Quotas:
    """Checks a key's request rate and spend before a run is accepted."""

    def __init__(
        self,
        store: Store,
        *,
        default_rpm: int | None,
        default_budget_usd: Decimal | None,
        clock: Callable[[], float] = time.time,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.default_rpm = default_rpm
        self.default_budget_usd = default_budget_usd
        self.clock = clock
        self.wall_clock = wall_clock
        self._next_purge = 0.0
        self._limits: dict[str, tuple[int | None, Decimal | None]] = {}

    async def limits_of(self, key_name: str) -> tuple[int | None, Decimal | None]:
        """The key's request limit and daily budget (its own, else the defaults).

        Read once per key and process: a key's limits are set when it is made and never change.
        """
        if key_name in self._limits:
            return self._limits[key_name]
        row = await self.store.fetchone("SELECT rpm, daily_budget_usd FROM api_keys WHERE name = ?", (key_name,))
        rpm, budget = self.default_rpm, self.default_budget_usd
        if row is not None:
            if row["rpm"] is not None:
                rpm = int(row["rpm"])
            if row["daily_budget_usd"] is not None:
                budget = Decimal(row["daily_budget_usd"])
        self._limits[key_name] = (rpm, budget)
        return rpm, budget

    async def spent_today(self, key_name: str) -> Decimal:
        """What the key's runs have cost since the last UTC midnight."""
        midnight = self.wall_clock().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = await self.store.fetchall(
            "SELECT cost_usd FROM runs WHERE api_key_name = ? AND created_at >= ?", (key_name, utc_stamp(midnight))
        )
        return sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0))

    async def admit(self, key_name: str) -> None:
        """Count one request for ``key_name``, or raise 429 when it is over a limit."""
        rpm, budget = await self.limits_of(key_name)
        if budget is not None:
            spent = await self.spent_today(key_name)
            if spent >= budget:
                raise BudgetExhausted(
                    f"this key has spent ${usd_text(spent)} today (UTC), its daily budget is ${usd_text(budget)}; "
                    "it resets at midnight UTC",
                    retry_after_s=seconds_to_utc_midnight(self.wall_clock()),
                )
        if rpm is not None:
            await self._count_request(key_name, rpm)

    async def _count_request(self, key_name: str, rpm: int) -> None:
        now = self.clock()
        async with self.store.transaction() as tx:
            await self.store.serialise(tx, f"rpm:{key_name}")
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY_S
                await tx.execute("DELETE FROM key_requests WHERE at <= ?", (now - WINDOW_S,))
            window = await tx.fetchall(
                "SELECT at FROM key_requests WHERE key_name = ? AND at > ? ORDER BY at LIMIT ?",
                (key_name, now - WINDOW_S, rpm),
            )
            if len(window) >= rpm:
                raise TooManyRequests(
                    f"this key is limited to {rpm} requests per minute; wait before sending more",
                    retry_after_s=float(window[0]["at"]) + WINDOW_S - now,
                )
            await tx.execute("INSERT INTO key_requests (key_name, at) VALUES (?, ?)", (key_name, now))
