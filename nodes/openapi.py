"""The OpenAPI document: what FastAPI cannot see in routes that read raw bytes and answer problems.

The node and batch routes read their bodies as bytes, to hold them to their size limit and deadline,
so FastAPI infers no request body for them; and every route answers problems FastAPI knows nothing
of. This module says both, in one place:

* ``ROUTES``: each route's ``operation_id``, ``responses`` and ``openapi_extra``, spread into its
  decorator in ``nodes.api``;
* ``NodeName``: the ``{node_name}`` path parameter, an enum of the catalogue's nodes; ``Since`` and
  ``Until``: the period of ``GET /v1/stats``;
* ``install_openapi(app)``: adds the components those refer to (the node request models, the batch
  body, the answers, the problem shapes, the two ways to present a key) to what FastAPI generates.

Nothing here runs on a request; the document is built once, on the first ``GET /openapi.json``.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, get_args

from fastapi import FastAPI, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic.json_schema import models_json_schema

from nodes.catalog import NODES
from nodes.checks import Outcome
from nodes.compat.models import MODEL_IDS
from nodes.lanes import LANES
from nodes.problems import PROBLEM_JSON
from nodes.protocol import BatchRequest
from nodes.tiers import LADDER

SCHEMAS = "#/components/schemas/"
JSON = "application/json"
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: 'Authorization: Bearer <key>'."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "The same key, as Make sends it."},
}

NodeName = Annotated[
    str,
    Path(description="The node to run.", json_schema_extra={"enum": list(NODES)}),
]
"""The ``{node_name}`` path parameter: documented as the catalogue's names, checked by the route (404)."""

PERIOD = "an ISO 8601 time (2026-11-21T09:00:00Z) or a duration ago (30m, 24h, 7d)"
Since = Annotated[str | None, Query(description=f"Count runs from {PERIOD}; default: 24 hours ago.")]
Until = Annotated[str | None, Query(description=f"Count runs up to {PERIOD}, after since; default: now.")]
"""The period of ``GET /v1/stats`` (checked by ``nodes.stats.parse_period``, 422 otherwise)."""


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": SCHEMAS + name}


def string_header(description: str, **schema: Any) -> dict[str, Any]:
    """A required response header with a string value."""
    return {"description": description, "required": True, "schema": {"type": "string", **schema}}


RETRY_AFTER = {
    "Retry-After": string_header("Seconds to wait before trying again.", pattern=r"^[0-9]+$"),
}
RUN_HEADERS = {
    "X-Tierwise-Run-Id": string_header("The run's id, as in the body."),
    "X-Tierwise-Tier": string_header("The tier that answered (or was tried last).", enum=list(LADDER)),
    "X-Tierwise-Cost-Usd": string_header("What the run cost, in exact decimal text.", pattern=r"^[0-9]+(\.[0-9]+)?$"),
    "X-Tierwise-Overhead-Ms": string_header("Time spent in the service, not waiting on models."),
}

TIER = {"type": "string", "enum": list(LADDER)}
COUNT = {"type": "integer", "minimum": 0}
MONEY = {"type": "number", "description": "USD (the headers and the store keep exact decimal text)."}

COMPONENTS: dict[str, Any] = {
    "FieldIssue": {
        "type": "object",
        "description": "One thing wrong with one place in the request.",
        "properties": {
            "loc": {"type": "array", "items": {"type": ["string", "integer"]}, "description": "The place."},
            "msg": {"type": "string", "description": "What to fix."},
        },
        "required": ["loc", "msg"],
    },
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem; docs/protocol.md lists every type.",
        "properties": {
            "type": {"type": "string", "pattern": "^/problems/[a-z-]+$", "examples": ["/problems/invalid-request"]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "One sentence: the first problem and how many more."},
            "errors": {"type": "array", "items": ref("FieldIssue")},
            "run_id": {"type": ["string", "null"]},
        },
        "required": ["type", "title", "status", "detail", "errors", "run_id"],
    },
    "LimitProblem": {
        "allOf": [
            ref("Problem"),
            {
                "type": "object",
                "properties": {
                    "limit": {"type": "string", "enum": ["requests_per_minute", "daily_budget_usd"]},
                    "retry_after_s": {"type": "integer", "minimum": 1},
                },
                "required": ["limit", "retry_after_s"],
            },
        ],
        "description": "A limit of the calling key is used up.",
    },
    "Attempt": {
        "type": "object",
        "description": "One model call of the run, failed ones included.",
        "properties": {
            "tier": TIER,
            "model": {"type": "string"},
            "outcome": {"type": "string", "enum": list(get_args(Outcome))},
            "latency_ms": COUNT,
            "input_tokens": COUNT,
            "cached_input_tokens": COUNT,
            "output_tokens": COUNT,
            "reasoning_tokens": COUNT,
            "cost_usd": MONEY,
            "repair": {"type": "boolean"},
            "waited_ms": COUNT,
            "processing": {
                "type": "string",
                "enum": list(LANES),
                "description": "The lane the call was processed and priced on.",
            },
            "error": {"description": "What went wrong, for every outcome but ok."},
            "purpose": {"type": "string", "description": "routing, for the starting-tier check of tier auto."},
        },
        "required": [
            "tier",
            "model",
            "outcome",
            "latency_ms",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cost_usd",
            "repair",
            "waited_ms",
            "processing",
        ],
    },
    "RunMembers": {
        "type": "object",
        "description": "What every run's answer carries, succeeded or failed.",
        "properties": {
            "run_id": {"type": "string", "pattern": "^run_"},
            "node": {"type": "string", "enum": list(NODES)},
            "attempts": {"type": "array", "items": ref("Attempt")},
            "usage": {
                "type": "object",
                "properties": {
                    "input_tokens": COUNT,
                    "cached_input_tokens": COUNT,
                    "output_tokens": COUNT,
                    "reasoning_tokens": COUNT,
                    "cost_usd": MONEY,
                    "baseline_cost_usd": MONEY,
                    "savings_usd": MONEY,
                },
                "required": [
                    "input_tokens",
                    "cached_input_tokens",
                    "output_tokens",
                    "reasoning_tokens",
                    "cost_usd",
                    "baseline_cost_usd",
                    "savings_usd",
                ],
            },
            "routing": {
                "type": "object",
                "properties": {"start_tier": TIER, "reason": {"type": "string"}},
                "required": ["start_tier", "reason"],
            },
            "latency_ms": COUNT,
            "overhead_ms": {"type": "number", "minimum": 0},
            "metadata": {"type": "object", "description": "As sent."},
            "sandbox": {"type": "boolean"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
        "required": [
            "run_id",
            "node",
            "attempts",
            "usage",
            "routing",
            "latency_ms",
            "overhead_ms",
            "metadata",
            "sandbox",
            "warnings",
        ],
    },
    "NodeAnswer": {
        "allOf": [
            ref("RunMembers"),
            {
                "type": "object",
                "properties": {
                    "output": {"description": "Valid against the node's output schema (GET /v1/nodes)."},
                    "tier": TIER,
                    "model": {"type": "string"},
                    "escalated": {"type": "boolean"},
                },
                "required": ["output", "tier", "model", "escalated"],
            },
        ],
        "description": "A run that succeeded.",
    },
    "RunFailed": {
        "allOf": [ref("Problem"), ref("RunMembers")],
        "description": "A run that every allowed tier failed (502) or whose deadline passed (504): the problem "
        "with every attempt and what they cost.",
    },
    "Queued": {
        "type": "object",
        "description": "An asynchronous run, stored before this answer; its result goes to callback_url.",
        "properties": {
            "run_id": {"type": "string", "pattern": "^run_"},
            "status": {"type": "string", "const": "queued"},
            "status_url": {"type": "string", "pattern": "^/v1/runs/run_"},
        },
        "required": ["run_id", "status", "status_url"],
    },
    "BatchAnswer": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "description": "One per item, in order: its answer, its 202 body, or its problem.",
                "items": {"anyOf": [ref("NodeAnswer"), ref("Queued"), ref("Problem")]},
            },
            "summary": {
                "type": "object",
                "properties": {"items": COUNT, "succeeded": COUNT, "failed": COUNT, "cost_usd": MONEY},
                "required": ["items", "succeeded", "failed", "cost_usd"],
            },
        },
        "required": ["results", "summary"],
    },
    "RunStatus": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
            "node": {"type": "string"},
            "created_at": {"type": "string"},
            "result": {
                "anyOf": [ref("NodeAnswer"), ref("RunFailed"), {"type": "null"}],
                "description": "The answer, once the run has finished.",
            },
            "callback": {
                "type": "object",
                "description": "Asynchronous runs only.",
                "properties": {"url": {"type": "string"}, "deliveries": {"type": "array", "items": {"type": "object"}}},
                "required": ["url", "deliveries"],
            },
        },
        "required": ["run_id", "status", "node", "created_at", "result"],
    },
    "Catalogue": {
        "type": "object",
        "properties": {
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "summary": {"type": "string"},
                        "default_tier": TIER,
                        "path": {"type": "string"},
                        "input_schema": {"type": "object"},
                        "output_schema": {"type": "object"},
                    },
                    "required": ["name", "summary", "default_tier", "path", "input_schema", "output_schema"],
                },
            }
        },
        "required": ["nodes"],
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string", "const": "ok"}, "sandbox": {"type": "boolean"}},
        "required": ["status", "sandbox"],
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not ready"]},
            "storage": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}, "engine": {"type": "string"}, "detail": {"type": "string"}},
                "required": ["ok", "engine"],
            },
            "jobs": {"type": "object", "properties": {"running": {"type": "boolean"}}, "required": ["running"]},
            "deliveries": {"type": "object", "properties": {"running": {"type": "boolean"}}, "required": ["running"]},
        },
        "required": ["status", "storage", "jobs", "deliveries"],
    },
    "OpenAIError": {
        "type": "object",
        "description": "OpenAI's error body, on the OpenAI-compatible paths (docs/openai-compatible.md).",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "What went wrong and what to fix."},
                    "type": {"type": "string", "examples": ["invalid_request_error", "server_error", "requests"]},
                    "param": {"type": ["string", "null"], "description": "The request parameter at fault."},
                    "code": {"type": ["string", "null"], "examples": ["model_not_found", "invalid_api_key"]},
                },
                "required": ["message", "type", "param", "code"],
            }
        },
        "required": ["error"],
    },
}

OPENAI_ERRORS: dict[int, str] = {
    400: "The body is not JSON, or a parameter cannot be honoured; `param` names it.",
    401: "No API key, or one that is not known (code invalid_api_key).",
    404: "A model id other than tierwise/auto, tierwise/nano, tierwise/mini, tierwise/full (code model_not_found).",
    408: "The body did not arrive in full within TIERWISE_BODY_TIMEOUT_S.",
    409: "The Idempotency-Key was first used with another request.",
    413: "The body is over TIERWISE_MAX_BODY_BYTES.",
    429: "The key's requests per minute (type requests) or daily budget (type insufficient_quota) are used up.",
    502: "Every allowed tier failed (code all_tiers_failed; x-should-retry: false).",
    503: "The store cannot be used right now; nothing was accepted.",
    504: "The run's deadline (TIERWISE_OPENAI_RUN_TIMEOUT_S) passed (x-should-retry: false).",
}


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of these statuses on the OpenAI-compatible paths: OpenAI's error body."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answers[status] = {"description": OPENAI_ERRORS[status], "content": {JSON: {"schema": ref("OpenAIError")}}}
        if status in (429, 503):
            answers[status]["headers"] = RETRY_AFTER
    return answers


PROBLEMS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("The body is not JSON, not an object, or holds NaN, Infinity or a lone surrogate.", "Problem", {}),
    401: (
        "No API key, or one that is not known.",
        "Problem",
        {"WWW-Authenticate": string_header("How to present a key.")},
    ),
    404: ("Unknown node, or a run this key did not make.", "Problem", {}),
    408: ("The body did not arrive in full within TIERWISE_BODY_TIMEOUT_S; the connection is closed.", "Problem", {}),
    409: ("The Idempotency-Key was first used with another request.", "Problem", {}),
    413: ("The body is over TIERWISE_MAX_BODY_BYTES (batches: TIERWISE_MAX_BATCH_BODY_BYTES).", "Problem", {}),
    422: ("Wrong types, missing or unknown fields, bad values, an unsupported JSON Schema.", "Problem", {}),
    429: ("The key's requests per minute or daily budget are used up.", "LimitProblem", RETRY_AFTER),
    502: ("Every allowed tier failed; the body carries every attempt and the cost.", "RunFailed", RUN_HEADERS),
    503: ("The store cannot be used right now; nothing was accepted.", "Problem", RETRY_AFTER),
    504: ("The run's deadline (TIERWISE_RUN_TIMEOUT_S) passed.", "RunFailed", RUN_HEADERS),
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entries of these problem statuses, each ``application/problem+json``."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, schema, headers = PROBLEMS[status]
        answers[status] = {"description": description, "content": {PROBLEM_JSON: {"schema": ref(schema)}}}
        if headers:
            answers[status]["headers"] = headers
    return answers


def answer(description: str, schema: str, headers: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON success response whose body is the component ``schema``."""
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": ref(schema)}}, **extra}
    if headers:
        response["headers"] = headers
    return response


def json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A required JSON request body."""
    return {"requestBody": {"required": True, "description": description, "content": {JSON: {"schema": schema}}}}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeat a POST safely: the same key with the same body returns the first answer "
    "(Idempotent-Replayed: true) and costs nothing; with another body it is a 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]([ -~]*[!-~])?$"},
}
GET_RUN = {
    "GetRun": {
        "operationId": "get_run",
        "parameters": {"run_id": "$response.body#/run_id"},
        "description": "Where the run stands, and its answer.",
    }
}
KEYED = {"security": SECURITY}

ROUTES: dict[str, dict[str, Any]] = {
    "healthz": {
        "operation_id": "healthz",
        "response_model": None,
        "responses": {200: answer("Alive.", "Health")},
    },
    "readyz": {
        "operation_id": "readyz",
        "response_model": None,
        "responses": {
            200: answer("Ready: the store takes writes and the background loops run.", "Readiness"),
            503: answer(
                "Not ready: the report says what failed.",
                "Readiness",
                {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
            ),
        },
    },
    "list_nodes": {
        "operation_id": "list_nodes",
        "response_model": None,
        "openapi_extra": KEYED,
        "responses": {200: answer("The node catalogue.", "Catalogue"), **problems(401, 503)},
    },
    "run_node": {
        "operation_id": "run_node",
        "openapi_extra": {
            **KEYED,
            **json_body(
                "The node's request: its own fields and the common ones (GET /v1/nodes lists each input schema).",
                {"oneOf": [ref(node.request_model.__name__) for node in NODES.values()]},
            ),
            "parameters": [IDEMPOTENCY_KEY],
        },
        "responses": {
            200: answer("The run succeeded.", "NodeAnswer", RUN_HEADERS, links=GET_RUN),
            202: answer(
                "Queued (the request has callback_url); the result is POSTed there.",
                "Queued",
                {"Location": string_header("The run's status URL.")},
                links=GET_RUN,
            ),
            **problems(400, 401, 404, 408, 409, 413, 422, 429, 502, 503, 504),
        },
    },
    "run_batch": {
        "operation_id": "run_batch",
        "openapi_extra": {
            **KEYED,
            **json_body(
                "Items, each a request to the node merged over defaults and validated on its own; at most "
                "TIERWISE_MAX_BATCH_ITEMS of them.",
                ref(BatchRequest.__name__),
            ),
            "parameters": [IDEMPOTENCY_KEY],
        },
        "responses": {
            200: answer(
                "Every item's answer, in order; one item's failure never fails the batch.",
                "BatchAnswer",
                {"X-Tierwise-Cost-Usd": RUN_HEADERS["X-Tierwise-Cost-Usd"]},
            ),
            **problems(400, 401, 404, 408, 409, 413, 422, 429, 503),
        },
    },
    "get_run": {
        "operation_id": "get_run",
        "response_model": None,
        "openapi_extra": KEYED,
        "responses": {200: answer("The run's state.", "RunStatus"), **problems(401, 404, 503)},
    },
    "stats": {
        "operation_id": "stats",
        "openapi_extra": KEYED,
        "responses": {
            200: {"description": "Per node and tier, for the calling key's runs (docs/protocol.md)."},
            **problems(401, 422, 503),
        },
    },
    "steps": {
        "operation_id": "steps",
        "openapi_extra": KEYED,
        "responses": {
            200: {
                "description": "Per pipeline step, for the calling key's runs of the last 30 days (docs/protocol.md)."
            },
            **problems(401, 422, 503),
        },
    },
    "metrics": {
        "operation_id": "metrics",
        "response_class": PlainTextResponse,
        "responses": {200: {"description": "Prometheus text."}, **problems(503)},
    },
    "openai_models": {
        "operation_id": "openai_models",
        "response_model": None,
        "openapi_extra": KEYED,
        "responses": {
            200: {"description": "OpenAI's model list: tierwise/auto, /nano, /mini, /full."},
            **openai_errors(401),
        },
    },
    "chat_completions": {
        "operation_id": "chat_completions",
        "response_model": None,
        "openapi_extra": {
            **KEYED,
            **json_body(
                "OpenAI's Chat Completions request; documented here is the part every call needs. Tools, "
                "response_format, streaming and the sampling parameters are OpenAI's (docs/openai-compatible.md "
                "says what is taken, ignored and refused).",
                {
                    "type": "object",
                    "properties": {
                        "model": {"enum": list(MODEL_IDS)},
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "role": {"enum": ["system", "developer", "user", "assistant"]},
                                    "content": {"type": "string"},
                                },
                                "required": ["role", "content"],
                                "additionalProperties": False,
                            },
                        },
                    },
                    "required": ["model", "messages"],
                    "additionalProperties": False,
                },
            ),
        },
        "responses": {
            200: {
                "description": "OpenAI's chat.completion object, or with stream true a text/event-stream of "
                "chat.completion.chunk events ending with data: [DONE]; X-Tierwise-* headers name the run.",
                "headers": RUN_HEADERS,
            },
            **openai_errors(400, 401, 404, 408, 409, 413, 429, 502, 503, 504),
        },
    },
    "responses": {
        "operation_id": "responses",
        "response_model": None,
        "openapi_extra": {
            **KEYED,
            **json_body(
                "OpenAI's Responses request; documented here is the part every call needs (the rest: "
                "docs/openai-compatible.md).",
                {
                    "type": "object",
                    "properties": {"model": {"enum": list(MODEL_IDS)}, "input": {"type": "string"}},
                    "required": ["model", "input"],
                    "additionalProperties": False,
                },
            ),
        },
        "responses": {
            200: {
                "description": "OpenAI's response object, or with stream true a text/event-stream of its events "
                "ending with response.completed; X-Tierwise-* headers name the run.",
                "headers": RUN_HEADERS,
            },
            **openai_errors(400, 401, 404, 408, 409, 413, 429, 502, 503, 504),
        },
    },
    "dashboard": {
        "operation_id": "dashboard",
        "response_class": HTMLResponse,
        "responses": {200: {"description": "The page."}},
    },
}
"""Keyword arguments for each route's decorator in ``nodes.api``: documentation only, no behaviour."""


@cache
def request_components() -> dict[str, Any]:
    """The JSON Schemas of the node request models and the batch body, as OpenAPI components."""
    models = [node.request_model for node in NODES.values()] + [BatchRequest]
    _, schemas = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMAS + "{model}")
    components: dict[str, Any] = schemas["$defs"]
    return components


FRAMEWORK_VALIDATION = {"HTTPValidationError", "ValidationError"}
"""FastAPI's own 422 shape, added to routes with parameters; this service answers problems instead."""


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's document with the components the routes refer to and the two key schemes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()
        for operations in document["paths"].values():
            for operation in operations.values():
                invalid = operation["responses"].get("422", {})
                if invalid.get("content", {}).get(JSON, {}).get("schema") == ref("HTTPValidationError"):
                    del operation["responses"]["422"]  # a parameter that cannot be invalid (run_id is any text)
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name in FRAMEWORK_VALIDATION:
            schemas.pop(name, None)
        schemas.update({**request_components(), **COMPONENTS})
        components["securitySchemes"] = SECURITY_SCHEMES
        return document

    app.openapi = openapi  # type: ignore[method-assign]
