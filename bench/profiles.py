"""Per-model behaviour profiles: simulated models that are slow, break JSON or the schema, and are sometimes wrong.

The economics benchmark's simulator (``simulator.py``) maps model names or globs to a ``ModelBehaviour`` and
plugs these functions into the sandbox upstream as its reply shaper. Every chat completion for a model with a
profile is shaped by it; models without one get the sandbox's own answer.

* **Latency**: lognormal, ``latency_ms`` (the median) times ``exp(latency_sigma * N(0, 1))``, plus
  ``latency_per_output_token_ms`` for each completion token. It replaces the sandbox configuration's
  ``latency_ms``/``latency_jitter_ms`` for that model.
* **Validity** (``json_schema`` and ``json_object`` requests): with probability ``invalid_json_rate`` the
  reply is not JSON (the ``non_json`` fault's text); with probability ``schema_violation_rate`` (or
  ``schema_violation_rate_nested`` when the schema nests objects) it is JSON that breaks the schema the way
  the ``schema_drift`` fault does (first required property dropped, ``unexpected_field`` added). The two
  are exclusive, so a model keeps to the schema on ``1 - invalid_json_rate - schema_violation_rate`` of calls.
* **Correctness**, against ground truth carried in the request: the answer is right with probability
  ``correct_rate_simple`` (``correct_rate_multi`` for a multi-condition task), otherwise a plausible wrong
  answer that is still schema-valid (another enum member such as another label or the other verdict, a
  changed field value, a free text without the keyword). A top-level number property ``confidence`` is
  drawn from ``right_confidence`` or ``wrong_confidence`` (normal, clipped to the schema's bounds and to
  0..1, two decimals), so a ``min_confidence`` floor catches part of the wrong answers, not all.

Ground truth is a simulator-only marker in the request's text (the benchmark puts it at the top of the
user's input; a JSON-encoded input escapes it, so it must be in a string input):

* ``[[truth: {"label": "billing"}]]``: the correct answer of a simple task, a JSON object holding some or
  all of the answer's properties (nested objects may be partial too);
* ``[[truth multi: {...}]]``: the same for a multi-condition task;
* ``[[words: 120]]``: top-level free-text properties are about 120 words long (also without a truth).

A request may carry several truth markers (a task's own, and one for a question asked about the task, such
as Tierwise's nano complexity check, which quotes the task's material): the first that **fits** the
requested schema is used, that is, every key is a property of the root object and an answer holding its
values validates. A request with no fitting truth is answered like one without markers (``no_truth``).
Free-text properties (``text``, ``summary``, ``reply``, ``body`` of plain string type) take a keyword: the
right answer is a text containing it, a wrong one a text without it. Text (non-JSON) requests take a
``text`` keyword the same way. Values are compared exactly otherwise.

Every draw comes from a random source fixed by the configuration's ``seed``, the request (model,
messages, format, schema) and the aspect drawn (``latency``, ``validity``, ``correct``, ``wrong``,
``confidence``, ``text``; ``ChatRequest.draw``), so the same request always gets the same answer whatever
the arrival order, and a change to one rate does not move the draws of another.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodes.sandbox import ShapedReply, wire
from nodes.sandbox.synth import SENTENCE_KEYS, WORDS, drift, sentence, synthesize

__all__ = [
    "Answer",
    "ConfidenceSpread",
    "ModelBehaviour",
    "Shaped",
    "Truth",
    "Validity",
    "find_truths",
    "find_words",
    "is_nested",
    "messages_text",
    "shape_json",
    "shape_text",
]

Validity = Literal["valid", "invalid_json", "schema_violation"]
Answer = Literal["correct", "wrong", "no_truth"]
Streams = Callable[[str], random.Random]

_TRUTH = re.compile(r"\[\[truth( multi)?:")
_WORDS = re.compile(r"\[\[words:\s*(\d{1,5})\s*\]\]")
_MISSING = object()
_WRONG_TRIES = 16


class ConfidenceSpread(BaseModel):
    """A confidence distribution: normal with ``mean`` and ``sd``, clipped to 0..1, rounded to two decimals."""

    model_config = ConfigDict(extra="forbid")

    mean: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    sd: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)

    def draw(self, rng: random.Random, low: float = 0.0, high: float = 1.0) -> float:
        """One confidence, kept inside ``low``..``high`` (and 0..1)."""
        value = rng.gauss(self.mean, self.sd) if self.sd > 0 else self.mean
        value = min(high, 1.0, max(low, 0.0, value))
        return round(value, 2)


class ModelBehaviour(BaseModel):
    """How one simulated model behaves: latency, validity and correctness rates, confidence when right and wrong.

    The defaults describe a perfect, instant model (right with confidence 0.9, like the plain sandbox), so a
    profile only needs the figures it changes. Rates are per call.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="Median latency of a reply.")
    latency_sigma: float = Field(
        default=0.0, ge=0, le=3, allow_inf_nan=False, description="Lognormal spread of the latency (0: constant)."
    )
    latency_per_output_token_ms: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="Added per completion token (decoding time)."
    )
    invalid_json_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    schema_violation_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    schema_violation_rate_nested: float | None = Field(
        default=None, ge=0.0, le=1.0, allow_inf_nan=False, description="For nested schemas; default: the flat rate."
    )
    correct_rate_simple: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    correct_rate_multi: float = Field(default=1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    right_confidence: ConfidenceSpread = Field(default_factory=lambda: ConfidenceSpread(mean=0.9))
    wrong_confidence: ConfidenceSpread = Field(default_factory=lambda: ConfidenceSpread(mean=0.6))

    @model_validator(mode="after")
    def _consistent(self) -> ModelBehaviour:
        for name, rate in (("schema_violation_rate", self.schema_violation_rate), ("nested", self.nested_rate)):
            if self.invalid_json_rate + rate > 1.0 + 1e-9:
                field = name if name != "nested" else "schema_violation_rate_nested"
                raise ValueError(f"invalid_json_rate + {field} must not exceed 1")
        if self.wrong_confidence.mean > self.right_confidence.mean:
            raise ValueError(
                "wrong_confidence.mean must not exceed right_confidence.mean (models are less sure when wrong)"
            )
        return self

    @property
    def nested_rate(self) -> float:
        """The schema-violation rate for schemas that nest objects."""
        return (
            self.schema_violation_rate
            if self.schema_violation_rate_nested is None
            else self.schema_violation_rate_nested
        )

    def latency_s(self, rng: random.Random, completion_tokens: int) -> float:
        """The reply's latency in seconds: lognormal around the median, plus decoding time."""
        latency = self.latency_ms
        if self.latency_sigma > 0 and latency > 0:
            latency *= math.exp(self.latency_sigma * rng.gauss(0.0, 1.0))
        return (latency + self.latency_per_output_token_ms * completion_tokens) / 1000


@dataclass(frozen=True)
class Truth:
    """One ground-truth marker: the answer's true values, and whether the task has several conditions."""

    values: dict[str, Any]
    multi: bool


@dataclass(frozen=True)
class Shaped(ShapedReply):
    """A reply shaped by a profile: its content and what the simulator decided about it."""

    validity: Validity
    answer: Answer
    multi: bool = False
    confidence: float | None = None

    def record(self) -> dict[str, Any]:
        """What the request log and the behaviour counters keep."""
        return {"validity": self.validity, "answer": self.answer, "multi": self.multi, "confidence": self.confidence}


# -- markers ---------------------------------------------------------------------------------------


def find_truths(text: str) -> list[Truth]:
    """Every well-formed ``[[truth: {...}]]`` / ``[[truth multi: {...}]]`` marker in ``text``, in order."""
    decoder = json.JSONDecoder()
    found = []
    for match in _TRUTH.finditer(text):
        start = match.end()
        while start < len(text) and text[start] in " \t":
            start += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict) and text[end:].lstrip(" \t").startswith("]]"):
            found.append(Truth(values=value, multi=match.group(1) is not None))
    return found


def find_words(text: str) -> int | None:
    """The length asked for by the first ``[[words: N]]`` marker (at least 1), if any."""
    match = _WORDS.search(text)
    return max(1, int(match.group(1))) if match else None


def messages_text(messages: Sequence[Any]) -> str:
    """All message contents, joined by newlines (where markers are looked for)."""
    return "\n".join(wire.message_text(m.get("content")) for m in messages if isinstance(m, Mapping))


# -- shaping ---------------------------------------------------------------------------------------


def shape_text(profile: ModelBehaviour, base: str, text: str, streams: Streams) -> Shaped:
    """Shape a text (non-JSON) reply: its length from ``[[words: N]]``, its keyword from a ``text`` truth."""
    rng = streams("text")
    words = find_words(text)
    content = paragraph(rng, words) if words is not None else base
    truth = next(
        (t for t in find_truths(text) if set(t.values) == {"text"} and isinstance(t.values["text"], str)), None
    )
    if truth is None:
        return Shaped(content=content, validity="valid", answer="no_truth")
    keyword = truth.values["text"]
    rate = profile.correct_rate_multi if truth.multi else profile.correct_rate_simple
    if streams("correct").random() < rate:
        return Shaped(with_keyword(content, keyword, rng), "valid", "correct", truth.multi)
    return Shaped(without_keyword(content, keyword), "valid", "wrong", truth.multi)


def shape_json(profile: ModelBehaviour, schema: dict[str, Any], base: Any, text: str, streams: Streams) -> Shaped:
    """Shape a JSON reply from ``base``, a valid instance of ``schema`` synthesized for the request.

    The answer the model means to give (the truth, or a wrong answer, with its confidence) is decided
    first; the validity draw then may turn it into invalid JSON or a schema violation.
    """
    check = _validity_checker(schema)
    rng = streams("text")
    value = copy.deepcopy(base)
    words = find_words(text)
    if words is not None and isinstance(value, dict):
        for key in _free_text_keys(schema, value):
            value[key] = paragraph(rng, words)
    answer: Answer = "no_truth"
    multi = False
    confidence: float | None = None
    truth = next((t for t in find_truths(text) if _fits(t, schema, value, check, rng)), None)
    if truth is not None:
        multi = truth.multi
        right = _put(value, truth.values, schema, rng)
        rate = profile.correct_rate_multi if truth.multi else profile.correct_rate_simple
        answer = "correct"
        value = right
        if streams("correct").random() >= rate:
            wrong = _wrong_answer(right, truth.values, schema, streams("wrong"), check)
            if wrong is not None:
                value, answer = wrong, "wrong"
        confidence = _set_confidence(value, schema, profile, answer == "correct", streams("confidence"), check)
    draw = streams("validity").random()
    violation_rate = profile.nested_rate if is_nested(schema) else profile.schema_violation_rate
    if draw < profile.invalid_json_rate:
        return Shaped(wire.NON_JSON_TEXT, "invalid_json", answer, multi, confidence)
    if draw < profile.invalid_json_rate + violation_rate:
        return Shaped(_json(drift(copy.deepcopy(value), schema)), "schema_violation", answer, multi, confidence)
    return Shaped(_json(value), "valid", answer, multi, confidence)


def is_nested(schema: Mapping[str, Any]) -> bool:
    """Whether the root object has a property that is an object, or an array of objects."""
    root = _resolve(schema, schema)
    properties = root.get("properties")
    if not isinstance(properties, Mapping):
        return False
    for child in properties.values():
        node = _resolve(child, schema)
        items = node.get("items")
        if _is_object(node) or (isinstance(items, Mapping) and _is_object(_resolve(items, schema))):
            return True
    return False


# -- text ------------------------------------------------------------------------------------------


def paragraph(rng: random.Random, words: int) -> str:
    """Sentences of plausible business words, cut to exactly ``words`` words (ending in a full stop)."""
    parts: list[str] = []
    while len(parts) < words:
        parts.extend(sentence(rng).split())
    text = " ".join(parts[:words])
    return text if text.endswith(".") else text.rstrip(",;") + "."


def with_keyword(text: str, keyword: str, rng: random.Random) -> str:
    """``text`` with ``keyword`` put in at a word boundary (unchanged if it is there already)."""
    if keyword.lower() in text.lower():
        return text
    words = text.split()
    words.insert(rng.randint(0, len(words)), keyword)
    return " ".join(words)


def without_keyword(text: str, keyword: str) -> str:
    """``text`` with every occurrence of ``keyword`` (any case) taken out."""
    if not keyword:
        return text
    stripped = re.sub(re.escape(keyword), " ", text, flags=re.IGNORECASE)
    stripped = re.sub(r"\s+", " ", stripped).strip()
    return stripped or "Noted."


# -- internals -------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _validity_checker(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    try:
        validator = Draft202012Validator(schema)
    except Exception:  # an odd schema only means nothing can be checked
        return lambda value: False

    def check(value: Any) -> bool:
        try:
            return bool(validator.is_valid(value))
        except Exception:  # an unresolvable $ref and the like
            return False

    return check


def _resolve(node: Any, root: Mapping[str, Any], hops: int = 0) -> Mapping[str, Any]:
    """Follow a local ``$ref`` and step into the first non-null ``anyOf``/``oneOf`` branch."""
    if not isinstance(node, Mapping) or hops > 16:
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for raw in ref[1:].split("/")[1:]:
            token = raw.replace("~1", "/").replace("~0", "~")
            target = target.get(token) if isinstance(target, Mapping) else None
        return _resolve(target, root, hops + 1)
    for keyword in ("anyOf", "oneOf"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                resolved = _resolve(branch, root, hops + 1)
                if resolved and resolved.get("type") != "null":
                    return resolved
    return node


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return "object" in kinds or isinstance(node.get("properties"), Mapping)


def _property(schema: Mapping[str, Any], node: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    properties = _resolve(node, schema).get("properties")
    child = properties.get(key) if isinstance(properties, Mapping) else None
    return _resolve(child, schema)


def _is_free_text(schema: Mapping[str, Any], key: str) -> bool:
    if key.lower() not in SENTENCE_KEYS:
        return False
    node = _property(schema, schema, key)
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    return "string" in kinds and not any(word in node for word in ("enum", "const", "pattern", "format"))


def _free_text_keys(schema: Mapping[str, Any], value: dict[str, Any]) -> list[str]:
    return [key for key in value if isinstance(value[key], str) and _is_free_text(schema, key)]


def _merge(base: Any, truth: Any) -> Any:
    if isinstance(base, dict) and isinstance(truth, dict):
        merged = dict(base)
        for key, part in truth.items():
            merged[key] = _merge(base.get(key), part) if key in base else copy.deepcopy(part)
        return merged
    return copy.deepcopy(truth)


def _put(value: Any, truth: dict[str, Any], schema: Mapping[str, Any], rng: random.Random) -> Any:
    """``value`` with the truth's values in it (a free-text keyword goes into the text)."""
    if not isinstance(value, dict):
        return copy.deepcopy(truth)
    plain = {key: part for key, part in truth.items() if not (isinstance(part, str) and _is_free_text(schema, key))}
    result = _merge(value, plain)
    for key, keyword in truth.items():
        if key not in plain:
            current = result.get(key)
            result[key] = with_keyword(current if isinstance(current, str) else sentence(rng), keyword, rng)
    return result


def _fits(
    truth: Truth, schema: Mapping[str, Any], value: Any, check: Callable[[Any], bool], rng: random.Random
) -> bool:
    root = _resolve(schema, schema)
    properties = root.get("properties")
    if not isinstance(properties, Mapping) or not truth.values or not set(truth.values) <= set(properties):
        return False
    probe = random.Random(rng.random())
    return check(_put(value, truth.values, schema, probe))


def _leaves(truth: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(truth, dict) and truth:
        return [leaf for key, part in truth.items() for leaf in _leaves(part, (*path, key))]
    return [path] if path else []


def _get(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _set(value: Any, path: tuple[str, ...], new: Any) -> None:
    for key in path[:-1]:
        value = value[key]
    value[path[-1]] = new


def _wrong_answer(
    right: Any, truth: dict[str, Any], schema: Mapping[str, Any], rng: random.Random, check: Callable[[Any], bool]
) -> Any:
    """A schema-valid answer that differs from the truth in one place, or None if none could be made."""
    leaves = _leaves(truth)
    for _ in range(_WRONG_TRIES):
        path = rng.choice(leaves)
        current = _get(right, path)
        if current is _MISSING:
            continue
        node: Mapping[str, Any] = schema
        for key in path:
            node = _property(schema, node, key)
        if len(path) == 1 and isinstance(_get(truth, path), str) and _is_free_text(schema, path[0]):
            new = without_keyword(current, _get(truth, path))
        else:
            new = _wrong_value(current, node, schema, rng)
        if new is _MISSING or new == current:
            continue
        candidate = copy.deepcopy(right)
        _set(candidate, path, new)
        if check(candidate):
            return candidate
    return None


def _enum(node: Mapping[str, Any], root: Mapping[str, Any]) -> list[Any] | None:
    if isinstance(node.get("enum"), list):
        return list(node["enum"])
    for keyword in ("anyOf", "oneOf"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            members = [m for branch in branches for m in (_enum(_resolve(branch, root), root) or [])]
            return members or None
    return None


def _wrong_value(current: Any, node: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random) -> Any:
    """A plausible value other than ``current`` for a place described by ``node``."""
    members = _enum(node, root)
    if members:
        others = [m for m in members if m != current and m is not None] or [m for m in members if m != current]
        return copy.deepcopy(rng.choice(others)) if others else _MISSING
    if current is None:
        return synthesize(dict(node), rng)
    if isinstance(current, bool):
        return not current
    if isinstance(current, int):
        return current + rng.choice([-1, 1]) * rng.choice([1, 2, 5, 10])
    if isinstance(current, float):
        scaled = round(current * rng.choice([0.5, 0.9, 1.1, 1.25, 2.0]), 2)
        return scaled if scaled != current else round(current + 1.0, 2)
    if isinstance(current, str):
        return _wrong_string(current, rng)
    if isinstance(current, list):
        items = _resolve(node.get("items"), root)
        if len(current) > 1 and rng.random() < 0.5:
            changed = list(current)
            del changed[rng.randrange(len(changed))]
            return changed
        if not current:
            return [synthesize(dict(items), rng)]
        changed = copy.deepcopy(current)
        index = rng.randrange(len(changed))
        replacement = _wrong_value(changed[index], items, root, rng)
        if replacement is _MISSING:
            return _MISSING
        changed[index] = replacement
        return changed
    if isinstance(current, dict) and current:
        key = rng.choice(sorted(current))
        replacement = _wrong_value(current[key], _property(root, node, key), root, rng)
        if replacement is _MISSING:
            return _MISSING
        return {**current, key: replacement}
    return _MISSING


def _wrong_string(current: str, rng: random.Random) -> str:
    """Another plausible string: a digit changed, another mailbox, or one word swapped."""
    digits = [index for index, char in enumerate(current) if char.isdigit()]
    if digits:
        index = rng.choice(digits)
        replacement = rng.choice([d for d in "0123456789" if d != current[index]])
        return current[:index] + replacement + current[index + 1 :]
    if "@" in current:
        local, _, domain = current.partition("@")
        other = rng.choice([word for word in WORDS if word != local])
        return f"{other}@{domain}"
    words = current.split()
    if not words:
        return rng.choice(WORDS)
    index = rng.randrange(len(words))
    choice = rng.choice([word for word in WORDS if word.lower() != words[index].lower()])
    words[index] = choice.capitalize() if words[index][:1].isupper() else choice
    return " ".join(words)


def _set_confidence(
    value: Any,
    schema: Mapping[str, Any],
    profile: ModelBehaviour,
    right: bool,
    rng: random.Random,
    check: Callable[[Any], bool],
) -> float | None:
    """Draw the answer's top-level ``confidence`` (when the schema has a number one); returns it."""
    if not isinstance(value, dict) or "confidence" not in value:
        return None
    node = _property(schema, schema, "confidence")
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "number" not in kinds:
        return None
    low = node.get("minimum", 0.0)
    high = node.get("maximum", 1.0)
    low = float(low) if isinstance(low, int | float) and not isinstance(low, bool) else 0.0
    high = float(high) if isinstance(high, int | float) and not isinstance(high, bool) else 1.0
    spread = profile.right_confidence if right else profile.wrong_confidence
    drawn = spread.draw(rng, low, high)
    previous = value["confidence"]
    value["confidence"] = drawn
    if not check(value):
        value["confidence"] = previous
        return None
    return drawn
