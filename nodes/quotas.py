"""The callers' limits: requests per minute and a daily budget in USD per key, answered 429 + Retry-After.

Both are kept in the store, so they hold across restarts and across every instance sharing it:

* **Requests per minute** is a sliding one-minute window: each admitted request is a row in
  ``key_requests``; a request is refused while the key already has ``rpm`` rows in the last 60 s,
  with ``Retry-After`` the time until the oldest leaves the window. The read-count-insert sequence
  holds the store's lock on the key, so two instances never admit one request too many.
* **The daily budget** is checked against ``key_spend``, the key's spend since the last UTC midnight,
  which the run log adds every run's cost to (failed attempts included) in the run's own transaction.
  It is checked when a request is admitted, before each item of a batch, and before every model call
  of a run after its first, so a batch or a long run stops where the budget runs out.

A key's own limits (``tierwise keys create --rpm … --daily-budget-usd …``) win over the service-wide
defaults (``TIERWISE_KEY_RPM``, ``TIERWISE_KEY_DAILY_BUDGET_USD``). A batch counts as one request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from nodes.cost import usd_text
from nodes.errors import BudgetExhausted, TooManyRequests
from nodes.keys import Caller
from nodes.store import Store, Tx

WINDOW_S = 60.0
PURGE_EVERY_S = 60.0
PICO = Decimal(10) ** 12


def seconds_to_utc_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next UTC midnight, when daily budgets reset."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def to_picousd(amount: Decimal) -> int:
    """``amount`` in millionths of a millionth of a dollar, rounded up (a budget is never undercounted)."""
    return int((amount * PICO).to_integral_value(rounding=ROUND_CEILING))


async def add_spend(tx: Tx, key_id: str, day: str, amount: Decimal) -> None:
    """Add ``amount`` to what ``key_id`` spent on ``day`` (``YYYY-MM-DD``), inside the caller's transaction."""
    await tx.execute(
        "INSERT INTO key_spend (key_id, day, cost_picousd) VALUES (?, ?, ?) "
        "ON CONFLICT (key_id, day) DO UPDATE SET cost_picousd = key_spend.cost_picousd + excluded.cost_picousd",
        (key_id, day, to_picousd(amount)),
    )


class Quotas:
    """Checks a key's request rate and spend."""

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

    def budget_of(self, caller: Caller) -> Decimal | None:
        """The caller's daily budget: its own, else the default."""
        return caller.daily_budget_usd if caller.daily_budget_usd is not None else self.default_budget_usd

    async def spent_today(self, key_id: str) -> Decimal:
        """What the key's runs have cost since the last UTC midnight."""
        day = self.wall_clock().strftime("%Y-%m-%d")
        row = await self.store.fetchone(
            "SELECT cost_picousd FROM key_spend WHERE key_id = ? AND day = ?", (key_id, day)
        )
        return Decimal(row["cost_picousd"]) / PICO if row else Decimal(0)

    async def ensure_budget(self, caller: Caller, *, running: Decimal = Decimal(0)) -> None:
        """Raise 429 if the caller's spend today (plus ``running``, a run's cost so far) has reached its budget."""
        budget = self.budget_of(caller)
        if budget is None:
            return
        spent = await self.spent_today(caller.key_id) + running
        if spent >= budget:
            raise BudgetExhausted(
                f"this key has spent ${usd_text(spent)} today (UTC), its daily budget is ${usd_text(budget)}; "
                "it resets at midnight UTC",
                retry_after_s=seconds_to_utc_midnight(self.wall_clock()),
            )

    async def admit(self, caller: Caller) -> None:
        """Count one request for ``caller``, or raise 429 when it is over a limit."""
        await self.ensure_budget(caller)
        rpm = caller.rpm if caller.rpm is not None else self.default_rpm
        if rpm is not None:
            await self._count_request(caller.key_id, rpm)

    async def _count_request(self, key_id: str, rpm: int) -> None:
        now = self.clock()
        async with self.store.transaction() as tx:
            await self.store.serialise(tx, f"rpm:{key_id}")
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY_S
                await tx.execute("DELETE FROM key_requests WHERE at <= ?", (now - WINDOW_S,))
            window = await tx.fetchall(
                "SELECT at FROM key_requests WHERE key_id = ? AND at > ? ORDER BY at LIMIT ?",
                (key_id, now - WINDOW_S, rpm),
            )
            if len(window) >= rpm:
                raise TooManyRequests(
                    f"this key is limited to {rpm} requests per minute; wait before sending more",
                    retry_after_s=float(window[0]["at"]) + WINDOW_S - now,
                )
            await tx.execute("INSERT INTO key_requests (key_id, at) VALUES (?, ?)", (key_id, now))
