"""The outbox: leased deliveries on both engines, one deadline per delivery, receivers that cannot stall others."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from support import BACKENDS

from nodes.loopback import LoopbackServer
from nodes.outbox import Deliverer, Outbox, deliver
from nodes.settings import Settings
from nodes.store import Store
from nodes.urlguard import guarded_client


async def add(store: Store, outbox: Outbox, run_id: str, url: str = "http://127.0.0.1:9/cb") -> str:
    async with store.transaction() as tx:
        return await outbox.add(tx, run_id=run_id, url=url, body={"run_id": run_id})


@BACKENDS
async def test_due_deliveries_are_leased_to_one_taker(store: Store) -> None:
    outbox = Outbox(store, deadline_s=60)
    first = await add(store, outbox, "run_a")
    taken = await outbox.due(limit=10, lease_s=30)
    assert [(d.delivery_id, d.run_id, json.loads(d.body)) for d in taken] == [(first, "run_a", {"run_id": "run_a"})]
    assert await outbox.due(limit=10, lease_s=30) == []
    wake = await outbox.wake_in()
    assert wake is not None and 29 <= wake <= 30


@BACKENDS
async def test_failures_are_retried_until_the_deadline_then_expire(store: Store) -> None:
    outbox = Outbox(store, deadline_s=10)
    await add(store, outbox, "run_a")
    (delivery,) = await outbox.due(limit=1, lease_s=30)
    assert await outbox.failed(delivery, "the receiver answered HTTP 500", retry_in_s=5)
    row = await store.fetchone("SELECT status, attempts, last_error, next_attempt_at FROM outbox")
    assert row is not None and (row["status"], row["attempts"], row["last_error"]) == (
        "pending",
        1,
        "the receiver answered HTTP 500",
    )
    assert not await outbox.failed(delivery, "again", retry_in_s=60)
    assert await outbox.counts() == {"expired": 1}
    assert await outbox.wake_in() is None


@BACKENDS
async def test_a_delivery_is_recorded_once_taken(store: Store) -> None:
    outbox = Outbox(store, deadline_s=10)
    await add(store, outbox, "run_a")
    (delivery,) = await outbox.due(limit=1, lease_s=30)
    await outbox.delivered(delivery)
    (row,) = await outbox.for_run("run_a")
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 1, None)
    assert await outbox.delivered_body("run_a") == {"run_id": "run_a"}


class Receivers:
    """Loopback receivers that answer at once, late, drip their answer, or flood it."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

        async def fast(request: Request) -> Response:
            self.arrived[request.url.path] = time.monotonic()
            return Response(status_code=204)

        async def late(request: Request) -> Response:
            await asyncio.sleep(3)
            return Response(status_code=200)

        async def drip(request: Request) -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(100):
                    yield b"."
                    await asyncio.sleep(1)

            return StreamingResponse(chunks(), status_code=200)

        async def flood(request: Request) -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10_000):
                    yield b"x" * 65536

            return StreamingResponse(chunks(), status_code=503, headers={"Retry-After": "7"})

        routes = [Route(f"/{name}/{{n}}", handler, methods=["POST"]) for name, handler in
                  (("fast", fast), ("late", late), ("drip", drip), ("flood", flood))]  # fmt: skip
        self.server = LoopbackServer(Starlette(routes=routes), graceful_s=0.05)
        self.url = ""


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    running = Receivers()
    running.url = await running.server.start()
    yield running
    await running.server.stop()


async def test_one_delivery_has_one_deadline_and_the_answers_body_is_never_read(receivers: Receivers) -> None:
    async with guarded_client(allow_private=True, timeout=10) as client:
        common: dict[str, Any] = {"delivery_id": "dlv_1", "run_id": "run_1", "attempt": 1, "deadline_s": 0.5}
        started = time.monotonic()
        late = await deliver(client, f"{receivers.url}/late/1", b"{}", **common)
        assert (late.delivered, late.error) == (False, "the receiver did not answer within 0.5 s")
        dripped = await deliver(client, f"{receivers.url}/drip/1", b"{}", **common)
        assert dripped.delivered and dripped.status == 200
        flooded = await deliver(client, f"{receivers.url}/flood/1", b"{}", **common)
        assert (flooded.delivered, flooded.status, flooded.headers and flooded.headers["retry-after"]) == (
            False,
            503,
            "7",
        )
        assert time.monotonic() - started < 3


async def test_a_refused_address_is_final(receivers: Receivers) -> None:
    async with guarded_client(allow_private=False, timeout=2) as client:
        result = await deliver(
            client, f"{receivers.url}/fast/1", b"{}", delivery_id="d", run_id="r", attempt=1, deadline_s=2
        )
    assert result.final and not result.delivered and "non-public address" in (result.error or "")


@BACKENDS
async def test_a_slow_receiver_holds_up_no_other_delivery(store: Store, receivers: Receivers) -> None:
    outbox = Outbox(store, deadline_s=60)
    settings = Settings(callback_allow_private=True, callback_timeout_s=1)
    for n in range(3):
        await add(store, outbox, f"run_late_{n}", f"{receivers.url}/late/{n}")
    for n in range(5):
        await add(store, outbox, f"run_fast_{n}", f"{receivers.url}/fast/{n}")
    deliverer = Deliverer(settings, outbox)
    started = time.monotonic()
    await deliverer.start()
    try:
        while len(receivers.arrived) < 5:
            assert time.monotonic() - started < 3, f"{len(receivers.arrived)} of 5 fast deliveries arrived"
            await asyncio.sleep(0.02)
        while (await outbox.counts()).get("delivered", 0) < 5:
            await asyncio.sleep(0.02)
    finally:
        await deliverer.stop()
    assert max(receivers.arrived.values()) - started < 2
