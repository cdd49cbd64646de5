"""Service overhead under load: 200 concurrent clients, upstream latency 280 ms, beside direct calls.

Three processes on loopback: the sandbox upstream (280 ms per reply), ``tierwise serve`` pointed at it,
and this load generator. Round A sends classify requests through the service; round B sends the same
chat-completions request straight to the upstream. Rounds alternate (A B A B) so both see the same
machine. Overhead per request is measured two ways: client-side (total latency minus the upstream
latency the service reports in ``attempts``) and server-side (``X-Tierwise-Overhead-Ms``).

    python bench/overhead.py [--clients 200] [--requests 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
from _harness import KEY, machine, sandbox_process, service_process, summary

LABELS = ["billing", "bug", "feature_request", "account", "other"]
TICKET = "Hello, I was charged twice for my subscription this month. Can you refund one of the payments?"
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


async def load(send: Any, clients: int, total: int) -> tuple[list[float], list[float], list[float], float, int]:
    """Run ``total`` requests from ``clients`` concurrent workers; latencies in ms and requests/s."""
    totals: list[float] = []
    client_overhead: list[float] = []
    server_overhead: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            ok, upstream_ms, header_ms = await send()
            elapsed = (time.perf_counter() - started) * 1000
            if not ok:
                errors += 1
                continue
            totals.append(elapsed)
            client_overhead.append(elapsed - upstream_ms)
            if header_ms is not None:
                server_overhead.append(header_ms)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - started
    return totals, client_overhead, server_overhead, total / seconds, errors


async def through_service(http: aiohttp.ClientSession, base: str) -> tuple[bool, float, float | None]:
    async with http.post(
        f"{base}/v1/nodes/classify", json={"input": TICKET, "labels": LABELS}, headers={"X-Api-Key": KEY}
    ) as response:
        if response.status != 200:
            await response.read()
            return False, 0.0, None
        body = await response.json()
        header = float(response.headers["x-tierwise-overhead-ms"])
    upstream_ms = sum(attempt["latency_ms"] + attempt["waited_ms"] for attempt in body["attempts"])
    return True, float(upstream_ms), header


async def direct(http: aiohttp.ClientSession, upstream: str, latency_ms: float) -> tuple[bool, float, float | None]:
    body = {
        "model": "gpt-5.4-nano",
        "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": TICKET}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}},
    }
    async with http.post(f"{upstream}/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as response:
        await response.read()
        return response.status == 200, latency_ms, None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=280)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"service": [], "direct": []}
    # The upstream advertises (and enforces) a limit far above this load, so pacing never holds a call back.
    upstream_config = {"latency_ms": args.latency_ms, "log_requests": False, "rate_limit_rpm": 10_000_000}
    with sandbox_process(upstream_config) as upstream:
        with service_process(upstream, TIERWISE_BATCH_CONCURRENCY="64") as base:
            connector = aiohttp.TCPConnector(limit=args.clients)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
                await load(lambda: through_service(http, base), args.clients, args.clients)  # warm-up
                await load(lambda: direct(http, upstream, args.latency_ms), args.clients, args.clients)
                for _ in range(args.rounds):
                    for name, send in (
                        ("service", lambda: through_service(http, base)),
                        ("direct", lambda: direct(http, upstream, args.latency_ms)),
                    ):
                        totals, client_oh, server_oh, rps, errors = await load(send, args.clients, args.requests)
                        results[name].append(
                            {
                                "total_ms": summary(totals),
                                "overhead_ms_client_side": summary(client_oh),
                                "overhead_ms_server_header": summary(server_oh) if server_oh else None,
                                "requests_per_s": round(rps, 1),
                                "errors": errors,
                            }
                        )
    print(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
