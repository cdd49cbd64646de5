"""The application factory: ``create_app(settings)`` builds the runtime and serves it over HTTP.

Configuration is checked while the runtime is built, before the server accepts anything, so a bad
setting stops start-up with a sentence instead of failing requests later.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from nodes import __version__
from nodes.problems import install_problem_handlers
from nodes.provider import Provider
from nodes.routes import router
from nodes.runtime import Runtime
from nodes.sandbox import SandboxConfig
from nodes.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    provider: Provider | None = None,
    sandbox_config: SandboxConfig | None = None,
) -> FastAPI:
    """Build the ASGI app. Raises ``ConfigError`` for bad settings before anything is served."""
    runtime = Runtime(settings or load_settings(), provider=provider, sandbox_config=sandbox_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with runtime.running():
            yield {}

    app = FastAPI(
        title="Tierwise",
        version=__version__,
        summary="Tier-aware LLM nodes for n8n and Make",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.service = runtime.service
    app.state.intake = runtime.intake
    app.state.settings = runtime.settings
    install_problem_handlers(app)
    app.include_router(router)
    return app
