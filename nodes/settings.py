"""All configuration in one place: environment variables prefixed ``TIERWISE_``, plus an optional TOML file.

The names are a public contract (PROTOCOL.md "Configuration contract"): ``TIERWISE_NANO_MODEL``,
``TIERWISE_NANO_BASE_URL``, ``TIERWISE_NANO_API_KEY``, ``TIERWISE_NANO_PRICE_INPUT`` and so on for
``MINI`` and ``FULL``; ``TIERWISE_API_KEYS``; ``TIERWISE_DB``; ``TIERWISE_CONFIG`` names a TOML file
with the same settings (``[nano]``, ``[mini]``, ``[full]`` tables for tiers), and the environment
wins over it. Misconfiguration is refused here, at start-up, with a sentence that says what to set.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from nodes.errors import ConfigError
from nodes.lanes import Lane

StructuredOutputMode = Literal["json_schema", "json_object", "json_object_schema"]
"""How a tier is asked for JSON: strict structured outputs, JSON mode with the schema in the prompt, or JSON
mode with the schema attached too (``response_format: {"type": "json_object", "schema": ...}``, which
llama.cpp's server and Ollama enforce by constrained decoding)."""

_PLACEHOLDER_KEY = re.compile(
    r"^(sk-?\.*|sk-x+|x+|\.\.\.|<.*>|your[-_ ].*|changeme|change-me|replace[-_ ]?me|todo|none|null|key)$",
    re.IGNORECASE,
)


def _refuse_placeholder(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        return None
    if _PLACEHOLDER_KEY.match(stripped):
        raise ValueError(f"{stripped!r} looks like a placeholder, not a real API key; set the real key or unset it")
    return stripped


class TierSettings(BaseModel):
    """One tier: which model serves it, where, with which key, at what price."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Model name sent to the endpoint.")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL ending in /v1; default is OpenAI's."
    )
    api_key: str | None = Field(default=None, description="Key for this tier; falls back to OPENAI_API_KEY.")
    price_input: Decimal = Field(description="USD per million uncached input tokens.")
    price_cached_input: Decimal = Field(description="USD per million cached input tokens.")
    price_output: Decimal = Field(description="USD per million output tokens (reasoning included).")
    timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one model call, in seconds.")
    structured_outputs: StructuredOutputMode = Field(
        default="json_schema",
        description="json_schema (strict structured outputs), json_object (JSON mode, schema in the prompt) or "
        "json_object_schema (JSON mode with the schema in the prompt and attached, for llama.cpp and Ollama).",
    )
    rpm: int | None = Field(
        default=None,
        gt=0,
        description="Requests per minute to pace this tier at; learned from the upstream if unset.",
    )
    tpm: int | None = Field(
        default=None,
        gt=0,
        description="Tokens per minute to pace this tier at; learned from the upstream if unset.",
    )
    lanes: Annotated[list[Lane] | None, NoDecode] = Field(
        default=None,
        description="Comma-separated processing lanes this tier's endpoint offers (standard, flex, batch); "
        "default: all three on OpenAI's endpoint and the sandbox, standard elsewhere.",
    )
    logprobs: bool | None = Field(
        default=None,
        description="Ask this tier for token log-probabilities, so classify and judge confidences come from them "
        "and are calibrated per step; default: on for nano and mini on OpenAI's endpoint and the sandbox, off "
        "elsewhere (GPT-5 reasoning models refuse logprobs; a refusal turns them off for the tier).",
    )
    flex_price_share: Decimal = Field(
        default=Decimal("0.5"), gt=0, le=1, description="What a flex call costs, as a share of the standard prices."
    )
    batch_price_share: Decimal = Field(
        default=Decimal("0.5"),
        gt=0,
        le=1,
        description="What a Batch API call costs, as a share of the standard prices.",
    )
    flex_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="Timeout of one flex call, in seconds (flex is slow; OpenAI advises 15 minutes); never past "
        "the run's deadline.",
    )

    _refuse_placeholder_key = field_validator("api_key")(_refuse_placeholder)

    @field_validator("lanes", mode="before")
    @classmethod
    def _split_lanes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [lane.strip() for lane in value.split(",") if lane.strip()]
        return value

    @field_validator("lanes")
    @classmethod
    def _standard_always(cls, value: list[Lane] | None) -> list[Lane] | None:
        if value is not None and "standard" not in value:
            raise ValueError("every tier has the standard lane; list it with the others (standard,flex,batch)")
        return value

    @field_validator("price_input", "price_cached_input", "price_output")
    @classmethod
    def _non_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("a price cannot be negative")
        return value


class NanoTier(TierSettings):
    """The sorting tier: OpenAI's smallest model by default."""

    model: str = "gpt-5.4-nano"
    price_input: Decimal = Decimal("0.20")
    price_cached_input: Decimal = Decimal("0.02")
    price_output: Decimal = Decimal("1.25")


class MiniTier(TierSettings):
    """The doing tier."""

    model: str = "gpt-5.4-mini"
    price_input: Decimal = Decimal("0.75")
    price_cached_input: Decimal = Decimal("0.075")
    price_output: Decimal = Decimal("4.50")


class FullTier(TierSettings):
    """The flagship tier that plans and judges."""

    model: str = "gpt-5.4"
    price_input: Decimal = Decimal("2.50")
    price_cached_input: Decimal = Decimal("0.25")
    price_output: Decimal = Decimal("15.00")


class Settings(BaseSettings):
    """Every setting the service reads, with its environment name ``TIERWISE_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="TIERWISE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
    )

    nano: NanoTier = Field(default_factory=NanoTier, description="The sorting tier.")
    mini: MiniTier = Field(default_factory=MiniTier, description="The doing tier.")
    full: FullTier = Field(default_factory=FullTier, description="The flagship tier that judges.")
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY"),
        description="Fallback key for every tier without a key of its own.",
    )
    sandbox: bool = Field(default=False, description="Serve every tier from the built-in sandbox upstream, on purpose.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys accepted besides those made by the CLI."
    )
    db: str = Field(default="tierwise.db", description="Path of the SQLite file (created on first run).")
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL URL (postgresql://...); when set, it is used instead of TIERWISE_DB and may be "
        "shared by any number of service processes.",
    )
    max_body_bytes: int = Field(default=1_000_000, gt=0, description="Largest request body accepted.")
    max_batch_body_bytes: int = Field(default=10_000_000, gt=0, description="Largest batch request body accepted.")
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a request body may take to arrive in full once its headers are in; a body still "
        "incomplete then (sent slowly, or shorter than its Content-Length) is answered 408.",
    )
    processing: Lane = Field(
        default="standard",
        description="The lane a request is processed on when it does not say (its processing field): standard, "
        "flex, or batch (asynchronous requests only; synchronous ones then go on standard); every tier must "
        "offer it.",
    )
    batch_wait_s: float = Field(
        default=86_400.0,
        gt=0,
        description="How long a batch-lane call waits for its batch to answer before it is made on standard.",
    )
    batch_collect_s: float = Field(
        default=5.0,
        ge=0,
        description="How long the batcher lets calls gather before it sends them as one batch per tier.",
    )
    batch_poll_s: float = Field(
        default=30.0, gt=0, description="How often the batches sent are asked where they stand."
    )
    flex_unavailable: Literal["standard", "retry"] = Field(
        default="standard",
        description="When a flex call finds no capacity (429 resource_unavailable, not billed): repeat it at once "
        "on standard, or retry flex after a backoff (standard once the retries are used up).",
    )
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries of one tier on transient upstream failures.")
    repair_turns: int = Field(default=1, ge=0, le=3, description="Repair turns per tier on invalid output.")
    max_attempts: int = Field(default=10, ge=1, le=50, description="Hard cap on model calls in one run.")
    run_timeout_s: float = Field(default=120.0, gt=0, description="Hard cap on one run's wall time.")
    max_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="The longest a request's 'Prefer: wait=N' may hold it for its key's per-minute window before "
        "it is answered 429.",
    )
    openai_run_timeout_s: float = Field(
        default=55.0,
        gt=0,
        description="Hard cap on the wall time of a run on the OpenAI-compatible surface (under n8n's 60 s model "
        "timeout); never more than TIERWISE_RUN_TIMEOUT_S.",
    )
    backoff_base_s: float = Field(default=0.5, gt=0, description="First backoff step, in seconds.")
    backoff_cap_s: float = Field(default=8.0, gt=0, description="Largest computed backoff, in seconds.")
    retry_after_cap_s: float = Field(
        default=120.0, gt=0, description="A server's Retry-After is honoured up to this many seconds."
    )
    max_output_tokens: int = Field(default=4096, gt=0, description="max_completion_tokens sent per call.")
    max_batch_items: int = Field(default=1000, gt=0, description="Most items accepted in one batch request.")
    batch_concurrency: int = Field(default=32, gt=0, description="Items of one batch run at the same time.")
    job_workers: int = Field(default=16, gt=0, description="Asynchronous runs executed at the same time.")
    job_lease_s: float = Field(
        default=30.0,
        ge=1,
        description="How long a claimed asynchronous run stays with its instance without renewal; a run whose "
        "instance died is taken over after this.",
    )
    callback_allow_private: bool = Field(
        default=False, description="Allow callback URLs on private, loopback and link-local addresses."
    )
    callback_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one callback delivery.")
    callback_backoff_base_s: float = Field(
        default=1.0, gt=0, description="First wait before a failed callback delivery is retried; it doubles."
    )
    callback_backoff_cap_s: float = Field(default=300.0, gt=0, description="Longest wait between deliveries.")
    callback_deadline_s: float = Field(
        default=86_400.0, gt=0, description="How long a callback is retried before it is given up."
    )
    idempotency_ttl_s: float = Field(
        default=7 * 86_400.0, gt=0, description="How long an answer is kept for Idempotency-Key replays."
    )
    audit_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of runs on nano/mini re-done one tier up to measure agreement, for runs not started "
        "by tier auto (auto's steps are audited by the learning and settled rates below).",
    )
    audit_learning_rate: float = Field(
        default=0.3, ge=0, le=1, description="Share of a tier auto step's runs audited while its evidence is thin."
    )
    audit_settled_rate: float = Field(
        default=0.05, ge=0, le=1, description="Share of a tier auto step's runs audited once its evidence is settled."
    )
    audit_spend_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Audits of a step stop while their cost is over this share of what the step's runs cost.",
    )
    step_agreement: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="The 95% lower bound on a cheaper tier's agreement with the tier above that earns it a step.",
    )
    step_min_audits: int = Field(
        default=30, ge=1, description="Audited runs a tier needs on a step before its evidence counts."
    )
    key_rpm: int | None = Field(
        default=None, gt=0, description="Requests per minute allowed per API key (unset: no limit)."
    )
    key_daily_budget_usd: Decimal | None = Field(
        default=None, gt=0, description="USD each API key may spend per UTC day (unset: no limit)."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_long_enough(cls, value: list[str]) -> list[str]:
        short = [key for key in value if len(key) < 8]
        if short:
            raise ValueError("every key in TIERWISE_API_KEYS must be at least 8 characters long")
        return value

    _refuse_placeholder_key = field_validator("openai_api_key")(_refuse_placeholder)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order of precedence: explicit arguments, then the environment, then the TOML file."""
        config_path = os.environ.get("TIERWISE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_path)))
        return tuple(sources)

    def tier(self, name: str) -> TierSettings:
        """The settings of the tier called ``name`` (``nano``, ``mini`` or ``full``)."""
        tier: TierSettings = getattr(self, name)
        return tier


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment and ``TIERWISE_CONFIG``; refuse bad ones with a sentence."""
    config_path = os.environ.get("TIERWISE_CONFIG")
    if config_path and not Path(config_path).is_file():
        raise ConfigError(f"TIERWISE_CONFIG names {config_path!r}, which is not a file; fix the path or unset it.")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "TIERWISE_" + "_".join(str(part) for part in error["loc"]).upper()
            if error["loc"] and error["loc"][0] in ("OPENAI_API_KEY", "DATABASE_URL"):
                name = str(error["loc"][0])
            lines.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from exc
    except ValueError as exc:  # a TOML file that does not parse
        raise ConfigError(f"could not read the configuration: {exc}") from exc
    return settings
