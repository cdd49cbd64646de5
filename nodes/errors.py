"""Every error Tierwise raises, and how each becomes an ``application/problem+json`` body.

The tree::

    TierwiseError
    ├── ProblemError                 answered to the client as RFC 9457 problem+json
    │   ├── MalformedRequest         400  body is not JSON / not an object
    │   ├── InvalidRequest           422  wrong types, unknown fields, bad values
    │   │   └── UnsupportedSchema    422  a JSON Schema outside what structured outputs can express
    │   ├── Unauthorized             401  missing or unknown API key
    │   ├── NotFound                 404  unknown node, run or path
    │   ├── MethodNotAllowed         405
    │   ├── RequestTimeout           408  the body did not arrive in full within TIERWISE_BODY_TIMEOUT_S
    │   ├── IdempotencyConflict      409  an Idempotency-Key reused with another body
    │   ├── PayloadTooLarge          413
    │   ├── TooManyRequests          429  the caller's per-minute request limit is exhausted
    │   │   └── BudgetExhausted      429  the caller's daily budget in USD is spent
    │   ├── RunFailed                502  every allowed tier failed (carries every attempt and the cost)
    │   │   ├── RunDeadlineExceeded  504  the run's wall-time cap passed
    │   │   ├── RunOverBudget        429  the key's daily budget ran out during the run
    │   │   └── RunBroken            500  a fault of the service ended the run (its spend is still recorded)
    │   ├── ServiceUnavailable       503  storage cannot be used right now; always with Retry-After
    │   └── InternalError            500  a bug: logged, never anything the client sent
    ├── UpstreamError                one failed model call (internal: the run retries or escalates)
    │   ├── RateLimited              429: retried after Retry-After or backoff
    │   ├── QuotaExhausted           429 insufficient_quota: never retried
    │   ├── CapacityUnavailable      429 resource_unavailable: no flex capacity (not billed); on to standard
    │   ├── ServerError              5xx, 408, 409, an empty reply: retried
    │   ├── RequestRejected          other 4xx: not retried
    │   ├── UpstreamTimeout          retried
    │   └── ConnectionFailed         retried
    └── ConfigError                  misconfiguration, raised at start-up with a sentence saying what to set

Problem types are relative URIs under ``/problems/``; ``docs/protocol.md`` lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from nodes.attempts import Attempt


class TierwiseError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True)
class FieldIssue:
    """One thing wrong with one place in the request: ``loc`` is the path, ``msg`` says what to fix."""

    loc: tuple[str | int, ...]
    msg: str

    def as_dict(self) -> dict[str, Any]:
        """Render the issue as it appears in a problem body's ``errors`` list."""
        return {"loc": list(self.loc), "msg": self.msg}


class ProblemError(TierwiseError):
    """An error that is answered to the client as a problem+json response."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[FieldIssue] = (),
        headers: dict[str, str] | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.run_id = run_id

    def extra_members(self) -> dict[str, Any]:
        """Members beyond the standard ones that this problem type adds to its body."""
        return {}

    def to_problem(self) -> dict[str, Any]:
        """Render the RFC 9457 body."""
        body: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "errors": [issue.as_dict() for issue in self.errors],
            "run_id": self.run_id,
        }
        body.update(self.extra_members())
        return body


class MalformedRequest(ProblemError):
    """The body could not be read as a JSON object."""

    status = 400
    slug = "malformed-request"
    title = "Malformed request"


class InvalidRequest(ProblemError):
    """The body is JSON but breaks the node's request contract."""

    status = 422
    slug = "invalid-request"
    title = "Invalid request"


class UnsupportedSchema(InvalidRequest):
    """A user-supplied JSON Schema that is invalid or outside the structured-outputs subset."""

    slug = "unsupported-schema"
    title = "Unsupported JSON Schema"


class Unauthorized(ProblemError):
    """No API key, or a key that is not known."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tierwise"'})


class NotFound(ProblemError):
    """An unknown node, run or path."""

    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(ProblemError):
    """A known path called with the wrong HTTP method."""

    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class RequestTimeout(ProblemError):
    """The request body did not arrive in full in time; the connection is closed after the answer.

    Whatever is still on its way belongs to a request already answered, so the connection cannot carry
    another one.
    """

    status = 408
    slug = "request-timeout"
    title = "Request timeout"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class PayloadTooLarge(ProblemError):
    """The body is over the configured size limit."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class IdempotencyConflict(ProblemError):
    """An ``Idempotency-Key`` that was first used with a different request."""

    status = 409
    slug = "idempotency-conflict"
    title = "Idempotency key reused"


class TooManyRequests(ProblemError):
    """The caller is over one of its limits; always carries ``Retry-After``."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"
    limit: ClassVar[str] = "requests_per_minute"

    def __init__(self, detail: str, *, retry_after_s: float) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(detail, headers={"Retry-After": str(seconds)})
        self.retry_after_s = seconds
        self.reopens_in_s = max(0.0, retry_after_s)
        """The exact time until the limit lets a request through (``Retry-After`` is it rounded up)."""

    def extra_members(self) -> dict[str, Any]:
        """Say which limit was hit and when to come back."""
        return {"limit": self.limit, "retry_after_s": self.retry_after_s}


class BudgetExhausted(TooManyRequests):
    """The caller's daily budget in USD is spent; ``Retry-After`` points at the next UTC midnight."""

    slug = "budget-exhausted"
    title = "Daily budget exhausted"
    limit = "daily_budget_usd"


class RunFailed(ProblemError):
    """Every tier the run was allowed to use failed: raised once by the ladder, carrying every attempt.

    The run's record renders it (``nodes.record``), adding the attempts, usage and routing to the body.
    """

    status = 502
    slug = "run-failed"
    title = "Every allowed tier failed"
    names_attempts: ClassVar[bool] = True

    def __init__(self, detail: str, *, attempts: Sequence[Attempt] = ()) -> None:
        if self.names_attempts:
            tried = ", ".join(f"{attempt.tier}:{attempt.outcome}" for attempt in attempts) or "no attempt"
            detail = f"{detail} ({tried})"
        super().__init__(detail)
        self.attempts = list(attempts)

    @property
    def cost_usd(self) -> Decimal:
        """What the failed run cost, every attempt included."""
        return sum((attempt.cost_usd for attempt in self.attempts), Decimal(0))


class RunDeadlineExceeded(RunFailed):
    """The run's wall-time cap passed before any tier produced a valid output."""

    status = 504
    slug = "run-deadline-exceeded"
    title = "Run deadline exceeded"
    names_attempts = False


class RunOverBudget(RunFailed):
    """The key's daily budget ran out while the run was going on; the run stopped before its next model call."""

    status = 429
    slug = "budget-exhausted"
    title = "Daily budget exhausted"
    names_attempts = False

    def __init__(self, detail: str, *, attempts: Sequence[Attempt] = (), retry_after_s: float) -> None:
        super().__init__(detail, attempts=attempts)
        seconds = max(1, int(retry_after_s + 0.999))
        self.headers["Retry-After"] = str(seconds)
        self.retry_after_s = seconds

    def extra_members(self) -> dict[str, Any]:
        """Say which limit stopped the run and when to come back."""
        return {"limit": "daily_budget_usd", "retry_after_s": self.retry_after_s}


class RunBroken(RunFailed):
    """A fault of the service ended the run; what it had spent is still recorded."""

    status = 500
    slug = "internal-error"
    title = "Internal error"
    names_attempts = False


class ServiceUnavailable(ProblemError):
    """The service cannot do its part right now (storage unavailable); ``Retry-After`` says when to retry."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class InternalError(ProblemError):
    """A fault of the service itself, never of the request: logged with its traceback."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str = "the service hit an unexpected error; it has been logged", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class UpstreamError(TierwiseError):
    """One model call that failed before producing an answer (internal: a run retries or escalates on it).

    Each subclass is one kind of failure, with the attempt ``outcome`` it is recorded as and whether
    the same tier may be tried again; ``retry_after_s`` is the server's own advice, already parsed.
    """

    outcome: ClassVar[str] = "upstream_error"
    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s
        self.headers = dict(headers or {})
        self.retryable = self.retryable_by_default if retryable is None else retryable


class RateLimited(UpstreamError):
    """HTTP 429: the tier's rate limit; waiting helps."""

    outcome = "rate_limited"
    retryable_by_default = True


class QuotaExhausted(UpstreamError):
    """HTTP 429 ``insufficient_quota``: the account is out of credit; waiting does not help."""


class CapacityUnavailable(UpstreamError):
    """HTTP 429 ``resource_unavailable``: no capacity for a flex call right now; it was not billed."""

    outcome = "unavailable"


class ServerError(UpstreamError):
    """HTTP 5xx, 408 or 409, or a reply with no usable choice: transient trouble at the endpoint."""

    retryable_by_default = True


class RequestRejected(UpstreamError):
    """Any other HTTP 4xx: the endpoint refused the request itself, so repeating it is pointless."""


class UpstreamTimeout(UpstreamError):
    """The call took longer than the tier's timeout (or what was left of the run's deadline)."""

    outcome = "timeout"
    retryable_by_default = True


class ConnectionFailed(UpstreamError):
    """The endpoint could not be reached or the connection dropped."""

    retryable_by_default = True


class ConfigError(TierwiseError):
    """The service is misconfigured; the message says which setting to change and how."""
