"""Stats, routing audit and metrics: exact arithmetic over runs made through the real service."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from support import Sandbox, Service

from nodes.errors import InvalidRequest
from nodes.stats import parse_period, percentile, recommendation

LABELS = ["billing", "bug"]


def classify(service: Service, text: str = "billing question", **extra: Any) -> dict[str, Any]:
    response = service.http.post("/v1/nodes/classify", json={"input": text, "labels": LABELS, **extra})
    assert response.status_code in (200, 502), response.text
    body: dict[str, Any] = response.json()
    return body


def test_stats_per_node_and_tier(service: Service, sandbox: Sandbox) -> None:
    plain = [classify(service) for _ in range(3)]
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*", "times": 1}])
    escalated = classify(service)
    sandbox.configure(faults=[{"kind": "refusal"}])
    failed = classify(service, max_tier="nano")
    sandbox.configure()
    judged = service.http.post("/v1/nodes/judge", json={"candidate": "ok", "criteria": ["polite"]}).json()

    report = service.http.get("/v1/stats", params={"since": "1h"}).json()
    rows = {(row["node"], row["tier"]): row for row in report["rows"]}
    assert sorted(rows) == [("classify", "mini"), ("classify", "nano"), ("judge", "full")]
    nano = rows[("classify", "nano")]
    assert (nano["runs"], nano["succeeded"], nano["escalated"]) == (5, 4, 1)
    assert nano["escalation_rate"] == 0.2
    assert nano["escalation_reasons"] == {"refusal": 1}
    assert nano["tier_mix"] == {"nano": 3, "mini": 1}
    assert nano["outcomes"] == {"ok": 3, "refusal": 2} and nano["calls"] == 5
    assert nano["validity_rate"] == 0.6
    runs = [*plain, escalated, failed]
    assert Decimal(nano["cost_usd"]) == sum((Decimal(str(r["usage"]["cost_usd"])) for r in runs), Decimal(0))
    assert Decimal(nano["baseline_cost_usd"]) == sum(
        (Decimal(str(r["usage"]["baseline_cost_usd"])) for r in runs), Decimal(0)
    )
    assert nano["latency_ms"]["p50"] == percentile([r["latency_ms"] for r in runs], 50)
    mini = rows[("classify", "mini")]
    assert (mini["runs"], mini["calls"], mini["outcomes"], mini["validity_rate"]) == (0, 1, {"ok": 1}, 1.0)
    full = rows[("judge", "full")]
    assert full["runs"] == 1 and full["tier_mix"] == {"full": 1}
    assert Decimal(full["savings_usd"]) == 0
    totals = report["totals"]
    assert (totals["runs"], totals["succeeded"], totals["failed"]) == (6, 5, 1)
    everything = [*runs, judged]
    cost = sum((Decimal(str(r["usage"]["cost_usd"])) for r in everything), Decimal(0))
    baseline = sum((Decimal(str(r["usage"]["baseline_cost_usd"])) for r in everything), Decimal(0))
    assert Decimal(totals["cost_usd"]) == cost and Decimal(totals["baseline_cost_usd"]) == baseline
    assert Decimal(totals["savings_usd"]) == baseline - cost
    assert totals["savings_share"] == round(float((baseline - cost) / baseline), 4)
    by_tier = {tier: Decimal(amount) for tier, amount in totals["cost_by_tier"].items()}
    assert list(by_tier) == ["nano", "mini", "full"] and sum(by_tier.values()) == cost
    assert by_tier["mini"] == sum(
        (Decimal(str(a["cost_usd"])) for a in escalated["attempts"] if a["tier"] == "mini"), Decimal(0)
    )
    assert by_tier["full"] == Decimal(str(judged["usage"]["cost_usd"])) > 0


def test_spend_by_tier_counts_routing_checks(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "content", "model": "*nano*", "times": 1,
                               "content": '{"label": "MODERATE", "confidence": 0.8}'}])  # fmt: skip
    body = classify(service, "word " * 500, tier="auto", instructions="Use bug if it is a defect.")
    assert [(a["tier"], a.get("purpose")) for a in body["attempts"]] == [("nano", "routing"), ("mini", None)]
    routing, answer = body["attempts"]
    totals = service.http.get("/v1/stats", params={"since": "1h"}).json()["totals"]
    assert totals["cost_by_tier"] == {
        "nano": totals["cost_by_tier"]["nano"],
        "mini": totals["cost_by_tier"]["mini"],
        "full": "0",
    }
    assert Decimal(totals["cost_by_tier"]["nano"]) == Decimal(str(routing["cost_usd"])) > 0
    assert Decimal(totals["cost_by_tier"]["mini"]) == Decimal(str(answer["cost_usd"])) > 0


def test_stats_period_and_key_scoping(service: Service) -> None:
    classify(service)
    assert (
        service.http.get("/v1/stats", params={"since": "2000-01-01T00:00:00Z", "until": "2000-01-02"}).json()["totals"][
            "runs"
        ]
        == 0
    )
    bad = service.http.get("/v1/stats", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "since"]
    assert service.anonymous.get("/v1/stats").status_code == 401


def test_parse_period() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_period(None, None, now=now).since == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_period("30m", None, now=now).since == datetime(2026, 11, 21, 11, 30, tzinfo=UTC)
    assert parse_period("7d", "1h", now=now).until == datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
    assert parse_period("2026-11-01T00:00:00Z", None, now=now).since == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequest, match="before until"):
        parse_period("1h", "2h", now=now)


@pytest.mark.parametrize("since", ["99999999999999999999d", "999999999h", "9" * 5000 + "m"])
def test_parse_period_refuses_durations_beyond_the_calendar(since: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_period(since, None, now=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    assert info.value.detail == "since: is further back than dates go; use a shorter duration such as 30d"
    assert [issue.loc for issue in info.value.errors] == [("query", "since")]


@pytest.mark.parametrize(
    ("since", "until", "name"),
    [("0001-01-01T00:00:00+14:00", None, "since"), ("1d", "9999-12-31T23:59:59-14:00", "until")],
)
def test_parse_period_refuses_times_that_leave_the_calendar_in_utc(since: str, until: str | None, name: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_period(since, until, now=datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    assert info.value.detail.startswith(f"{name}: is outside the dates that can be compared")
    assert [issue.loc for issue in info.value.errors] == [("query", name)]


def test_recommendation_words() -> None:
    assert recommendation("classify", "nano", 500, 0.97) == (
        "classify on nano agrees with mini on 97% of 500 audited runs: keep"
    )
    assert recommendation("extract", "nano", 200, 0.81) == (
        "extract on nano: 81% agreement with mini on 200 audited runs: start on mini"
    )
    assert "too few to advise" in (recommendation("draft", "mini", 5, 1.0) or "")
    assert recommendation("judge", "full", 50, 1.0) is None
