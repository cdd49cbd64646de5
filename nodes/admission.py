"""Admission: who is calling, whether they may, and whether this request was answered already.

Every ``/v1`` request passes here before any work is done, in this order:

1. **The key** (``Authorization: Bearer`` or ``X-Api-Key``): missing or unknown is a 401.
2. **The Idempotency-Key**, if sent: a stored answer is replayed (costing nothing, counting against
   no limit), the same key with another body is a 409, a duplicate still running is waited for;
   otherwise the request claims the key.
3. **The key's limits** (``nodes.quotas``): over the per-minute limit or the daily budget is a 429 —
   unless the request says it will wait (``Prefer: wait=N``, RFC 7240): then a request over the
   per-minute limit is held until the window lets it through, if that is within N seconds (and
   ``TIERWISE_MAX_WAIT_S``), so a workflow needs no retry loop of its own. A spent daily budget is never
   waited for.

While the request goes on its claim is renewed, so a retry waits for it however long it takes. A
claim is given back whenever the request ends without storing an answer — refused, invalid, or broken
by an unexpected error — so a retry with the same key is never stuck behind it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from nodes.errors import BudgetExhausted, TooManyRequests, Unauthorized
from nodes.idempotency import Claim, IdempotencyStore, check_key, request_hash
from nodes.keys import Caller, KeyRing
from nodes.protocol import Reply
from nodes.quotas import Quotas

REPLAYED_HEADER = "Idempotent-Replayed"
WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?", re.IGNORECASE)
REOPEN_SLACK_S = 0.05
"""Added to the time until a key's window reopens, so the retried request lands after it."""


def preferred_wait_s(headers: Mapping[str, str], cap_s: float) -> float:
    """How long a request is willing to wait for its key's request window: ``Prefer: wait=N``, at most ``cap_s``."""
    match = WAIT_PREFERENCE.search(headers.get("prefer", ""))
    return min(float(match.group(1)), cap_s) if match else 0.0


def presented_key(headers: Mapping[str, str]) -> str:
    """The API key a request presents, or a 401 saying how to send one."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        return value.strip()
    key = headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'")
    return key


@dataclass(frozen=True)
class Admitted:
    """A request let in: who is calling and, with an Idempotency-Key, the claim on it."""

    caller: Caller
    claim: Claim | None


class Admission:
    """Authenticates callers and admits their requests."""

    def __init__(
        self,
        keys: KeyRing,
        quotas: Quotas,
        idempotency: IdempotencyStore,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.keys = keys
        self.quotas = quotas
        self.idempotency = idempotency
        self.sleep = sleep

    async def caller(self, headers: Mapping[str, str]) -> Caller:
        """Who the key the request presents belongs to, or a 401."""
        caller = await self.keys.identify(presented_key(headers))
        if caller is None:
            raise Unauthorized("the API key is not valid; create one with 'tierwise keys create --name NAME'")
        return caller

    @asynccontextmanager
    async def admit(
        self, caller: Caller, path: str, body: dict[str, Any], idempotency_key: str | None, *, wait_s: float = 0.0
    ) -> AsyncIterator[Admitted | Reply]:
        """Admit one POST: yields the stored ``Reply`` to replay, or ``Admitted`` to go on with.

        ``wait_s`` is how long the request may be held for its key's per-minute window (``Prefer: wait``).

        The claim is given back if the block raises (the answer was never stored).
        """
        claim: Claim | None = None
        if idempotency_key is not None:
            outcome = await self.idempotency.claim(caller.key_id, check_key(idempotency_key), request_hash(path, body))
            if isinstance(outcome, Reply):
                yield Reply(outcome.status, outcome.body, {**outcome.headers, REPLAYED_HEADER: "true"})
                return
            claim = outcome
        renewing = asyncio.create_task(self.idempotency.keep_renewed(claim)) if claim is not None else None
        try:
            await self.within_limits(caller, wait_s)
            yield Admitted(caller, claim)
        except BaseException:
            if claim is not None:
                await self.idempotency.release(claim)
            raise
        finally:
            if renewing is not None:
                renewing.cancel()

    async def within_limits(self, caller: Caller, wait_s: float) -> None:
        """Count the request against the key's limits, holding it up to ``wait_s`` for the per-minute window."""
        left = wait_s
        while True:
            try:
                await self.quotas.admit(caller)
                return
            except BudgetExhausted:
                raise
            except TooManyRequests as exc:
                pause = exc.reopens_in_s + REOPEN_SLACK_S
                if pause > left:
                    raise
                left -= pause
                await self.sleep(pause)
