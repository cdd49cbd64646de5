"""The application: every long-lived part of one service process, and the ASGI app that serves them.

``Tierwise.open(settings)`` opens the store (migrating it), and wires admission (keys, quotas,
idempotency), the runner (tier caller, ladder, starting tier), submissions, the job workers, the
outbox deliverer, stats, metrics and the routing audit. ``async with tierwise.running():`` starts
what has to run — the embedded sandbox upstream when no real endpoint is configured (its control
endpoints locked with a random token), the workers and the deliverer — and stops them in order.
``create_app(settings)`` checks the configuration at once (a bad setting raises ``ConfigError``
before anything is served) and serves a ``Tierwise`` over HTTP; the ``tierwise batch`` command uses
a ``Tierwise`` directly, so both behave the same.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from nodes import __version__
from nodes.admission import Admission
from nodes.api import router
from nodes.attempts import Limits, TierCaller
from nodes.audit import Auditor, AuditRates
from nodes.batchlane import BatchEndpoint, Batcher, BatchLane
from nodes.compat.routes import router as openai_router
from nodes.compat.surface import OpenAISurface
from nodes.idempotency import IdempotencyStore
from nodes.jobs import JobQueue, JobWorkers
from nodes.keys import KeyRing
from nodes.ladder import Ladder
from nodes.loopback import LoopbackServer
from nodes.metrics import Metrics
from nodes.openapi import install_openapi
from nodes.outbox import Deliverer, Outbox
from nodes.pacing import Limiters
from nodes.problems import install_problem_handlers
from nodes.provider import OpenAIProvider, Provider
from nodes.quotas import Quotas
from nodes.runner import Runner
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.settings import Settings, load_settings
from nodes.stats import Stats
from nodes.steps import StepBook, StepPolicy
from nodes.store import Store, StoreError, check_location, open_store
from nodes.submit import Submissions
from nodes.tiers import LADDER, resolve_tiers, uses_sandbox

logger = logging.getLogger("tierwise")

READINESS_TIMEOUT_S = 2.0
PACING_HEADROOM = 0.98
"""Calls are paced at this share of a tier's limit, so network jitter does not turn into 429s."""

SANDBOX_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! SANDBOX MODE: no API key or base URL is configured, so every tier is served by the built-in\n"
    "!! sandbox upstream at {url}. Outputs are synthetic. Set OPENAI_API_KEY (or\n"
    "!! TIERWISE_<TIER>_API_KEY / TIERWISE_<TIER>_BASE_URL) to use real models.\n" + "!" * 78
)


def check_settings(settings: Settings) -> None:
    """Refuse, with a ``ConfigError`` that says what to set, settings that could not serve a request."""
    if not uses_sandbox(settings):
        resolve_tiers(settings)
    check_location(settings)


class Tierwise:
    """The parts of one service process, wired together over one store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        provider: Provider | None = None,
        sandbox_config: SandboxConfig | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sandbox = uses_sandbox(settings)
        self.sandbox_config = sandbox_config
        self.provider: Provider = provider or OpenAIProvider()
        self.keys = KeyRing(store, settings.api_keys)
        self.admission = Admission(
            self.keys,
            Quotas(store, default_rpm=settings.key_rpm, default_budget_usd=settings.key_daily_budget_usd),
            IdempotencyStore(store, ttl_s=settings.idempotency_ttl_s),
        )
        self.pacing = Limiters(
            {name: (settings.tier(name).rpm, settings.tier(name).tpm) for name in LADDER}, headroom=PACING_HEADROOM
        )
        self.batch_lane = BatchLane(store, poll_s=settings.batch_poll_s)
        endpoint = self.provider if isinstance(self.provider, BatchEndpoint) else None  # the scripted one is not
        caller = TierCaller(
            self.provider,
            Limits.from_settings(settings),
            pacing=self.pacing,
            batch_lane=self.batch_lane if endpoint is not None else None,
        )
        ladder = Ladder({} if self.sandbox else resolve_tiers(settings))
        self.steps = StepBook(store, StepPolicy(settings.step_agreement, settings.step_min_audits))
        self.runner = Runner(caller, ladder, sandbox=self.sandbox, steps=self.steps, processing=settings.processing)
        self.queue = JobQueue(store, lease_s=settings.job_lease_s)
        self.outbox = Outbox(store, deadline_s=settings.callback_deadline_s)
        self.submissions = Submissions(settings, store, self.admission, self.runner, self.queue)
        self.openai = OpenAISurface(
            self.admission,
            self.submissions,
            timeout_s=min(settings.openai_run_timeout_s, settings.run_timeout_s),
            max_wait_s=settings.max_wait_s,
        )
        self.stats = Stats(store)
        self.metrics = Metrics(self.pacing)
        rates = AuditRates(
            fixed=settings.audit_rate,
            learning=settings.audit_learning_rate,
            settled=settings.audit_settled_rate,
            spend_share=settings.audit_spend_share,
        )
        self.auditor = Auditor(self.runner, store, rates=rates, steps=self.steps)
        self.runner.observers += [self.metrics.observe, self.auditor.consider]
        self.workers = JobWorkers(settings, store, self.queue, self.runner, self.outbox)
        self.deliverer = Deliverer(settings, self.outbox)
        self.batcher = (
            Batcher(
                store,
                self.batch_lane,
                endpoint,
                ladder.tiers,
                collect_s=settings.batch_collect_s,
                poll_s=settings.batch_poll_s,
            )
            if endpoint is not None
            else None
        )

    @classmethod
    async def open(
        cls, settings: Settings, *, provider: Provider | None = None, sandbox_config: SandboxConfig | None = None
    ) -> Tierwise:
        """Open the store the settings name (migrating it) and build every part on it."""
        check_settings(settings)
        store = await open_store(settings)
        return cls(settings, store, provider=provider, sandbox_config=sandbox_config)

    async def readiness(self) -> dict[str, Any]:
        """Whether this process can take work now: the store accepts a write transaction, the loops run."""
        storage: dict[str, Any] = {"ok": True, "engine": self.store.engine}
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_S), self.store.transaction() as tx:
                await tx.fetchone("SELECT 1 AS one")
        except (StoreError, TimeoutError) as exc:
            storage = {"ok": False, "engine": self.store.engine, "detail": str(exc) or "no answer in time"}
        jobs, deliveries = self.workers.alive, self.deliverer.alive
        ready = storage["ok"] and jobs and deliveries
        return {
            "status": "ready" if ready else "not ready",
            "storage": storage,
            "jobs": {"running": jobs},
            "deliveries": {"running": deliveries},
        }

    @asynccontextmanager
    async def running(self, *, background: bool = True) -> AsyncIterator[Tierwise]:
        """Start the sandbox (when no endpoint is configured), the workers and the deliverer; stop them after.

        With ``background=False`` no queued job is run and no callback delivered (``tierwise batch``).
        """
        sandbox_server = None
        try:
            if self.sandbox:
                # A token no one is told: the control endpoints would let any local process choose the outputs.
                control_token = secrets.token_urlsafe(32)
                sandbox_server = LoopbackServer(create_sandbox_app(self.sandbox_config, control_token=control_token))
                url = await sandbox_server.start()
                self.runner.ladder = Ladder(resolve_tiers(self.settings, sandbox_url=f"{url}/v1"))
                if self.batcher is not None:
                    self.batcher.tiers = self.runner.ladder.tiers
                logger.warning(SANDBOX_BANNER.format(url=url))
            if not self.store.shared:  # one process owns a SQLite file: whatever is left running died with the last
                await self.admission.idempotency.recover()
            if background:
                await self.workers.start()
                await self.deliverer.start()
                if self.batcher is not None:
                    await self.batcher.start()
            yield self
        finally:
            if background:
                await self.workers.stop()
                await self.deliverer.stop()
                if self.batcher is not None:
                    await self.batcher.stop()
            self.auditor.cancel()
            await self.provider.aclose()
            if sandbox_server is not None:
                await sandbox_server.stop()
            await self.store.close()


def create_app(
    settings: Settings | None = None,
    *,
    provider: Provider | None = None,
    sandbox_config: SandboxConfig | None = None,
) -> FastAPI:
    """Build the ASGI app. Raises ``ConfigError`` for bad settings before anything is served."""
    settings = settings or load_settings()
    check_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        tierwise = await Tierwise.open(settings, provider=provider, sandbox_config=sandbox_config)
        app.state.tierwise = tierwise
        async with tierwise.running():
            yield {}

    app = FastAPI(
        title="Tierwise",
        version=__version__,
        summary="Tier-aware LLM nodes for n8n and Make",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(router)
    app.include_router(openai_router)
    install_openapi(app)
    return app
