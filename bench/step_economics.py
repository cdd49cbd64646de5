"""The step economics benchmark: five pipelines run through ``tier: auto`` as it learns, beside one-model baselines.

The workload (``pipelines``) is items flowing through 17 steps of five pipelines, each request naming its
step. It is run in these configurations, each against its own fresh ``tierwise serve`` (so no learning is
shared) and the same simulator:

* ``all-full``, ``all-mini``, ``all-nano``: one direct chat-completions call per run to that model, the
  request Tierwise sends on that tier, no validation, no repair, no retry;
* ``tier-nano``: Tierwise with ``tier: "nano"`` (validation, one repair turn, ``min_confidence``, escalation);
  ``tier-mini`` and ``tier-full`` likewise, for the step oracle;
* ``auto``: Tierwise with ``tier: "auto"`` at the service's default settings, sent in waves of about
  ``--wave`` runs so the background audits of one wave have landed before the next starts;
* ``tier-nano-flex``, ``auto-flex``: the same with ``processing: "flex"`` on the steps that tolerate latency.

Configurations that do not learn run the steady-state items only; the baselines and the learning
configurations run every item, so the learning curve has all-mini beside it on the same runs.

The simulator is the sandbox with the economics benchmark's per-tier profiles (``economics.PROFILES``,
latency set to 0: it is not measured here, and the runs stay CPU-bound) plus two levels those profiles do
not have (``LEVEL_RATES``) and a truth for the full tier's comparison of two free texts, which the audit
asks for (``text_verdict``). It answers every request from the seed and the request alone, so a Tierwise
attempt on tier T gets the answer the all-T baseline got for the same run. ``FLEX_UNAVAILABLE`` of flex
calls (Tierwise's flex runs and every audit, which go on flex) are refused with 429 ``resource_unavailable``
and repeated on standard, as the service does.

Reported: the learning curve per wave (cost and correctness of ``auto`` against all-mini on the same runs,
its tier mix, the audits' cost), and the steady state over the last ``--runs`` runs for every configuration:
cost (audits included for ``auto``, and apart), validity, correctness per run and per item, tier mix, calls;
the oracle (per run, the cheapest tier whose answer is right) and the step oracle (per step, the cheapest
tier within a point of all-mini's correctness on that step); the targets, met or not, with the numbers.

    python bench/step_economics.py [--runs 2000] [--learning 6000] [--seed 7] [--concurrency 16] [--wave 100]
                                   [--arms all-full,...] [--markdown FILE] [--json FILE] [--source TEXT]
    python bench/step_economics.py report --json FILE [--markdown FILE] [--curve-every N]  (tables from a report)
    python bench/step_economics.py simulator --config FILE [--port P]   (the simulator process itself)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from _harness import KEY, machine, server_process, service_process
from economics import PRICES, PROFILES, RIGHT_CONFIDENCE, TIERS, WRONG_CONFIDENCE, _same, is_valid
from fastapi import FastAPI
from pipelines import FREE_TEXT_KEYS, STEPS, Item, Run, all_runs, build, mix
from profiles import ModelBehaviour, Shaped, find_truths, messages_text, shape_json, shape_text
from pydantic import Field
from simulator import ProfileShaper, SimulatorConfig

from nodes.catalog import NODES, Task
from nodes.cost import Usage, cost_usd
from nodes.sandbox import ChatRequest, SandboxConfig, create_sandbox_app

LADDER = ("nano", "mini", "full")
BASELINES = ("all-full", "all-mini", "all-nano")
# Each Tierwise configuration: the tier its requests carry, whether flex-tolerant steps go on flex, waves.
TIERWISE: dict[str, tuple[str, bool]] = {
    "tier-nano": ("nano", False),
    "tier-mini": ("mini", False),
    "tier-full": ("full", False),
    "auto": ("auto", False),
    "tier-nano-flex": ("nano", True),
    "auto-flex": ("auto", True),
}
ARMS = (*BASELINES, *TIERWISE)
LEARNING = ("auto", "auto-flex")
FLEX_SHARE = Decimal(str(TIERS["nano"].flex_price_share))
# Correctness per level and tier where the economics profiles have no figure (easy and hard); simple and
# multi keep economics.PROFILES' rates (95/98/99% and the published 71/94/97%). Chosen, not published:
# easy is a clear-cut decision every tier nearly always gets right; hard is long or subtle material where
# the gap between tiers is widest (nano 45%, mini 78%, full 93%).
LEVEL_RATES: dict[str, dict[str, float]] = {
    "easy": {"nano": 0.99, "mini": 0.995, "full": 0.997},
    "hard": {"nano": 0.45, "mini": 0.78, "full": 0.93},
}
FLEX_UNAVAILABLE = 0.05
# The simulator stands in for OpenAI's endpoint, where every tier offers flex and nano and mini return
# token log-probabilities by default (any other base URL gets neither unless told), so every service here
# is told what OpenAI's endpoint would be. The simulator's token probability is the stated confidence.
SERVICE_ENV = {
    **{f"TIERWISE_{tier.upper()}_LANES": "standard,flex" for tier in LADDER},
    "TIERWISE_NANO_LOGPROBS": "true",
    "TIERWISE_MINI_LOGPROBS": "true",
}
# The targets: every delivered answer valid; within this many points of all-mini's correctness; these
# shares of the baselines' standard cost (auto on standard; auto with flex); this multiple of the oracle's cost.
VALIDITY_TARGET = 1.0
CORRECTNESS_POINTS = 1.0
COST_TARGETS = {"auto_vs_mini": Decimal("0.50"), "flex_vs_mini": Decimal("0.25"), "flex_vs_full": Decimal("0.08")}
ORACLE_FACTOR = 1.5


# -- the simulator ---------------------------------------------------------------------------------

LEVEL_MARKER = re.compile(r"\[\[level:\s*(easy|hard)\s*\]\]")
COMPLEXITY_LABELS = frozenset({"SIMPLE", "MODERATE", "COMPLEX"})


class StepSimulatorConfig(SimulatorConfig):
    """The economics simulator's configuration plus per-level correctness and the text-comparison truth.

    ``levels`` maps a level (``easy``, ``hard``) to each model's correctness on it; ``judge_texts`` turns on
    ``text_verdict`` for judge requests that carry no verdict truth of their own.
    """

    levels: dict[str, dict[str, float]] = Field(default_factory=dict)
    judge_texts: bool = True

    def sandbox(self) -> SandboxConfig:
        return SandboxConfig.model_validate(self.model_dump(exclude={"behaviour", "levels", "judge_texts"}))


def _block(text: str, tag: str, last: bool = False) -> str | None:
    """The text between ``<tag>`` and ``</tag>`` (the first such block, or the last)."""
    opening, closing = f"<{tag}>\n", f"\n</{tag}>"
    start = text.rfind(opening) if last else text.find(opening)
    if start < 0:
        return None
    end = text.find(closing, start)
    return text[start + len(opening) : end if end >= 0 else None]


def asks_complexity(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` is Tierwise's nano complexity check (a label among SIMPLE, MODERATE, COMPLEX)."""
    label = schema.get("properties", {}).get("label", {})
    return isinstance(label, Mapping) and set(label.get("enum", [])) == COMPLEXITY_LABELS


def text_verdict(schema: Mapping[str, Any], text: str) -> str | None:
    """The right verdict of a judge asked whether a candidate text serves a text task as well as a reference.

    That is the routing audit's question for drafts, text or JSON: the draft's own request (with its keyword
    truth, ``text`` for a text draft, ``body`` for a JSON one) is the judge's input, the reference draft is in
    the criteria, the cheaper draft is the candidate (a JSON draft as JSON). The candidate serves the task as
    well unless the reference holds the keyword and the candidate does not. None when the request is not such
    a judgement (no pass/fail verdict, a verdict truth of its own, no keyword truth, or no criteria and
    candidates blocks).
    """
    verdict = schema.get("properties", {}).get("verdict", {})
    if not isinstance(verdict, Mapping) or set(verdict.get("enum", [])) != {"pass", "fail"}:
        return None
    truths = find_truths(text)
    if any("verdict" in truth.values for truth in truths):
        return None
    keyword = next(
        (
            value
            for t in truths
            if len(t.values) == 1 and set(t.values) <= FREE_TEXT_KEYS
            for value in t.values.values()
            if isinstance(value, str)
        ),
        None,
    )
    criteria, candidates = _block(text, "criteria"), _block(text, "candidates", last=True)
    if keyword is None or criteria is None or candidates is None:
        return None
    wanted = keyword.lower()
    return "fail" if wanted in criteria.lower() and wanted not in candidates.lower() else "pass"


class LevelShaper(ProfileShaper):
    """The economics profiles, with easy and hard items at their own correctness, and text comparisons judged.

    A ``[[level: easy]]`` item takes the level's rate in place of the profile's simple rate, a
    ``[[level: hard]]`` one in place of its multi rate. Tierwise's complexity check and the audit's text
    comparison are questions about an item, not the item itself, and keep the plain profile.
    """

    def __init__(
        self,
        profiles: Mapping[str, ModelBehaviour] | None = None,
        levels: Mapping[str, Mapping[str, float]] | None = None,
        judge_texts: bool = True,
    ) -> None:
        super().__init__(profiles)
        self.levels = {level: dict(rates) for level, rates in (levels or {}).items()}
        self.judge_texts = judge_texts

    def leveled(self, model: str, profile: ModelBehaviour, text: str) -> ModelBehaviour:
        """``profile`` with the item's level rate in place, if the item has a level and the model a rate for it."""
        match = LEVEL_MARKER.search(text)
        rate = self.levels.get(match.group(1), {}).get(model) if match else None
        if match is None or rate is None:
            return profile
        key = "correct_rate_simple" if match.group(1) == "easy" else "correct_rate_multi"
        return profile.model_copy(update={key: rate})

    def shape(self, request: ChatRequest, answer: Any) -> Shaped | None:
        profile = self.profile_for(request.model)
        if profile is None:
            return None
        text = messages_text(request.messages)
        if request.kind == "text":
            return shape_text(self.leveled(request.model, profile, text), answer, text, request.draw)
        schema = request.answer_schema
        if asks_complexity(schema):
            return shape_json(profile, schema, answer, text, request.draw)
        verdict = text_verdict(schema, text) if self.judge_texts else None
        if verdict is not None:
            marked = f'[[truth: {{"verdict": "{verdict}"}}]]\n{text}'
            return shape_json(profile, schema, answer, marked, request.draw)
        return shape_json(self.leveled(request.model, profile, text), schema, answer, text, request.draw)


def create_simulator(config: StepSimulatorConfig) -> FastAPI:
    """The sandbox with ``LevelShaper`` plugged in, and ``GET /_sandbox/behaviour`` as in ``simulator``."""
    shaper = LevelShaper(config.behaviour, config.levels, config.judge_texts)
    app = create_sandbox_app(config.sandbox(), shaper=shaper)

    @app.get("/_sandbox/behaviour")
    async def get_behaviour() -> dict[str, Any]:
        return shaper.counts_json()

    return app


def simulator_config(seed: int) -> dict[str, Any]:
    """The simulator's configuration: the economics profiles without latency, the level rates, flex's refusals."""
    behaviour = {
        TIERS[tier].model: {
            **profile,
            "latency_ms": 0,
            "latency_sigma": 0,
            "latency_per_output_token_ms": 0,
            "right_confidence": RIGHT_CONFIDENCE,
            "wrong_confidence": WRONG_CONFIDENCE,
        }
        for tier, profile in PROFILES.items()
    }
    levels = {level: {TIERS[tier].model: rate for tier, rate in rates.items()} for level, rates in LEVEL_RATES.items()}
    faults = [{"kind": "resource_unavailable", "model": "*", "probability": FLEX_UNAVAILABLE}]
    return {"seed": seed, "log_requests": False, "behaviour": behaviour, "levels": levels, "faults": faults}


@contextmanager
def simulator_process(config: dict[str, Any]) -> Iterator[str]:
    """This module's simulator in its own process; yields its /v1 base URL."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "simulator.json"
        path.write_text(json.dumps(config))
        command = [str(Path(__file__).resolve()), "simulator", "--config", str(path)]
        with server_process(command, "/_sandbox/config") as url:
            yield f"{url}/v1"


# -- scoring ---------------------------------------------------------------------------------------


def task_for(run: Run) -> Task:
    """The task Tierwise builds for ``run`` (the same on every tier)."""
    node = NODES[run.node]
    return node.task(node.parse(run.request(None)))


def is_correct(run: Run, value: Any) -> bool:
    """Whether a (valid) answer is right: free text holds the truth's keyword, everything else is equal."""
    if not isinstance(value, dict):
        return False
    for key, truth in run.truth.items():
        if key in FREE_TEXT_KEYS and isinstance(truth, str):
            text = value.get(key)
            if not (isinstance(text, str) and truth.lower() in text.lower()):
                return False
        elif key not in value or not _same(truth, value[key]):
            return False
    return True


@dataclass
class Outcome:
    """One run in one configuration: what was delivered, what it cost, which tier answered and how."""

    index: int
    ok: bool
    valid: bool
    correct: bool
    cost: Decimal
    tier: str | None
    start_tier: str | None = None
    reason: str = ""
    escalated: bool = False
    calls: tuple[tuple[str, str, str, str], ...] = ()  # (tier, outcome, processing, purpose) per attempt
    repairs: int = 0
    routing_cost: Decimal = Decimal(0)
    flex_cost: Decimal | None = None  # a baseline's cost had the run gone on flex (flex-tolerant steps only)


async def direct_run(http: aiohttp.ClientSession, upstream: str, run: Run, task: Task, tier: str) -> Outcome:
    """One chat completion straight to ``tier``'s model: the request Tierwise sends there first."""
    body = {
        "model": TIERS[tier].model,
        "messages": [
            {"role": "system", "content": task.system_prompt},
            {"role": "user", "content": task.user_prompt},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": task.schema_name, "schema": task.strict_schema, "strict": True},
        },
        "max_completion_tokens": 4096,
    }
    async with http.post(f"{upstream}/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as response:
        data = await response.json(content_type=None)
        status = response.status
    if status != 200:
        raise RuntimeError(f"run {run.index}: upstream answered {status}: {json.dumps(data)[:500]}")
    try:
        value: Any = task.finalize(json.loads(data["choices"][0]["message"]["content"]))
        valid = is_valid(task, value)
    except (TypeError, ValueError):
        value, valid = None, False
    cost = cost_usd(Usage.from_openai(data["usage"]), PRICES[tier])
    return Outcome(
        index=run.index,
        ok=True,
        valid=valid,
        correct=valid and is_correct(run, value),
        cost=cost,
        tier=tier,
        start_tier=tier,
        flex_cost=cost * FLEX_SHARE if run.step.flex else cost,
    )


async def tierwise_run(http: aiohttp.ClientSession, base: str, run: Run, task: Task, tier: str, flex: bool) -> Outcome:
    """One request to the service; scored by the simulator's truth."""
    async with http.post(
        f"{base}/v1/nodes/{run.node}", json=run.request(tier, flex), headers={"X-Api-Key": KEY}
    ) as response:
        data = await response.json(content_type=None)
        status = response.status
        cost = Decimal(response.headers.get("x-tierwise-cost-usd", "0"))
    if status not in (200, 502, 504):
        raise RuntimeError(f"run {run.index}: unexpected {status}: {json.dumps(data)[:500]}")
    attempts = data.get("attempts", [])
    output = data.get("output") if status == 200 else None
    valid = status == 200 and is_valid(task, output)
    routing = data.get("routing", {})
    return Outcome(
        index=run.index,
        ok=status == 200,
        valid=valid,
        correct=valid and is_correct(run, output),
        cost=cost,
        tier=data.get("tier") if status == 200 else None,
        start_tier=routing.get("start_tier"),
        reason=routing.get("reason", ""),
        escalated=bool(data.get("escalated")),
        calls=tuple(
            (a["tier"], a["outcome"], a.get("processing", "standard"), a.get("purpose") or "answer") for a in attempts
        ),
        repairs=sum(bool(a.get("repair")) for a in attempts),
        routing_cost=sum((Decimal(str(a["cost_usd"])) for a in attempts if a.get("purpose") == "routing"), Decimal(0)),
    )


def sender(
    http: aiohttp.ClientSession, base: str, tasks: Sequence[Task], tier: str, flex: bool | None
) -> Callable[[Run], Awaitable[Outcome]]:
    """One run at a time to ``base``: the service (``flex`` True or False), or the upstream directly (None)."""

    def send(run: Run) -> Awaitable[Outcome]:
        if flex is None:
            return direct_run(http, base, run, tasks[run.index], tier)
        return tierwise_run(http, base, run, tasks[run.index], tier, flex)

    return send


async def run_items(
    items: Sequence[Item], concurrency: int, one: Callable[[Run], Awaitable[Outcome]]
) -> dict[int, Outcome]:
    """Every run of ``items``: items ``concurrency`` at a time, each item's runs one after the other, in order."""
    outcomes: dict[int, Outcome] = {}
    queue = list(reversed(items))

    async def worker() -> None:
        while queue:
            item = queue.pop()
            for run in item.runs:
                outcomes[run.index] = await one(run)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def waves(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Consecutive groups of whole items holding at least ``size`` runs each (the last may hold fewer)."""
    groups: list[list[Item]] = [[]]
    count = 0
    for item in items:
        if count >= size:
            groups.append([])
            count = 0
        groups[-1].append(item)
        count += len(item.runs)
    return [group for group in groups if group]


async def steps_report(http: aiohttp.ClientSession, base: str, since: str | None = None) -> dict[str, Any]:
    """``GET /v1/steps`` (the last 30 days, or since an ISO time)."""
    params = {"since": since} if since else {}
    async with http.get(f"{base}/v1/steps", params=params, headers={"X-Api-Key": KEY}) as response:
        report: dict[str, Any] = await response.json()
        if response.status != 200:
            raise RuntimeError(f"GET /v1/steps answered {response.status}: {report}")
    return report


def audit_totals(report: Mapping[str, Any]) -> tuple[Decimal, int]:
    """The audits' cost and audited runs over every step of a ``GET /v1/steps`` answer."""
    cost = sum((Decimal(step["audit_cost_usd"]) for step in report["steps"]), Decimal(0))
    audited = sum(tier["audited"] for step in report["steps"] for tier in step["audit"].values())
    return cost, audited


async def settled(http: aiohttp.ClientSession, base: str, pause_s: float = 0.15) -> dict[str, Any]:
    """``GET /v1/steps`` once the background audits have stopped landing (two equal answers in a row)."""
    previous: tuple[Decimal, int] | None = None
    while True:
        await asyncio.sleep(pause_s)
        report = await steps_report(http, base)
        totals = audit_totals(report)
        if totals == previous:
            return report
        previous = totals


@dataclass
class Wave:
    """One wave of a learning configuration: its runs, the audits that landed while it ran, each step's tier after."""

    first: int
    last: int
    audit_cost: Decimal
    audited: int
    decisions: dict[str, str | None]


async def learning_arm(
    http: aiohttp.ClientSession,
    base: str,
    name: str,
    items: Sequence[Item],
    tasks: Sequence[Task],
    tier: str,
    flex: bool,
    concurrency: int,
    size: int,
    steady_from: int,
    progress: Callable[[str], None],
) -> tuple[dict[int, Outcome], list[Wave], dict[str, Any], str]:
    """A configuration sent in waves, each after the previous one's audits landed.

    Returns the outcomes, the waves, ``GET /v1/steps`` at the end and the ISO time the steady state began.
    """
    outcomes: dict[int, Outcome] = {}
    history: list[Wave] = []
    spent, audited = Decimal(0), 0
    steady_since = ""
    groups = waves([i for i in items if i.runs[0].index < steady_from], size)
    groups += waves([i for i in items if i.runs[0].index >= steady_from], size)
    for number, group in enumerate(groups, 1):
        if not steady_since and group[0].runs[0].index >= steady_from:
            steady_since = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        done = await run_items(group, concurrency, sender(http, base, tasks, tier, flex))
        outcomes.update(done)
        report = await settled(http, base)
        now_spent, now_audited = audit_totals(report)
        decisions = {step["step"]: step["start_tier"] for step in report["steps"]}
        wave = Wave(min(done), max(done), now_spent - spent, now_audited - audited, decisions)
        spent, audited = now_spent, now_audited
        history.append(wave)
        if number % 10 == 0 or number == len(groups):
            share = [outcomes[i] for i in range(wave.first, wave.last + 1)]
            right = sum(o.correct for o in share) / len(share)
            tiers = Counter(o.tier for o in share)
            progress(
                f"{name}: wave {number}/{len(groups)} (runs {wave.first}-{wave.last}): right {right:.1%}, "
                f"answered by nano {tiers['nano']} mini {tiers['mini']} full {tiers['full']}, "
                f"audits so far ${spent:.4f} ({audited} counted)"
            )
    return outcomes, history, await steps_report(http, base), steady_since


# -- summaries -------------------------------------------------------------------------------------


def share(part: Decimal, whole: Decimal) -> float:
    """``part / whole`` as a float (0 when ``whole`` is 0)."""
    return float(part / whole) if whole else 0.0


def summarise(outcomes: Sequence[Outcome], items: Sequence[Item], flex: bool = False) -> dict[str, Any]:
    """One configuration over some runs: cost, validity, correctness per run and per item, tier mix, calls."""
    indexes = {o.index for o in outcomes}
    whole = [item for item in items if all(run.index in indexes for run in item.runs)]
    by_index = {o.index: o for o in outcomes}
    delivered = [o for o in outcomes if o.ok]
    calls: Counter[str] = Counter()
    outcomes_seen: Counter[str] = Counter()
    for o in outcomes:
        for tier, outcome, processing, purpose in o.calls:
            calls[f"{tier} {processing}"] += 1
            outcomes_seen[outcome] += 1
            if purpose == "routing":
                calls["routing checks"] += 1
    cost = sum((o.cost for o in outcomes), Decimal(0))
    flex_cost = sum((o.flex_cost if o.flex_cost is not None else o.cost for o in outcomes), Decimal(0))
    return {
        "runs": len(outcomes),
        "cost_usd": str(flex_cost if flex else cost),
        "standard_cost_usd": str(cost),
        "delivered": len(delivered),
        "explicit_errors": len(outcomes) - len(delivered),
        "valid": sum(o.valid for o in delivered),
        "validity": sum(o.valid for o in delivered) / len(delivered) if delivered else 0.0,
        "correct": sum(o.correct for o in outcomes),
        "correctness": sum(o.correct for o in outcomes) / len(outcomes) if outcomes else 0.0,
        "items": len(whole),
        "items_right": sum(all(by_index[run.index].correct for run in item.runs) for item in whole),
        "tier_mix": dict(Counter(o.tier or "error" for o in outcomes)),
        "start_mix": dict(Counter(o.start_tier or "none" for o in outcomes)),
        "calls": dict(sorted(calls.items())),
        "attempt_outcomes": dict(sorted(outcomes_seen.items())),
        "escalated": sum(o.escalated for o in outcomes),
        "repairs": sum(o.repairs for o in outcomes),
        "routing_cost_usd": str(sum((o.routing_cost for o in outcomes), Decimal(0))),
    }


def by_step(runs: Sequence[Run], results: Mapping[str, Mapping[int, Outcome]]) -> dict[str, dict[str, Any]]:
    """Per step and configuration: runs, right answers and cost (flex-priced for ``*-flex`` baselines)."""
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        row = table.setdefault(
            run.step.name, {"runs": 0, "levels": Counter(), "right": Counter(), "cost": defaultdict(Decimal)}
        )
        row["runs"] += 1
        row["levels"][run.level] += 1
        for name, outcomes in results.items():
            o = outcomes[run.index]
            row["right"][name] += int(o.correct)
            row["cost"][name] += o.cost
            if o.flex_cost is not None:
                row["cost"][f"{name}-flex"] += o.flex_cost
            row.setdefault("start", defaultdict(Counter))[name][o.start_tier or "none"] += 1
    return table


def step_oracle(table: Mapping[str, Mapping[str, Any]], flex: bool = False) -> dict[str, Any]:
    """What ``tier: auto`` aims at: each step pinned, through Tierwise, to its cheapest good-enough tier.

    Per step, the cheapest of ``tier-nano``, ``tier-mini`` and ``tier-full`` whose correctness on the step
    is within a point of all-mini's; the totals. With ``flex``, flex-tolerant steps are priced at the flex
    share (an estimate: the pinned configurations ran on standard, so flex's refusals are not in it).
    """
    chosen: dict[str, str] = {}
    cost, right = Decimal(0), 0
    for step, row in table.items():
        floor = row["right"]["all-mini"] - row["runs"] * CORRECTNESS_POINTS / 100
        for tier in LADDER:
            if row["right"][f"tier-{tier}"] >= floor - 1e-9 or tier == "full":
                chosen[step] = tier
                spent = row["cost"][f"tier-{tier}"]
                cost += spent * FLEX_SHARE if flex and STEPS[step].flex else spent
                right += row["right"][f"tier-{tier}"]
                break
    return {"tiers": chosen, "cost_usd": str(cost), "correct": right}


def step_oracle_at(table: Mapping[str, Mapping[str, Any]], needed: int, flex: bool = False) -> dict[str, Any]:
    """The cheapest way to pin every step to one tier (through Tierwise) and still get ``needed`` right answers.

    A per-step router with hindsight: unlike ``step_oracle`` it may leave a step a little less right than
    all-mini where that buys more elsewhere. Exact (dynamic programming over right answers).
    """

    def price(step: str, tier: str) -> Decimal:
        spent = Decimal(table[step]["cost"][f"tier-{tier}"])
        return spent * FLEX_SHARE if flex and STEPS[step].flex else spent

    best: dict[int, tuple[Decimal, dict[str, str]]] = {0: (Decimal(0), {})}
    for step, row in table.items():
        following: dict[int, tuple[Decimal, dict[str, str]]] = {}
        for right, (cost, chosen) in best.items():
            for tier in LADDER:
                key, spent = right + row["right"][f"tier-{tier}"], cost + price(step, tier)
                if key not in following or spent < following[key][0]:
                    following[key] = (spent, {**chosen, step: tier})
        best = following
    feasible = [(cost, right, chosen) for right, (cost, chosen) in best.items() if right >= needed]
    if not feasible:
        return {"tiers": {}, "cost_usd": "0", "correct": 0, "reached": False}
    cost, right, chosen = min(feasible, key=lambda found: (found[0], -found[1]))
    return {"tiers": chosen, "cost_usd": str(cost), "correct": right, "reached": True}


def oracle(
    runs: Sequence[Run], baselines: Mapping[str, Mapping[int, Outcome]], needed: int | None, flex: bool = False
) -> dict[str, Any]:
    """The cheapest way to get ``needed`` right answers with one call per run, knowing every answer in advance.

    Every run starts on nano; a run nano gets wrong moves to the cheapest tier that gets it right; each move
    buys one right answer, so the cheapest moves first is optimal. ``needed`` None: every possible move.
    """

    def price(o: Outcome) -> Decimal:
        return o.flex_cost if flex and o.flex_cost is not None else o.cost

    nano = baselines["all-nano"]
    spent = sum((price(nano[run.index]) for run in runs), Decimal(0))
    right = sum(nano[run.index].correct for run in runs)
    moves = []
    for run in runs:
        if nano[run.index].correct:
            continue
        for tier in ("mini", "full"):
            o = baselines[f"all-{tier}"][run.index]
            if o.correct:
                moves.append(price(o) - price(nano[run.index]))
                break
    moves.sort()
    goal = right + len(moves) if needed is None else needed
    for move in moves:
        if right >= goal:
            break
        spent, right = spent + move, right + 1
    return {"cost_usd": str(spent), "correct": right, "reached": right >= goal, "fixable": len(moves)}


def learning_curve(
    history: Sequence[Wave], outcomes: Mapping[int, Outcome], mini: Mapping[int, Outcome]
) -> list[dict[str, Any]]:
    """Per wave: the configuration's cost, its audits, right answers and tier mix, and all-mini's on the same runs."""
    rows = []
    for wave in history:
        mine = [outcomes[i] for i in range(wave.first, wave.last + 1)]
        theirs = [mini[i] for i in range(wave.first, wave.last + 1)]
        tiers = Counter(o.tier for o in mine)
        rows.append(
            {
                "first": wave.first,
                "last": wave.last,
                "runs": len(mine),
                "cost_usd": str(sum((o.cost for o in mine), Decimal(0))),
                "audit_cost_usd": str(wave.audit_cost),
                "audited": wave.audited,
                "correct": sum(o.correct for o in mine),
                "tiers": {tier: tiers[tier] for tier in LADDER},
                "mini_cost_usd": str(sum((o.cost for o in theirs), Decimal(0))),
                "mini_correct": sum(o.correct for o in theirs),
            }
        )
    return rows


def curve(rows: Sequence[Mapping[str, Any]], every: int) -> list[dict[str, Any]]:
    """Learning-curve rows summed ``every`` waves at a time, with the ratios a reader compares."""
    blocks = []
    for start in range(0, len(rows), every):
        block = rows[start : start + every]
        runs = sum(row["runs"] for row in block)
        cost = sum((Decimal(row["cost_usd"]) for row in block), Decimal(0))
        audits = sum((Decimal(row["audit_cost_usd"]) for row in block), Decimal(0))
        mini = sum((Decimal(row["mini_cost_usd"]) for row in block), Decimal(0))
        blocks.append(
            {
                "runs": f"{block[0]['first']:,}-{block[-1]['last']:,}",
                "cost_vs_mini": share(cost + audits, mini),
                "audit_vs_mini": share(audits, mini),
                "correctness": sum(row["correct"] for row in block) / runs,
                "mini_correctness": sum(row["mini_correct"] for row in block) / runs,
                "tier_mix": {tier: sum(row["tiers"][tier] for row in block) / runs for tier in LADDER},
            }
        )
    return blocks


def curve_table(report: Mapping[str, Any], every: int) -> list[str]:
    """The learning configurations side by side, ``every`` waves per row, as Markdown lines."""
    names = [name for name in LEARNING if name in report["learning"]]
    if not names:
        return []
    blocks = {name: curve(report["learning"][name], every) for name in names}
    header = "| runs | all-mini right | " + " | ".join(
        f"`{name}` cost / all-mini | `{name}` audits / all-mini | `{name}` right | `{name}` tier mix" for name in names
    )
    lines = [header + " |", "|---|---|" + "---|---|---|---|" * len(names)]
    for row in range(len(blocks[names[0]])):
        first = blocks[names[0]][row]
        cells = [first["runs"], f"{first['mini_correctness']:.1%}"]
        for name in names:
            block = blocks[name][row]
            cells += [
                f"{block['cost_vs_mini']:.0%}",
                f"{block['audit_vs_mini']:.0%}",
                f"{block['correctness']:.1%}",
                " / ".join(f"{block['tier_mix'][tier]:.0%}" for tier in LADDER),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def decision_timeline(history: Sequence[Wave]) -> dict[str, list[tuple[int, str | None]]]:
    """Per step, where ``tier: auto`` starts it and from which run on: [(first run after the change, tier)]."""
    timeline: dict[str, list[tuple[int, str | None]]] = {}
    for wave in history:
        for step, tier in wave.decisions.items():
            changes = timeline.setdefault(step, [])
            if not changes or changes[-1][1] != tier:
                changes.append((wave.last + 1, tier))
    return timeline


def verdicts(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the numbers that meet or miss it."""
    steady = report["steady"]
    mini, full = Decimal(steady["all-mini"]["standard_cost_usd"]), Decimal(steady["all-full"]["standard_cost_usd"])
    mini_right = steady["all-mini"]["correctness"]
    found = []
    for name in ("tier-nano", "auto", "tier-nano-flex", "auto-flex"):  # tier-mini and tier-full are references
        if name not in steady:
            continue
        s = steady[name]
        total = Decimal(s["total_cost_usd"])
        points = (s["correctness"] - mini_right) * 100
        flex = name.endswith("-flex")
        cost_limit = COST_TARGETS["flex_vs_mini"] if flex else COST_TARGETS["auto_vs_mini"]
        checks = {
            "validity": (s["validity"] >= VALIDITY_TARGET and s["explicit_errors"] == 0, f"{s['validity']:.2%}"),
            "correctness within 1 point of all-mini": (
                points >= -CORRECTNESS_POINTS - 1e-9,
                f"{points:+.2f} points",
            ),
            f"cost ≤ {cost_limit:.0%} of all-mini": (total <= cost_limit * mini, f"{share(total, mini):.1%}"),
        }
        if flex:
            checks[f"cost ≤ {COST_TARGETS['flex_vs_full']:.0%} of all-full"] = (
                total <= COST_TARGETS["flex_vs_full"] * full,
                f"{share(total, full):.1%}",
            )
        bound = report["oracle"]["same_correctness"][name]
        if bound["reached"]:
            ratio = share(total, Decimal(bound["cost_usd"]))
            checks["cost ≤ 1.5 × the oracle's at the same correctness"] = (
                ratio <= ORACLE_FACTOR,
                f"{ratio:.2f}×",
            )
        else:
            checks["cost ≤ 1.5 × the oracle's at the same correctness"] = (True, "above the oracle's reach")
        found.append({"configuration": name, "checks": {k: {"met": m, "value": v} for k, (m, v) in checks.items()}})
    return found


def shortfall(report: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Where a learning configuration spends beyond the step oracle, step by step, and in total.

    Per step: the tier ``tier: auto`` started most of the steady state's runs on, the step oracle's tier,
    and the cost of each. The excess adds up by where the step sat against the oracle's tier (above, at,
    below); the audits come on top.
    """
    flex = name.endswith("-flex")
    pinned = report["step_oracle"]["flex" if flex else "standard"]
    rows, groups = [], {"above": Decimal(0), "at": Decimal(0), "below": Decimal(0)}
    for step, row in report["by_step"].items():
        starts = Counter(row["start"][name])
        tier = starts.most_common(1)[0][0]
        target = pinned["tiers"][step]
        oracle_cost = Decimal(row["cost"][f"tier-{target}"])
        if flex and STEPS[step].flex:
            oracle_cost *= FLEX_SHARE
        cost = Decimal(row["cost"][name])
        place = (
            "at"
            if tier == target
            else ("above" if tier in LADDER and LADDER.index(tier) > LADDER.index(target) else "below")
        )
        groups[place] += cost - oracle_cost
        rows.append(
            {
                "step": step,
                "start": tier,
                "start_share": starts[tier] / row["runs"],
                "oracle_tier": target,
                "place": place,
                "cost_usd": str(cost),
                "oracle_cost_usd": str(oracle_cost),
                "excess_usd": str(cost - oracle_cost),
            }
        )
    rows.sort(key=lambda row: Decimal(row["excess_usd"]), reverse=True)
    return {
        "rows": rows,
        "excess_usd": {place: str(value) for place, value in groups.items()},
        "audit_cost_usd": report["steady"][name]["audit_cost_usd"],
        "oracle_cost_usd": pinned["cost_usd"],
    }


# -- the report ------------------------------------------------------------------------------------


def money(value: str | Decimal) -> str:
    amount = Decimal(value)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.4f}"


def _evidence(audit: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for tier in ("nano", "mini"):
        seen = audit.get(tier)
        if seen and seen["audited"]:
            agreed = round(seen["agreement"] * seen["audited"])
            parts.append(f"{agreed}/{seen['audited']} ({seen['lower_bound']:.0%})")
        else:
            parts.append("—")
    return ", ".join(parts)


def _mix(mix_: Mapping[str, int], runs: int) -> str:
    return " / ".join(f"{mix_.get(tier, 0) / runs:.0%}" for tier in LADDER)


def markdown(report: Mapping[str, Any], every: int = 1) -> str:
    """The report's tables as Markdown, the learning curve ``every`` waves per row."""
    steady = report["steady"]
    mini = Decimal(steady["all-mini"]["standard_cost_usd"])
    full = Decimal(steady["all-full"]["standard_cost_usd"])
    runs = steady["all-mini"]["runs"]
    lines = [
        f"Steady state: the last {runs:,} runs ({steady['all-mini']['items']:,} whole items). Costs include every "
        "attempt; `auto`'s total adds its audits. Tier mix: nano / mini / full (the tier that answered).",
        "",
        "| configuration | cost | audits (share of total) | total | / all-mini | / all-full | validity | errors "
        "| correct (runs) "
        "| correct (items) | tier mix |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in steady.items():
        total = Decimal(s["total_cost_usd"])
        items_right = f"{s['items_right'] / s['items']:.1%}" if s["items"] else "—"
        audits = f"{money(s['audit_cost_usd'])} ({s['audit_share']:.1%})" if Decimal(s["audit_cost_usd"]) else "—"
        lines.append(
            f"| {name} | {money(s['cost_usd'])} | {audits} | {money(total)} "
            f"| {share(total, mini):.1%} | {share(total, full):.1%} | {s['validity']:.2%} | {s['explicit_errors']} "
            f"| {s['correctness']:.2%} | {items_right} | {_mix(s['tier_mix'], s['runs'])} |"
        )
    for name in BASELINES:
        cost = Decimal(steady[name]["flex_priced_cost_usd"])
        lines.append(
            f"| {name}, flex steps at flex prices | {money(cost)} | — | {money(cost)} | {share(cost, mini):.1%} "
            f"| {share(cost, full):.1%} | — | — | — | — | — |"
        )
    for label, point in report["oracle"]["points"].items():
        cost = Decimal(point["cost_usd"])
        lines.append(
            f"| {label} | {money(cost)} | — | {money(cost)} | {share(cost, mini):.1%} | {share(cost, full):.1%} "
            f"| — | — | {point['correct'] / runs:.2%} | — | — |"
        )
    lines += ["", "| target | configuration | value | met |", "|---|---|---|---|"]
    for verdict in report["targets"]:
        for check, result in verdict["checks"].items():
            lines.append(
                f"| {check} | {verdict['configuration']} | {result['value']} | {'yes' if result['met'] else 'no'} |"
            )
    if report["learning"]:
        lines += [
            "",
            f"Learning curve, every {every} wave(s) of about {report['args'].get('wave', 100)} runs (cost: runs plus "
            "the audits that landed meanwhile, over all-mini's cost on the same runs; tier mix: nano / mini / full):",
            "",
            *curve_table(report, every),
        ]
    for name in LEARNING:
        if name not in steady or not report["step_oracle"]:
            continue
        gap = shortfall(report, name)
        lines += [
            "",
            f"`{name}` beside the step oracle, per step (steady state; start: the tier most runs started on; "
            "excess: `auto`'s cost minus the step pinned to the oracle's tier):",
            "",
            "| step | start | oracle tier | cost | oracle's cost | excess | excess / all-mini |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in gap["rows"]:
            lines.append(
                f"| {row['step']} | {row['start']} ({row['start_share']:.0%}) | {row['oracle_tier']} "
                f"| {money(row['cost_usd'])} | {money(row['oracle_cost_usd'])} | {money(row['excess_usd'])} "
                f"| {share(Decimal(row['excess_usd']), mini):.1%} |"
            )
        excess = {place: Decimal(value) for place, value in gap["excess_usd"].items()}
        audit_total = Decimal(gap["audit_cost_usd"])
        lines += [
            "",
            f"Totals: the step oracle {money(gap['oracle_cost_usd'])} "
            f"({share(Decimal(gap['oracle_cost_usd']), mini):.1%} of all-mini); steps started above their oracle "
            f"tier {money(excess['above'])} ({share(excess['above'], mini):+.1%}), at it {money(excess['at'])} "
            f"({share(excess['at'], mini):+.1%}), below it {money(excess['below'])} "
            f"({share(excess['below'], mini):+.1%}); audits {money(audit_total)} ({share(audit_total, mini):+.1%}).",
        ]
    lines += [
        "",
        "Per step, steady state (correct share per configuration; `auto` start tier mix nano / mini / full; "
        "the step oracle's tier):",
        "",
        "| step | runs | levels e/s/m/h | all-nano | all-mini | all-full | tier-nano | tier-mini | tier-full | auto "
        "| auto start | auto cost / all-mini | step oracle | auto's tier at the end | audits: nano, mini (agreed "
        "of n, lower bound) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    steps_said = {step["step"]: step for step in report.get("steps", {}).get("auto", {}).get("steps", [])}
    oracle_tiers = report["step_oracle"].get("standard", {}).get("tiers", {})
    for step, row in report["by_step"].items():
        n = row["runs"]
        levels = "/".join(str(row["levels"].get(level, 0)) for level in ("easy", "simple", "multi", "hard"))
        right = {name: f"{row['right'][name] / n:.0%}" if name in row["right"] else "—" for name in ARMS}
        start = row["start"].get("auto", {})
        cost_share = share(Decimal(row["cost"].get("auto", "0")), Decimal(row["cost"]["all-mini"]))
        said = steps_said.get(step, {})
        lines.append(
            f"| {step} | {n} | {levels} | {right['all-nano']} | {right['all-mini']} | {right['all-full']} "
            f"| {right['tier-nano']} | {right['tier-mini']} | {right['tier-full']} | {right['auto']} "
            f"| {_mix(start, n)} | {cost_share:.0%} | {oracle_tiers.get(step, '—')} "
            f"| {said.get('start_tier') or 'cold start'} "
            f"| {_evidence(said.get('audit', {}))} |"
        )
    return "\n".join(lines) + "\n"


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Counter | defaultdict):
        return dict(value)
    raise TypeError(type(value).__name__)


def build_report(
    items: Sequence[Item],
    steady_from: int,
    results: Mapping[str, Mapping[int, Outcome]],
    learning: Mapping[str, tuple[list[Wave], dict[str, Any], dict[str, Any]]],
) -> dict[str, Any]:
    """Everything the benchmark found, from the outcomes (no network)."""
    runs = all_runs(items)
    steady_runs = [run for run in runs if run.index >= steady_from]
    steady_items = [item for item in items if item.runs[0].index >= steady_from]
    steady: dict[str, Any] = {}
    for name in ARMS:
        if name not in results:
            continue
        chosen = [results[name][run.index] for run in steady_runs]
        s = summarise(chosen, steady_items)
        audit = Decimal(0)
        if name in learning:
            audit = sum((Decimal(step["audit_cost_usd"]) for step in learning[name][2]["steps"]), Decimal(0))
            s["service_reported_cost_usd"] = str(
                sum((Decimal(step["cost_usd"]) for step in learning[name][2]["steps"]), Decimal(0))
            )
        s["audit_cost_usd"] = str(audit)
        s["total_cost_usd"] = str(Decimal(s["cost_usd"]) + audit)
        s["audit_share"] = share(audit, Decimal(s["total_cost_usd"]))
        if name in BASELINES:
            s["flex_priced_cost_usd"] = summarise(chosen, steady_items, flex=True)["cost_usd"]
        steady[name] = s
    baselines = {name: results[name] for name in BASELINES}
    mini_right = steady["all-mini"]["correct"]
    points = {
        "oracle, every run right that any tier gets right": oracle(steady_runs, baselines, None),
        "oracle at all-mini's correctness": oracle(steady_runs, baselines, mini_right),
        "oracle at all-mini's correctness, flex steps on flex": oracle(steady_runs, baselines, mini_right, True),
    }
    same = {
        name: oracle(steady_runs, baselines, steady[name]["correct"], name.endswith("-flex"))
        for name in TIERWISE
        if name in steady
    }
    table = by_step(steady_runs, results)
    step_points: dict[str, Any] = {}
    if all(f"tier-{tier}" in results for tier in LADDER):
        step_points = {"standard": step_oracle(table), "flex": step_oracle(table, flex=True)}
        points["step oracle (each step pinned to its cheapest tier within 1 point of all-mini)"] = step_points[
            "standard"
        ]
        points["step oracle, flex steps at flex prices (estimate)"] = step_points["flex"]
        band = mini_right - math.floor(len(steady_runs) * CORRECTNESS_POINTS / 100)
        points["best per-step pinning within 1 point of all-mini overall"] = step_oracle_at(table, band)
        points["best per-step pinning within 1 point of all-mini overall, flex (estimate)"] = step_oracle_at(
            table, band, flex=True
        )
    report: dict[str, Any] = {
        "workload": {
            "items": len(items),
            "runs": len(runs),
            "steady_from_run": steady_from,
            "steady_runs": len(steady_runs),
            "mix": {k: dict(v) for k, v in vars(mix(steady_runs)).items()},
            "designs": dict(Counter(item.design for item in items)),
        },
        "steady": steady,
        "oracle": {"points": points, "same_correctness": same},
        "step_oracle": step_points,
        "by_step": json.loads(json.dumps(table, default=_json)),
        "learning": {
            name: learning_curve(history, results[name], results["all-mini"])
            for name, (history, _, _) in learning.items()
        },
        "steps": {name: final for name, (_, final, _) in learning.items()},
        "decisions": {name: decision_timeline(history) for name, (history, _, _) in learning.items()},
        "steps_steady": {name: window for name, (_, _, window) in learning.items()},
    }
    report["targets"] = verdicts(report)
    return report


# -- running ---------------------------------------------------------------------------------------


def workload(learning: int, steady: int, seed: int) -> tuple[list[Item], int]:
    """Items holding at least ``learning`` runs before the steady state and ``steady`` in it; where it begins."""
    extra = 0
    while True:
        items = build(learning + steady + extra, seed)
        steady_from = next((i.runs[0].index for i in items if i.runs[0].index >= learning), len(all_runs(items)))
        missing = steady - (len(all_runs(items)) - steady_from)
        if missing <= 0:
            return items, steady_from
        extra += missing


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    items, steady_from = workload(args.learning, args.runs, args.seed)
    runs = all_runs(items)
    tasks = [task_for(run) for run in runs]
    steady_items = [item for item in items if item.runs[0].index >= steady_from]
    arms = [arm for arm in ARMS if arm in args.arms or arm in BASELINES]
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    progress(f"seed {args.seed}: {len(items):,} items, {len(runs):,} runs; steady state from run {steady_from:,}")
    results: dict[str, dict[int, Outcome]] = {}
    learning: dict[str, tuple[list[Wave], dict[str, Any], dict[str, Any]]] = {}
    walls: dict[str, float] = {}
    with simulator_process(simulator_config(args.seed)) as upstream:
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2, keepalive_timeout=2)
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            for name in arms:
                began = time.perf_counter()
                if name in BASELINES:
                    send = sender(http, upstream, tasks, name.removeprefix("all-"), None)
                    results[name] = await run_items(items, args.concurrency, send)
                elif name in LEARNING:
                    tier, flex = TIERWISE[name]
                    with service_process(upstream, **SERVICE_ENV) as base:
                        outcomes, history, final, since = await learning_arm(
                            http, base, name, items, tasks, tier, flex, args.concurrency, args.wave, steady_from,
                            progress,
                        )  # fmt: skip
                        window = await steps_report(http, base, since) if since else {"steps": []}
                    results[name] = outcomes
                    learning[name] = (history, final, window)
                else:
                    tier, flex = TIERWISE[name]
                    with service_process(upstream, **SERVICE_ENV) as base:
                        send = sender(http, base, tasks, tier, flex)
                        results[name] = await run_items(steady_items, args.concurrency, send)
                walls[name] = round(time.perf_counter() - began, 1)
                progress(f"{name}: {len(results[name]):,} runs in {walls[name]:.1f} s")
    report = build_report(items, steady_from, results, learning)
    report["machine"] = machine()
    report["args"] = {key: value for key, value in vars(args).items() if key != "command"}
    report["simulator"] = {"profiles": PROFILES, "level_rates": LEVEL_RATES, "flex_unavailable": FLEX_UNAVAILABLE}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["wall_s_by_configuration"] = walls
    return report


def serve_simulator(args: argparse.Namespace) -> None:
    config = StepSimulatorConfig.model_validate(json.loads(Path(args.config).read_text(encoding="utf-8")))
    uvicorn.run(create_simulator(config), host=args.host, port=args.port, log_level=args.log_level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "simulator", "report"])
    parser.add_argument("--runs", type=int, default=2000, help="runs in the steady state (default 2000)")
    parser.add_argument("--learning", type=int, default=6000, help="runs before the steady state (default 6000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=16, help="items in flight (default 16)")
    parser.add_argument("--wave", type=int, default=100, help="runs per wave of a learning configuration")
    parser.add_argument("--arms", default=",".join(ARMS), help="configurations to run (the baselines always run)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    parser.add_argument("--curve-every", type=int, default=1, help="waves per row of the Markdown learning curve")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--source", default="", help="what was benchmarked (e.g. a commit), kept in the report")
    parser.add_argument("--config", help="simulator: its JSON configuration")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.command == "simulator":
        if not args.config:
            parser.error("simulator needs --config")
        serve_simulator(args)
        return
    if args.command == "report":  # the tables again, from a saved report
        if not args.json:
            parser.error("report needs --json FILE (a saved report)")
        tables = markdown(json.loads(Path(args.json).read_text(encoding="utf-8")), args.curve_every)
        if args.markdown:
            Path(args.markdown).write_text(tables)
        print(tables, file=sys.stdout, flush=True)
        return
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        parser.error(f"unknown configurations: {', '.join(sorted(unknown))}")
    args.arms = args.arms.split(",")
    report = asyncio.run(run_benchmark(args))
    text = json.dumps(report, indent=2, default=_json)
    if args.json:
        Path(args.json).write_text(text)
    tables = markdown(report, args.curve_every)
    if args.markdown:
        Path(args.markdown).write_text(tables)
    print(tables, file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
