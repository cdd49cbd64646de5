"""GET /metrics: Prometheus counters of runs, attempts and cost, and the shared backlog."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from support import Sandbox, Service

from nodes.settings import Settings

LABELS = ["billing", "bug"]


def classify(service: Service, text: str = "billing question", **extra: Any) -> dict[str, Any]:
    response = service.http.post("/v1/nodes/classify", json={"input": text, "labels": LABELS, **extra})
    assert response.status_code in (200, 502), response.text
    body: dict[str, Any] = response.json()
    return body


def test_metrics(service: Service, sandbox: Sandbox) -> None:
    classify(service)
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*", "times": 1}])
    classify(service)
    text = service.anonymous.get("/metrics").text
    assert 'tierwise_runs_total{final_tier="nano",node="classify",start_tier="nano",status="succeeded"} 1.0' in text
    assert 'tierwise_runs_total{final_tier="mini",node="classify",start_tier="nano",status="succeeded"} 1.0' in text
    assert 'tierwise_attempts_total{node="classify",outcome="refusal",tier="nano"} 1.0' in text
    assert 'tierwise_run_seconds_count{node="classify"} 2.0' in text
    assert "tierwise_backlog" in text and 'tierwise_tier_rpm{tier="nano"}' in text
    assert "_created" not in text


def test_audits_in_flight_are_counted_while_they_run(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    # Every run audited, and the sandbox slow: the audit of a run is still going when its answer is back.
    service = start_service(make_settings(audit_rate=1.0))
    sandbox.configure(latency_ms=400)
    classify(service)
    assert "tierwise_audits_in_flight 1.0" in service.anonymous.get("/metrics").text
    deadline = time.monotonic() + 10
    while "tierwise_audits_in_flight 0.0" not in service.anonymous.get("/metrics").text:
        assert time.monotonic() < deadline, "the audit did not end"
        time.sleep(0.05)
