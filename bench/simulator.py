"""The economics benchmark's simulator: the sandbox upstream with a behaviour profile per model plugged in.

The sandbox (``nodes.sandbox``) keeps its faults, rate limits, synthesis, request log and stats; the profiles
(``profiles``) shape the 200 replies of the models they match, through the sandbox's ``ReplyShaper`` seam.

A configuration file is a sandbox configuration plus ``behaviour``, which maps model names or ``fnmatch``
globs to a ``ModelBehaviour``; an exact name wins, otherwise the first matching glob in the order given:

    {"seed": 7, "log_requests": false, "behaviour": {"*nano*": {"latency_ms": 280, "correct_rate_multi": 0.71}}}

On top of the sandbox's endpoints, ``GET /_sandbox/behaviour`` answers ``{"by_model": {model: {"served",
"valid", "invalid_json", "schema_violation", "correct", "wrong", "no_truth", "fault"}}}``: what the profiles
decided for the 200 replies they shaped (``fault`` counts replies a non-error fault rule overrode);
``DELETE /_sandbox/requests`` zeroes it. A shaped request is logged with a ``shaped`` member: ``{"validity",
"answer", "multi", "confidence", "latency_ms"}``. ``PUT /_sandbox/config`` replaces the sandbox configuration
and keeps the profiles.

    python bench/simulator.py --config FILE [--host 127.0.0.1] [--port 8090] [--log-level info]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from profiles import ModelBehaviour, Shaped, messages_text, shape_json, shape_text
from pydantic import Field

from nodes.sandbox import ChatRequest, Delivery, SandboxConfig, ShapedReply, create_sandbox_app

COUNTERS = ("served", "valid", "invalid_json", "schema_violation", "correct", "wrong", "no_truth", "fault")


class SimulatorConfig(SandboxConfig):
    """A sandbox configuration with a behaviour profile per model name or glob."""

    behaviour: dict[str, ModelBehaviour] = Field(default_factory=dict)

    def sandbox(self) -> SandboxConfig:
        """The sandbox's part of the configuration."""
        return SandboxConfig.model_validate(self.model_dump(exclude={"behaviour"}))


class ProfileShaper:
    """The ``ReplyShaper`` of the simulated models: each model's profile shapes its replies, which are counted."""

    def __init__(self, profiles: Mapping[str, ModelBehaviour] | None = None) -> None:
        self.profiles: dict[str, ModelBehaviour] = dict(profiles or {})
        self.counts: dict[str, dict[str, int]] = {}

    def profile_for(self, model: str) -> ModelBehaviour | None:
        """The profile for ``model``: its exact name's, else the first matching glob's, else None."""
        exact = self.profiles.get(model)
        if exact is not None:
            return exact
        for pattern, profile in self.profiles.items():
            if fnmatch.fnmatchcase(model, pattern):
                return profile
        return None

    def shape(self, request: ChatRequest, answer: Any) -> Shaped | None:
        profile = self.profile_for(request.model)
        if profile is None:
            return None
        text = messages_text(request.messages)
        if request.kind == "text":
            return shape_text(profile, answer, text, request.draw)
        return shape_json(profile, request.answer_schema, answer, text, request.draw)

    def deliver(self, request: ChatRequest, reply: ShapedReply, fault: str | None, completion_tokens: int) -> Delivery:
        profile = self.profile_for(request.model)
        assert isinstance(reply, Shaped) and profile is not None
        latency_s = profile.latency_s(request.draw("latency"), completion_tokens)
        record = reply.record()
        if fault is not None and fault != "slow":
            record["validity"] = "fault"
        record["latency_ms"] = round(latency_s * 1000, 1)
        counts = self.counts.setdefault(request.model, dict.fromkeys(COUNTERS, 0))
        counts["served"] += 1
        counts[record["validity"]] += 1
        counts[record["answer"]] += 1
        return Delivery(latency_s=latency_s, log=record)

    def clear(self) -> None:
        self.counts = {}

    def counts_json(self) -> dict[str, Any]:
        """A copy in the shape ``GET /_sandbox/behaviour`` returns."""
        return {"by_model": {model: dict(counts) for model, counts in self.counts.items()}}


def create_simulator_app(config: SimulatorConfig | None = None) -> FastAPI:
    """The sandbox app with ``config``'s profiles plugged in; the shaper is ``app.state.sandbox.shaper``."""
    config = config or SimulatorConfig()
    shaper = ProfileShaper(config.behaviour)
    app = create_sandbox_app(config.sandbox(), shaper=shaper)

    @app.get("/_sandbox/behaviour")
    async def get_behaviour() -> dict[str, Any]:
        return shaper.counts_json()

    return app


def load_simulator_config(path: str) -> SimulatorConfig:
    """Read a ``SimulatorConfig`` from a JSON file (``OSError``, ``ValueError`` or ``ValidationError`` if it is bad)."""
    return SimulatorConfig.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", metavar="FILE", required=True, help="JSON sandbox configuration with profiles")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args()
    try:
        config = load_simulator_config(args.config)
    except (OSError, ValueError) as exc:
        parser.error(f"{args.config}: {exc}")
    app = create_simulator_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
