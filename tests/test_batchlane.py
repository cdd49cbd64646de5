"""The batch lane: asynchronous runs whose model calls go through the sandbox's Batch API, end to end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from support import BACKENDS, Receiver, Sandbox, Service

from nodes.batchlane import Batcher, BatchLane, Result, call_key, custom_id
from nodes.errors import ServerError, UpstreamError
from nodes.provider import ModelRequest, OpenAIProvider
from nodes.settings import Settings
from nodes.store import Store, utc_stamp
from nodes.tiers import resolve_tiers

CLASSIFY = {"input": "Billing problem: charged twice", "labels": ["billing", "bug"], "processing": "batch"}
EXTRACT = {
    "input": "Invoice INV-7 from Acme GmbH, total 120 EUR",
    "schema": {
        "type": "object",
        "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}},
        "required": ["vendor", "total"],
    },
    "processing": "batch",
}
FAST_BATCHES = {
    "callback_allow_private": True,
    "callback_backoff_base_s": 0.05,
    "callback_backoff_cap_s": 0.2,
    "batch_collect_s": 0.05,
    "batch_poll_s": 0.05,
}


@pytest.fixture
def batch_service(start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]) -> Service:
    return start_service(make_settings(**FAST_BATCHES))


def batch_lines(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [entry for entry in sandbox.requests() if "batch" in entry]


def test_a_batch_lane_run_goes_through_the_batch_api_and_reaches_its_callback(
    batch_service: Service, sandbox: Sandbox, receiver: Receiver
) -> None:
    accepted = batch_service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": receiver.url})
    assert accepted.status_code == 202, accepted.text
    (delivery,) = receiver.wait_for(1)
    body = json.loads(delivery["body"])
    assert body["run_id"] == accepted.json()["run_id"] and body["output"]["label"] in ("billing", "bug")
    (attempt,) = body["attempts"]
    assert (attempt["processing"], attempt["outcome"], attempt["tier"]) == ("batch", "ok", "nano")
    standard = (
        Decimal(attempt["input_tokens"]) * Decimal("0.20") + Decimal(attempt["output_tokens"]) * Decimal("1.25")
    ) / 10**6
    assert Decimal(str(attempt["cost_usd"])) == standard / 2
    (line,) = batch_lines(sandbox)
    assert len(sandbox.requests()) == 1  # no direct call: the one call went in a batch
    assert line["body"]["model"] == "gpt-5.4-nano" and line["status"] == 200
    calls = batch_service.rows("SELECT run_id, status, batch_label FROM batch_calls")
    assert [(c["run_id"], c["status"]) for c in calls] == [(body["run_id"], "done")]
    (batch,) = batch_service.rows("SELECT label, status, batch_id FROM upstream_batches")
    assert (batch["label"], batch["status"]) == (calls[0]["batch_label"], "ended") and batch["batch_id"] == line[
        "batch"
    ]


def test_a_repair_goes_into_the_next_batch(batch_service: Service, sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.configure(faults=[{"kind": "non_json", "model": "*nano*", "times": 1}])
    batch_service.http.post("/v1/nodes/extract", json={**EXTRACT, "callback_url": receiver.url})
    (delivery,) = receiver.wait_for(1)
    body = json.loads(delivery["body"])
    assert [(a["outcome"], a["repair"], a["processing"]) for a in body["attempts"]] == [
        ("invalid_output", False, "batch"),
        ("ok", True, "batch"),
    ]
    lines = batch_lines(sandbox)
    assert len(lines) == 2 and lines[0]["batch"] != lines[1]["batch"]  # two batches, one after the other
    assert lines[1]["body"]["messages"][-1]["role"] == "user"  # the repair turn, told the errors
    assert body["output"]["vendor"]


def test_many_runs_share_one_batch_per_wave(
    start_service: Callable[[Settings], Service],
    make_settings: Callable[..., Settings],
    sandbox: Sandbox,
    receiver: Receiver,
) -> None:
    service = start_service(make_settings(**{**FAST_BATCHES, "batch_collect_s": 0.5}))
    items = [{"input": f"ticket {n} about billing"} for n in range(6)]
    answer = service.http.post(
        "/v1/nodes/classify/batch",
        json={"items": items, "defaults": {**CLASSIFY, "callback_url": receiver.url}},
    )
    assert answer.status_code == 200 and answer.json()["summary"]["succeeded"] == 6
    receiver.wait_for(6)
    batches = {line["batch"] for line in batch_lines(sandbox)}
    assert len(batch_lines(sandbox)) == 6 and len(batches) <= 2  # gathered, not one batch per call


def test_a_synchronous_batch_request_is_refused_with_what_to_do(batch_service: Service, sandbox: Sandbox) -> None:
    refused = batch_service.http.post("/v1/nodes/classify", json=CLASSIFY)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "processing: batch is for work that can wait (answers take minutes to hours): add callback_url and the "
        "result is POSTed there, or send processing standard or flex"
    )
    assert sandbox.requests() == []


def test_a_default_of_batch_sends_synchronous_requests_on_standard(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(**FAST_BATCHES, processing="batch"))
    body = service.http.post("/v1/nodes/classify", json={k: v for k, v in CLASSIFY.items() if k != "processing"})
    assert body.status_code == 200 and body.json()["attempts"][0]["processing"] == "standard"


def test_a_call_waiting_past_the_batch_wait_is_made_on_standard(
    start_service: Callable[[Settings], Service],
    make_settings: Callable[..., Settings],
    sandbox: Sandbox,
    receiver: Receiver,
) -> None:
    sandbox.configure(batch_delay_ms=60_000)
    service = start_service(make_settings(**FAST_BATCHES, batch_wait_s=0.5))
    service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": receiver.url})
    (delivery,) = receiver.wait_for(1)
    attempts = json.loads(delivery["body"])["attempts"]
    assert [(a["processing"], a["outcome"], a["cost_usd"]) for a in attempts][0] == ("batch", "unavailable", 0)
    assert attempts[0]["error"] == "no batch answered the call within 0.5 s (TIERWISE_BATCH_WAIT_S); made on standard"
    assert (attempts[1]["processing"], attempts[1]["outcome"]) == ("standard", "ok")


# --- the pieces ---------------------------------------------------------------------------------------------------


def test_a_calls_identity_is_its_body_and_how_many_came_before() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    same = {"messages": [{"role": "user", "content": "x"}], "model": "m"}
    assert call_key(body, 0) == call_key(same, 0) != call_key(body, 1)
    assert call_key(body, 1).endswith(":1") and custom_id("run_1", call_key(body, 0)).startswith("run_1|")


def test_a_stored_result_becomes_the_reply_or_the_failure_a_direct_call_would_have_had() -> None:
    tiers = resolve_tiers(Settings(nano={"base_url": "http://127.0.0.1:9/v1", "api_key": "k"}, openai_api_key="k-1"))
    request = ModelRequest([{"role": "user", "content": "x"}], "s", {"type": "object"}, 10, 1.0)
    choice = {"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
    ok = Result(200, {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}, "model": "m"})
    reply = Result.from_json(ok.as_json()).reply(tiers["nano"], request, "json_schema")
    assert (reply.content, reply.usage.input_tokens, reply.model) == ("{}", 3, "m")
    with pytest.raises(UpstreamError) as refused:
        Result(400, {"error": {"message": "bad"}}).reply(tiers["nano"], request, "json_schema")
    assert refused.value.message == "HTTP 400 in the batch: bad" and not refused.value.retryable
    with pytest.raises(UpstreamError) as overloaded:
        Result(503, {}).reply(tiers["nano"], request, "json_schema")
    assert overloaded.value.retryable
    with pytest.raises(ServerError, match="expired"):
        Result(None, None, "batch b ended (expired) without answering this call").reply(
            tiers["nano"], request, "json_schema"
        )


# --- the batcher over a store, on both engines ----------------------------------------------------------------------


async def record_creating(store: Store, label: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    """What a process that died between recording a batch and sending it leaves behind."""
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO upstream_batches (label, tier, status, created_at, updated_at, sent_at) "
            "VALUES (?, 'nano', 'creating', ?, ?, 0)",
            (label, utc_stamp(), utc_stamp()),
        )
        for run_id, body in calls:
            await tx.execute(
                "INSERT INTO batch_calls (run_id, call_key, tier, body, status, batch_label, created_at, updated_at) "
                "VALUES (?, 'k:0', 'nano', ?, 'submitted', ?, ?, ?)",
                (run_id, json.dumps(body), label, utc_stamp(), utc_stamp()),
            )


def chat_body(text: str) -> dict[str, Any]:
    return {"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": text}]}


@BACKENDS
async def test_a_batch_recorded_but_never_sent_is_sent_once(store: Store, sandbox: Sandbox) -> None:
    tiers = sandbox_tiers(sandbox)
    provider = OpenAIProvider()
    lane = BatchLane(store, poll_s=0.05)
    batcher = Batcher(store, lane, provider, tiers, collect_s=0, poll_s=0.05)
    await record_creating(store, "tw-lost", [("run_1", chat_body("a")), ("run_2", chat_body("b"))])
    await batcher.tick()  # not at the endpoint under its label: sent now
    await batcher.tick()
    await provider.aclose()
    (batch,) = await store.fetchall("SELECT status, batch_id FROM upstream_batches WHERE label = 'tw-lost'")
    assert batch["status"] in ("submitted", "ended") and batch["batch_id"].startswith("batch_sandbox_")
    at_endpoint = [b for b in sandbox.http.get("/v1/batches").json()["data"] if b["id"] == batch["batch_id"]]
    assert [b["metadata"] for b in at_endpoint] == [{"tierwise_batch": "tw-lost"}]


@BACKENDS
async def test_a_batch_that_reached_the_endpoint_before_the_crash_is_adopted_not_sent_again(
    store: Store, sandbox: Sandbox
) -> None:
    tiers = sandbox_tiers(sandbox)
    provider = OpenAIProvider()
    line = {"custom_id": "run_1|k:0", "method": "POST", "url": "/v1/chat/completions", "body": chat_body("a")}
    sent = await provider.submit_batch(tiers["nano"], [line], "tw-sent")
    await record_creating(store, "tw-sent", [("run_1", chat_body("a"))])
    lane = BatchLane(store, poll_s=0.05)
    batcher = Batcher(store, lane, provider, tiers, collect_s=0, poll_s=0.05)
    before = len(sandbox.http.get("/v1/batches", params={"limit": 100}).json()["data"])
    deadline = time.monotonic() + 10
    while (await store.fetchone("SELECT status FROM batch_calls WHERE run_id = 'run_1'"))["status"] != "done":
        assert time.monotonic() < deadline
        await batcher.tick()
        await asyncio.sleep(0.05)
    await provider.aclose()
    assert len(sandbox.http.get("/v1/batches", params={"limit": 100}).json()["data"]) == before
    (batch,) = await store.fetchall("SELECT status, batch_id FROM upstream_batches WHERE label = 'tw-sent'")
    assert (batch["status"], batch["batch_id"]) == ("ended", sent)
    (call,) = await store.fetchall("SELECT result FROM batch_calls WHERE run_id = 'run_1'")
    assert Result.from_json(call["result"]).status == 200


def sandbox_tiers(sandbox: Sandbox) -> Any:
    return resolve_tiers(Settings(), sandbox_url=sandbox.base_url)
