"""The ``tierwise`` command: ``serve``, ``sandbox``, ``batch``, ``lint-make``, ``keys`` and ``db``.

Every failure a user can cause (bad settings, a taken port, a bad fault file) ends with one sentence
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import uvicorn

from nodes import __version__
from nodes.errors import ConfigError, TierwiseError
from nodes.keys import KeyRing
from nodes.settings import Settings, load_settings
from nodes.store import Row, open_store

KEEP_ALIVE_S = 5
"""An idle keep-alive connection is closed after this many seconds without a new request."""

MAX_HEADER_BYTES = 16 * 1024
"""The largest request head the h11 parser buffers (``--http h11``); httptools sets no such bound."""


async def _prepare_store(settings: Settings) -> tuple[str, str | None]:
    """Migrate the store and make sure a key exists; returns where the store is and a key made now, if any."""
    store = await open_store(settings)
    try:
        keys = KeyRing(store, settings.api_keys)
        created = await keys.create("default") if await keys.count() == 0 else None
    finally:
        await store.close()
    return store.where, created


def _serve(args: argparse.Namespace) -> int:
    from nodes.app import check_settings, create_app

    settings = load_settings()
    check_settings(settings)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.workers > 1 and not settings.database_url:
        raise ConfigError(
            f"--workers {args.workers} needs PostgreSQL: a SQLite file (TIERWISE_DB) serves one process. "
            "Set DATABASE_URL=postgresql://... to run several processes, or drop --workers."
        )
    where, key = asyncio.run(_prepare_store(settings))
    if key is not None:
        print(
            "No API key existed, so one was created (shown once; store it, then pass it as "
            f"'Authorization: Bearer <key>'):\n\n    {key}\n",
            file=sys.stderr,
        )
    processes = f", {args.workers} processes" if args.workers > 1 else ""
    print(
        f"Tierwise {__version__} listening on http://{args.host}:{args.port} (store: {where}{processes})",
        file=sys.stderr,
    )
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log,
        "http": args.http,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
    if args.workers > 1:
        uvicorn.run("nodes.app:create_app", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from nodes.store.schema import LATEST, upgrade

    async def go() -> tuple[str, list[str]]:
        store = await open_store(load_settings(), migrate=False)
        try:
            return store.where, [f"{m.version}: {m.name}" for m in await upgrade(store)]
        finally:
            await store.close()

    where, applied = asyncio.run(go())
    if applied:
        print(f"{where}: applied migration(s) " + "; ".join(applied), file=sys.stderr)
    else:
        print(f"{where}: already at schema version {LATEST}", file=sys.stderr)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from nodes.sandbox import create_sandbox_app, load_sandbox_config

    config = load_sandbox_config(args.faults)
    if args.latency_ms is not None:
        config = config.model_copy(update={"latency_ms": args.latency_ms})
    print(
        f"Tierwise sandbox upstream (OpenAI-compatible) on http://{args.host}:{args.port}/v1 "
        f"with {len(config.faults)} fault rule(s)",
        file=sys.stderr,
    )
    token = args.control_token or os.environ.get("TIERWISE_SANDBOX_CONTROL_TOKEN") or None
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: the control endpoints (/_sandbox/*) are open to anyone who can reach {args.host}; "
            "pass --control-token to lock them",
            file=sys.stderr,
        )
    app = create_sandbox_app(config, control_token=token)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _batch(args: argparse.Namespace) -> int:
    import contextlib
    import json

    from nodes.app import Tierwise
    from nodes.batchfile import run_file
    from nodes.cost import usd_text
    from nodes.submit import find_node

    try:
        defaults = json.loads(args.defaults) if args.defaults else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--defaults is not valid JSON: {exc.msg}") from exc
    if not isinstance(defaults, dict):
        raise ConfigError("--defaults must be a JSON object")
    settings = load_settings()
    node = find_node(args.node)
    with contextlib.ExitStack() as files:
        source = sys.stdin if args.file == "-" else files.enter_context(open(args.file, encoding="utf-8"))
        sink = sys.stdout if args.out == "-" else files.enter_context(open(args.out, "w", encoding="utf-8"))

        async def go() -> Any:
            tierwise = await Tierwise.open(settings)
            async with tierwise.running(background=False):
                return await run_file(
                    tierwise.submissions,
                    node,
                    source,
                    sink,
                    defaults=defaults,
                    concurrency=args.concurrency or settings.batch_concurrency,
                    progress=not args.quiet,
                )

        tally = asyncio.run(go())
    print(
        f"{tally.items} items: {tally.succeeded} succeeded, {tally.failed} failed, cost ${usd_text(tally.cost_usd)}, "
        f"{tally.seconds:.1f} s, {tally.upstream_rate_limited} upstream 429s",
        file=sys.stderr,
    )
    for line_number, detail in list(tally.failures.items())[:10]:
        print(f"  line {line_number}: {detail}", file=sys.stderr)
    return 0 if tally.failed == 0 else 1


def _lint_make(args: argparse.Namespace) -> int:
    from nodes.tools.make_lint import main as lint_main

    return lint_main(args.lint_args)


def _keys_create(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def go() -> tuple[str, str]:
        store = await open_store(settings)
        try:
            return store.where, await KeyRing(store, settings.api_keys).create(
                args.name, rpm=args.rpm, daily_budget_usd=args.daily_budget_usd
            )
        finally:
            await store.close()

    where, key = asyncio.run(go())
    print(key)
    print(f"Created key {args.name!r} in {where}. It is shown only once.", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    settings = load_settings()

    async def go() -> list[Row]:
        store = await open_store(settings)
        try:
            return await KeyRing(store, settings.api_keys).listing()
        finally:
            await store.close()

    for row in asyncio.run(go()):
        limits = f"rpm={row['rpm'] or '-'} budget={row['daily_budget_usd'] or '-'}"
        print(f"{row['name']}\t{row['prefix']}…\t{limits}\t{row['created_at']}")
    if settings.api_keys:
        print(f"(+{len(settings.api_keys)} from TIERWISE_API_KEYS)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="tierwise", description="Tier-aware LLM nodes for n8n and Make.")
    parser.add_argument("--version", action="version", version=f"tierwise {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument(
        "--http",
        default="auto",
        choices=["auto", "h11", "httptools"],
        help="HTTP/1.1 parser (default auto: httptools when installed); h11 refuses request heads over 16 KiB",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving the port (more than 1 needs DATABASE_URL)"
    )
    serve.set_defaults(handler=_serve)

    database = commands.add_parser("db", help="manage the store")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_upgrade = database_commands.add_parser(
        "upgrade", help="apply every pending schema migration (serve does this on start too)"
    )
    database_upgrade.set_defaults(handler=_db_upgrade)

    sandbox = commands.add_parser("sandbox", help="run the sandbox upstream alone (OpenAI-compatible)")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8090, help="port to listen on (default 8090)")
    sandbox.add_argument("--faults", metavar="FILE", help="JSON file with a sandbox configuration (faults, latency)")
    sandbox.add_argument("--latency-ms", type=float, help="added latency of every reply, in milliseconds")
    sandbox.add_argument(
        "--control-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on the /_sandbox/* control endpoints "
        "(default: TIERWISE_SANDBOX_CONTROL_TOKEN; unset, they are open)",
    )
    sandbox.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sandbox.set_defaults(handler=_sandbox)

    batch = commands.add_parser("batch", help="run a JSON Lines file of requests through one node")
    batch.add_argument("file", help="input file, one node request per line ('-' for standard input)")
    batch.add_argument("--node", required=True, help="classify, extract, draft or judge")
    batch.add_argument("--out", default="-", help="where to write one answer per line (default: standard output)")
    batch.add_argument("--defaults", help="a JSON object of fields applied to every line, e.g. the labels")
    batch.add_argument("--concurrency", type=int, help="items at once (default: TIERWISE_BATCH_CONCURRENCY)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_batch)

    lint = commands.add_parser(
        "lint-make", help="check Make blueprints (structure, mappings, module values)", add_help=False
    )
    lint.add_argument("lint_args", nargs=argparse.REMAINDER, help="blueprint files and options (see --help)")
    lint.set_defaults(handler=_lint_make)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="a name to recognise the key by")
    create.add_argument("--rpm", type=int, help="this key's requests per minute (default: TIERWISE_KEY_RPM)")
    create.add_argument(
        "--daily-budget-usd", type=Decimal, help="this key's spend per UTC day (default: TIERWISE_KEY_DAILY_BUDGET_USD)"
    )
    create.set_defaults(handler=_keys_create)
    listing = key_commands.add_parser("list", help="list key names (never the keys)")
    listing.set_defaults(handler=_keys_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tierwise`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["lint-make"]:  # its own options (--strict, --help ...) belong to the linter
        from nodes.tools.make_lint import main as lint_main

        return lint_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"tierwise: configuration error: {exc}", file=sys.stderr)
        return 2
    except TierwiseError as exc:
        print(f"tierwise: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tierwise: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
