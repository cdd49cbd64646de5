"""The exception tree: each problem renders itself as RFC 9457, upstream failures carry their retry meaning."""

from __future__ import annotations

import pytest

from nodes.errors import (
    BudgetExhausted,
    ConnectionFailed,
    FieldIssue,
    InternalError,
    InvalidRequest,
    ProblemError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    ServiceUnavailable,
    TooManyRequests,
    UnsupportedSchema,
    UpstreamError,
    UpstreamTimeout,
)


def test_a_problem_renders_the_standard_members_and_its_own() -> None:
    problem = InvalidRequest("labels: must contain at least one label", errors=[FieldIssue(("labels",), "empty")])
    assert problem.to_problem() == {
        "type": "/problems/invalid-request",
        "title": "Invalid request",
        "status": 422,
        "detail": "labels: must contain at least one label",
        "errors": [{"loc": ["labels"], "msg": "empty"}],
        "run_id": None,
    }
    assert UnsupportedSchema("x").to_problem()["type"] == "/problems/unsupported-schema"
    assert isinstance(UnsupportedSchema("x"), InvalidRequest)


def test_limits_always_say_when_to_come_back() -> None:
    limited = TooManyRequests("slow down", retry_after_s=0.2)
    assert limited.headers == {"Retry-After": "1"} and limited.to_problem()["retry_after_s"] == 1
    spent = BudgetExhausted("spent", retry_after_s=3600.5)
    assert spent.to_problem()["limit"] == "daily_budget_usd" and spent.headers == {"Retry-After": "3601"}
    assert ServiceUnavailable("storage").headers == {"Retry-After": "5"}
    assert ServiceUnavailable("storage").status == 503


def test_internal_errors_never_blame_the_request() -> None:
    body = InternalError().to_problem()
    assert (body["status"], body["type"]) == (500, "/problems/internal-error")
    assert body["detail"] == "the service hit an unexpected error; it has been logged"


@pytest.mark.parametrize(
    ("kind", "outcome", "retryable"),
    [
        (RateLimited, "rate_limited", True),
        (QuotaExhausted, "upstream_error", False),
        (ServerError, "upstream_error", True),
        (RequestRejected, "upstream_error", False),
        (UpstreamTimeout, "timeout", True),
        (ConnectionFailed, "upstream_error", True),
    ],
)
def test_upstream_failures_know_their_outcome_and_whether_to_retry(
    kind: type[UpstreamError], outcome: str, retryable: bool
) -> None:
    error = kind("x")
    assert (error.outcome, error.retryable) == (outcome, retryable)
    assert kind("x", retryable=not retryable).retryable is (not retryable)
    assert not isinstance(error, ProblemError)
