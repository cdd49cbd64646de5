"""Asynchronous runs: 202 at once, the answer POSTed to the callback URL, retried until a 2xx."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from support import Receiver, Sandbox, Service

from nodes.settings import Settings
from nodes.urlguard import is_public

CLASSIFY = {"input": "Billing problem: charged twice", "labels": ["billing", "bug"], "metadata": {"row": 3}}


def wait_status(
    service: Service, run_id: str, status: str, delivery: str | None = None, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Poll the run until it has ``status`` (and, if given, its first delivery has ``delivery``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = service.http.get(f"/v1/runs/{run_id}").json()
        deliveries = body.get("callback", {}).get("deliveries") or [{}]
        if body.get("status") == status and (delivery is None or deliveries[0].get("status") == delivery):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def test_callback_gets_the_answer_once_with_a_delivery_id(async_service: Service, receiver: Receiver) -> None:
    response = async_service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": f"{receiver.url}/hook"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    run_id = accepted["run_id"]
    assert accepted == {"run_id": run_id, "status": "queued", "status_url": f"/v1/runs/{run_id}"}
    assert response.headers["location"] == f"/v1/runs/{run_id}"
    assert response.headers["x-tierwise-run-id"] == run_id

    [delivery] = receiver.wait_for(1)
    body = json.loads(delivery["body"])
    assert body["run_id"] == run_id and body["node"] == "classify"
    assert body["output"]["label"] == "billing" and body["metadata"] == {"row": 3}
    assert delivery["path"] == "/hook"
    assert delivery["headers"]["x-tierwise-run-id"] == run_id
    assert delivery["headers"]["x-tierwise-delivery-id"].startswith("dlv_")
    assert delivery["headers"]["x-tierwise-delivery-attempt"] == "1"
    assert delivery["headers"]["content-type"] == "application/json"

    status = wait_status(async_service, run_id, "succeeded", delivery="delivered")
    assert status["result"] == body
    [record] = status["callback"]["deliveries"]
    assert record["delivery_id"] == delivery["headers"]["x-tierwise-delivery-id"]
    assert (record["status"], record["attempts"]) == ("delivered", 1)
    time.sleep(0.3)
    assert len(receiver.received) == 1


def test_n8n_resume_url_is_called_verbatim(async_service: Service, receiver: Receiver) -> None:
    url = f"{receiver.url}/webhook-waiting/231?signature=a1B%2F9%2Bz%3D&extra=x%20y"
    assert async_service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": url}).status_code == 202
    [delivery] = receiver.wait_for(1)
    assert delivery["path"] == "/webhook-waiting/231?signature=a1B%2F9%2Bz%3D&extra=x%20y"


def test_failed_deliveries_are_retried_with_the_same_delivery_id(async_service: Service, receiver: Receiver) -> None:
    receiver.answers = [500, (429, {"Retry-After": "0"}), 503]
    run_id = async_service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": receiver.url}).json()[
        "run_id"
    ]
    deliveries = receiver.wait_for(4)
    assert len({d["headers"]["x-tierwise-delivery-id"] for d in deliveries}) == 1
    assert [d["headers"]["x-tierwise-delivery-attempt"] for d in deliveries] == ["1", "2", "3", "4"]
    assert len({d["body"] for d in deliveries}) == 1
    # The receiver has answered the fourth delivery; the service records it a moment later.
    status = wait_status(async_service, run_id, "succeeded", delivery="delivered")
    [record] = status["callback"]["deliveries"]
    assert (record["status"], record["attempts"]) == ("delivered", 4)


def test_failed_run_is_delivered_as_a_problem(async_service: Service, receiver: Receiver, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal"}])
    run_id = async_service.http.post(
        "/v1/nodes/classify", json={**CLASSIFY, "max_tier": "mini", "callback_url": receiver.url}
    ).json()["run_id"]
    [delivery] = receiver.wait_for(1)
    problem = json.loads(delivery["body"])
    assert problem["type"] == "/problems/run-failed" and problem["status"] == 502 and problem["run_id"] == run_id
    assert [(a["tier"], a["outcome"]) for a in problem["attempts"]] == [("nano", "refusal"), ("mini", "refusal")]
    assert wait_status(async_service, run_id, "failed")["result"] == problem


def test_delivery_gives_up_after_the_deadline(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    service = start_service(
        make_settings(callback_allow_private=True, callback_backoff_base_s=0.05, callback_deadline_s=0.5)
    )
    receiver.answers = [500] * 1000
    run_id = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": receiver.url}).json()["run_id"]
    deadline = time.monotonic() + 10
    while True:
        [record] = service.http.get(f"/v1/runs/{run_id}").json()["callback"]["deliveries"] or [{"status": "none"}]
        if record["status"] == "expired":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record["last_error"] == "the receiver answered HTTP 500"
    assert record["attempts"] == len(receiver.received) >= 2


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:9/hook", "non-public address (127.0.0.1)"),
        ("http://10.1.2.3/hook", "non-public address (10.1.2.3)"),
        ("http://192.168.0.7/hook", "non-public address (192.168.0.7)"),
        ("http://169.254.169.254/latest/meta-data", "non-public address (169.254.169.254)"),
        ("http://[::1]:8080/hook", "non-public address (::1)"),
        ("http://[::ffff:10.0.0.1]/hook", "non-public address"),
        ("http://localhost:5678/webhook", "non-public address"),
        ("ftp://files.example/hook", "must be an http:// or https:// URL"),
        ("http://user:pw@203.0.113.9/hook", "must not carry a user name or password"),
        ("not a url", "must be an http:// or https:// URL"),
        ("http://[::1/hook", "is not a valid URL (Invalid port: ':1')"),
        ("http://" + "a" * 64 + ".example/hook", "could not be resolved; check the host name"),
        ("http://a..example/hook", "could not be resolved; check the host name"),
    ],
)
def test_unsafe_callback_urls_are_refused(service: Service, sandbox: Sandbox, url: str, fragment: str) -> None:
    response = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": url})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/invalid-callback-url"
    assert problem["errors"][0]["loc"] == ["callback_url"] and fragment in problem["detail"]
    assert sandbox.requests() == []
    assert service.rows("SELECT COUNT(*) AS n FROM jobs") == [{"n": 0}]


def test_reserved_space_is_refused_and_public_space_is_not(service: Service) -> None:
    # 203.0.113.0/24 is documentation space: reserved, so it is refused like private space.
    response = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "callback_url": "http://203.0.113.9/x"})
    assert response.status_code == 422
    assert is_public("8.8.8.8") and is_public("2606:4700:4700::1111")
    assert not is_public("100.64.0.1") and not is_public("fd00::1") and not is_public("224.0.0.1")
