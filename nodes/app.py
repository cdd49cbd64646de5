"""The application factory: ``create_app(settings)`` wires storage, tiers, provider, pipeline and routes.

Configuration is checked here, before the server accepts anything, so a bad setting stops start-up
with a sentence instead of failing requests later. When no real endpoint is configured the embedded
sandbox upstream is started on a loopback port for the app's lifetime, and the service says so.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nodes import __version__
from nodes.errors import FieldIssue, InvalidRequest, MethodNotAllowed, NotFound, ProblemError
from nodes.keys import KeyRing
from nodes.loopback import LoopbackServer
from nodes.pipeline import Limits, Pipeline
from nodes.protocol import summarise
from nodes.provider import OpenAIProvider, Provider
from nodes.routes import router
from nodes.runlog import RunLog
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.service import Service
from nodes.settings import Settings, load_settings
from nodes.storage import Database
from nodes.tiers import resolve_tiers, uses_sandbox

logger = logging.getLogger("tierwise")

PROBLEM_JSON = "application/problem+json"
SANDBOX_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! SANDBOX MODE: no API key or base URL is configured, so every tier is served by the built-in\n"
    "!! sandbox upstream at {url}. Outputs are synthetic. Set OPENAI_API_KEY (or\n"
    "!! TIERWISE_<TIER>_API_KEY / TIERWISE_<TIER>_BASE_URL) to use real models.\n" + "!" * 78
)


def problem_response(exc: ProblemError) -> JSONResponse:
    """Render a problem as an RFC 9457 response."""
    return JSONResponse(
        exc.to_problem(), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error — ours, the framework's, and the unexpected — to problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return problem_response(
                MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
            )
        if exc.status_code == 404:
            return problem_response(NotFound(f"there is nothing at {request.url.path}"))
        generic = ProblemError(str(exc.detail))
        generic.status = exc.status_code  # type: ignore[misc]
        return problem_response(generic)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        issues = [FieldIssue(tuple(error["loc"]), str(error["msg"])) for error in exc.errors()]
        return problem_response(InvalidRequest(summarise(issues), errors=issues))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {
            "type": "/problems/internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "the service hit an unexpected error; it has been logged",
            "errors": [],
            "run_id": None,
        }
        return JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)


def create_app(
    settings: Settings | None = None,
    *,
    provider: Provider | None = None,
    sandbox_config: SandboxConfig | None = None,
) -> FastAPI:
    """Build the ASGI app. Raises ``ConfigError`` for bad settings before anything is served."""
    settings = settings or load_settings()
    sandbox = uses_sandbox(settings)
    tiers = None if sandbox else resolve_tiers(settings)
    db = Database(settings.db)
    keys = KeyRing(db, settings.api_keys)
    chosen_provider: Provider = provider or OpenAIProvider()
    pipeline = Pipeline(tiers or {}, chosen_provider, Limits.from_settings(settings))
    service = Service(settings, pipeline, RunLog(db), keys, sandbox=sandbox)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        sandbox_server = None
        if sandbox:
            sandbox_server = LoopbackServer(create_sandbox_app(sandbox_config))
            url = await sandbox_server.start()
            pipeline.tiers = resolve_tiers(settings, sandbox_url=f"{url}/v1")
            logger.warning(SANDBOX_BANNER.format(url=url))
        try:
            yield {}
        finally:
            await chosen_provider.aclose()
            if sandbox_server is not None:
                await sandbox_server.stop()
            db.close()

    app = FastAPI(
        title="Tierwise",
        version=__version__,
        summary="Tier-aware LLM nodes for n8n and Make",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(router)
    return app
