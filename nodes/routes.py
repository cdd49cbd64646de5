"""HTTP routes: parse, hand to the service, serialise. No business logic lives here."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from nodes.dashboard import DASHBOARD_HTML
from nodes.errors import PayloadTooLarge, Unauthorized
from nodes.intake import Intake
from nodes.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from nodes.problems import PROBLEM_JSON
from nodes.runtime import Runtime
from nodes.service import NodeResponse, Service
from nodes.stats import parse_period

router = APIRouter()


def get_service(request: Request) -> Service:
    """The service instance of this app."""
    service: Service = request.app.state.service
    return service


def get_runtime(request: Request) -> Runtime:
    """The runtime of this app."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_intake(request: Request) -> Intake:
    """The intake of this app."""
    intake: Intake = request.app.state.intake
    return intake


def require_key(request: Request, service: Annotated[Service, Depends(get_service)]) -> str:
    """Authenticate the caller by ``Authorization: Bearer`` or ``X-Api-Key``; returns the key's name."""
    header = request.headers.get("authorization")
    key = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        key = value.strip()
    else:
        key = request.headers.get("x-api-key", "").strip() or None
    if key is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'")
    name = service.keys.identify(key)
    if name is None:
        raise Unauthorized("the API key is not valid; create one with 'tierwise keys create --name NAME'")
    return name


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit} (TIERWISE_MAX_BODY_BYTES)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit (TIERWISE_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/healthz")
async def healthz(service: Annotated[Service, Depends(get_service)]) -> dict[str, Any]:
    """Liveness: no key needed."""
    return {"status": "ok", "sandbox": service.sandbox}


@router.get("/v1/nodes")
async def list_nodes(
    service: Annotated[Service, Depends(get_service)], _key: Annotated[str, Depends(require_key)]
) -> dict[str, Any]:
    """The node catalogue: names, input and output schemas, default tiers."""
    return {"nodes": service.catalogue()}


def respond(result: NodeResponse) -> JSONResponse:
    """Serialise an answer: problem+json for 4xx/5xx bodies, JSON otherwise."""
    return JSONResponse(
        result.body,
        status_code=result.status,
        headers=result.headers,
        media_type=PROBLEM_JSON if result.is_problem else None,
    )


@router.post("/v1/nodes/{node_name}")
async def run_node(
    node_name: str,
    request: Request,
    intake: Annotated[Intake, Depends(get_intake)],
    key_name: Annotated[str, Depends(require_key)],
) -> JSONResponse:
    """Run one node request, or queue it when it carries ``callback_url``."""
    received_at = time.monotonic()
    raw = await read_body(request, intake.settings.max_body_bytes)
    return respond(await intake.submit(node_name, raw, **_submission(request, key_name, received_at)))


@router.post("/v1/nodes/{node_name}/batch")
async def run_batch(
    node_name: str,
    request: Request,
    intake: Annotated[Intake, Depends(get_intake)],
    key_name: Annotated[str, Depends(require_key)],
) -> JSONResponse:
    """Run many requests to one node concurrently; answers come back in order."""
    received_at = time.monotonic()
    raw = await read_body(request, intake.settings.max_batch_body_bytes)
    return respond(await intake.submit_batch(node_name, raw, **_submission(request, key_name, received_at)))


def _submission(request: Request, key_name: str, received_at: float) -> dict[str, Any]:
    return {
        "key_name": key_name,
        "idempotency_key": request.headers.get("idempotency-key"),
        "received_at": received_at,
    }


@router.get("/v1/runs/{run_id}")
async def get_run(
    run_id: str,
    intake: Annotated[Intake, Depends(get_intake)],
    key_name: Annotated[str, Depends(require_key)],
) -> dict[str, Any]:
    """A run's state and, once it has finished, its answer."""
    return intake.run_status(run_id, key_name=key_name)


@router.get("/v1/stats")
async def stats(
    request: Request,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    key_name: Annotated[str, Depends(require_key)],
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Per node and tier: runs, tier mix, escalations, validity, latency, cost, savings and audit agreement."""
    return runtime.stats.report(key_name, parse_period(since, until))


@router.get("/metrics")
async def metrics(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Response:
    """Prometheus metrics of this process."""
    return Response(runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)


@router.get("/dashboard")
async def dashboard() -> HTMLResponse:
    """One HTML page that charts ``/v1/stats`` (it asks for an API key and keeps it in the browser)."""
    return HTMLResponse(DASHBOARD_HTML)
