"""A 10,000-item classify batch against an upstream that enforces a requests-per-minute limit with 429s.

The sandbox upstream runs in its own process and enforces ``--rpm`` like OpenAI does (a continuously
refilling bucket holding ``--burst-s`` seconds of requests; a request over it gets 429 with
``retry-after-ms``); it answers after ``--latency-ms``. ``tierwise batch`` runs the file in another
process, learning the limit from the upstream's ``x-ratelimit-*`` headers (``--configured`` tells it
the limit up front instead). The lower bound on wall time is ``(items - bucket) / (rpm / 60)`` plus
one latency; the report gives the wall time against it, the 429s the upstream sent, and items lost.

    python bench/batch_ratelimit.py [--items 10000] [--rpm 6000] [--latency-ms 280] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _harness import machine, sandbox_process, service_env

TEXTS = [
    "Billing problem: I was charged twice for my subscription.",
    "The export button crashes the app, looks like a bug.",
    "Feature request: please add dark mode.",
    "How do I change the e-mail address on my account?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rpm", type=int, default=6_000)
    parser.add_argument("--burst-s", type=float, default=1.0)
    parser.add_argument("--latency-ms", type=float, default=280)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--configured", action="store_true", help="tell the service the limit (TIERWISE_NANO_RPM)")
    args = parser.parse_args()
    config = {
        "latency_ms": args.latency_ms,
        "rate_limit_rpm": args.rpm,
        "rate_limit_burst_s": args.burst_s,
        "log_requests": False,
    }
    with tempfile.TemporaryDirectory() as folder, sandbox_process(config) as upstream:
        source = Path(folder) / "items.jsonl"
        source.write_text("".join(json.dumps({"input": f"#{n} {TEXTS[n % 4]}"}) + "\n" for n in range(args.items)))
        out = Path(folder) / "answers.jsonl"
        extra = {"TIERWISE_NANO_RPM": str(args.rpm)} if args.configured else {}
        command = [
            sys.executable, "-m", "nodes", "batch", str(source), "--node", "classify", "--out", str(out), "--quiet",
            "--concurrency", str(args.concurrency),
            "--defaults", json.dumps({"labels": ["billing", "bug", "feature_request", "account"]}),
        ]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(
            command, env=service_env(upstream, folder, **extra), capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        stats = httpx.get(upstream.removesuffix("/v1") + "/_sandbox/stats").json()
        answers = [json.loads(line) for line in out.read_text().splitlines()]
    answered = sum(1 for answer in answers if "output" in answer)
    bucket = max(1.0, args.rpm / 60 * args.burst_s)
    bound = max(0.0, args.items - bucket) / (args.rpm / 60) + args.latency_ms / 1000
    report = {
        "machine": machine(),
        "args": vars(args),
        "wall_s": round(wall, 2),
        "lower_bound_s": round(bound, 2),
        "wall_over_bound": round(wall / bound, 3),
        "upstream_served": stats["served"],
        "upstream_429s": stats["rate_limited"],
        "answers_written": len(answers),
        "answered_ok": answered,
        "items_lost": args.items - answered,
        "in_order": all(a["metadata"] == {} for a in answers) and len(answers) == args.items,
        "cli_summary": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
