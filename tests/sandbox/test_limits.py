"""Upstream rate limits: per-model token buckets on a fake clock, their headers, stats and the request log."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from nodes.sandbox import FaultRule, SandboxConfig, create_sandbox_app
from nodes.sandbox.server import SandboxState
from nodes.sandbox.wire import ceil_ms, format_reset

# ceil(40 / 4) + 3 = 13 prompt tokens; with max_tokens=7 a request costs exactly 20 tokens.
MESSAGES: list[Any] = [{"role": "user", "content": "x" * 40}]
COST = 20


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Limited:
    """An in-process sandbox app on a fake clock, called through httpx's ASGI transport on its own loop."""

    def __init__(self, clock: FakeClock, **config: Any) -> None:
        self.clock = clock
        self.app = create_sandbox_app(SandboxConfig(**config), clock=clock)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://sandbox")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    def chat(self, model: str = "m", **extra: Any) -> httpx.Response:
        payload = {"model": model, "messages": MESSAGES, "max_tokens": 7, **extra}
        return self.request("POST", "/v1/chat/completions", json=payload)

    def stats(self) -> dict[str, Any]:
        response = self.request("GET", "/_sandbox/stats")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def log(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/_sandbox/requests").json()["requests"])


MakeSandbox = Callable[..., Limited]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock) -> Iterator[MakeSandbox]:
    made: list[Limited] = []

    def build(**config: Any) -> Limited:
        limited = Limited(clock, **config)
        made.append(limited)
        return limited

    yield build
    for limited in made:
        limited.close()


def trio(response: httpx.Response, kind: str) -> tuple[str, str, str]:
    headers = response.headers
    return (
        headers[f"x-ratelimit-limit-{kind}"],
        headers[f"x-ratelimit-remaining-{kind}"],
        headers[f"x-ratelimit-reset-{kind}"],
    )


def rate_limit_error(kind: str, unit: str, limit: int, requested: int, wait: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Rate limit reached for m in organization org-sandbox on {kind} per min ({unit}): "
            f"Limit {limit}, Used {limit}, Requested {requested}. Please try again in {wait}.",
            "type": kind,
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


# -- formatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [
        (0, "0s"),
        (6, "6ms"),
        (999, "999ms"),
        (1000, "1s"),
        (1200, "1.2s"),
        (59_997, "59.997s"),
        (60_000, "1m0s"),
        (86_400, "1m26.4s"),
        (3_600_000, "1h0m0s"),
        (3_723_004, "1h2m3.004s"),
    ],
)
def test_format_reset_like_openai(milliseconds: int, text: str) -> None:
    assert format_reset(milliseconds) == text


def test_ceil_ms_rounds_up_but_ignores_float_noise() -> None:
    assert ceil_ms(0.1) == 100
    assert ceil_ms(0.3 - 0.2) == 100
    assert ceil_ms(0.1000004) == 101
    assert ceil_ms(0.0000001) == 1
    assert ceil_ms(0.0) == 0


# -- requests per minute --------------------------------------------------------------------------


def test_rpm_bucket_refills_continuously(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_rpm=600)
    responses = [sandbox.chat() for _ in range(10)]
    assert [r.status_code for r in responses] == [200] * 10
    assert trio(responses[0], "requests") == ("600", "9", "100ms")
    assert trio(responses[4], "requests") == ("600", "5", "500ms")
    assert trio(responses[9], "requests") == ("600", "0", "1s")
    assert trio(responses[9], "tokens") == ("30000000", str(30_000_000 - COST), "0s")

    refused = sandbox.chat()
    assert refused.status_code == 429
    assert refused.json() == rate_limit_error("requests", "RPM", 600, 1, "100ms")
    assert refused.headers["retry-after-ms"] == "100"
    assert refused.headers["retry-after"] == "1"
    assert trio(refused, "requests") == ("600", "0", "1s")
    assert refused.headers["x-request-id"].startswith("req_")

    clock.advance(0.1)
    passed = sandbox.chat()
    assert passed.status_code == 200
    assert trio(passed, "requests") == ("600", "0", "1s")
    assert sandbox.chat().status_code == 429

    clock.advance(0.05)
    half = sandbox.chat()
    assert half.headers["retry-after-ms"] == "50"
    assert trio(half, "requests") == ("600", "0", "950ms")

    clock.advance(0.2)  # 2.5 requests in the bucket
    partial = sandbox.chat()
    assert partial.status_code == 200
    assert trio(partial, "requests") == ("600", "1", "850ms")


def test_float_noise_in_the_clock_still_refills(make: MakeSandbox, clock: FakeClock) -> None:
    clock.now = 0.2
    sandbox = make(rate_limit_rpm=600)
    assert [sandbox.chat().status_code for _ in range(11)] == [200] * 10 + [429]
    clock.now = 0.3  # 0.3 - 0.2 == 0.09999999999999998
    assert sandbox.chat().status_code == 200


def test_burst_and_retry_after_rounding(make: MakeSandbox, clock: FakeClock) -> None:
    slow = make(rate_limit_rpm=7)  # 7/60 * 1 s < 1, so the bucket holds one request
    assert slow.chat().status_code == 200
    refused = slow.chat()
    assert refused.headers["retry-after-ms"] == "8572"  # 60/7 s = 8.5714... s
    assert refused.headers["retry-after"] == "9"
    assert trio(refused, "requests") == ("7", "0", "8.572s")

    bursty = make(rate_limit_rpm=60, rate_limit_burst_s=90)
    assert [bursty.chat().status_code for _ in range(91)] == [200] * 90 + [429]
    clock.advance(3.5)
    response = bursty.chat()
    assert trio(response, "requests") == ("60", "2", "1m27.5s")


# -- tokens per minute ----------------------------------------------------------------------------


def test_tpm_bucket_refuses_with_type_tokens(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_tpm=6000)  # 100 tokens a second, 100 in the bucket
    responses = [sandbox.chat() for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert [trio(r, "tokens") for r in responses] == [
        ("6000", "80", "200ms"),
        ("6000", "60", "400ms"),
        ("6000", "40", "600ms"),
        ("6000", "20", "800ms"),
        ("6000", "0", "1s"),
    ]
    assert trio(responses[0], "requests") == ("10000", "9999", "6ms")

    refused = sandbox.chat()
    assert refused.status_code == 429
    assert refused.json() == rate_limit_error("tokens", "TPM", 6000, COST, "200ms")
    assert refused.headers["retry-after-ms"] == "200"
    assert refused.headers["retry-after"] == "1"
    assert trio(refused, "tokens") == ("6000", "0", "1s")

    clock.advance(0.1)
    assert sandbox.chat().headers["retry-after-ms"] == "100"
    clock.advance(0.1)
    assert sandbox.chat().status_code == 200


def test_tpm_counts_produced_tokens_without_max_tokens(make: MakeSandbox) -> None:
    sandbox = make(rate_limit_tpm=60_000)  # 1000 tokens in the bucket
    response = sandbox.chat(max_tokens=None)
    assert response.status_code == 200
    total = response.json()["usage"]["total_tokens"]
    assert total > 13
    assert trio(response, "tokens")[:2] == ("60000", str(1000 - total))

    limited = make(rate_limit_tpm=60_000)
    response = limited.chat(max_completion_tokens=500, max_tokens=None)
    assert trio(response, "tokens") == ("60000", str(1000 - 513), "513ms")


def test_oversized_request_needs_a_full_bucket_and_leaves_a_debt(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_tpm=600)  # 10 tokens a second and in the bucket; a request costs 20
    first = sandbox.chat()
    assert first.status_code == 200
    assert trio(first, "tokens") == ("600", "0", "2s")
    refused = sandbox.chat()
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.headers["retry-after-ms"] == "2000"
    assert refused.headers["retry-after"] == "2"
    clock.advance(1.999)
    assert sandbox.chat().headers["retry-after-ms"] == "1"
    clock.advance(0.001)
    assert sandbox.chat().status_code == 200


def test_both_limits_name_requests_and_wait_for_both(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_rpm=60, rate_limit_tpm=600)
    first = sandbox.chat()
    assert trio(first, "requests") == ("60", "0", "1s")
    assert trio(first, "tokens") == ("600", "0", "2s")
    refused = sandbox.chat()
    assert refused.json()["error"]["type"] == "requests"
    assert refused.headers["retry-after-ms"] == "2000"
    clock.advance(1)
    assert sandbox.chat().json()["error"]["type"] == "tokens"
    clock.advance(1)
    assert sandbox.chat().status_code == 200


# -- models, faults, stats, log -------------------------------------------------------------------


def test_models_have_independent_buckets(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_rpm=60)
    assert sandbox.chat("a").status_code == 200
    assert sandbox.chat("a").status_code == 429
    assert sandbox.chat("b").status_code == 200
    assert sandbox.chat("b").status_code == 429
    clock.advance(1)
    assert sandbox.chat("a").status_code == 200
    assert sandbox.chat("c").status_code == 200
    assert sandbox.stats()["by_model"] == {
        "a": {"served": 2, "rate_limited": 1},
        "b": {"served": 1, "rate_limited": 1},
        "c": {"served": 1, "rate_limited": 0},
    }


def test_stats_count_and_delete_resets_them(make: MakeSandbox) -> None:
    sandbox = make(
        rate_limit_rpm=120,
        faults=[
            {"kind": "server_error", "model": "x", "times": 1},
            {"kind": "refusal", "model": "y"},
            {"kind": "rate_limit", "model": "z", "times": 1},
        ],
    )
    assert sandbox.stats() == {"served": 0, "rate_limited": 0, "faults": {}, "by_model": {}}
    statuses = [sandbox.chat(model).status_code for model in ["x", "x", "x", "x", "y", "z", "z"]]
    assert statuses == [500, 200, 200, 429, 200, 429, 200]
    sandbox.request("POST", "/v1/chat/completions", json={"model": "x"})  # 400s are not counted
    assert sandbox.stats() == {
        "served": 4,
        "rate_limited": 1,
        "faults": {"server_error": 1, "refusal": 1, "rate_limit": 1},
        "by_model": {
            "x": {"served": 2, "rate_limited": 1},
            "y": {"served": 1, "rate_limited": 0},
            "z": {"served": 1, "rate_limited": 0},
        },
    }
    assert sandbox.request("DELETE", "/_sandbox/requests").status_code == 204
    assert sandbox.stats() == {"served": 0, "rate_limited": 0, "faults": {}, "by_model": {}}
    assert sandbox.log() == []
    assert sandbox.chat("x").status_code == 429  # the buckets are not refilled by the reset
    assert sandbox.stats()["rate_limited"] == 1


def test_completion_ids_keep_counting_across_resets(make: MakeSandbox) -> None:
    sandbox = make()
    assert sandbox.chat().json()["id"] == "chatcmpl-sandbox-1"
    sandbox.request("DELETE", "/_sandbox/requests")
    assert sandbox.chat().json()["id"] == "chatcmpl-sandbox-2"


def test_log_requests_off_keeps_the_log_empty_but_counts(make: MakeSandbox) -> None:
    sandbox = make(rate_limit_rpm=6000, log_requests=False)
    statuses = [sandbox.chat().status_code for _ in range(250)]
    assert statuses == [200] * 100 + [429] * 150
    assert sandbox.log() == []
    assert sandbox.state.requests == []
    assert sandbox.stats() == {
        "served": 100,
        "rate_limited": 150,
        "faults": {},
        "by_model": {"m": {"served": 100, "rate_limited": 150}},
    }


def test_error_faults_do_not_consume_the_bucket(make: MakeSandbox) -> None:
    sandbox = make(
        rate_limit_rpm=60,
        faults=[
            {"kind": "server_error", "times": 2},
            {"kind": "insufficient_quota", "times": 1},
            {"kind": "rate_limit", "times": 1},
        ],
    )
    assert [sandbox.chat().status_code for _ in range(4)] == [500, 500, 429, 429]
    assert sandbox.stats()["rate_limited"] == 0
    admitted = sandbox.chat()
    assert admitted.status_code == 200
    assert trio(admitted, "requests") == ("60", "0", "1s")
    assert sandbox.chat().status_code == 429
    assert sandbox.stats()["faults"] == {"server_error": 2, "insufficient_quota": 1, "rate_limit": 1}
    assert [(entry["fault"], entry["status"]) for entry in sandbox.log()] == [
        ("server_error", 500),
        ("server_error", 500),
        ("insufficient_quota", 429),
        ("rate_limit", 429),
        (None, 200),
        (None, 429),
    ]


def test_a_refused_non_error_fault_is_given_back(make: MakeSandbox, clock: FakeClock) -> None:
    sandbox = make(rate_limit_rpm=60)
    assert sandbox.chat().status_code == 200
    sandbox.state.config.faults.append(FaultRule(kind="refusal", times=1))
    refused = sandbox.chat()
    assert refused.status_code == 429
    assert sandbox.state.config.faults[0].times == 1
    assert sandbox.log()[-1]["fault"] is None
    clock.advance(1)
    delivered = sandbox.chat()
    assert delivered.json()["choices"][0]["message"]["refusal"] is not None
    assert sandbox.state.config.faults[0].times == 0
    assert sandbox.stats()["faults"] == {"refusal": 1}


def test_slow_fault_waits_after_the_bucket(make: MakeSandbox) -> None:
    sandbox = make(rate_limit_rpm=60, faults=[{"kind": "slow", "delay_ms": 5}])
    first = sandbox.chat()
    assert first.status_code == 200 and first.headers["openai-processing-ms"] == "5"
    second = sandbox.chat()
    assert second.status_code == 429 and second.headers["openai-processing-ms"] == "0"


def test_replacing_the_config_refills_the_buckets(make: MakeSandbox) -> None:
    sandbox = make(rate_limit_rpm=60)
    assert [sandbox.chat().status_code for _ in range(2)] == [200, 429]
    assert sandbox.request("PUT", "/_sandbox/config", json={"rate_limit_rpm": 60}).status_code == 200
    assert sandbox.chat().status_code == 200
    assert sandbox.request("PUT", "/_sandbox/config", json={}).status_code == 200
    unlimited = sandbox.chat()
    assert unlimited.status_code == 200
    assert trio(unlimited, "requests") == ("10000", "9999", "6ms")


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"rate_limit_rpm": 0},
        {"rate_limit_rpm": 1.5},
        {"rate_limit_rpm": True},
        {"rate_limit_tpm": -1},
        {"rate_limit_burst_s": 0},
        {"rate_limit_burst_s": float("inf")},
        {"rate_limit": 5},
    ],
    ids=["rpm-zero", "rpm-float", "rpm-bool", "tpm-negative", "burst-zero", "burst-inf", "extra-field"],
)
def test_limit_fields_are_validated(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SandboxConfig.model_validate(config)


def test_put_config_rejects_a_bad_limit(make: MakeSandbox) -> None:
    sandbox = make(rate_limit_rpm=60)
    assert sandbox.request("PUT", "/_sandbox/config", json={"rate_limit_tpm": 0}).status_code == 422
    assert sandbox.request("GET", "/_sandbox/config").json()["rate_limit_rpm"] == 60


# -- over real HTTP -------------------------------------------------------------------------------


def test_429_headers_arrive_over_http(client: httpx.Client) -> None:
    response = client.put("/_sandbox/config", json={"rate_limit_rpm": 60})
    assert response.status_code == 200
    payload = {"model": "limits-http", "messages": MESSAGES}
    assert client.post("/v1/chat/completions", json=payload).status_code == 200
    refused = client.post("/v1/chat/completions", json=payload)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "1"
    assert 900 <= int(refused.headers["retry-after-ms"]) <= 1000
    assert refused.headers["x-ratelimit-limit-requests"] == "60"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert re.fullmatch(r"1s|[0-9]{3}ms", refused.headers["x-ratelimit-reset-requests"])
    stats = client.get("/_sandbox/stats").json()
    assert stats["by_model"]["limits-http"] == {"served": 1, "rate_limited": 1}
