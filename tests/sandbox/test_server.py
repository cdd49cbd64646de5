"""The sandbox over real HTTP: reply shapes, usage arithmetic, every fault, control endpoints."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel
from support import TLS, Sandbox

from nodes.sandbox import FaultRule, SandboxConfig, create_sandbox_app

TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["billing", "technical", "sales"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "summary": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "due": {"type": ["string", "null"], "format": "date"},
    },
    "required": ["label", "confidence", "summary", "tags", "due"],
    "additionalProperties": False,
}
MESSAGES: list[Any] = [
    {"role": "system", "content": "Classify the ticket."},
    {"role": "user", "content": "My invoice is wrong, please fix the amount."},
]

RATE_LIMIT_BODY = {
    "error": {
        "message": "Rate limit reached for gpt-4.1-nano in organization org-sandbox on requests per min "
        "(RPM): Limit 500, Used 500, Requested 1. Please try again in 20ms.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
QUOTA_BODY = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
SERVER_ERROR_BODY = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


def json_schema_format(schema: dict[str, Any] = TICKET_SCHEMA) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "Ticket", "schema": schema, "strict": True}}


def chat(client: httpx.Client, model: str = "gpt-4.1-mini", **extra: Any) -> httpx.Response:
    payload: dict[str, Any] = {"model": model, "messages": MESSAGES, **extra}
    return client.post("/v1/chat/completions", json=payload)


def configure(client: httpx.Client, **config: Any) -> None:
    response = client.put("/_sandbox/config", json=config)
    assert response.status_code == 200, response.text


def expected_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return math.ceil(sum(len(m["content"]) for m in messages) / 4) + 3 * len(messages)


def content_of(response: httpx.Response) -> Any:
    return response.json()["choices"][0]["message"]["content"]


# -- normal replies -------------------------------------------------------------------------------


def test_json_schema_reply_through_the_openai_sdk(sandbox: Sandbox) -> None:
    async def call() -> Any:
        async with AsyncOpenAI(base_url=sandbox.base_url, api_key="sk-test", max_retries=0) as client:
            return await client.chat.completions.with_raw_response.create(
                model="gpt-4.1-mini", messages=MESSAGES, response_format=json_schema_format()
            )

    raw = asyncio.run(call())
    completion = raw.parse()
    choice = completion.choices[0]
    content = choice.message.content
    assert content is not None
    instance = json.loads(content)
    jsonschema.Draft202012Validator(TICKET_SCHEMA).validate(instance)
    assert instance["confidence"] == 0.9
    assert instance["due"] is not None
    assert list(instance) == ["label", "confidence", "summary", "tags", "due"]

    assert re.fullmatch(r"chatcmpl-sandbox-[1-9][0-9]*", completion.id)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4.1-mini"
    assert completion.service_tier == "default"
    assert completion.system_fingerprint == "fp_sandbox"
    assert choice.finish_reason == "stop"
    assert choice.message.refusal is None
    assert choice.message.role == "assistant"

    prompt = expected_prompt_tokens(MESSAGES)
    completion_tokens = math.ceil(len(content) / 4)
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        prompt,
        completion_tokens,
        prompt + completion_tokens,
    )
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0

    headers = raw.headers
    assert headers["x-request-id"].startswith("req_") and len(headers["x-request-id"]) == 36
    assert headers["openai-processing-ms"].isdigit()
    assert headers["x-ratelimit-limit-requests"] == "10000"
    assert headers["x-ratelimit-remaining-requests"] == "9999"
    assert headers["x-ratelimit-reset-requests"] == "6ms"
    assert headers["x-ratelimit-limit-tokens"] == "30000000"
    assert headers["x-ratelimit-remaining-tokens"] == str(30_000_000 - prompt - completion_tokens)
    assert headers["x-ratelimit-reset-tokens"] == "0s"


def test_reply_body_has_exactly_openais_shape(client: httpx.Client) -> None:
    body = chat(client, response_format=json_schema_format()).json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    assert isinstance(body["created"], int) and abs(body["created"] - time.time()) < 60
    assert body["choices"][0]["message"]["annotations"] == []
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["index"] == 0
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert body["usage"]["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    second = chat(client).json()
    number = int(body["id"].removeprefix("chatcmpl-sandbox-"))
    assert second["id"] == f"chatcmpl-sandbox-{number + 1}"


def test_openai_sdk_parse_with_a_pydantic_model(sandbox: Sandbox) -> None:
    class Answer(BaseModel):
        answer: str
        confidence: float
        sources: list[str]

    async def call() -> Answer | None:
        async with AsyncOpenAI(base_url=sandbox.base_url, api_key="sk-test", max_retries=0) as client:
            completion = await client.chat.completions.parse(
                model="gpt-4o",
                messages=[{"role": "user", "content": "Capital of France?"}],
                response_format=Answer,
            )
            return completion.choices[0].message.parsed

    parsed = asyncio.run(call())
    assert parsed is not None
    assert parsed.confidence == 0.9
    assert 1 <= len(parsed.sources) <= 3


def test_same_request_gets_the_same_answer(client: httpx.Client) -> None:
    first = content_of(chat(client, response_format=json_schema_format()))
    second = content_of(chat(client, response_format=json_schema_format()))
    assert first == second


def test_json_object_uses_the_last_json_schema_block(client: httpx.Client) -> None:
    old = {"type": "object", "properties": {"old": {"type": "integer"}}, "required": ["old"]}
    new = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "count": {"type": "integer", "minimum": 5, "maximum": 5}},
        "required": ["name", "count"],
        "additionalProperties": False,
    }
    messages = [
        {"role": "system", "content": f"Answer in JSON. <json_schema>{json.dumps(old)}</json_schema>"},
        {"role": "user", "content": f"Retry with:\n<json_schema>\n{json.dumps(new)}\n</json_schema>"},
    ]
    response = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4.1-mini", "messages": messages, "response_format": {"type": "json_object"}},
    )
    assert response.status_code == 200
    instance = json.loads(content_of(response))
    jsonschema.Draft202012Validator(new).validate(instance)
    assert instance["count"] == 5
    assert response.json()["usage"]["prompt_tokens"] == expected_prompt_tokens(messages)


@pytest.mark.parametrize(
    "content",
    ["Reply in JSON please.", "Reply in JSON <json_schema>{not json</json_schema>"],
    ids=["no-block", "unparsable-block"],
)
def test_json_object_without_a_usable_schema_answers_empty_object(client: httpx.Client, content: str) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": "gpt-4.1-mini",
            "messages": [{"role": "user", "content": content}],
            "response_format": {"type": "json_object"},
        },
    )
    assert content_of(response) == "{}"
    assert response.json()["usage"]["completion_tokens"] == 1


def test_text_reply_is_a_deterministic_paragraph(client: httpx.Client) -> None:
    first = chat(client)
    text = content_of(first)
    assert text == content_of(chat(client))
    assert text.endswith(".") and len(text.split()) >= 16
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert first.json()["usage"]["completion_tokens"] == math.ceil(len(text) / 4)


def test_content_parts_count_towards_prompt_tokens(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "x" * 17}, {"type": "text", "text": "y"}]}]
    response = client.post("/v1/chat/completions", json={"model": "m", "messages": messages})
    assert response.json()["usage"]["prompt_tokens"] == math.ceil(18 / 4) + 3


# -- faults ---------------------------------------------------------------------------------------


def test_rate_limit_with_retry_headers(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "rate_limit", "retry_after_s": 1.5, "retry_after_ms": 1500}])
    response = chat(client, model="gpt-4.1-nano", response_format=json_schema_format())
    assert response.status_code == 429
    assert response.json() == RATE_LIMIT_BODY
    assert response.headers["retry-after"] == "1.5"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-request-id"].startswith("req_")


def test_rate_limit_without_retry_headers_raises_in_the_sdk(sandbox: Sandbox, client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "rate_limit"}])
    response = chat(client, model="gpt-4.1-nano")
    assert response.status_code == 429
    assert "retry-after" not in response.headers and "retry-after-ms" not in response.headers

    async def call() -> None:
        async with AsyncOpenAI(base_url=sandbox.base_url, api_key="sk-test", max_retries=0) as sdk:
            await sdk.chat.completions.create(model="gpt-4.1-nano", messages=MESSAGES)

    with pytest.raises(openai.RateLimitError) as caught:
        asyncio.run(call())
    assert caught.value.code == "rate_limit_exceeded"


def test_insufficient_quota(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "insufficient_quota", "retry_after_s": 3}])
    response = chat(client)
    assert response.status_code == 429
    assert response.json() == QUOTA_BODY
    assert "retry-after" not in response.headers and "retry-after-ms" not in response.headers


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_error(client: httpx.Client, status: int) -> None:
    configure(client, faults=[{"kind": "server_error", "status": status}])
    response = chat(client)
    assert response.status_code == status
    assert response.json() == SERVER_ERROR_BODY


def test_server_error_defaults_to_500(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "server_error"}])
    assert chat(client).status_code == 500


def test_slow_waits_then_answers_normally(client: httpx.Client) -> None:
    expected = content_of(chat(client, response_format=json_schema_format()))
    configure(client, faults=[{"kind": "slow", "delay_ms": 150}])
    started = time.perf_counter()
    response = chat(client, response_format=json_schema_format())
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.15
    assert int(response.headers["openai-processing-ms"]) == 150
    assert content_of(response) == expected


def test_non_json(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "non_json"}])
    response = chat(client, response_format=json_schema_format())
    assert response.status_code == 200
    content = content_of(response)
    assert content == "Sure! Here is the result: {label: billing"
    assert response.json()["choices"][0]["finish_reason"] == "stop"
    assert response.json()["usage"]["completion_tokens"] == math.ceil(len(content) / 4)
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


def test_schema_drift_breaks_the_schema_but_stays_json(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "schema_drift"}])
    instance = json.loads(content_of(chat(client, response_format=json_schema_format())))
    assert "label" not in instance
    assert instance["unexpected_field"] is True
    assert set(instance) == {"confidence", "summary", "tags", "due", "unexpected_field"}
    assert not jsonschema.Draft202012Validator(TICKET_SCHEMA).is_valid(instance)


def test_schema_drift_on_a_text_request_is_a_normal_reply(client: httpx.Client) -> None:
    expected = content_of(chat(client))
    configure(client, faults=[{"kind": "schema_drift"}])
    response = chat(client)
    assert content_of(response) == expected
    assert client.get("/_sandbox/requests").json()["requests"][-1]["fault"] == "schema_drift"


def test_refusal(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "refusal"}])
    body = chat(client, response_format=json_schema_format()).json()
    message = body["choices"][0]["message"]
    refusal = "I'm sorry, but I can't help with that request."
    assert message == {"role": "assistant", "content": None, "refusal": refusal, "annotations": []}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == math.ceil(len(refusal) / 4)


@pytest.mark.parametrize("limit_field", ["max_tokens", "max_completion_tokens"])
def test_truncated_with_a_token_limit(client: httpx.Client, limit_field: str) -> None:
    full = content_of(chat(client, response_format=json_schema_format()))
    configure(client, faults=[{"kind": "truncated"}])
    limit: dict[str, Any] = {limit_field: 7}
    body = chat(client, response_format=json_schema_format(), **limit).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == full[: len(full) // 2]
    assert body["usage"]["completion_tokens"] == 7
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 7


def test_truncated_without_a_token_limit(client: httpx.Client) -> None:
    full = content_of(chat(client))
    configure(client, faults=[{"kind": "truncated"}])
    body = chat(client).json()
    cut = full[: len(full) // 2]
    assert body["choices"][0]["message"]["content"] == cut
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == math.ceil(len(cut) / 4)


def test_content_is_returned_verbatim(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "content", "content": '{"label": "sales"}'}])
    body = chat(client, response_format=json_schema_format()).json()
    assert body["choices"][0]["message"]["content"] == '{"label": "sales"}'
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == math.ceil(len('{"label": "sales"}') / 4)


# -- rule matching --------------------------------------------------------------------------------


def test_times_and_glob(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "rate_limit", "model": "*nano*", "times": 2}])
    statuses = [
        chat(client, model="gpt-4.1-nano").status_code,
        chat(client, model="gpt-4.1-mini").status_code,
        chat(client, model="gpt-4.1-nano").status_code,
        chat(client, model="gpt-4.1-nano").status_code,
    ]
    assert statuses == [429, 200, 429, 200]
    assert client.get("/_sandbox/config").json()["faults"][0]["times"] == 0
    faults = [entry["fault"] for entry in client.get("/_sandbox/requests").json()["requests"]]
    assert faults == ["rate_limit", None, "rate_limit", None]


def test_first_matching_rule_wins(client: httpx.Client) -> None:
    configure(
        client,
        faults=[
            {"kind": "server_error", "model": "gpt-5*", "status": 503},
            {"kind": "insufficient_quota", "times": 1},
            {"kind": "refusal"},
        ],
    )
    assert chat(client, model="gpt-5-mini").status_code == 503
    assert chat(client, model="gpt-4.1-mini").json() == QUOTA_BODY
    assert chat(client, model="gpt-4.1-mini").json()["choices"][0]["message"]["refusal"] is not None


def test_probability_is_seeded(client: httpx.Client) -> None:
    def pattern() -> list[int]:
        configure(client, seed=7, faults=[{"kind": "server_error", "probability": 0.5}])
        return [chat(client).status_code for _ in range(12)]

    first = pattern()
    assert first == pattern()
    assert set(first) == {200, 500}
    configure(client, faults=[{"kind": "server_error", "probability": 0.0}])
    assert {chat(client).status_code for _ in range(3)} == {200}


# -- configuration and validation -----------------------------------------------------------------


def test_json_schema_unsupported(client: httpx.Client) -> None:
    configure(client, supports_json_schema=False, faults=[{"kind": "server_error"}])
    response = chat(client, response_format=json_schema_format())
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "response_format",
            "code": None,
        }
    }
    assert client.get("/_sandbox/config").json()["faults"][0]["times"] is None
    configure(client, supports_json_schema=False)
    assert chat(client, response_format={"type": "json_object"}).status_code == 200


@pytest.mark.parametrize(
    ("content", "payload", "param"),
    [
        (b"{not json", None, None),
        (None, {"messages": MESSAGES}, None),
        (None, {"model": "gpt-4.1-mini"}, "messages"),
        (None, {"model": "gpt-4.1-mini", "messages": []}, "messages"),
        (
            None,
            {"model": "m", "messages": MESSAGES, "response_format": {"type": "yaml"}},
            "response_format.type",
        ),
    ],
    ids=["not-json", "no-model", "no-messages", "empty-messages", "bad-format"],
)
def test_malformed_request(
    client: httpx.Client, content: bytes | None, payload: dict[str, Any] | None, param: str | None
) -> None:
    if content is not None:
        response = client.post("/v1/chat/completions", content=content)
    else:
        response = client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert client.get("/_sandbox/requests").json()["requests"][-1]["status"] == 400


def test_request_log(client: httpx.Client, sandbox: Sandbox) -> None:
    configure(client, faults=[{"kind": "rate_limit", "model": "*nano*"}])
    chat(client, model="gpt-4.1-nano", response_format=json_schema_format())
    chat(client, response_format={"type": "json_object"})
    httpx.post(f"{sandbox.base_url}/chat/completions", json={"model": "m", "messages": MESSAGES})
    client.post("/v1/chat/completions", content=b"nope")
    requests = client.get("/_sandbox/requests").json()["requests"]
    assert requests == [
        {
            "model": "gpt-4.1-nano",
            "response_format": "json_schema",
            "fault": "rate_limit",
            "status": 429,
            "body": {"model": "gpt-4.1-nano", "messages": MESSAGES, "response_format": json_schema_format()},
            "authorization": True,
        },
        {
            "model": "gpt-4.1-mini",
            "response_format": "json_object",
            "fault": None,
            "status": 200,
            "body": {
                "model": "gpt-4.1-mini",
                "messages": MESSAGES,
                "response_format": {"type": "json_object"},
            },
            "authorization": True,
        },
        {
            "model": "m",
            "response_format": "text",
            "fault": None,
            "status": 200,
            "body": {"model": "m", "messages": MESSAGES},
            "authorization": False,
        },
        {
            "model": None,
            "response_format": "text",
            "fault": None,
            "status": 400,
            "body": None,
            "authorization": True,
        },
    ]
    assert client.delete("/_sandbox/requests").status_code == 204
    assert client.get("/_sandbox/requests").json() == {"requests": []}


def test_models_lists_what_was_requested(client: httpx.Client) -> None:
    chat(client, model="listed-b")
    chat(client, model="listed-a")
    chat(client, model="listed-b")
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert ids[-2:] == ["listed-b", "listed-a"]
    assert body["data"][-1] == {
        "id": "listed-a",
        "object": "model",
        "created": body["data"][-1]["created"],
        "owned_by": "sandbox",
    }


def test_put_config_replaces_the_whole_config(client: httpx.Client) -> None:
    configure(client, latency_ms=1, faults=[{"kind": "refusal", "model": "x*", "times": 3}])
    configure(client, cached_prompt_tokens=5)
    assert client.get("/_sandbox/config").json() == {
        "latency_ms": 0.0,
        "latency_jitter_ms": 0.0,
        "flex_latency_ms": 0.0,
        "batch_delay_ms": 0.0,
        "faults": [],
        "supports_json_schema": True,
        "seed": None,
        "cached_prompt_tokens": 5,
        "reasoning_tokens": 0,
        "rate_limit_rpm": None,
        "rate_limit_tpm": None,
        "rate_limit_burst_s": 1.0,
        "log_requests": True,
    }


@pytest.mark.parametrize(
    "config",
    [
        {"unknown": 1},
        {"faults": [{"kind": "explode"}]},
        {"faults": [{"kind": "rate_limit", "probability": 1.5}]},
        {"faults": [{"kind": "server_error", "status": 418}]},
        {"faults": [{"kind": "slow", "delay": 5}]},
        {"latency_ms": -1},
    ],
    ids=["unknown-field", "unknown-kind", "probability", "status", "fault-extra-field", "negative-latency"],
)
def test_put_config_validation(client: httpx.Client, config: dict[str, Any]) -> None:
    configure(client, reasoning_tokens=3)
    response = client.put("/_sandbox/config", json=config)
    assert response.status_code == 422
    assert client.get("/_sandbox/config").json()["reasoning_tokens"] == 3


def test_cached_and_reasoning_tokens(client: httpx.Client) -> None:
    prompt = expected_prompt_tokens(MESSAGES)
    configure(client, cached_prompt_tokens=8, reasoning_tokens=64)
    usage = chat(client).json()["usage"]
    text_tokens = usage["completion_tokens"] - 64
    assert text_tokens >= 1
    assert usage["prompt_tokens"] == prompt
    assert usage["prompt_tokens_details"] == {"cached_tokens": 8, "audio_tokens": 0}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 64
    assert usage["total_tokens"] == prompt + text_tokens + 64

    configure(client, cached_prompt_tokens=10_000)
    assert chat(client).json()["usage"]["prompt_tokens_details"]["cached_tokens"] == prompt


def test_latency_applies_to_replies_not_control_endpoints(client: httpx.Client) -> None:
    configure(client, latency_ms=120, latency_jitter_ms=20, seed=1)
    started = time.perf_counter()
    response = chat(client)
    assert time.perf_counter() - started >= 0.1
    assert 100 <= int(response.headers["openai-processing-ms"]) <= 140
    started = time.perf_counter()
    client.get("/_sandbox/requests")
    assert time.perf_counter() - started < 0.1


def test_two_apps_are_independent(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "insufficient_quota"}])
    with Sandbox(SandboxConfig(reasoning_tokens=2)) as other:
        with httpx.Client(base_url=other.url) as other_client:
            response = chat(other_client)
            assert response.status_code == 200
            assert response.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2
            assert len(other_client.get("/_sandbox/requests").json()["requests"]) == 1
    assert chat(client).status_code == 429
    assert len(client.get("/_sandbox/requests").json()["requests"]) == 1


def test_app_copies_the_config_it_is_given() -> None:
    config = SandboxConfig(faults=[FaultRule(kind="refusal", times=1)])
    app = create_sandbox_app(config)
    app.state.sandbox.config.faults[0].times = 0
    assert config.faults[0].times == 1


CONTROL_ENDPOINTS = [
    ("GET", "/_sandbox/config"),
    ("PUT", "/_sandbox/config"),
    ("GET", "/_sandbox/requests"),
    ("DELETE", "/_sandbox/requests"),
    ("GET", "/_sandbox/stats"),
]


def test_a_control_token_guards_the_control_endpoints_and_only_them() -> None:
    with (
        Sandbox(control_token="steer-token-0001") as guarded,
        httpx.Client(base_url=guarded.url, headers={"Authorization": "Bearer sk-test"}, verify=TLS) as caller,
    ):
        for method, path in CONTROL_ENDPOINTS:
            for authorization in (None, "Bearer sk-test", "Bearer steer-token-0002", "steer-token-0001"):
                headers = {"Authorization": authorization} if authorization else {}
                refused = httpx.request(method, guarded.url + path, headers=headers, json={"faults": []}, verify=TLS)
                assert refused.status_code == 401, (method, path, authorization)
                assert refused.json()["error"]["code"] == "invalid_control_token"
                assert refused.headers["www-authenticate"] == 'Bearer realm="sandbox"'
        assert chat(caller).status_code == 200
        guarded.configure(faults=[{"kind": "refusal"}])
        assert chat(caller).json()["choices"][0]["message"]["refusal"]
        assert [entry["fault"] for entry in guarded.requests()] == [None, "refusal"]
        assert caller.get("/v1/models").status_code == 200


def test_an_empty_control_token_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be empty"):
        create_sandbox_app(control_token="")


# -- flex processing --------------------------------------------------------------------------------------------


def test_flex_requests_are_answered_as_flex_and_others_as_default(client: httpx.Client) -> None:
    assert chat(client, service_tier="flex").json()["service_tier"] == "flex"
    assert chat(client).json()["service_tier"] == "default"
    assert chat(client, service_tier="auto").json()["service_tier"] == "default"
    refused = chat(client, service_tier="cheap")
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": "Invalid value for 'service_tier': expected one of auto, default, flex, priority, scale.",
        "type": "invalid_request_error",
        "param": "service_tier",
        "code": "invalid_value",
    }


def test_resource_unavailable_applies_to_flex_requests_only_and_is_counted(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "resource_unavailable", "times": 1}])
    assert chat(client).status_code == 200  # a standard request does not use up the rule
    unavailable = chat(client, service_tier="flex")
    assert unavailable.status_code == 429
    assert unavailable.json()["error"]["code"] == "resource_unavailable"
    assert unavailable.json()["error"]["message"].startswith("Resource unavailable: flex processing has no capacity")
    assert chat(client, service_tier="flex").status_code == 200  # the rule fired once
    assert client.get("/_sandbox/stats").json()["faults"] == {"resource_unavailable": 1}


def test_flex_is_slower_by_flex_latency(client: httpx.Client) -> None:
    configure(client, flex_latency_ms=40)
    flex = chat(client, service_tier="flex")
    standard = chat(client)
    assert (flex.headers["openai-processing-ms"], standard.headers["openai-processing-ms"]) == ("40", "0")


def test_a_schema_attached_to_json_object_is_enforced_as_llama_cpp_does(client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "enum": ["Lyon", "Porto"]}, "year": {"type": "integer"}},
        "required": ["city", "year"],
    }
    answer = chat(client, response_format={"type": "json_object", "schema": schema})
    assert answer.status_code == 200
    assert jsonschema.Draft202012Validator(schema).is_valid(
        json.loads(answer.json()["choices"][0]["message"]["content"])
    )
    refused = chat(client, response_format={"type": "json_object", "schema": "not a schema"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Invalid type for 'response_format.schema': expected an object."


def test_logprobs_spell_the_reply_and_give_the_label_its_stated_confidence(client: httpx.Client) -> None:
    configure(client, faults=[{"kind": "content", "content": '{"label": "bug report", "confidence": 0.6}'}])
    choice = chat(client, logprobs=True).json()["choices"][0]
    tokens = choice["logprobs"]["content"]
    assert "".join(token["token"] for token in tokens) == choice["message"]["content"]
    assert all(token["bytes"] == list(token["token"].encode()) for token in tokens)
    label = [token for token in tokens if token["token"] in ("bug", "report")]
    assert math.exp(sum(token["logprob"] for token in label)) == pytest.approx(0.6)
    assert chat(client).json()["choices"][0]["logprobs"] is None
    refused = chat(client, logprobs="yes")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"
