"""The n8n templates, run by a real n8n — the newest release and the oldest supported — against a real service
whose tiers are the loopback sandbox.

One n8n user folder serves the module: the "Tierwise API key" credential (httpBearerAuth, id
TierwiseApiKey01) is imported once with the test key, and each test imports the template it runs with
the Config node's URL replaced by its own service's URL (nothing else in the file changes), runs it from
its Manual Trigger with ``n8n execute`` and checks n8n's run record against what the sandbox was asked
and what the service wrote to its run log. One test drives the Webhook entry through ``n8n start``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from n8n.harness import N8n, N8nServer, Release, Run, release_params
from support import CLIENT_KEY, Sandbox, Service
from test_template_structure import FIXTURES, TEMPLATE_DIR, fixture_text, trim_export, used_types

from nodes.settings import Settings

pytestmark = pytest.mark.n8n

TEMPLATE_URL = "http://127.0.0.1:8080"
NANO, MINI, FULL = "gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"
StartService = Callable[[Settings], Service]
MakeSettings = Callable[..., Settings]


@pytest.fixture(scope="module", params=release_params())
def release(request: pytest.FixtureRequest) -> Release:
    """Each tested n8n release in turn (every test of the module runs on both)."""
    chosen: Release = request.param
    return chosen


@pytest.fixture(scope="module")
def n8n(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[N8n]:
    assert release.binary is not None
    instance = N8n(release.binary, tmp_path_factory.mktemp(f"n8n-{release.version}"))
    instance.import_credentials(
        [
            {
                "id": "TierwiseApiKey01",
                "name": "Tierwise API key",
                "type": "httpBearerAuth",
                "data": {"token": CLIENT_KEY},
            }
        ]
    )
    yield instance
    instance.remove()


def template(name: str, service: Service) -> dict[str, Any]:
    """A template as committed, with the Config node's URL pointing at ``service``."""
    text = (TEMPLATE_DIR / f"{name}.json").read_text(encoding="utf-8")
    assert text.count(TEMPLATE_URL) == 1
    workflow: dict[str, Any] = json.loads(text.replace(TEMPLATE_URL, service.url))
    return workflow


def execute(n8n: N8n, name: str, service: Service) -> Run:
    workflow = template(name, service)
    n8n.import_workflow(workflow)
    run = n8n.execute(workflow["id"])
    assert run.returncode == 0 and run.status == "success", run.stdout[-4000:] + run.stderr[-2000:]
    return run


def summary(run: Run) -> dict[str, Any]:
    (item,) = run.output("Summary")
    return item


def db_rows(service: Service, sql: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(service.settings.db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql)]


def run_log(service: Service) -> list[dict[str, Any]]:
    """The service's runs in the order they were written, request and response parsed."""
    rows = db_rows(service, "SELECT * FROM runs ORDER BY rowid")
    for row in rows:
        row["request"] = json.loads(row["request"])
        row["response"] = json.loads(row["response"])
    return rows


def calls(steps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (s["step"], s["attempt"], s.get("item"), s["status"], s["http_status"], s["tier"], s["model"]) for s in steps
    ]


def assert_costs_match_run_log(steps: list[dict[str, Any]], total: float, service: Service) -> dict[str, Any]:
    """Every run the service logged is a step with its exact cost, and the total is their sum; runs by id."""
    runs = {row["run_id"]: row for row in run_log(service)}
    assert sorted(step["run_id"] for step in steps) == sorted(runs)
    for step in steps:
        row = runs[step["run_id"]]
        assert step["cost_usd"] > 0
        assert Decimal(str(step["cost_usd"])) == Decimal(row["cost_usd"])
        assert step["status"] == ("ok" if row["status"] == "succeeded" else "failed")
        if step["status"] == "ok":
            assert (step["tier"], step["model"]) == (row["final_tier"], row["model"])
    assert Decimal(str(total)) == sum(Decimal(row["cost_usd"]) for row in runs.values())
    return runs


def sandbox_calls(sandbox: Sandbox) -> list[tuple[str, str | None]]:
    return [(request["model"], request["fault"]) for request in sandbox.requests()]


def stored_keys(service: Service) -> list[str]:
    return [
        row["idempotency_key"] for row in db_rows(service, "SELECT idempotency_key FROM idempotency ORDER BY rowid")
    ]


def idempotency_keys(service: Service) -> list[str]:
    """The keys the workflow sent (one per HTTP call), without those the service derives for a batch's items."""
    return [key for key in stored_keys(service) if "#item-" not in key]


def post_webhook(url: str, body: dict[str, Any], timeout_s: float = 60) -> httpx.Response:
    """POST to a production webhook, once n8n has activated it.

    ``N8nServer`` returns when ``/healthz/readiness`` answers, which n8n 2.8.4 does before it has activated
    the published workflows; until then a webhook answers 404 and runs nothing, so asking again is safe.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.post(url, json=body, timeout=90)
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def content(output: dict[str, Any], model: str, times: int = 1) -> dict[str, Any]:
    """A sandbox fault that answers ``model``'s next ``times`` calls with ``output``."""
    return {"kind": "content", "model": model, "times": times, "content": json.dumps(output)}


# -- support triage ---------------------------------------------------------------------------------------


def test_support_triage_classifies_on_nano_and_drafts_the_reply_on_mini(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    service = start_service(make_settings())
    run = execute(n8n, "support-triage", service)
    out = summary(run)
    runs = run_log(service)
    assert [(row["node"], row["final_tier"], row["routing_reason"]) for row in runs] == [
        ("classify", "nano", "requested tier nano"),
        ("classify", "nano", "requested tier nano"),
        ("draft", "mini", "requested tier mini"),
    ]
    assert out["template"] == "support-triage"
    assert out["result"] == {
        "ticket_id": "T-1042",
        "intent": {"label": "billing", "confidence": 0.9},
        "urgency": {"label": "normal", "confidence": 0.9},
        "route": "reply",
        "action": "send_reply",
        "reply": runs[2]["response"]["output"]["text"],
    }
    assert calls(out["steps"]) == [
        ("intent", "primary", None, "ok", 200, "nano", NANO),
        ("urgency", "primary", None, "ok", 200, "nano", NANO),
        ("reply", "primary", None, "ok", 200, "mini", MINI),
    ]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert sandbox_calls(sandbox) == [(NANO, None), (NANO, None), (MINI, None)]
    intent = runs[0]["request"]
    assert [label["name"] for label in intent["labels"]] == ["billing", "bug", "how_to", "complaint", "spam"]
    assert (intent["min_confidence"], intent["tier"], intent["max_tier"]) == (0.6, "nano", "mini")
    assert runs[2]["request"]["max_words"] == 150 and "Support Team" in runs[2]["request"]["instructions"]
    assert run.ran("Close Spam") == run.ran("Judge Escalation") == 0
    assert run.ran("Classify Intent: mini fallback") == run.ran("Draft Reply: mini fallback") == 0
    keys = idempotency_keys(service)
    assert [key.split("-")[2] for key in keys] == ["intent", "urgency", "reply"]
    assert all(re.fullmatch(r"\d+-0-[a-z]+-[a-z0-9]+", key) for key in keys)
    assert len({(key.split("-")[0], key.split("-")[3]) for key in keys}) == 1  # one execution, one nonce


def test_support_triage_closes_spam_without_another_model_call(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[content({"label": "spam", "confidence": 0.97}, NANO)])
    service = start_service(make_settings())
    run = execute(n8n, "support-triage", service)
    out = summary(run)
    assert out["result"] == {
        "ticket_id": "T-1042",
        "intent": {"label": "spam", "confidence": 0.97},
        "urgency": {"label": "normal", "confidence": 0.9},
        "route": "spam",
        "action": "close",
    }
    assert calls(out["steps"]) == [
        ("intent", "primary", None, "ok", 200, "nano", NANO),
        ("urgency", "primary", None, "ok", 200, "nano", NANO),
    ]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert sandbox_calls(sandbox) == [(NANO, "content"), (NANO, None)]
    assert run.ran("Close Spam") == 1 and run.ran("Draft Reply") == run.ran("Judge Escalation") == 0


def test_support_triage_takes_the_mini_fallback_when_the_service_answers_502(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    # Nano refuses everything; mini refuses once. The intent call (nano, max_tier mini) fails on both
    # tiers and the service answers 502; the template asks again with tier mini, max_tier mini.
    sandbox.configure(faults=[{"kind": "refusal", "model": NANO}, {"kind": "refusal", "model": MINI, "times": 1}])
    service = start_service(make_settings())
    run = execute(n8n, "support-triage", service)
    out = summary(run)
    assert calls(out["steps"]) == [
        ("intent", "primary", None, "failed", 502, "mini", MINI),
        ("intent", "mini_fallback", None, "ok", 200, "mini", MINI),
        ("urgency", "primary", None, "ok", 200, "mini", MINI),
        ("reply", "primary", None, "ok", 200, "mini", MINI),
    ]
    failed = out["steps"][0]
    assert failed["error"] == "every allowed tier failed (nano:refusal, mini:refusal)"
    assert [step["escalated"] for step in out["steps"]] == [False, False, True, False]
    assert out["result"]["intent"] == {"label": "billing", "confidence": 0.9}
    assert out["result"]["route"] == "reply"
    runs = assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert runs[failed["run_id"]]["status"] == "failed"  # the money spent on the failed run is in the total
    fallback = runs[out["steps"][1]["run_id"]]["request"]
    primary = runs[failed["run_id"]]["request"]
    assert (fallback["tier"], fallback["max_tier"]) == ("mini", "mini")
    assert {**primary, "tier": "mini", "max_tier": "mini"} == fallback
    assert sandbox_calls(sandbox) == [
        (NANO, "refusal"),
        (MINI, "refusal"),
        (MINI, None),
        (NANO, "refusal"),
        (MINI, None),
        (MINI, None),
    ]
    assert run.ran("Classify Intent: mini fallback") == 1 and run.ran("Classify Urgency: mini fallback") == 0
    assert [key.split("-")[2:-1] for key in idempotency_keys(service)] == [
        ["intent"],
        ["intent", "mini", "fallback"],
        ["urgency"],
        ["reply"],
    ]


@pytest.mark.timeout(240)
def test_support_triage_on_a_key_limited_to_two_requests_a_minute_gets_every_step_done(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    # Two requests per minute: the third call (the reply) is over the limit. Its 'Prefer: wait=60' has the
    # service hold it until the key's window reopens, then run it: no 429 reaches the workflow.
    service = start_service(make_settings(key_rpm=2))
    started = time.monotonic()
    run = execute(n8n, "support-triage", service)
    assert run.ran("Draft Reply") == 1 and run.ran("Draft Reply: mini fallback") == 0
    (answered,) = run.output("Draft Reply")
    assert answered["statusCode"] == 200
    assert run.record is not None
    (held,) = run.record["data"]["resultData"]["runData"]["Draft Reply"]
    assert held["executionTime"] >= 20_000  # the window opened about a minute after the first call
    assert time.monotonic() - started < 100
    out = summary(run)
    assert calls(out["steps"]) == [
        ("intent", "primary", None, "ok", 200, "nano", NANO),
        ("urgency", "primary", None, "ok", 200, "nano", NANO),
        ("reply", "primary", None, "ok", 200, "mini", MINI),
    ]
    assert out["result"]["action"] == "send_reply"
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert sandbox_calls(sandbox) == [(NANO, None), (NANO, None), (MINI, None)]
    keys = idempotency_keys(service)
    assert [key.split("-")[2] for key in keys] == ["intent", "urgency", "reply"]


@pytest.mark.timeout(240)
def test_support_triage_webhook_escalates_an_urgent_bug_through_the_judge(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    verdict = {
        "verdict": "pass",
        "score": 0.95,
        "reasons": ["The customer's whole team is blocked."],
        "best_index": None,
    }
    sandbox.configure(faults=[content(verdict, FULL)])
    service = start_service(make_settings())
    workflow = template("support-triage", service)
    # The template ships its Webhook disabled (so Execute workflow runs the sample); production enables it.
    (webhook,) = [node for node in workflow["nodes"] if node["name"] == "Webhook"]
    assert webhook.pop("disabled") is True
    n8n.import_workflow(workflow)
    published = n8n.cli("publish:workflow", f"--id={workflow['id']}")
    assert published.returncode == 0, published.stdout + published.stderr
    ticket = {
        "ticket_id": "T-2001",
        "customer": "ops@example.com",
        "subject": "URGENT: API down",
        "message": "Every API call answers 500 since this morning's deploy. This bug blocks our whole team.",
    }
    with N8nServer(n8n) as server:
        response = post_webhook(f"{server.url}/webhook/tierwise-support-triage", ticket)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["template"] == "support-triage"
    assert body["result"] == {
        "ticket_id": "T-2001",
        "intent": {"label": "bug", "confidence": 0.9},
        "urgency": {"label": "urgent", "confidence": 0.9},
        "route": "escalate",
        "action": "escalate_to_human",
        "verdict": "pass",
        "score": 0.95,
        "reasons": ["The customer's whole team is blocked."],
    }
    assert calls(body["steps"]) == [
        ("intent", "primary", None, "ok", 200, "nano", NANO),
        ("urgency", "primary", None, "ok", 200, "nano", NANO),
        ("escalation", "primary", None, "ok", 200, "full", FULL),
    ]
    runs = assert_costs_match_run_log(body["steps"], body["total_cost_usd"], service)
    judged = runs[body["steps"][2]["run_id"]]["request"]
    assert judged["candidate"]["intent"] == "bug" and judged["candidate"]["urgency"] == "urgent"
    assert judged["input"] == {"subject": ticket["subject"], "message": ticket["message"]}
    assert sandbox_calls(sandbox) == [(NANO, None), (NANO, None), (FULL, "content")]


# -- document extraction ----------------------------------------------------------------------------------


def test_document_extraction_sends_every_document_in_one_batch_and_returns_one_item_each(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    service = start_service(make_settings())
    run = execute(n8n, "document-extraction", service)
    documents = run.output("Summary")
    runs = run_log(service)
    assert run.ran("Extract Fields") == 1 and run.ran("Extract Fields: mini fallback") == 0
    (batch_key,) = idempotency_keys(service)  # one HTTP call for the three documents
    assert stored_keys(service) == [batch_key, *[f"{batch_key}#item-{index}" for index in range(3)]]
    assert [row["request"]["metadata"] for row in runs] == [{"document_id": f"DOC-{n}"} for n in (1, 2, 3)]
    assert [doc["document_id"] for doc in documents] == ["DOC-1", "DOC-2", "DOC-3"]
    schema = runs[0]["request"]["schema"]
    assert schema["required"] == ["vendor", "invoice_number", "total", "currency"]
    total = documents[0]["total_cost_usd"]
    all_steps = []
    for index, (doc, row) in enumerate(zip(documents, runs, strict=True)):
        assert doc["status"] == "ok" and doc["template"] == "document-extraction"
        assert doc["fields"] == row["response"]["output"]
        assert set(doc["fields"]) == set(schema["properties"])
        assert (doc["tier"], doc["model"]) == ("nano", NANO)
        assert calls(doc["steps"]) == [("extract", "primary", index, "ok", 200, "nano", NANO)]
        assert Decimal(str(doc["cost_usd"])) == Decimal(row["cost_usd"]) > 0
        assert doc["total_cost_usd"] == total
        all_steps += doc["steps"]
    assert [doc["fields"]["currency"] for doc in documents] == ["EUR", "USD", "GBP"]  # each one's own text
    assert_costs_match_run_log(all_steps, total, service)
    assert sandbox_calls(sandbox) == [(NANO, None)] * 3


def test_document_extraction_reports_a_document_that_failed_on_every_tier_with_its_cost(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    # One document's nano call is refused, then its escalation to mini: that item of the batch is a 502
    # problem inside a 200 answer. The service has tried it on every allowed tier, so the template reports
    # it as failed (with the money spent on it) and the other documents are unaffected; the mini fallback is
    # only for a batch call that failed as a whole.
    sandbox.configure(
        faults=[{"kind": "refusal", "model": NANO, "times": 1}, {"kind": "refusal", "model": MINI, "times": 1}]
    )
    service = start_service(make_settings())
    run = execute(n8n, "document-extraction", service)
    documents = run.output("Summary")
    assert run.ran("Extract Fields") == 1 and run.ran("Extract Fields: mini fallback") == 0
    assert run.output("Extract Fields")[0]["body"]["summary"]["failed"] == 1
    (doc,) = [doc for doc in documents if doc["status"] == "failed"]
    index = ["DOC-1", "DOC-2", "DOC-3"].index(doc["document_id"])
    assert calls(doc["steps"]) == [("extract", "primary", index, "failed", 502, "mini", MINI)]
    assert doc["steps"][0]["error"] == "every allowed tier failed (nano:refusal, mini:refusal)"
    assert (doc["fields"], doc["tier"], doc["model"]) == (None, None, None)
    assert Decimal(str(doc["cost_usd"])) == Decimal(str(doc["steps"][0]["cost_usd"])) > 0
    for other in documents:
        if other is not doc:
            assert (other["status"], other["tier"], len(other["steps"])) == ("ok", "nano", 1)
    all_steps = [step for item in documents for step in item["steps"]]
    assert_costs_match_run_log(all_steps, documents[0]["total_cost_usd"], service)
    assert Counter(sandbox_calls(sandbox)) == Counter({(NANO, None): 2, (NANO, "refusal"): 1, (MINI, "refusal"): 1})


# -- PR review --------------------------------------------------------------------------------------------


def test_pr_review_drafts_per_risk_area_classifies_severity_and_judges(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[content({"label": "blocker", "confidence": 0.95}, NANO)])
    service = start_service(make_settings())
    run = execute(n8n, "pr-review", service)
    out = summary(run)
    runs = run_log(service)
    drafts = {row["request"]["metadata"]["area"]: row for row in runs if row["node"] == "draft"}
    severities = {row["request"]["metadata"]["area"]: row for row in runs if row["node"] == "classify"}
    (judged,) = [row for row in runs if row["node"] == "judge"]
    result = out["result"]
    assert [entry["area"] for entry in result["comments"]] == ["security", "performance", "correctness"]
    for entry in result["comments"]:
        assert entry["comment"] == drafts[entry["area"]]["response"]["output"]["text"]
        assert "for " + entry["area"] + " risks only" in drafts[entry["area"]]["request"]["instructions"]
        assert entry["severity"] == severities[entry["area"]]["response"]["output"]["label"]
        assert severities[entry["area"]]["request"]["input"] == f"{entry['area']} review comment: {entry['comment']}"
    assert [entry["severity"] for entry in result["comments"]].count("blocker") == 1
    assert result["recommendation"] == "request_changes"
    assert judged["request"]["candidate"] == {"comments": result["comments"]}
    assert (result["verdict"], result["score"], result["reasons"]) == (
        judged["response"]["output"]["verdict"],
        judged["response"]["output"]["score"],
        judged["response"]["output"]["reasons"],
    )
    assert calls(out["steps"]) == [
        *[("review", "primary", index, "ok", 200, "mini", MINI) for index in range(3)],
        *[("severity", "primary", index, "ok", 200, "nano", NANO) for index in range(3)],
        ("verdict", "primary", None, "ok", 200, "full", FULL),
    ]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert [model for model, _ in sandbox_calls(sandbox)] == [MINI] * 3 + [NANO] * 3 + [FULL]
    assert [key.split("-")[2] for key in idempotency_keys(service)] == ["review", "severity", "verdict"]


# -- research synthesis -----------------------------------------------------------------------------------


def test_research_synthesis_ranks_sources_drafts_and_judges(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    service = start_service(make_settings())
    run = execute(n8n, "research-synthesis", service)
    out = summary(run)
    runs = run_log(service)
    extracted = {row["request"]["metadata"]["source_id"]: row["response"]["output"] for row in runs[:4]}
    drafted, judged = runs[4], runs[5]
    assert [row["node"] for row in runs] == ["extract"] * 4 + ["draft", "judge"]
    result = out["result"]
    ranking = sorted(extracted, key=lambda source: -extracted[source]["relevance"])[:3]
    assert [source["id"] for source in result["sources"]] == ranking
    for source in result["sources"]:
        assert {key: source[key] for key in ("claim", "stance", "relevance")} == extracted[source["id"]]
    assert [source["id"] for source in drafted["request"]["input"]["sources"]] == ranking
    assert result["synthesis"] == drafted["response"]["output"]["text"]
    assert judged["request"]["candidate"] == result["synthesis"]
    assert result["verdict"] == judged["response"]["output"]["verdict"]
    assert result["reasons"] == judged["response"]["output"]["reasons"]
    assert calls(out["steps"]) == [
        *[("sources", "primary", index, "ok", 200, "nano", NANO) for index in range(4)],
        ("synthesis", "primary", None, "ok", 200, "mini", MINI),
        ("verdict", "primary", None, "ok", 200, "full", FULL),
    ]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert [model for model, _ in sandbox_calls(sandbox)] == [NANO] * 4 + [MINI, FULL]


# -- content pipeline -------------------------------------------------------------------------------------


def test_content_pipeline_revises_once_with_the_judges_reasons_when_it_fails(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    reasons = ["The title is vague.", "The body never says why the export matters."]
    sandbox.configure(faults=[content({"verdict": "fail", "score": 0.3, "reasons": reasons, "best_index": None}, FULL)])
    service = start_service(make_settings())
    run = execute(n8n, "content-pipeline", service)
    out = summary(run)
    runs = run_log(service)
    assert [(row["node"], row["final_tier"]) for row in runs] == [
        ("draft", "mini"),
        ("judge", "full"),
        ("draft", "mini"),
        ("classify", "nano"),
    ]
    first, judged, revision, topic = runs
    assert first["request"]["format"] == "json" and set(first["request"]["schema"]["properties"]) == {"title", "body"}
    assert judged["request"]["candidate"] == first["response"]["output"]
    assert revision["request"]["instructions"].endswith("\n- " + "\n- ".join(reasons))
    assert revision["request"]["input"]["draft"] == first["response"]["output"]
    revised = revision["response"]["output"]
    assert topic["request"]["input"] == revised["title"] + "\n\n" + revised["body"]
    assert out["result"] == {
        "title": revised["title"],
        "body": revised["body"],
        "revised": True,
        "verdict": "fail",
        "score": 0.3,
        "reasons": reasons,
        "topic": topic["response"]["output"]["label"],
    }
    assert calls(out["steps"]) == [
        ("draft", "primary", None, "ok", 200, "mini", MINI),
        ("review", "primary", None, "ok", 200, "full", FULL),
        ("revision", "primary", None, "ok", 200, "mini", MINI),
        ("topic", "primary", None, "ok", 200, "nano", NANO),
    ]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert sandbox_calls(sandbox) == [(MINI, None), (FULL, "content"), (MINI, None), (NANO, None)]


def test_content_pipeline_publishes_the_first_draft_when_the_judge_passes_it(
    n8n: N8n, start_service: StartService, make_settings: MakeSettings, sandbox: Sandbox
) -> None:
    sandbox.configure(
        faults=[content({"verdict": "pass", "score": 0.9, "reasons": ["Clear."], "best_index": None}, FULL)]
    )
    service = start_service(make_settings())
    run = execute(n8n, "content-pipeline", service)
    out = summary(run)
    first = run_log(service)[0]["response"]["output"]
    assert (out["result"]["title"], out["result"]["body"], out["result"]["revised"]) == (
        first["title"],
        first["body"],
        False,
    )
    assert run.ran("Revise Content") == 0
    assert [step["step"] for step in out["steps"]] == ["draft", "review", "topic"]
    assert_costs_match_run_log(out["steps"], out["total_cost_usd"], service)
    assert [model for model, _ in sandbox_calls(sandbox)] == [MINI, FULL, NANO]


# -- the node fixture -------------------------------------------------------------------------------------


def test_node_fixture_is_the_trimmed_export(n8n: N8n, release: Release, tmp_path: Path) -> None:
    """``tests/fixtures/n8n-nodes-<version>.json`` is this n8n's ``export:nodes``, trimmed by ``trim_export``.

    It was made by this test: ``TIERWISE_WRITE_N8N_FIXTURE=1 pytest -m n8n tests/n8n/test_templates.py -k fixture``
    exports every node description with ``N8n.export_nodes`` (``n8n export:nodes``), keeps the node types the
    templates use (every version entry of each) without their editor-only texts, and writes the file. Without
    the variable, the test checks that the committed file is still exactly that.
    """
    exported = tmp_path / "nodes.json"
    n8n.export_nodes(exported)
    text = fixture_text(trim_export(json.loads(exported.read_text(encoding="utf-8")), used_types()))
    fixture = FIXTURES[release.version]
    if os.environ.get("TIERWISE_WRITE_N8N_FIXTURE") == "1":
        fixture.write_text(text, encoding="utf-8")
    assert fixture.read_text(encoding="utf-8") == text
