"""GET /v1/runs/{run_id}: a run's state and result, readable only by the key that made it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from support import Service

from nodes.settings import Settings

CLASSIFY = {"input": "Billing problem", "labels": ["billing", "bug"]}


def test_sync_run_status_and_ownership(
    service: Service, start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    run_id = service.http.post("/v1/nodes/classify", json=CLASSIFY).json()["run_id"]
    status = service.http.get(f"/v1/runs/{run_id}").json()
    assert (status["status"], status["node"], status["result"]["run_id"]) == ("succeeded", "classify", run_id)
    assert "callback" not in status
    missing = service.http.get("/v1/runs/run_00000000000000000000000000")
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/not-found"
    other = httpx.get(f"{service.url}/v1/runs/{run_id}", headers={"X-Api-Key": "another-key-0002"})
    assert other.status_code == 401


def test_runs_are_private_to_their_key(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    service = start_service(make_settings(api_keys=["test-client-key-0001", "second-client-key"]))
    run_id = service.http.post("/v1/nodes/classify", json=CLASSIFY).json()["run_id"]
    other = httpx.get(f"{service.url}/v1/runs/{run_id}", headers={"X-Api-Key": "second-client-key"})
    assert other.status_code == 404


def test_a_key_removed_from_the_environment_takes_its_runs_with_it(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    first = start_service(make_settings(api_keys=["key-a-000001", "key-b-000002"]))
    made_by_a = first.anonymous.post("/v1/nodes/classify", json=CLASSIFY, headers={"X-Api-Key": "key-a-000001"})
    run_id = made_by_a.json()["run_id"]
    # Key a is rotated out: key b moves into the first position and is named env-1, as a was.
    rotated = start_service(make_settings(api_keys=["key-b-000002"]))
    as_b = {"X-Api-Key": "key-b-000002"}
    assert rotated.anonymous.get(f"/v1/runs/{run_id}", headers=as_b).status_code == 404
    assert rotated.anonymous.get("/v1/stats", headers=as_b).json()["totals"]["runs"] == 0
    assert rotated.anonymous.get(f"/v1/runs/{run_id}", headers={"X-Api-Key": "key-a-000001"}).status_code == 401
