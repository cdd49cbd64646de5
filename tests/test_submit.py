"""Submissions: batches answered in order with per-item problems, run concurrently, queued items with callbacks."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from support import Receiver, Sandbox, Service

from nodes.settings import Settings


def test_results_in_order_with_per_item_problems(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*"}])
    batch = {
        "defaults": {"labels": ["billing", "bug", "feature_request"], "metadata": {"source": "sheet"}},
        "items": [
            {"input": "billing question", "metadata": {"row": 1}},
            {"input": "a bug in the app", "max_tier": "nano"},
            {"input": "x", "labels": []},
            "not an object",
            {"input": "please add a feature request", "labels": ["feature_request", "other"]},
        ],
    }
    response = service.http.post("/v1/nodes/classify/batch", json=batch)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 5
    assert results[0]["output"]["label"] == "billing" and results[0]["metadata"] == {"row": 1}
    assert [(a["tier"], a["outcome"]) for a in results[0]["attempts"]] == [("nano", "refusal"), ("mini", "ok")]
    assert results[1]["type"] == "/problems/run-failed" and results[1]["status"] == 502
    assert results[2]["type"] == "/problems/invalid-request" and results[2]["errors"][0]["loc"] == ["labels"]
    assert results[3]["status"] == 422 and "must be a JSON object" in results[3]["detail"]
    assert results[4]["output"]["label"] == "feature_request" and results[4]["metadata"] == {"source": "sheet"}
    summary = response.json()["summary"]
    assert (summary["items"], summary["succeeded"], summary["failed"]) == (5, 2, 3)
    costs = [Decimal(str(r["usage"]["cost_usd"])) for r in results if "usage" in r]
    assert Decimal(response.headers["x-tierwise-cost-usd"]) == sum(costs, Decimal(0))
    assert summary["cost_usd"] == float(sum(costs, Decimal(0)))


def test_batch_items_run_concurrently(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=400)
    items = [{"input": f"item {n}"} for n in range(20)]
    response = service.http.post("/v1/nodes/classify/batch", json={"items": items, "defaults": {"labels": ["a"]}})
    assert response.status_code == 200
    assert response.json()["summary"]["succeeded"] == 20
    # 20 items at 400 ms each would take 8 s one after another; concurrency is checked by the overlap of calls
    latencies = [r["latency_ms"] for r in response.json()["results"]]
    assert min(latencies) >= 400
    assert response.elapsed.total_seconds() < sum(latencies) / 1000 / 4


def test_batch_shape_errors(
    service: Service, start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    empty = service.http.post("/v1/nodes/classify/batch", json={"items": []})
    assert empty.status_code == 422 and empty.json()["errors"][0]["loc"] == ["items"]
    unknown = service.http.post("/v1/nodes/classify/batch", json={"items": [{}], "default": {}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["default"]
    assert service.http.post("/v1/nodes/nothing/batch", json={"items": [{}]}).status_code == 404
    small = start_service(make_settings(max_batch_items=3))
    over = small.http.post("/v1/nodes/classify/batch", json={"items": [{}] * 4})
    assert over.status_code == 422 and "over the limit of 3" in over.json()["detail"]


def test_batch_items_with_callbacks_are_queued(async_service: Service, receiver: Receiver) -> None:
    items = [{"input": "one"}, {"input": "two", "callback_url": receiver.url}]
    response = async_service.http.post("/v1/nodes/classify/batch", json={"items": items, "defaults": {"labels": ["a"]}})
    first, second = response.json()["results"]
    assert first["output"] == {"label": "a", "confidence": 0.9}
    assert second["status"] == "queued"
    [delivery] = receiver.wait_for(1)
    assert delivery["headers"]["x-tierwise-run-id"] == second["run_id"]
