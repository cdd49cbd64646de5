"""``tierwise batch``: run a JSON Lines file of requests through one node, with progress, in order.

Each input line is one node request (``defaults`` fill in what a line leaves out); each output line
is that request's answer — the success response or its problem object — in the input's order, written
as soon as every earlier line is done, so memory stays flat and a partial file is usable. Items run
concurrently, paced per tier by the same rate limiter the service uses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO

from tqdm import tqdm

from nodes.catalog import Node
from nodes.errors import ProblemError
from nodes.jsonbody import parse_json_object
from nodes.keys import Caller
from nodes.submit import Submissions

CLI_CALLER = Caller(key_id="cli", name="cli")
"""Runs of ``tierwise batch`` are filed under this identity, which no API key can have."""


@dataclass
class Tally:
    """What a batch file run did."""

    items: int = 0
    succeeded: int = 0
    failed: int = 0
    cost_usd: Decimal = Decimal(0)
    seconds: float = 0.0
    upstream_rate_limited: int = 0
    failures: dict[int, str] = field(default_factory=dict)

    def add(self, line_number: int, answer: dict[str, Any], cost_usd: Decimal) -> None:
        """Count one answer and what it cost."""
        self.cost_usd += cost_usd
        for attempt in answer.get("attempts") or []:
            if isinstance(attempt, dict) and attempt.get("outcome") == "rate_limited":
                self.upstream_rate_limited += 1
        if isinstance(answer.get("status"), int) and answer["status"] >= 400:
            self.failed += 1
            self.failures[line_number] = str(answer.get("detail", ""))
        else:
            self.succeeded += 1


def parse_line(line_number: int, line: str) -> dict[str, Any] | ProblemError:
    """One input line as a JSON object, or a problem saying what is wrong with it and on which line."""
    try:
        return parse_json_object(line.encode("utf-8", "surrogatepass"))
    except ProblemError as exc:
        return type(exc)(f"line {line_number}: {exc.detail}", errors=exc.errors)


async def run_file(
    submissions: Submissions,
    node: Node[Any],
    lines: Iterable[str],
    sink: TextIO,
    *,
    defaults: dict[str, Any],
    concurrency: int,
    progress: bool = True,
) -> Tally:
    """Run every non-blank line through ``node``; write answers to ``sink`` in input order."""
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    tally = Tally(items=len(numbered))
    started = time.monotonic()
    done: dict[int, dict[str, Any]] = {}
    next_to_write = 0
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(numbered), unit="item", disable=not progress, dynamic_ncols=True)

    async def one(index: int, number: int, line: str) -> None:
        nonlocal next_to_write
        async with limit:
            item = parse_line(number, line)
            if isinstance(item, ProblemError):
                answer, cost = item.to_problem(), Decimal(0)
            else:
                result = await submissions.item(node, item, defaults, caller=CLI_CALLER)
                answer, cost = result.body, result.cost_usd
        tally.add(number, answer, cost)
        done[index] = answer
        while next_to_write in done:
            sink.write(json.dumps(done.pop(next_to_write)) + "\n")
            next_to_write += 1
        bar.set_postfix(ok=tally.succeeded, failed=tally.failed, cost=f"${tally.cost_usd:.4f}", refresh=False)
        bar.update(1)

    try:
        await asyncio.gather(*(one(index, number, line) for index, (number, line) in enumerate(numbered)))
    finally:
        bar.close()
        sink.flush()
    tally.seconds = time.monotonic() - started
    return tally
