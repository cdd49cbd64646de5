"""Processing lanes: lane prices, which lane a reply was processed on, and flex end to end over the sandbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from support import Sandbox, Service

from nodes.cost import Price
from nodes.lanes import lane_answered, lane_price
from nodes.settings import FullTier, Settings

TICKET = "I was charged twice for my subscription this month, please refund one of the payments."
CLASSIFY = {"input": TICKET, "labels": ["billing", "bug"]}
NANO_STANDARD = (Decimal("0.20"), Decimal("1.25"))


def test_a_lane_price_is_a_share_of_every_standard_price() -> None:
    standard = Price(Decimal("2.50"), Decimal("0.25"), Decimal("15.00"))
    assert lane_price(standard, Decimal("0.5")) == Price(Decimal("1.25"), Decimal("0.125"), Decimal("7.5"))


@pytest.mark.parametrize(
    ("requested", "service_tier", "answered"),
    [
        ("flex", "flex", "flex"),
        ("flex", None, "flex"),  # an endpoint that does not say is taken at its word
        ("flex", "default", "standard"),  # OpenAI processed (and bills) it on standard
        ("flex", "auto", "standard"),
        ("standard", "default", "standard"),
        ("standard", None, "standard"),
    ],
)
def test_the_lane_answered_is_the_one_asked_unless_the_reply_says_otherwise(
    requested: Any, service_tier: str | None, answered: str
) -> None:
    assert lane_answered(requested, service_tier) == answered


def nano_cost(attempt: dict[str, Any], share: Decimal = Decimal(1)) -> Decimal:
    price_in, price_out = NANO_STANDARD
    tokens = Decimal(attempt["input_tokens"]) * price_in + Decimal(attempt["output_tokens"]) * price_out
    return tokens * share / 10**6


def stored_attempts(service: Service, run_id: str) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(service.settings.db)
    try:
        rows = conn.execute(
            "SELECT processing, outcome, cost_usd FROM attempts WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    finally:
        conn.close()
    return [(row[0], row[1], row[2]) for row in rows]


def test_a_flex_run_is_sent_as_flex_priced_at_half_and_stored_with_its_lane(service: Service, sandbox: Sandbox) -> None:
    response = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "flex"})
    assert response.status_code == 200, response.text
    body = response.json()
    (attempt,) = body["attempts"]
    assert (attempt["processing"], attempt["outcome"]) == ("flex", "ok")
    assert Decimal(str(attempt["cost_usd"])) == nano_cost(attempt, Decimal("0.5"))
    assert Decimal(response.headers["x-tierwise-cost-usd"]) == nano_cost(attempt, Decimal("0.5"))
    (sent,) = sandbox.requests()
    assert sent["body"]["service_tier"] == "flex"
    assert stored_attempts(service, body["run_id"]) == [
        ("flex", "ok", str(nano_cost(attempt, Decimal("0.5")).normalize()))
    ]


def test_no_flex_capacity_is_an_unbilled_attempt_and_the_same_call_on_standard(
    service: Service, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "resource_unavailable", "times": 1}])
    response = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "flex"})
    assert response.status_code == 200, response.text
    body = response.json()
    unavailable, answered = body["attempts"]
    assert (unavailable["processing"], unavailable["outcome"], unavailable["cost_usd"]) == ("flex", "unavailable", 0)
    assert unavailable["error"].startswith("HTTP 429 resource_unavailable: Error code: 429 - Resource unavailable")
    assert (answered["processing"], answered["outcome"], answered["tier"]) == ("standard", "ok", "nano")
    assert Decimal(str(body["usage"]["cost_usd"])) == nano_cost(answered)
    assert [request["body"].get("service_tier") for request in sandbox.requests()] == ["flex", None]
    assert body["escalated"] is False


def test_standard_is_the_default_lane_and_sends_no_service_tier(service: Service, sandbox: Sandbox) -> None:
    response = service.http.post("/v1/nodes/classify", json=CLASSIFY)
    (attempt,) = response.json()["attempts"]
    assert attempt["processing"] == "standard" and Decimal(str(attempt["cost_usd"])) == nano_cost(attempt)
    (sent,) = sandbox.requests()
    assert "service_tier" not in sent["body"]
    assert sent["body"]["prompt_cache_key"].startswith("tw-") and len(sent["body"]["prompt_cache_key"]) == 35


def test_calls_of_one_step_share_a_prompt_cache_key_and_other_steps_do_not(service: Service, sandbox: Sandbox) -> None:
    service.http.post("/v1/nodes/classify", json=CLASSIFY)
    service.http.post("/v1/nodes/classify", json={**CLASSIFY, "input": "The app crashes on start."})
    service.http.post("/v1/nodes/classify", json={**CLASSIFY, "step": "support/intent"})
    keys = [request["body"]["prompt_cache_key"] for request in sandbox.requests()]
    assert keys[0] == keys[1] != keys[2]


def test_the_service_default_lane_applies_when_a_request_says_none(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(processing="flex"))
    (attempt,) = service.http.post("/v1/nodes/classify", json=CLASSIFY).json()["attempts"]
    assert attempt["processing"] == "flex"
    (attempt,) = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "standard"}).json()["attempts"]
    assert attempt["processing"] == "standard"
    assert [request["body"].get("service_tier") for request in sandbox.requests()] == ["flex", None]


def test_a_lane_a_tier_the_run_may_use_lacks_is_refused_before_anything_is_sent(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    full = FullTier(base_url=sandbox.base_url, api_key="upstream-test-key", lanes=["standard"])
    service = start_service(make_settings(full=full))
    refused = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "flex"})
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "processing: the full tier (gpt-5.4) has no flex lane, and this run may use it; send processing standard, "
        "keep max_tier below full, or set TIERWISE_FULL_LANES if its endpoint offers flex"
    )
    assert refused.json()["errors"] == [{"loc": ["processing"], "msg": "the full tier has no flex lane"}]
    batch = service.http.post(
        "/v1/nodes/classify/batch", json={"items": [{"input": TICKET}], "defaults": {**CLASSIFY, "processing": "flex"}}
    )
    assert batch.json()["results"][0]["status"] == 422
    assert sandbox.requests() == []
    capped = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "flex", "max_tier": "mini"})
    assert capped.status_code == 200 and capped.json()["attempts"][0]["processing"] == "flex"


def test_an_unknown_lane_is_a_422_naming_the_lanes(service: Service, sandbox: Sandbox) -> None:
    refused = service.http.post("/v1/nodes/classify", json={**CLASSIFY, "processing": "cheap"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"loc": ["processing"], "msg": "Input should be 'standard', 'flex' or 'batch'"}]
    assert sandbox.requests() == []
