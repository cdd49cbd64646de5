"""The routing audit: a sample of runs redone one tier up, compared, stored with its cost apart."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from support import Sandbox, Service

from nodes.audit import Auditor, AuditRates, compare, normalise
from nodes.settings import Settings

LABELS = ["billing", "bug"]


def classify(service: Service, text: str = "billing question", **extra: Any) -> dict[str, Any]:
    response = service.http.post("/v1/nodes/classify", json={"input": text, "labels": LABELS, **extra})
    assert response.status_code in (200, 502), response.text
    body: dict[str, Any] = response.json()
    return body


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
    # A JSON draft carries free text too: two good drafts never match field for field, so a judge decides.
    assert compare("draft", {"subject": "Refund", "body": "Sorry!"}, {"subject": "Refund", "body": "Apologies."}) == (
        None,
        "a draft (free text, or JSON with free text in it)",
    )
    assert normalise([3, 1, 2]) == [1, 2, 3] and normalise(2.0) == 2


def wait_for_audits(service: Service, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        rows = service.rows("SELECT * FROM audits ORDER BY created_at")
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
    rows = wait_for_audits(service, 1)
    second = classify(service, "billing question")
    rows = wait_for_audits(service, 2)
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


async def test_audit_samples_the_configured_share_of_unescalated_runs_below_full() -> None:
    audited: list[str] = []
    auditor = Auditor(runner=None, store=None, rates=AuditRates(fixed=0.25), rng=random.Random(3))  # type: ignore[arg-type]

    async def record(task: object, record: SimpleNamespace, other: str) -> None:
        assert other == "mini"
        audited.append(record.run_id)

    auditor.audit = record  # type: ignore[method-assign]

    def done(n: int, tier: str, status: str = "succeeded", escalated: bool = False) -> Any:
        answer = object() if status == "succeeded" else None
        record = SimpleNamespace(
            run_id=f"run_{n}", answer=answer, tier=tier, escalated=escalated, requested_tier=None, step=None
        )
        return SimpleNamespace(record=record, task=None)

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
