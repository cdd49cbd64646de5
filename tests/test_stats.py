"""Stats, routing audit and metrics: exact arithmetic over runs made through the real service."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from support import Sandbox, Service

from nodes.audit import Auditor, compare, normalise
from nodes.errors import InvalidRequest
from nodes.settings import Settings
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


def test_compare_answers() -> None:
    assert compare("classify", {"label": "bug", "confidence": 0.7}, {"label": "bug", "confidence": 0.99})[0] is True
    assert compare("classify", {"labels": ["a", "b"]}, {"labels": ["b", "a"]})[0] is True
    assert compare("judge", {"verdict": "pass"}, {"verdict": "fail"}) == (False, "verdict: pass vs fail")
    assert compare("extract", {"name": " Ann  Lee", "age": None}, {"name": "ann lee"}) == (True, "same fields")
    assert compare("extract", {"name": "Ann", "city": "Oslo"}, {"name": "Ann", "city": "Bergen"}) == (
        False,
        "differs in: city",
    )
    assert compare("draft", {"text": "hi"}, {"text": "hello"})[0] is None
    assert normalise([3, 1, 2]) == [1, 2, 3] and normalise(2.0) == 2


def wait_for_audits(db: str, count: int) -> list[sqlite3.Row]:
    deadline = time.monotonic() + 15
    while True:
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM audits ORDER BY created_at").fetchall()
        conn.close()
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {count} audits"
        time.sleep(0.05)


def test_audit_redoes_runs_one_tier_up_and_reports_agreement(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(audit_rate=1.0))
    sandbox.configure(faults=[{"kind": "content", "model": "*mini*", "content": '{"label": "bug", "confidence": 0.9}',
                               "times": 1}])  # fmt: skip
    first = classify(service, "billing question")
    rows = wait_for_audits(service.settings.db, 1)
    second = classify(service, "billing question")
    rows = wait_for_audits(service.settings.db, 2)
    by_run = {row["run_id"]: row for row in rows}
    assert (by_run[first["run_id"]]["agreed"], by_run[first["run_id"]]["detail"]) == (0, "label: 'billing' vs 'bug'")
    assert (by_run[second["run_id"]]["agreed"], by_run[second["run_id"]]["audit_tier"]) == (1, "mini")
    assert [r["model"] for r in sandbox.requests()] == ["gpt-5.4-nano", "gpt-5.4-mini"] * 2
    report = service.http.get("/v1/stats", params={"since": "1h"}).json()
    [row] = report["rows"]
    assert row["audit"]["audited"] == 2 and row["audit"]["agreement"] == 0.5
    assert row["audit"]["recommendation"] == (
        "classify on nano: 50% agreement with mini on 2 audited runs; too few to advise yet"
    )
    audit_cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
    assert Decimal(report["totals"]["audit_cost_usd"]) == audit_cost > 0
    # the audit is not charged to the run
    assert Decimal(row["cost_usd"]) == Decimal(str(first["usage"]["cost_usd"])) + Decimal(
        str(second["usage"]["cost_usd"])
    )


def test_no_audit_by_default(service: Service, sandbox: Sandbox) -> None:
    classify(service)
    time.sleep(0.2)
    assert len(sandbox.requests()) == 1


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


async def test_audit_samples_the_configured_share_of_unescalated_runs_below_full() -> None:
    audited: list[str] = []
    auditor = Auditor(pipeline=None, db=None, rate=0.25, rng=random.Random(3))  # type: ignore[arg-type]

    async def record(task: object, report: SimpleNamespace) -> None:
        audited.append(report.run_id)

    auditor.audit = record  # type: ignore[method-assign]

    def done(n: int, tier: str, status: str = "succeeded", escalated: bool = False) -> Any:
        report = SimpleNamespace(run_id=f"run_{n}", status=status, tier=tier, escalated=escalated)
        return SimpleNamespace(report=report, task=None)

    for n in range(2000):
        auditor.consider(done(n, "nano"))
    for n in range(100):
        auditor.consider(done(10_000 + n, "full"))
        auditor.consider(done(20_000 + n, "mini", status="failed"))
        auditor.consider(done(30_000 + n, "mini", escalated=True))
    await auditor.drain()
    expected = random.Random(3)
    assert len(audited) == sum(1 for _ in range(2000) if expected.random() < 0.25)
    assert all(int(run_id.removeprefix("run_")) < 2000 for run_id in audited)
    assert 450 <= len(audited) <= 550
    assert all(int(run_id.removeprefix("run_")) < 2000 for run_id in audited)
