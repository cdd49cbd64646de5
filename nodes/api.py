"""HTTP routes: read the request, hand it on, serialise the answer. No business logic lives here.

Every ``/v1`` route first asks admission who is calling (401 otherwise); node and batch routes read
the body under the size limit (413) and its deadline (408) and hand it to submissions, which answer
with a ``Reply``. What the routes take and answer is documented in ``nodes.openapi``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from nodes.admission import preferred_wait_s
from nodes.catalog import catalogue
from nodes.dashboard import DASHBOARD_HTML
from nodes.errors import PayloadTooLarge, RequestTimeout
from nodes.keys import Caller
from nodes.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from nodes.openapi import ROUTES, NodeName, Since, Until
from nodes.problems import PROBLEM_JSON
from nodes.protocol import Reply
from nodes.stats import STEPS_PERIOD, parse_period, steps_report
from nodes.status import run_status

if TYPE_CHECKING:
    from nodes.app import Tierwise

router = APIRouter()


def tierwise_of(request: Request) -> Tierwise:
    """The service parts behind this app."""
    tierwise: Tierwise = request.app.state.tierwise
    return tierwise


async def caller(request: Request) -> Caller:
    """Who is calling (``Authorization: Bearer`` or ``X-Api-Key``), or a 401."""
    return await tierwise_of(request).admission.caller(request.headers)


KeyHolder = Annotated[Caller, Depends(caller)]


async def read_body(request: Request, limit: int, setting: str, *, timeout_s: float) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes.

    The whole body must arrive within ``timeout_s`` seconds (408 otherwise): a client that trickles it,
    or declares a ``Content-Length`` it never sends, would otherwise hold the request open forever.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit} ({setting})")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is over the {limit}-byte limit ({setting})")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within {timeout_s:g} s (TIERWISE_BODY_TIMEOUT_S)"
        ) from None
    return b"".join(chunks)


def respond(reply: Reply) -> JSONResponse:
    """Serialise a reply: problem+json for 4xx/5xx bodies, JSON otherwise."""
    return JSONResponse(
        reply.body,
        status_code=reply.status,
        headers=reply.headers,
        media_type=PROBLEM_JSON if reply.is_problem else None,
    )


@router.get("/healthz", **ROUTES["healthz"])
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness: no key needed."""
    return {"status": "ok", "sandbox": tierwise_of(request).sandbox}


@router.get("/readyz", **ROUTES["readyz"])
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the store takes writes and the background loops run, else 503; no key needed."""
    report = await tierwise_of(request).readiness()
    ready = report["status"] == "ready"
    return JSONResponse(report, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})


@router.get("/v1/nodes", **ROUTES["list_nodes"])
async def list_nodes(_caller: KeyHolder) -> dict[str, Any]:
    """The node catalogue: names, input and output schemas, default tiers."""
    return {"nodes": catalogue()}


@router.post("/v1/nodes/{node_name}", **ROUTES["run_node"])
async def run_node(node_name: NodeName, request: Request) -> JSONResponse:
    """Run one node request, or queue it when it carries ``callback_url``."""
    received_at = time.monotonic()
    who = await caller(request)  # called directly: the hot path skips the dependency solver
    tierwise = tierwise_of(request)
    settings = tierwise.settings
    raw = await read_body(
        request, settings.max_body_bytes, "TIERWISE_MAX_BODY_BYTES", timeout_s=settings.body_timeout_s
    )
    reply = await tierwise.submissions.node(
        node_name,
        raw,
        caller=who,
        idempotency_key=request.headers.get("idempotency-key"),
        received_at=received_at,
        wait_s=preferred_wait_s(request.headers, settings.max_wait_s),
    )
    return respond(reply)


@router.post("/v1/nodes/{node_name}/batch", **ROUTES["run_batch"])
async def run_batch(node_name: NodeName, request: Request) -> JSONResponse:
    """Run many requests to one node concurrently; answers come back in order."""
    received_at = time.monotonic()
    who = await caller(request)
    tierwise = tierwise_of(request)
    settings = tierwise.settings
    raw = await read_body(
        request, settings.max_batch_body_bytes, "TIERWISE_MAX_BATCH_BODY_BYTES", timeout_s=settings.body_timeout_s
    )
    reply = await tierwise.submissions.batch(
        node_name,
        raw,
        caller=who,
        idempotency_key=request.headers.get("idempotency-key"),
        received_at=received_at,
        wait_s=preferred_wait_s(request.headers, settings.max_wait_s),
    )
    return respond(reply)


@router.get("/v1/runs/{run_id}", **ROUTES["get_run"])
async def get_run(run_id: str, request: Request, who: KeyHolder) -> dict[str, Any]:
    """A run's state and, once it has finished, its answer."""
    tierwise = tierwise_of(request)
    return await run_status(tierwise.store, tierwise.queue, tierwise.outbox, run_id, key_id=who.key_id)


@router.get("/v1/stats", **ROUTES["stats"])
async def stats(request: Request, who: KeyHolder, since: Since = None, until: Until = None) -> dict[str, Any]:
    """Per node and tier: runs, tier mix, escalations, validity, latency, cost, savings and audit agreement."""
    return await tierwise_of(request).stats.report(who.key_id, parse_period(since, until))


@router.get("/v1/steps", **ROUTES["steps"])
async def steps(request: Request, who: KeyHolder, since: Since = None, until: Until = None) -> dict[str, Any]:
    """Per pipeline step: runs, cost, savings, the tier ``tier: auto`` starts it on and why, its audits."""
    tierwise = tierwise_of(request)
    return await steps_report(
        tierwise.store, tierwise.steps, who.key_id, parse_period(since, until, default=STEPS_PERIOD)
    )


@router.get("/metrics", **ROUTES["metrics"])
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, with the shared backlog."""
    tierwise = tierwise_of(request)
    backlog = {"jobs": await tierwise.queue.counts(), "deliveries": await tierwise.outbox.counts()}
    rendered = tierwise.metrics.render(backlog, audits_in_flight=tierwise.auditor.in_flight)
    return Response(rendered, media_type=METRICS_CONTENT_TYPE)


@router.get("/dashboard", **ROUTES["dashboard"])
async def dashboard() -> HTMLResponse:
    """One HTML page that charts ``/v1/stats`` (it asks for an API key and keeps it in the browser)."""
    return HTMLResponse(DASHBOARD_HTML)
