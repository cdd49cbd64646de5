"""Service overhead under load: concurrent clients, upstream latency 280 ms, beside direct calls.

Processes on loopback: the sandbox upstream (280 ms per reply), one Tierwise deployment per path, and
this load generator. Paths:

* ``direct``: the same structured-output chat completion sent straight to the upstream;
* ``sqlite``: ``tierwise serve`` on SQLite (one process);
* ``postgres``: ``tierwise serve`` on PostgreSQL (one process);
* ``workers2``: ``tierwise serve --workers 2`` on PostgreSQL (two processes on one port);
* ``openai``: ``tierwise serve`` on SQLite, called on its OpenAI-compatible surface
  (``POST /v1/chat/completions``, model ``tierwise/nano``, the same schema as ``response_format``).

Every deployment is started before the first round and warmed up; rounds then visit the paths in turn
(A B C D A B C D ...) so all see the same machine. Overhead per request is measured client side (total
latency minus the upstream time the service reports in ``attempts``; for ``direct``, minus the
configured latency) and server side (``X-Tierwise-Overhead-Ms``). CPU per request is the CPU time of
the processes serving the path (all of them, for ``workers2``) over the round, divided by its requests.

    python bench/overhead.py [--clients 200] [--requests 3000] [--rounds 2] [--paths direct,sqlite,...]
                             [--baseline DIR]

``--baseline DIR`` adds a path ``baseline``: ``tierwise serve`` on SQLite from another checkout of the
project (``git worktree add DIR <commit>``), to measure two versions side by side in one run.

PostgreSQL paths use ``TIERWISE_BENCH_DATABASE_URL`` (default: the local server's ``test`` database),
each in a fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import aiohttp
import psycopg
from _harness import KEY, machine, sandbox_process, service_process, summary

LABELS = ["billing", "bug", "feature_request", "account", "other"]
TICKET = "Hello, I was charged twice for my subscription this month. Can you refund one of the payments?"
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": LABELS}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
POSTGRES = os.environ.get("TIERWISE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PATHS = ("direct", "sqlite", "postgres", "workers2", "openai")

Send = Callable[[], Awaitable[tuple[bool, float, float | None]]]


def serving_pids(url: str) -> list[int]:
    """The processes listening on the port of ``url`` (a uvicorn supervisor and its workers share it)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", out)})


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` so far."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the benchmark's PostgreSQL database; yields a ``DATABASE_URL`` that uses it."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in POSTGRES else "?"
        yield f"{POSTGRES}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def load(send: Send, clients: int, total: int) -> tuple[list[float], list[float], list[float], float, int]:
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


def chat_body(model: str) -> dict[str, Any]:
    """The structured-output chat completion ``direct`` sends upstream and ``openai`` sends to the service."""
    return {
        "model": model,
        "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": TICKET}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}},
    }


async def through_openai_surface(
    http: aiohttp.ClientSession, base: str, latency_ms: float
) -> tuple[bool, float, float | None]:
    """One chat completion on the service's OpenAI-compatible surface (one upstream call: the sandbox never fails)."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with http.post(f"{base}/v1/chat/completions", json=chat_body("tierwise/nano"), headers=headers) as response:
        await response.read()
        if response.status != 200:
            return False, 0.0, None
        return True, latency_ms, float(response.headers["x-tierwise-overhead-ms"])


async def direct(http: aiohttp.ClientSession, upstream: str, latency_ms: float) -> tuple[bool, float, float | None]:
    body = chat_body("gpt-5.4-nano")
    async with http.post(f"{upstream}/chat/completions", json=body, headers={"Authorization": "Bearer k"}) as response:
        await response.read()
        return response.status == 200, latency_ms, None


async def measure(args: argparse.Namespace, targets: dict[str, tuple[Send, list[int]]]) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for send, _ in targets.values():  # warm-up: connections, caches, the first requests' imports
        await load(send, args.clients, args.clients * 2)
    for _ in range(args.rounds):
        for name, (send, pids) in targets.items():
            cpu_before = cpu_seconds(pids) if pids else 0.0
            totals, client_oh, server_oh, rps, errors = await load(send, args.clients, args.requests)
            cpu = (cpu_seconds(pids) - cpu_before) if pids else None
            results[name].append(
                {
                    "total_ms": summary(totals),
                    "overhead_ms_client_side": summary(client_oh),
                    "overhead_ms_server_header": summary(server_oh) if server_oh else None,
                    "requests_per_s": round(rps, 1),
                    "cpu_ms_per_request": round(cpu / args.requests * 1000, 3) if cpu is not None else None,
                    "errors": errors,
                }
            )
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=280)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of: {', '.join(PATHS)}")
    parser.add_argument("--baseline", metavar="DIR", help="also serve SQLite from the checkout in DIR")
    args = parser.parse_args()
    paths = [path for path in args.paths.split(",") if path]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown:
        parser.error(f"unknown paths: {', '.join(unknown)}")
    if args.baseline:
        paths.append("baseline")
    # The upstream advertises (and enforces) a limit far above this load, so pacing never holds a call back.
    upstream_config = {"latency_ms": args.latency_ms, "log_requests": False, "rate_limit_rpm": 10_000_000}
    with ExitStack() as stack:
        upstream = stack.enter_context(sandbox_process(upstream_config))
        connector = aiohttp.TCPConnector(limit=args.clients * len(paths))
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            targets: dict[str, tuple[Send, list[int]]] = {}
            for path in paths:
                if path == "direct":
                    targets[path] = (lambda: direct(http, upstream, args.latency_ms), serving_pids(upstream))
                    continue
                extra: dict[str, str] = {"TIERWISE_BATCH_CONCURRENCY": "64"}
                serve_args: list[str] = []
                if path in ("postgres", "workers2"):
                    extra["DATABASE_URL"] = stack.enter_context(postgres_schema())
                if path == "workers2":
                    serve_args = ["--workers", "2"]
                checkout = args.baseline if path == "baseline" else None
                base = stack.enter_context(service_process(upstream, *serve_args, checkout=checkout, **extra))

                def send(base: str = base, path: str = path) -> Awaitable[tuple[bool, float, float | None]]:
                    if path == "openai":
                        return through_openai_surface(http, base, args.latency_ms)
                    return through_service(http, base)

                targets[path] = (send, serving_pids(base))
            results = await measure(args, targets)
    print(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
