"""The OpenAI-compatible provider against real recorded OpenAI traffic, replayed over loopback HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import yaml
from cassettes import cassette_path, load_responses, replay_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from nodes.attempts import Limits, TierCaller
from nodes.catalog import NODES
from nodes.cost import Usage, cost_usd
from nodes.errors import RateLimited, UpstreamError
from nodes.ladder import Ladder
from nodes.loopback import LoopbackServer
from nodes.provider import ModelRequest, OpenAIProvider, messages_for, response_format_for
from nodes.settings import Settings
from nodes.tiers import LADDER, Tier, resolve_tiers

ANSWER_SCHEMA = {
    "description": "Response model with structured fields.",
    "properties": {
        "answer": {"description": "The answer to the question", "title": "Answer", "type": "string"},
        "confidence": {
            "description": "Confidence score between 0 and 1",
            "title": "Confidence",
            "type": "number",
        },
    },
    "required": ["answer", "confidence"],
    "title": "AnswerResponse",
    "type": "object",
}


class Replay:
    def __init__(self, *prefixes_and_indexes: tuple[str, int]) -> None:
        responses = [load_responses(prefix)[index] for prefix, index in prefixes_and_indexes]
        self.app = replay_app(responses)
        self.server = LoopbackServer(self.app)
        self.base_url = self.server.start_in_thread() + "/v1"

    @property
    def seen(self) -> list[dict[str, Any]]:
        return list(self.app.state.seen)

    def tiers(self) -> dict[str, Tier]:
        return resolve_tiers(
            Settings(**{name: {"base_url": self.base_url, "api_key": "k"} for name in ("nano", "mini", "full")})
        )  # type: ignore[return-value]


@pytest.fixture
def replay() -> Iterator[Any]:
    started: list[Replay] = []

    def start(*items: tuple[str, int]) -> Replay:
        started.append(Replay(*items))
        return started[-1]

    yield start
    for item in started:
        item.server.stop_thread()


def request_for(schema: dict[str, Any]) -> ModelRequest:
    return ModelRequest(
        messages=[{"role": "user", "content": "What is the capital of France? Be concise."}],
        schema_name="AnswerResponse",
        output_schema=schema,
        max_output_tokens=100,
        timeout_s=10,
    )


async def test_structured_reply_cassette_02(replay: Any) -> None:
    upstream = replay(("02", 0))
    provider = OpenAIProvider()
    try:
        reply = await provider.complete(upstream.tiers()["nano"], request_for(ANSWER_SCHEMA))
    finally:
        await provider.aclose()
    assert reply.content == '{"answer":"Paris","confidence":0.99}'
    assert (reply.refusal, reply.finish_reason, reply.model) == (None, "stop", "gpt-4o-2024-08-06")
    assert reply.usage == Usage(input_tokens=94, output_tokens=11)
    assert reply.structured_outputs == "json_schema"
    assert reply.headers["x-ratelimit-limit-requests"] == "10000"


def test_our_strict_request_matches_the_recorded_one() -> None:
    """The response_format we send for a user schema is what OpenAI accepted in cassette 02."""
    recorded = yaml.safe_load(cassette_path("02").read_text())["interactions"][0]["request"]["body"]
    recorded_format = json.loads(recorded)["response_format"]
    node = NODES["extract"]
    task = node.task(node.parse({"input": "x", "schema": ANSWER_SCHEMA}))
    request = request_for(task.strict_schema)
    assert response_format_for("json_schema", request) == recorded_format


async def test_real_429_becomes_a_retryable_rate_limit(replay: Any) -> None:
    upstream = replay(("04", 0))
    provider = OpenAIProvider()
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.complete(upstream.tiers()["nano"], request_for(ANSWER_SCHEMA))
    finally:
        await provider.aclose()
    error = caught.value
    assert isinstance(error, RateLimited)
    assert (error.outcome, error.retryable, error.status, error.code) == ("rate_limited", True, 429, "429")
    assert error.retry_after_s is None
    assert "Provider returned error" in error.message
    assert len(upstream.seen) == 1  # the SDK's own retries are off


async def test_a_run_retries_a_real_429_then_prices_the_real_reply(replay: Any) -> None:
    upstream = replay(("04", 0), ("02", 0))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    provider = OpenAIProvider()
    caller = TierCaller(provider, Limits(), rng=random.Random(1), sleep=sleep)
    node = NODES["extract"]
    task = node.task(node.parse({"input": "What is the capital of France?", "schema": ANSWER_SCHEMA}))
    tiers = upstream.tiers()
    budget = caller.budget("run_r")
    try:
        answer = await Ladder(tiers).climb(caller, budget, task, "nano", "full")
    finally:
        await provider.aclose()
    assert [(a.tier, a.outcome) for a in budget.attempts] == [("nano", "rate_limited"), ("nano", "ok")]
    assert answer.output == {"answer": "Paris", "confidence": 0.99}
    assert len(slept) == 1 and 0 <= slept[0] <= 0.5
    # 94 * 0.20 + 11 * 1.25 = 32.55 per million; the 429 cost nothing
    assert sum((a.cost_usd for a in budget.attempts), Decimal(0)) == Decimal("0.00003255")
    assert cost_usd(budget.usage, tiers["full"].price) == Decimal("0.0004")  # 94 * 2.50 + 11 * 15.00 = 400


async def test_reasoning_and_cached_usage_flow_into_attempt_costs(replay: Any) -> None:
    upstream = replay(("05", 0))
    provider = OpenAIProvider()
    try:
        reply = await provider.complete(upstream.tiers()["full"], request_for(ANSWER_SCHEMA))
    finally:
        await provider.aclose()
    assert reply.usage == Usage(input_tokens=13, output_tokens=238, reasoning_tokens=192)
    upstream = replay(("06", 0))
    provider = OpenAIProvider()
    try:
        reply = await provider.complete(upstream.tiers()["mini"], request_for(ANSWER_SCHEMA))
    finally:
        await provider.aclose()
    assert reply.usage == Usage(input_tokens=1144, cached_input_tokens=1024, output_tokens=2)


def test_json_object_schema_sends_json_mode_with_the_schema_attached_and_in_the_prompt() -> None:
    node = NODES["extract"]
    task = node.task(node.parse({"input": "x", "schema": ANSWER_SCHEMA}))
    request = request_for(task.strict_schema)
    assert response_format_for("json_object_schema", request) == {"type": "json_object", "schema": task.strict_schema}
    assert response_format_for("json_object", request) == {"type": "json_object"}
    for mode in ("json_object", "json_object_schema"):
        (question, instruction) = messages_for(mode, request)
        assert (
            question == request.messages[0]
            and instruction["role"] == "system"
            and json.dumps(task.strict_schema, indent=1) in instruction["content"]
        )
    assert messages_for("json_schema", request) == request.messages


async def test_an_endpoint_that_refuses_logprobs_is_asked_without_them_from_then_on() -> None:
    seen: list[dict[str, Any]] = []
    refusal = {
        "error": {
            "message": "logprobs are not supported with this model.",
            "type": "invalid_request_error",
            "param": "logprobs",
            "code": "unsupported_parameter",
        }
    }

    async def completions(request: Request) -> Response:
        body = json.loads(await request.body())
        seen.append(body)
        if body.get("logprobs"):
            return JSONResponse(refusal, status_code=400)
        message = {"role": "assistant", "content": '{"answer": "Paris", "confidence": 0.9}'}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        return JSONResponse({"id": "c1", "object": "chat.completion", "model": body["model"], "choices": [choice],
                             "usage": usage})  # fmt: skip

    server = LoopbackServer(Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])]))
    base_url = server.start_in_thread() + "/v1"
    try:
        tiers = resolve_tiers(Settings(**{name: {"base_url": base_url, "api_key": "k"} for name in LADDER}))
        provider = OpenAIProvider()
        request = replace(request_for(ANSWER_SCHEMA), logprobs=True)
        first = await provider.complete(tiers["nano"], request)
        second = await provider.complete(tiers["nano"], request)
        await provider.aclose()
    finally:
        server.stop_thread()
    assert [bool(body.get("logprobs")) for body in seen] == [True, False, False]
    assert first.content == second.content and first.token_logprobs is None
