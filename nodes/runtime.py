"""The runtime: every long-lived part of one service process, built from the settings and run together.

``Runtime(settings)`` opens storage and wires keys, tiers, the provider, pacing, the pipeline, the
service, the job queue, the workers and the intake; a bad setting raises ``ConfigError`` here, before
anything is served. ``async with runtime.running():`` starts what has to run — the embedded sandbox
upstream when no real endpoint is configured, and the background workers — and stops them in order.
The HTTP app and the ``tierwise batch`` command both use it, so they behave the same.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nodes.audit import Auditor
from nodes.idempotency import IdempotencyStore
from nodes.intake import Intake
from nodes.jobs import JobQueue
from nodes.keys import KeyRing
from nodes.loopback import LoopbackServer
from nodes.metrics import Metrics
from nodes.pipeline import Limits, Pipeline
from nodes.provider import OpenAIProvider, Provider
from nodes.quotas import Quotas
from nodes.ratelimit import Limiters
from nodes.runlog import RunLog
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.service import Service
from nodes.settings import Settings
from nodes.stats import Stats
from nodes.storage import Database
from nodes.tiers import LADDER, resolve_tiers, uses_sandbox
from nodes.worker import Workers

logger = logging.getLogger("tierwise")

PACING_HEADROOM = 0.98
"""Calls are paced at this share of a tier's limit, so network jitter does not turn into 429s."""

SANDBOX_BANNER = (
    "\n" + "!" * 78 + "\n"
    "!! SANDBOX MODE: no API key or base URL is configured, so every tier is served by the built-in\n"
    "!! sandbox upstream at {url}. Outputs are synthetic. Set OPENAI_API_KEY (or\n"
    "!! TIERWISE_<TIER>_API_KEY / TIERWISE_<TIER>_BASE_URL) to use real models.\n" + "!" * 78
)


class Runtime:
    """The parts of one service process."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: Provider | None = None,
        sandbox_config: SandboxConfig | None = None,
    ) -> None:
        self.settings = settings
        self.sandbox = uses_sandbox(settings)
        self.sandbox_config = sandbox_config
        tiers = {} if self.sandbox else resolve_tiers(settings)
        self.db = Database(settings.db)
        self.keys = KeyRing(self.db, settings.api_keys)
        self.provider: Provider = provider or OpenAIProvider()
        self.pacing = Limiters(
            {name: (settings.tier(name).rpm, settings.tier(name).tpm) for name in LADDER}, headroom=PACING_HEADROOM
        )
        self.pipeline = Pipeline(tiers, self.provider, Limits.from_settings(settings), pacing=self.pacing)
        self.service = Service(settings, self.pipeline, RunLog(self.db), self.keys, sandbox=self.sandbox)
        self.queue = JobQueue(self.db)
        self.stats = Stats(self.db)
        self.metrics = Metrics(self.queue, self.pacing)
        self.auditor = Auditor(self.pipeline, self.db, rate=settings.audit_rate)
        self.service.observers += [self.metrics.observe, self.auditor.consider]
        self.workers = Workers(self.service, self.queue)
        self.intake = Intake(
            self.service,
            self.queue,
            IdempotencyStore(self.db, stale_after_s=settings.run_timeout_s + 30, ttl_s=settings.idempotency_ttl_s),
            Quotas(self.db, default_rpm=settings.key_rpm, default_budget_usd=settings.key_daily_budget_usd),
            jobs_added=self.workers.jobs_added,
        )

    @asynccontextmanager
    async def running(self, *, workers: bool = True) -> AsyncIterator[Runtime]:
        """Start the sandbox (when no endpoint is configured) and the workers; stop them on the way out."""
        sandbox_server = None
        if self.sandbox:
            sandbox_server = LoopbackServer(create_sandbox_app(self.sandbox_config))
            url = await sandbox_server.start()
            self.pipeline.tiers = resolve_tiers(self.settings, sandbox_url=f"{url}/v1")
            logger.warning(SANDBOX_BANNER.format(url=url))
        if workers:
            await self.workers.start()
        try:
            yield self
        finally:
            if workers:
                await self.workers.stop()
            self.auditor.cancel()
            await self.provider.aclose()
            if sandbox_server is not None:
                await sandbox_server.stop()
            self.db.close()
