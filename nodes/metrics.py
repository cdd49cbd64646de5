"""``GET /metrics``: Prometheus counters and histograms of runs, attempts, cost and latency.

Counters are fed by the service's run observer, so they cover every run this process finished since
it started (Prometheus takes care of restarts); gauges of queued jobs, pending deliveries and tier
pacing are read at scrape time. Each app has its own registry, so several apps in one process (tests)
do not mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from nodes.jobs import JobQueue
from nodes.ratelimit import Limiters
from nodes.service import RunDone

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class _LiveState(Collector):
    """Gauges read at scrape time: jobs and deliveries by state, and each tier's pacing."""

    def __init__(self, queue: JobQueue, pacing: Limiters) -> None:
        self.queue = queue
        self.pacing = pacing

    def collect(self):  # type: ignore[no-untyped-def]
        """Yield the gauges (prometheus_client's collector protocol)."""
        backlog = GaugeMetricFamily(
            "tierwise_backlog", "Asynchronous jobs and callback deliveries by state.", labels=["kind", "state"]
        )
        for name, count in sorted(self.queue.counts().items()):
            kind, _, state = name.partition("_")
            backlog.add_metric([kind, state], count)
        yield backlog
        pace = GaugeMetricFamily(
            "tierwise_tier_rpm", "Requests per minute each tier is paced at (0: unlimited).", labels=["tier"]
        )
        for tier, snapshot in self.pacing.snapshot().items():
            rpm = snapshot.get("rpm")
            pace.add_metric([tier], float(rpm) if rpm is not None else 0.0)
        yield pace


class Metrics:
    """The service's Prometheus metrics."""

    def __init__(self, queue: JobQueue, pacing: Limiters) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "tierwise_runs", "Finished runs.", ["node", "start_tier", "final_tier", "status"], registry=self.registry
        )
        self.attempts = Counter(
            "tierwise_attempts", "Model calls.", ["node", "tier", "outcome"], registry=self.registry
        )
        self.cost = Counter(
            "tierwise_cost_usd", "Money spent on model calls, USD.", ["node", "tier"], registry=self.registry
        )
        self.baseline = Counter(
            "tierwise_baseline_cost_usd", "What the same tokens would have cost on the full tier, USD.", ["node"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "tierwise_run_seconds", "Wall time of a run.", ["node"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.overhead = Histogram(
            "tierwise_overhead_seconds", "Time a run spent in the service, not on models or backoff.",
            buckets=OVERHEAD_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(_LiveState(queue, pacing))

    def observe(self, done: RunDone) -> None:
        """Count one finished run (a service observer)."""
        report = done.report
        node = report.node
        self.runs.labels(node, report.routing.tier, report.tier or "none", report.status).inc()
        for attempt in report.attempts:
            self.attempts.labels(node, attempt.tier, attempt.outcome).inc()
            self.cost.labels(node, attempt.tier).inc(float(attempt.cost_usd))
        usage = report.usage
        if usage.input_tokens or usage.output_tokens:
            self.baseline.labels(node).inc(float(done.response.body.get("usage", {}).get("baseline_cost_usd", 0.0)))
        self.latency.labels(node).observe(report.latency_ms / 1000)
        self.overhead.observe(float(done.response.body.get("overhead_ms", 0.0)) / 1000)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
