"""``GET /metrics``: Prometheus counters and histograms of runs, attempts, cost and latency.

Counters are fed by the runner's observer, so they cover every run this process finished since it
started (Prometheus takes care of restarts); gauges of jobs and deliveries by state (read from the
store, so every instance reports the shared backlog) and of tier pacing are set at scrape time.
Each app has its own registry, so several apps in one process (tests) do not mix.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from nodes.pacing import Limiters
from nodes.runner import Finished

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)


class Metrics:
    """The service's Prometheus metrics."""

    def __init__(self, pacing: Limiters) -> None:
        self.pacing = pacing
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
        self.backlog = Gauge(
            "tierwise_backlog", "Asynchronous jobs and callback deliveries by state.", ["kind", "state"],
            registry=self.registry,
        )  # fmt: skip
        self.audits_in_flight = Gauge(
            "tierwise_audits_in_flight", "Routing audits this process is running now.", registry=self.registry
        )
        self.tier_rpm = Gauge(
            "tierwise_tier_rpm", "Requests per minute each tier is paced at (0: unlimited).", ["tier"],
            registry=self.registry,
        )  # fmt: skip

    def observe(self, finished: Finished) -> None:
        """Count one finished run (a runner observer)."""
        record = finished.record
        node = record.node
        self.runs.labels(node, record.routing.tier, record.tier or "none", record.status).inc()
        for attempt in record.attempts:
            self.attempts.labels(node, attempt.tier, attempt.outcome).inc()
            self.cost.labels(node, attempt.tier).inc(float(attempt.cost_usd))
        if record.baseline_cost_usd:
            self.baseline.labels(node).inc(float(record.baseline_cost_usd))
        self.latency.labels(node).observe(record.latency_ms / 1000)
        self.overhead.observe(record.overhead_ms / 1000)

    def render(self, backlog: dict[str, dict[str, int]], *, audits_in_flight: int = 0) -> bytes:
        """The exposition text, with the backlog (``{"jobs": {state: n}, "deliveries": {...}}``) as read now."""
        self.audits_in_flight.set(audits_in_flight)
        self.backlog.clear()
        for kind, states in backlog.items():
            for state, count in states.items():
                self.backlog.labels(kind, state).set(count)
        for tier, snapshot in self.pacing.snapshot().items():
            rpm = snapshot.get("rpm")
            self.tier_rpm.labels(tier).set(float(rpm) if rpm is not None else 0.0)
        return generate_latest(self.registry)
