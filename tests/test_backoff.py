"""The retry delay's laws, the Retry-After parsing, and which errors are retried."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from cassettes import load_responses
from hypothesis import given
from hypothesis import strategies as st

from nodes.backoff import BackoffPolicy, backoff_delay, is_retryable, parse_retry_after

POLICY = BackoffPolicy(base_s=0.5, cap_s=8.0, retry_after_cap_s=120.0)

retries = st.integers(min_value=0, max_value=1000)
seeds = st.integers(min_value=0, max_value=2**32)


@given(retries, seeds)
def test_computed_delay_is_within_full_jitter_bounds(retry: int, seed: int) -> None:
    delay = backoff_delay(retry, POLICY, random.Random(seed))
    assert 0 <= delay <= min(8.0, 0.5 * 2 ** min(retry, 62))


@given(retries, seeds)
def test_delay_never_exceeds_the_cap(retry: int, seed: int) -> None:
    assert backoff_delay(retry, POLICY, random.Random(seed)) <= POLICY.cap_s


@given(st.floats(min_value=0, max_value=120), retries, seeds)
def test_sane_retry_after_wins_exactly(advice: float, retry: int, seed: int) -> None:
    assert backoff_delay(retry, POLICY, random.Random(seed), advice) == advice


@given(
    st.one_of(
        st.floats(min_value=120.001, max_value=1e9),
        st.floats(max_value=-0.001),
        st.just(float("nan")),
        st.just(float("inf")),
    ),
    retries,
    seeds,
)
def test_insane_retry_after_falls_back_to_computed_delay(advice: float, retry: int, seed: int) -> None:
    expected = backoff_delay(retry, POLICY, random.Random(seed))
    assert backoff_delay(retry, POLICY, random.Random(seed), advice) == expected


def test_ceiling_doubles_until_the_cap() -> None:
    # With uniform(0, ceiling) the largest draw tends to the ceiling: check the ceiling itself.
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [backoff_delay(n, POLICY, Top()) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_delays_are_jittered_not_constant() -> None:
    rng = random.Random(7)
    draws = {round(backoff_delay(3, POLICY, rng), 6) for _ in range(50)}
    assert len(draws) == 50


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "not a date"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now) == 30.0


@pytest.mark.parametrize(
    ("status", "code", "header", "expected"),
    [
        (408, None, None, True),
        (409, None, None, True),
        (429, "rate_limit_exceeded", None, True),
        (429, "insufficient_quota", None, False),
        (429, "insufficient_quota", "true", False),
        (500, None, None, True),
        (502, None, None, True),
        (503, None, None, True),
        (400, None, None, False),
        (401, None, None, False),
        (403, None, None, False),
        (404, None, None, False),
        (422, None, None, False),
        (500, None, "false", False),
        (400, None, "true", True),
    ],
)
def test_is_retryable(status: int, code: str | None, header: str | None, expected: bool) -> None:
    assert is_retryable(status, code, header) is expected


def test_real_openrouter_429_is_retryable_without_advice() -> None:
    recorded = load_responses("04")
    assert [r.status for r in recorded] == [429, 429, 429]
    error = recorded[0].json()["error"]
    assert error["code"] == 429
    assert is_retryable(recorded[0].status, str(error["code"]), recorded[0].headers.get("x-should-retry"))
    assert parse_retry_after(recorded[0].headers) is None


def test_real_rate_limit_headers_are_readable_cassette_01() -> None:
    headers = load_responses("01")[0].headers
    assert headers["x-ratelimit-limit-requests"] == "10000"
    assert headers["x-ratelimit-remaining-requests"] == "9999"
    assert headers["x-ratelimit-limit-tokens"] == "30000000"
    assert headers["x-ratelimit-reset-requests"] == "6ms"
    assert parse_retry_after(headers) is None
