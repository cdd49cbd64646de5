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

from fastapi import FastAPI

from nodes import __version__
from nodes.idempotency import IdempotencyStore
from nodes.intake import Intake
from nodes.jobs import JobQueue
from nodes.keys import KeyRing
from nodes.loopback import LoopbackServer
from nodes.pipeline import Limits, Pipeline
from nodes.problems import install_problem_handlers
from nodes.provider import OpenAIProvider, Provider
from nodes.quotas import Quotas
from nodes.ratelimit import Limiters
from nodes.routes import router
from nodes.runlog import RunLog
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.service import Service
from nodes.settings import Settings, load_settings
from nodes.storage import Database
from nodes.tiers import LADDER, resolve_tiers, uses_sandbox
from nodes.worker import Workers

logger = logging.getLogger("tierwise")

SANDBOX_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! SANDBOX MODE: no API key or base URL is configured, so every tier is served by the built-in\n"
    "!! sandbox upstream at {url}. Outputs are synthetic. Set OPENAI_API_KEY (or\n"
    "!! TIERWISE_<TIER>_API_KEY / TIERWISE_<TIER>_BASE_URL) to use real models.\n" + "!" * 78
)


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
    pacing = Limiters({name: (settings.tier(name).rpm, settings.tier(name).tpm) for name in LADDER})
    pipeline = Pipeline(tiers or {}, chosen_provider, Limits.from_settings(settings), pacing=pacing)
    service = Service(settings, pipeline, RunLog(db), keys, sandbox=sandbox)
    queue = JobQueue(db)
    workers = Workers(service, queue)
    intake = Intake(
        service,
        queue,
        IdempotencyStore(db, stale_after_s=settings.run_timeout_s + 30),
        Quotas(db, default_rpm=settings.key_rpm, default_budget_usd=settings.key_daily_budget_usd),
        jobs_added=workers.jobs_added,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        sandbox_server = None
        if sandbox:
            sandbox_server = LoopbackServer(create_sandbox_app(sandbox_config))
            url = await sandbox_server.start()
            pipeline.tiers = resolve_tiers(settings, sandbox_url=f"{url}/v1")
            logger.warning(SANDBOX_BANNER.format(url=url))
        await workers.start()
        try:
            yield {}
        finally:
            await workers.stop()
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
    app.state.intake = intake
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(router)
    return app
