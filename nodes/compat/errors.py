"""Problems as OpenAI's error body, ``{"error": {"message", "type", "code", "param"}}``, with OpenAI's statuses.

OpenAI clients parse that body and pick their exception from the status, so a refusal reads the way
it would from OpenAI: an invalid request is a 400 ``invalid_request_error`` naming its ``param``, a
missing or unknown key a 401 ``invalid_api_key``, an unknown model a 404 ``model_not_found``, a key
over its request rate a 429 ``rate_limit_exceeded`` with ``Retry-After``. A run that every tier
failed, ran out of time or of budget carries ``x-should-retry: false``: the OpenAI SDKs would
otherwise repeat it (twice, by default), paying again for what Tierwise already retried and escalated.
"""

from __future__ import annotations

from typing import Any

from nodes.compat.models import ModelNotFound
from nodes.errors import (
    BudgetExhausted,
    IdempotencyConflict,
    InvalidRequest,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RequestTimeout,
    RunDeadlineExceeded,
    RunFailed,
    RunOverBudget,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from nodes.protocol import Reply

NO_RETRY = {"x-should-retry": "false"}


def error_body(message: str, kind: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _param(exc: ProblemError) -> str | None:
    if not exc.errors:
        return None
    return ".".join(str(part) for part in exc.errors[0].loc) or None


def _classify(exc: ProblemError) -> tuple[int, str, str | None, dict[str, str]]:
    """Status, type, code and extra headers for a problem."""
    if isinstance(exc, RunOverBudget | BudgetExhausted):
        return 429, "insufficient_quota", "daily_budget_exhausted", NO_RETRY
    if isinstance(exc, RunDeadlineExceeded):
        return 504, "server_error", "deadline_exceeded", NO_RETRY
    if isinstance(exc, RunFailed):
        code = "internal_error" if exc.status == 500 else "all_tiers_failed"
        return exc.status, "server_error", code, NO_RETRY
    if isinstance(exc, TooManyRequests):
        return 429, "requests", "rate_limit_exceeded", {}
    if isinstance(exc, Unauthorized):
        return 401, "invalid_request_error", "invalid_api_key", {}
    if isinstance(exc, ModelNotFound):
        return 404, "invalid_request_error", "model_not_found", {}
    if isinstance(exc, NotFound):
        return 404, "invalid_request_error", "not_found", {}
    if isinstance(exc, InvalidRequest | MalformedRequest):
        return 400, "invalid_request_error", "invalid_value" if exc.errors else None, {}
    if isinstance(exc, PayloadTooLarge):
        return 413, "invalid_request_error", "request_too_large", {}
    if isinstance(exc, RequestTimeout):
        return 408, "invalid_request_error", "request_timeout", {}
    if isinstance(exc, IdempotencyConflict):
        return 409, "invalid_request_error", "idempotency_conflict", {}
    if isinstance(exc, ServiceUnavailable):
        return 503, "server_error", "service_unavailable", {}
    return exc.status, "server_error" if exc.status >= 500 else "invalid_request_error", None, {}


def openai_error(exc: ProblemError, headers: dict[str, str] | None = None) -> Reply:
    """The OpenAI-shaped answer to a problem (``headers`` adds the run's ``X-Tierwise-*`` when it ran)."""
    status, kind, code, extra = _classify(exc)
    return Reply(
        status,
        error_body(exc.detail, kind, code=code, param=_param(exc)),
        {**exc.headers, **extra, **(headers or {})},
    )
