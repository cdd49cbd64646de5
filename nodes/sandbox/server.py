"""The sandbox upstream: an OpenAI-compatible FastAPI app with synthetic answers and injected faults.

Endpoints:

* ``POST /v1/chat/completions``: answers ``json_schema``, ``json_object`` and text requests, or
  injects the first matching fault from the ``SandboxConfig``, or refuses the request with 429 when
  the model's rate-limit bucket is empty.
* ``GET /v1/models``: the models requested so far, in OpenAI's list shape.
* ``GET``/``PUT /_sandbox/config``: read or replace the whole configuration (``PUT`` also refills
  every rate-limit bucket).
* ``GET /_sandbox/requests``: the log of chat-completion requests, in arrival order (kept only while
  ``log_requests`` is on).
* ``GET /_sandbox/stats``: ``{"served", "rate_limited", "faults": {kind: n}, "by_model": {model:
  {"served", "rate_limited"}}}``: 200 replies, 429s from the rate-limit buckets, faults delivered.
* ``DELETE /_sandbox/requests``: empty the log, zero the stats and clear the reply shaper, if any.

The ``/_sandbox/*`` endpoints steer what the sandbox answers, so whoever can reach them chooses the
outputs of every run served by it. With a ``control_token`` they ask for ``Authorization: Bearer
<token>`` (401 otherwise) and only ``/v1/*`` stays open; the sandbox embedded in the service always
has one, drawn at random and never shown, so no other local process can steer it.

A ``ReplyShaper`` (``nodes.sandbox.shaping``) passed to ``create_sandbox_app`` decides the 200 replies
of the models it knows; a reply it shaped is logged with a ``shaped`` member, what its ``deliver`` said.

Flex processing is emulated: a request with ``service_tier: "flex"`` is answered with ``service_tier:
"flex"``, ``flex_latency_ms`` slower, and is the only kind a ``resource_unavailable`` fault (429
``resource_unavailable``, as OpenAI answers when flex has no capacity) applies to.

A chat completion is checked in this order: body validation (400), fault rules that answer with an
error (``rate_limit``, ``insufficient_quota``, ``server_error``, ``resource_unavailable``; these never
touch the buckets), the
rate-limit buckets (429 ``rate_limit_exceeded``; an admitted request takes from them at once), then
the latency sleep. A non-error fault (``slow``, ``refusal``...) refused by a bucket is not spent: its
``times`` is given back.

All state lives in a ``SandboxState`` on ``app.state.sandbox``, so several apps can share a process;
its ``clock`` (``time.monotonic`` unless injected) drives the buckets. A chat completion is decided
(parsed, fault picked, bucket taken from, body built, logged) without awaiting anything; only then
does it sleep for the configured latency, so faults and limits apply in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from nodes.sandbox import wire
from nodes.sandbox.batches import BatchDesk, add_batch_api
from nodes.sandbox.faults import FaultRule, SandboxConfig, pick_fault
from nodes.sandbox.limits import Admission, RateLimiter
from nodes.sandbox.shaping import ChatRequest, FormatKind, ReplyShaper, ShapedReply
from nodes.sandbox.synth import drift, sentence, synthesize

__all__ = ["SandboxState", "SandboxStats", "create_sandbox_app"]

_JSON_SCHEMA_UNSUPPORTED = (
    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
)
_ERROR_FAULTS = frozenset({"rate_limit", "insufficient_quota", "server_error", "resource_unavailable"})
SERVICE_TIERS = frozenset({"auto", "default", "flex", "priority", "scale"})
CONTROL_PREFIX = "/_sandbox/"


@dataclass
class SandboxStats:
    """Counters behind ``GET /_sandbox/stats``; zeroed by ``DELETE /_sandbox/requests``."""

    served: int = 0
    rate_limited: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_served(self, model: str) -> None:
        """Count one 200 chat completion for ``model``."""
        self.served += 1
        self._model(model)["served"] += 1

    def count_rate_limited(self, model: str) -> None:
        """Count one 429 from ``model``'s rate-limit buckets."""
        self.rate_limited += 1
        self._model(model)["rate_limited"] += 1

    def count_fault(self, kind: str) -> None:
        """Count one delivered fault of ``kind``."""
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def as_json(self) -> dict[str, Any]:
        """A copy in the shape ``GET /_sandbox/stats`` returns."""
        return {
            "served": self.served,
            "rate_limited": self.rate_limited,
            "faults": dict(self.faults),
            "by_model": {model: dict(counts) for model, counts in self.by_model.items()},
        }

    def _model(self, model: str) -> dict[str, int]:
        return self.by_model.setdefault(model, {"served": 0, "rate_limited": 0})


@dataclass
class SandboxState:
    """Mutable state of one sandbox app: its configuration, random source, clock, buckets, counters and logs.

    ``issued`` numbers completion ids and is never reset; ``stats`` is. ``clock`` returns seconds
    and may be replaced (before or between requests) to drive the rate-limit buckets in tests.
    ``shaper`` (if any) decides the replies of the models it knows; a new configuration keeps it.
    """

    config: SandboxConfig
    rng: random.Random
    clock: Callable[[], float] = time.monotonic
    shaper: ReplyShaper | None = None
    started: int = field(default_factory=lambda: int(time.time()))
    issued: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, None] = field(default_factory=dict)
    stats: SandboxStats = field(default_factory=SandboxStats)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = _limiter(self.config)

    @classmethod
    def from_config(
        cls,
        config: SandboxConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        shaper: ReplyShaper | None = None,
    ) -> SandboxState:
        """Build a fresh state from a (copied) configuration."""
        config = config.model_copy(deep=True)
        return cls(config=config, rng=random.Random(config.seed), clock=clock, shaper=shaper)

    def replace_config(self, config: SandboxConfig) -> None:
        """Swap in a new configuration, re-seed the random source and refill every rate-limit bucket."""
        self.config = config.model_copy(deep=True)
        self.rng = random.Random(self.config.seed)
        self.limiter = _limiter(self.config)

    def clear(self) -> None:
        """Empty the request log, zero the stats and clear the shaper."""
        self.requests.clear()
        self.stats = SandboxStats()
        if self.shaper is not None:
            self.shaper.clear()

    def latency_s(self) -> float:
        """Return the configured latency plus uniform jitter, in seconds, never negative."""
        latency = self.config.latency_ms
        if self.config.latency_jitter_ms > 0:
            jitter = self.config.latency_jitter_ms
            latency += self.rng.uniform(-jitter, jitter)
        return max(0.0, latency) / 1000


@dataclass
class _Reply:
    """A decided chat-completion answer, before the latency sleep."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay_ms: int = 0
    latency_s: float | None = None
    shaped: dict[str, Any] | None = None


@dataclass
class _Draft:
    """A successful answer before the rate-limit check: what it says and what it costs."""

    content: str | None
    refusal: str | None
    finish_reason: str
    prompt: int
    completion: int
    reasoning: int
    delay_ms: int
    budget: int
    fault: str | None = None
    shaped: ShapedReply | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _BadRequest(Exception):
    """A request OpenAI would answer with 400 ``invalid_request_error``."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class _ControlGuard:
    """ASGI middleware: every ``/_sandbox/*`` request must carry the control token; the rest passes through.

    It answers before the route runs, so no part of an unauthorised request (its body included) is read.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX) and not self._authorised(scope):
            body = wire.error_body(
                "the sandbox's control endpoints need 'Authorization: Bearer <control token>'",
                "invalid_request_error",
                code="invalid_control_token",
            )
            refusal = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="sandbox"'})
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return secrets.compare_digest(value, self.expected)
        return False


def create_sandbox_app(
    config: SandboxConfig | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    shaper: ReplyShaper | None = None,
    control_token: str | None = None,
) -> FastAPI:
    """Build a sandbox app; ``config`` is copied, so later changes go through ``PUT /_sandbox/config``.

    ``clock`` (seconds) drives the rate-limit buckets; tests pass a fake one to avoid real waiting.
    ``shaper`` decides the replies of the models it knows (see ``nodes.sandbox.shaping``).
    ``control_token``, when given, is required as ``Authorization: Bearer <token>`` on every
    ``/_sandbox/*`` endpoint (routes added to the app later included); ``/v1/*`` needs none.
    """
    state = SandboxState.from_config(config or SandboxConfig(), clock=clock, shaper=shaper)
    app = FastAPI(title="Tierwise sandbox upstream", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    if control_token is not None:
        if not control_token:
            raise ValueError("a control token cannot be empty")
        app.add_middleware(_ControlGuard, token=control_token)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        reply = _decide(state, body, authorization=_has_bearer(request.headers.get("authorization")))
        return await _respond(state, reply)

    def batch_line(body: Any, batch_id: str) -> tuple[int, dict[str, Any]]:
        reply = _decide(state, body, authorization=True, batch_id=batch_id, limited=False)
        return reply.status, reply.body

    add_batch_api(app, BatchDesk(batch_line, lambda: state.config.batch_delay_ms / 1000))

    @app.get("/v1/models")
    async def list_models() -> Response:
        data = [
            {"id": name, "object": "model", "created": state.started, "owned_by": "sandbox"} for name in state.models
        ]
        return await _respond(state, _Reply(200, {"object": "list", "data": data}))

    @app.get("/_sandbox/config")
    async def get_config() -> dict[str, Any]:
        return state.config.model_dump(mode="json")

    @app.put("/_sandbox/config")
    async def put_config(config: SandboxConfig) -> dict[str, Any]:
        state.replace_config(config)
        return state.config.model_dump(mode="json")

    @app.get("/_sandbox/requests")
    async def get_requests() -> dict[str, Any]:
        return {"requests": list(state.requests)}

    @app.delete("/_sandbox/requests", status_code=204)
    async def clear_requests() -> Response:
        state.clear()
        return Response(status_code=204)

    @app.get("/_sandbox/stats")
    async def get_stats() -> dict[str, Any]:
        return state.stats.as_json()

    return app


def _decide(
    state: SandboxState, body: Any, *, authorization: bool, batch_id: str | None = None, limited: bool = True
) -> _Reply:
    """Answer one chat-completions body (sent alone, or as a line of a batch) and log it.

    A batch line is not put to the rate-limit buckets: the Batch API has limits of its own.
    """
    entry: dict[str, Any] = {
        "model": body.get("model") if isinstance(body, dict) else None,
        "response_format": _format_label(body),
        "fault": None,
        "status": 200,
        "body": body,
        "authorization": authorization,
    }
    if batch_id is not None:
        entry["batch"] = batch_id
    try:
        parsed = _parse(body, state.config.seed)
        if parsed.kind == "json_schema" and not state.config.supports_json_schema:
            raise _BadRequest(_JSON_SCHEMA_UNSUPPORTED, param="response_format")
    except _BadRequest as exc:
        reply = _Reply(400, wire.error_body(exc.message, "invalid_request_error", param=exc.param, code=exc.code))
    else:
        state.models[parsed.model] = None
        rule = pick_fault(state.config.faults, parsed.model, state.rng, parsed.service_tier)
        reply, entry["fault"] = _answer(state, parsed, rule, limited=limited)
    entry["status"] = reply.status
    if reply.shaped is not None:
        entry["shaped"] = reply.shaped
    if state.config.log_requests:
        state.requests.append(entry)
    return reply


# -- request parsing ------------------------------------------------------------------------------


def _parse(body: Any, seed: int | None) -> ChatRequest:
    """Check the request the way OpenAI does and pull out what the sandbox needs."""
    if not isinstance(body, dict):
        raise _BadRequest(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON object payload."
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise _BadRequest(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise _BadRequest("Invalid type for 'messages': expected an array.", param="messages", code="invalid_type")
    if not messages:
        raise _BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            param="messages",
            code="empty_array",
        )
    if body.get("stream") is True:
        raise _BadRequest("The sandbox does not support 'stream': true.", param="stream")
    kind, schema = _parse_format(body.get("response_format"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise _BadRequest("Invalid 'max_tokens': expected a positive integer.", param="max_tokens")
    service_tier = body.get("service_tier")
    if service_tier is None:
        service_tier = "default"
    elif service_tier not in SERVICE_TIERS:
        raise _BadRequest(
            f"Invalid value for 'service_tier': expected one of {', '.join(sorted(SERVICE_TIERS))}.",
            param="service_tier",
            code="invalid_value",
        )
    return ChatRequest(
        model=model,
        messages=messages,
        kind=kind,
        schema=schema,
        max_tokens=max_tokens,
        seed=seed,
        service_tier="default" if service_tier == "auto" else service_tier,
        logprobs=_flag(body, "logprobs"),
        tools=_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
    )


def _tools(tools: Any) -> list[Any]:
    """The request's function tools, checked the way OpenAI checks them (400 otherwise)."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _BadRequest("Invalid type for 'tools': expected an array.", param="tools", code="invalid_type")
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _BadRequest(
                f"Missing required parameter: 'tools[{index}].function.name'.",
                param=f"tools[{index}].function.name",
                code="missing_required_parameter",
            )
    return tools


def _flag(body: dict[str, Any], name: str) -> bool:
    """A boolean request parameter (absent or null: false); anything else is OpenAI's 400."""
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _BadRequest(f"Invalid type for '{name}': expected a boolean.", param=name, code="invalid_type")
    return value


def _parse_format(response_format: Any) -> tuple[FormatKind, dict[str, Any] | None]:
    """Return the format kind and the schema to satisfy: ``json_schema``'s, or one attached to ``json_object``."""
    if response_format is None:
        return "text", None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return "text", None
    if kind == "json_object":
        attached = response_format.get("schema")
        if attached is not None and not isinstance(attached, dict):
            raise _BadRequest("Invalid type for 'response_format.schema': expected an object.")
        return "json_object", attached  # a schema attached to JSON mode is enforced, as llama.cpp does
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _BadRequest(
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
                code="missing_required_parameter",
            )
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict):
            raise _BadRequest("Invalid type for 'response_format.json_schema.schema': expected an object.")
        return "json_schema", schema
    raise _BadRequest(
        "Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
        param="response_format.type",
        code="invalid_value",
    )


def _format_label(body: Any) -> str:
    """How the request log labels a request's response format."""
    response_format = body.get("response_format") if isinstance(body, dict) else None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    return kind if kind in ("json_schema", "json_object") else "text"


def _has_bearer(authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries a non-empty bearer key."""
    if not authorization:
        return False
    scheme, _, key = authorization.partition(" ")
    return scheme.lower() == "bearer" and bool(key.strip())


# -- answering ------------------------------------------------------------------------------------


def _answer(
    state: SandboxState, request: ChatRequest, rule: FaultRule | None, *, limited: bool = True
) -> tuple[_Reply, str | None]:
    """Reply to a valid request and say which fault (if any) was delivered, updating the stats.

    Error faults answer at once. Otherwise the answer is drafted, so its token cost is known, and put
    to the model's buckets: refused, it becomes a 429 and ``rule`` gets its ``times`` back; admitted,
    it is numbered and sent.
    """
    error = _fault_error(request, rule)
    if error is not None and rule is not None:
        state.stats.count_fault(rule.kind)
        return error, rule.kind
    draft = _draft(state, request, rule)
    admission: Admission | None = None
    if limited and state.limiter.enabled:
        admission = state.limiter.admit(request.model, draft.budget, state.clock())
        if admission.limited_by is not None:
            if rule is not None and rule.times is not None:
                rule.times += 1
            state.stats.count_rate_limited(request.model)
            return _rate_limited(request, draft.budget, admission), None
    if rule is not None:
        state.stats.count_fault(rule.kind)
    state.stats.count_served(request.model)
    return _completion(state, request, draft, admission), rule.kind if rule is not None else None


def _fault_error(request: ChatRequest, rule: FaultRule | None) -> _Reply | None:
    """The error reply of a ``rate_limit``, ``insufficient_quota`` or ``server_error`` rule, else None."""
    if rule is None or rule.kind not in _ERROR_FAULTS:
        return None
    if rule.kind == "rate_limit":
        body = wire.error_body(
            wire.RATE_LIMIT_MESSAGE.format(model=request.model), "requests", code="rate_limit_exceeded"
        )
        headers = wire.ratelimit_headers(
            remaining_requests=0, remaining_tokens=wire.TOKEN_LIMIT, reset_requests="20ms", limit_requests=500
        )
        if rule.retry_after_s is not None:
            headers["retry-after"] = f"{rule.retry_after_s:g}"
        if rule.retry_after_ms is not None:
            headers["retry-after-ms"] = str(rule.retry_after_ms)
        return _Reply(429, body, headers)
    if rule.kind == "resource_unavailable":
        message = wire.RESOURCE_UNAVAILABLE_MESSAGE.format(model=request.model)
        return _Reply(429, wire.error_body(message, "requests", code="resource_unavailable"))
    if rule.kind == "insufficient_quota":
        return _Reply(429, wire.error_body(wire.QUOTA_MESSAGE, "insufficient_quota", code="insufficient_quota"))
    return _Reply(rule.status, wire.error_body(wire.SERVER_ERROR_MESSAGE, "server_error"))


def _draft(state: SandboxState, request: ChatRequest, rule: FaultRule | None) -> _Draft:
    """Work out a 200 answer with ``rule`` (a non-error fault, if any) applied, and its token cost."""
    kind = rule.kind if rule is not None else None
    rng = _content_rng(request)
    answer = _own_answer(request, rng)
    shaped = state.shaper.shape(request, answer) if state.shaper is not None else None
    content: str | None = shaped.content if shaped is not None else _content(request, answer)
    refusal: str | None = None
    finish_reason = "stop"
    completion_limit: int | None = None
    delay_ms = 0
    if kind == "slow" and rule is not None:
        delay_ms = rule.delay_ms
    elif kind == "non_json":
        content = wire.NON_JSON_TEXT
    elif kind == "schema_drift" and request.kind != "text":
        schema = request.answer_schema
        content = _json(drift(synthesize(schema, rng, wire.input_text(request.messages)), schema))
    elif kind == "refusal":
        content, refusal = None, wire.REFUSAL_TEXT
    elif kind == "truncated" and content is not None:
        content = content[: len(content) // 2]
        finish_reason = "length"
        completion_limit = request.max_tokens
    elif kind == "content" and rule is not None:
        content = rule.content

    tool_calls = None
    function = request.tool_to_call
    if function is not None and refusal is None and kind not in ("non_json", "content"):
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        arguments = synthesize(parameters, rng, wire.input_text(request.messages))
        if kind == "schema_drift":
            arguments = drift(arguments, parameters)
        tool_calls = [wire.tool_call(request.digest, len(request.messages), function["name"], _json(arguments))]
        content, finish_reason, completion_limit = None, "tool_calls", None

    prompt = wire.prompt_tokens(request.messages)
    reasoning = state.config.reasoning_tokens
    if completion_limit is not None:
        completion = completion_limit
        reasoning = min(reasoning, completion_limit)
    else:
        said = tool_calls[0]["function"]["arguments"] if tool_calls else content if refusal is None else refusal
        completion = wire.completion_tokens(said) + reasoning
    budget = prompt + (request.max_tokens if request.max_tokens is not None else completion)
    return _Draft(
        content=content,
        refusal=refusal,
        finish_reason=finish_reason,
        prompt=prompt,
        completion=completion,
        reasoning=reasoning,
        delay_ms=delay_ms,
        budget=budget,
        fault=kind,
        shaped=shaped,
        tool_calls=tool_calls,
    )


def _completion(state: SandboxState, request: ChatRequest, draft: _Draft, admission: Admission | None) -> _Reply:
    """Number an admitted draft and build its ``chat.completion`` reply (telling the shaper, if it shaped it)."""
    state.issued += 1
    body = wire.completion_body(
        number=state.issued,
        created=int(time.time()),
        model=request.model,
        content=draft.content,
        refusal=draft.refusal,
        finish_reason=draft.finish_reason,
        usage=wire.usage(
            prompt=draft.prompt,
            completion=draft.completion,
            cached=min(state.config.cached_prompt_tokens, draft.prompt),
            reasoning=draft.reasoning,
        ),
        service_tier=request.service_tier,
        logprobs=_logprobs(request, draft),
        tool_calls=draft.tool_calls,
    )
    headers = _limit_headers(admission, draft.budget)
    headers["openai-version"] = "2020-10-01"
    flex_ms = round(state.config.flex_latency_ms) if request.service_tier == "flex" else 0
    reply = _Reply(200, body, headers, delay_ms=draft.delay_ms + flex_ms)
    if draft.shaped is not None and state.shaper is not None:
        delivery = state.shaper.deliver(request, draft.shaped, draft.fault, draft.completion)
        reply.latency_s, reply.shaped = delivery.latency_s, delivery.log
    return reply


def _logprobs(request: ChatRequest, draft: _Draft) -> list[dict[str, Any]] | None:
    """The reply's ``logprobs.content`` when the request asked for them, else None."""
    if not request.logprobs or draft.content is None:
        return None
    return wire.token_logprobs(draft.content, draft.shaped.answer_probability if draft.shaped is not None else None)


def _rate_limited(request: ChatRequest, budget: int, admission: Admission) -> _Reply:
    """OpenAI's 429 for a request a bucket refused, with the exact wait in ``retry-after(-ms)``."""
    kind = admission.limited_by
    view = admission.requests if kind == "requests" else admission.tokens
    assert kind is not None and view is not None
    wait_ms = max(1, wire.ceil_ms(admission.retry_after_s))
    message = wire.RATE_LIMIT_REACHED.format(
        model=request.model,
        kind=kind,
        unit="RPM" if kind == "requests" else "TPM",
        limit=view.limit,
        used=view.limit - view.remaining,
        requested=1 if kind == "requests" else budget,
        wait=wire.format_reset(wait_ms),
    )
    headers = _limit_headers(admission, budget)
    headers["retry-after-ms"] = str(wait_ms)
    headers["retry-after"] = str(-(-wait_ms // 1000))
    return _Reply(429, wire.error_body(message, kind, code="rate_limit_exceeded"), headers)


def _limit_headers(admission: Admission | None, budget: int) -> dict[str, str]:
    """The ``x-ratelimit-*`` trios: real bucket values where a limit is set, the fixed ones elsewhere."""
    requests = admission.requests if admission is not None else None
    tokens = admission.tokens if admission is not None else None
    headers = wire.ratelimit_headers(
        remaining_requests=wire.REQUEST_LIMIT - 1,
        remaining_tokens=max(0, wire.TOKEN_LIMIT - budget),
        reset_requests="6ms",
    )
    if requests is not None:
        headers.update(
            wire.ratelimit_trio(
                "requests",
                limit=requests.limit,
                remaining=requests.remaining,
                reset=wire.format_reset(wire.ceil_ms(requests.reset_s)),
            )
        )
    if tokens is not None:
        headers.update(
            wire.ratelimit_trio(
                "tokens",
                limit=tokens.limit,
                remaining=tokens.remaining,
                reset=wire.format_reset(wire.ceil_ms(tokens.reset_s)),
            )
        )
    return headers


def _limiter(config: SandboxConfig) -> RateLimiter:
    """Fresh (full) buckets for the configuration's limits."""
    return RateLimiter(rpm=config.rate_limit_rpm, tpm=config.rate_limit_tpm, burst_s=config.rate_limit_burst_s)


def _own_answer(request: ChatRequest, rng: random.Random) -> Any:
    """The un-faulted answer: an instance of the answer schema for the JSON formats, a short paragraph for text."""
    if request.kind == "text":
        return " ".join(sentence(rng) for _ in range(rng.randint(2, 3)))
    return synthesize(request.answer_schema, rng, wire.input_text(request.messages))


def _content(request: ChatRequest, answer: Any) -> str:
    """The message content of the sandbox's own answer."""
    return answer if request.kind == "text" else _json(answer)


def _content_rng(request: ChatRequest) -> random.Random:
    """Return a random source fixed by the seed and the request, so equal requests get equal answers."""
    return random.Random(f"{request.seed}|{request.digest}")


def _json(value: Any) -> str:
    """Compact JSON, as OpenAI's models emit it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _respond(state: SandboxState, reply: _Reply) -> Response:
    """Wait out the configured latency (plus any ``slow`` delay) and send the reply."""
    base = reply.latency_s if reply.latency_s is not None else state.latency_s()
    delay = base + reply.delay_ms / 1000
    if delay > 0:
        await asyncio.sleep(delay)
    headers = {
        "x-request-id": wire.request_id(),
        "openai-processing-ms": str(round(delay * 1000)),
        **reply.headers,
    }
    return JSONResponse(reply.body, status_code=reply.status, headers=headers)
