"""Synthesize a plausible JSON value that is valid against a JSON Schema (draft 2020-12).

The sandbox upstream answers structured-output requests with values made here. The generator
covers the keywords OpenAI structured outputs accept (``type``, ``properties``/``required``/
``additionalProperties``, ``items``/``minItems``/``maxItems``, ``enum``/``const``, string ``format``
and ``pattern``, numeric bounds and ``multipleOf``, ``anyOf``, ``$defs``/``$ref`` including recursion),
plus ``oneOf`` and a shallow ``allOf`` merge. Everything random comes from the ``rng`` passed in, so a
seeded ``random.Random`` gives the same value every time.

It never raises for odd input: unknown keywords are ignored, an unresolvable ``$ref`` behaves like
``{}``, and a ``pattern`` it cannot satisfy falls back to a plain word (the only documented way the
output can be invalid, besides unsatisfiable schemas). Candidates are tried against a ``pattern`` with
RE2, as the service matches them (``nodes.patterns``), so a pattern that would make a backtracking
engine run for hours cannot stall the sandbox; a pattern RE2 cannot run falls back to a plain word too.

``drift`` does the opposite on purpose, for the ``schema_drift`` fault: it breaks a valid object while
keeping it JSON.
"""

from __future__ import annotations

import copy
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from nodes.patterns import UnsupportedPattern, program_size, search

__all__ = ["SENTENCE_KEYS", "WORDS", "drift", "sentence", "synthesize"]

#: Past this depth (counted in objects, arrays and ``$ref`` hops) the generator steers towards
#: null, empty and non-recursive branches so recursive schemas terminate.
SHALLOW_DEPTH = 4
#: Past this depth it gives up and returns ``None`` (only reached by schemas with no finite instance).
MAX_DEPTH = 64

_SENTENCE_KEYS = frozenset({"text", "summary", "reply", "body"})
#: Property names whose strings are written as sentences (free text) rather than single words.
SENTENCE_KEYS = _SENTENCE_KEYS
_CONFIDENCE_KEYS = frozenset({"confidence", "score"})

WORDS: tuple[str, ...] = (
    "account", "billing", "customer", "invoice", "order", "refund", "shipment", "request", "support",
    "payment", "delivery", "update", "issue", "team", "report", "review", "schedule", "contract",
    "renewal", "product", "service", "ticket", "message", "quote", "balance", "subscription", "plan",
    "feature", "release", "meeting", "summary", "status", "priority", "region", "partner", "budget",
)  # fmt: skip

_VERBS: tuple[str, ...] = (
    "confirmed", "requested", "updated", "reviewed", "scheduled", "resolved", "shipped", "approved",
    "received", "escalated", "processed", "noted",
)  # fmt: skip

_FORMAT_EPOCH = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)

# Tried in order for ``pattern`` (after a random word and the ``format`` value) before giving up.
_PATTERN_CANDIDATES: tuple[str, ...] = (
    "billing", "Billing", "BILLING", "abc", "ABC", "abc123", "ABC123", "ABC-123", "ABC-1234",
    "INV-2025-0001", "A1", "a1", "a", "A", "x", "123", "1", "0", "42", "12345", "123456", "1.5",
    "2025-01-06", "09:00", "09:00:00", "2025-01-06T09:00:00Z", "+1-555-0100", "555-0100",
    "alex.morgan@example.com", "https://example.com", "example.com", "192.0.2.1", "US", "en", "en-US",
    "EUR", "abc_def", "abc-def", "Abc Def", "#a1b2c3", "a1b2c3", "00000000-0000-4000-8000-000000000000",
    *("1234567890"[:n] for n in range(2, 11)),
    *("abcdefghij"[:n] for n in range(2, 11)),
    *("ABCDEFGHIJ"[:n] for n in range(2, 11)),
    "",
)  # fmt: skip


def synthesize(schema: Mapping[str, Any] | bool, rng: random.Random, hint: str = "") -> Any:
    """Return a JSON value valid against ``schema``, drawing every random choice from ``rng``.

    ``schema`` is the root: ``$ref`` values such as ``#/$defs/Name``, ``#/definitions/Name`` or ``#``
    resolve against it. Nullable types and ``anyOf`` with a null branch produce the non-null value
    unless the generator is deep inside a recursive structure. ``hint`` is the text being worked on:
    a string enum member that the hint mentions (``feature_request`` as "feature request" too) is
    preferred, so a classification of "a billing problem" comes out ``billing``.
    """
    return _Synthesizer(schema, rng, hint).value(schema, depth=0, name=None)


def drift(value: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Break a valid object: drop its first required property and add ``unexpected_field``."""
    if not isinstance(value, dict):
        return {"unexpected_field": True}
    required = schema.get("required")
    if isinstance(required, list):
        for key in required:
            if key in value:
                del value[key]
                break
    value["unexpected_field"] = True
    return value


def mentioned(values: Sequence[Any], hint: str) -> list[Any]:
    """The string members of ``values`` that ``hint`` mentions as whole words, in ``values`` order."""
    text = hint.lower()
    found = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            continue
        spoken = re.sub(r"[_\-]+", " ", value.lower()).strip()
        if any(re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text) for form in {value.lower(), spoken}):
            found.append(value)
    return found


def sentence(rng: random.Random, min_words: int = 8, max_words: int = 14) -> str:
    """Return one capitalised sentence of plausible business words, ending in a full stop."""
    count = rng.randint(min_words, max_words)
    words = [rng.choice(WORDS) for _ in range(count)]
    words.insert(min(2, len(words)), rng.choice(_VERBS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


class _Synthesizer:
    """Walks one root schema; holds the root (for ``$ref``) and the random source."""

    def __init__(self, root: Mapping[str, Any] | bool, rng: random.Random, hint: str = "") -> None:
        self.root = root
        self.rng = rng
        self.hint = hint

    # -- dispatch ---------------------------------------------------------------------------------

    def value(self, schema: Any, *, depth: int, name: str | None) -> Any:
        """Synthesize a value for ``schema`` found ``depth`` levels down under property ``name``."""
        if depth > MAX_DEPTH:
            return None
        if schema is True or not isinstance(schema, Mapping):
            return self.rng.choice(WORDS)
        if "$ref" in schema:
            target = self.resolve(schema["$ref"])
            siblings = {key: val for key, val in schema.items() if key != "$ref"}
            merged = _merge(target, siblings) if isinstance(target, Mapping) else siblings
            return self.value(merged, depth=depth + 1, name=name)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema and isinstance(schema["enum"], Sequence) and schema["enum"]:
            return self.pick_enum(schema["enum"], deep=depth > SHALLOW_DEPTH)
        if isinstance(schema.get("allOf"), Sequence) and schema["allOf"]:
            merged = {key: val for key, val in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                if isinstance(part, Mapping):
                    merged = _merge(merged, self.inline_ref(part))
            return self.value(merged, depth=depth, name=name)
        for keyword in ("anyOf", "oneOf"):
            branches = schema.get(keyword)
            if isinstance(branches, Sequence) and branches:
                branch = self.pick_branch(branches, deep=depth > SHALLOW_DEPTH)
                rest = {key: val for key, val in schema.items() if key != keyword}
                if not rest:
                    return self.value(branch, depth=depth, name=name)
                if isinstance(branch, Mapping):
                    return self.value(_merge(rest, self.inline_ref(branch)), depth=depth, name=name)
                return self.value(rest, depth=depth, name=name)

        kind = self.pick_type(schema, deep=depth > SHALLOW_DEPTH)
        if kind == "null":
            return None
        if kind == "object":
            return self.object(schema, depth=depth)
        if kind == "array":
            return self.array(schema, depth=depth)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema, name=name)
        return self.string(schema, name=name)

    # -- references and branches ------------------------------------------------------------------

    def resolve(self, ref: Any) -> Any:
        """Follow a local JSON-pointer ``$ref`` (``#``, ``#/$defs/X``, ``#/definitions/X``, ...)."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node: Any = self.root
        for raw in ref[1:].split("/")[1:]:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return {}
        return node

    def inline_ref(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return ``schema`` with a top-level ``$ref`` replaced by its target (for merging)."""
        if "$ref" not in schema:
            return schema
        target = self.resolve(schema["$ref"])
        siblings = {key: val for key, val in schema.items() if key != "$ref"}
        return _merge(target, siblings) if isinstance(target, Mapping) else siblings

    def pick_branch(self, branches: Sequence[Any], *, deep: bool) -> Any:
        """Choose an ``anyOf``/``oneOf`` branch: the first non-null one, or a terminating one when deep."""
        if deep:
            for branch in branches:
                if _is_null_schema(branch):
                    return branch
            for branch in branches:
                if not _mentions_ref(branch):
                    return branch
            return branches[0]
        for branch in branches:
            if not _is_null_schema(branch):
                return branch
        return branches[0]

    def pick_enum(self, values: Sequence[Any], *, deep: bool) -> Any:
        """Choose an enum member, preferring non-null ones (null first when deep)."""
        if deep and None in values:
            return None
        non_null = [value for value in values if value is not None]
        preferred = mentioned(non_null, self.hint) if self.hint else []
        if preferred:
            return copy.deepcopy(preferred[0])
        return copy.deepcopy(self.rng.choice(non_null)) if non_null else None

    def pick_type(self, schema: Mapping[str, Any], *, deep: bool) -> str:
        """Return the JSON type to produce: the first non-null listed type, or one inferred from keywords."""
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, Sequence) and declared:
            types = [str(item) for item in declared]
            if deep and "null" in types:
                return "null"
            non_null = [item for item in types if item != "null"]
            return non_null[0] if non_null else "null"
        if any(key in schema for key in ("properties", "required", "additionalProperties")):
            return "object"
        if any(key in schema for key in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        if "multipleOf" in schema:
            return "number"
        return "string"

    # -- containers -------------------------------------------------------------------------------

    def object(self, schema: Mapping[str, Any], *, depth: int) -> dict[str, Any]:
        """Produce every listed property (only the required ones when deep), plus unlisted required ones."""
        listed = schema.get("properties")
        properties: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
        named = schema.get("required")
        required = [key for key in named if isinstance(key, str)] if isinstance(named, list) else []
        deep = depth > SHALLOW_DEPTH
        result: dict[str, Any] = {}
        for key, subschema in properties.items():
            if deep and key not in required:
                continue
            result[key] = self.value(subschema, depth=depth + 1, name=key)
        extra = schema.get("additionalProperties", True)
        for key in required:
            if key not in result:
                subschema = extra if isinstance(extra, Mapping) else {}
                result[key] = self.value(subschema, depth=depth + 1, name=key)
        return result

    def array(self, schema: Mapping[str, Any], *, depth: int) -> list[Any]:
        """Produce between ``minItems`` and ``maxItems`` items (1-3 by default, ``minItems`` when deep)."""
        listed = schema.get("prefixItems")
        prefix: list[Any] = list(listed) if isinstance(listed, list) else []
        items = schema.get("items", True)
        low = _as_int(schema.get("minItems"), 0)
        high = _as_optional_int(schema.get("maxItems"))
        if items is False:
            high = len(prefix) if high is None else min(high, len(prefix))
        if depth > SHALLOW_DEPTH:
            count = low
        else:
            most = max(low, 3) if high is None else min(max(low, 3), high)
            least = min(max(low, 1), most)
            count = self.rng.randint(least, most)
        result: list[Any] = []
        unique = schema.get("uniqueItems") is True
        for index in range(count):
            subschema = prefix[index] if index < len(prefix) else items
            item = self.value(subschema, depth=depth + 1, name=None)
            for _ in range(8):
                if not unique or item not in result:
                    break
                item = self.value(subschema, depth=depth + 1, name=None)
            result.append(item)
        return result

    # -- scalars ----------------------------------------------------------------------------------

    def string(self, schema: Mapping[str, Any], *, name: str | None) -> str:
        """Produce a string honouring ``format``, ``pattern`` (best effort) and the length bounds."""
        low = _as_int(schema.get("minLength"), 0)
        high = _as_optional_int(schema.get("maxLength"))
        pattern = schema.get("pattern")
        fmt = schema.get("format")
        if isinstance(pattern, str):
            return self.patterned(pattern, low, high, fmt, name)
        if isinstance(fmt, str):
            formatted = self.formatted(fmt)
            if formatted is not None:
                return formatted
        if name is not None and name.lower() in _SENTENCE_KEYS:
            text = sentence(self.rng)
        else:
            text = self.rng.choice(WORDS)
        return _fit_length(text, low, high, self.rng)

    def formatted(self, fmt: str) -> str | None:
        """Produce a string in a known ``format``, or ``None`` when the format is unknown."""
        moment = _FORMAT_EPOCH + timedelta(minutes=self.rng.randint(0, 60 * 24 * 365))
        if fmt == "date-time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return moment.strftime("%Y-%m-%d")
        if fmt == "time":
            return moment.strftime("%H:%M:%SZ")
        if fmt == "duration":
            return f"PT{self.rng.randint(1, 59)}M"
        if fmt in ("email", "idn-email"):
            return f"{self.rng.choice(WORDS)}.{self.rng.choice(WORDS)}@example.com"
        if fmt == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if fmt in ("uri", "iri", "uri-reference", "iri-reference"):
            return f"https://example.com/{self.rng.choice(WORDS)}/{self.rng.randint(1, 9999)}"
        if fmt in ("hostname", "idn-hostname"):
            return f"{self.rng.choice(WORDS)}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{self.rng.randint(1, 254)}"
        if fmt == "ipv6":
            return f"2001:db8::{self.rng.randint(1, 0xFFFF):x}"
        return None

    def patterned(self, pattern: str, low: int, high: int | None, fmt: Any, name: str | None) -> str:
        """Return the first of a handful of candidates that matches ``pattern``, else a plain word."""
        word = self.rng.choice(WORDS)
        try:
            program_size(pattern)
        except UnsupportedPattern:
            return _fit_length(word, low, high, self.rng)
        candidates = [word, word.upper(), word.capitalize()]
        formatted = self.formatted(fmt) if isinstance(fmt, str) else None
        if formatted is not None:
            candidates.insert(0, formatted)
        if name is not None and name.lower() in _SENTENCE_KEYS:
            candidates.insert(0, sentence(self.rng))
        for candidate in (*candidates, *_PATTERN_CANDIDATES):
            if low <= len(candidate) and (high is None or len(candidate) <= high):
                if search(pattern, candidate):
                    return candidate
        return _fit_length(word, low, high, self.rng)

    def integer(self, schema: Mapping[str, Any]) -> int:
        """Produce an integer inside the bounds and on ``multipleOf`` when possible."""
        low, high = _bounds(schema)
        lo: int | None = None
        hi: int | None = None
        if low is not None:
            lo = math.floor(low.value) + 1 if low.exclusive else math.ceil(low.value)
        if high is not None:
            hi = math.ceil(high.value) - 1 if high.exclusive else math.floor(high.value)
        first, last = (int(end) for end in _default_range(lo, hi, span=100, floor=1))
        if last < first:
            return first
        start = self.rng.randint(first, last)
        step = _positive_number(schema.get("multipleOf"))
        if step is None:
            return start
        for offset in range(0, 2000):
            for candidate in (start + offset, start - offset):
                if first <= candidate <= last and _is_multiple(candidate, step):
                    return candidate
        return start

    def number(self, schema: Mapping[str, Any], *, name: str | None) -> int | float:
        """Produce a number inside the bounds (0.9 for an in-range ``confidence``/``score``)."""
        if name is not None and name.lower() in _CONFIDENCE_KEYS and _number_ok(schema, 0.9):
            return 0.9
        low, high = _bounds(schema)
        lo, hi = _default_range(
            low.value if low is not None else None,
            high.value if high is not None else None,
            span=100,
            floor=0,
        )
        step = _positive_number(schema.get("multipleOf"))
        if step is not None:
            first, last = math.ceil(lo / step), math.floor(hi / step)
            if last >= first:
                start = self.rng.randint(first, last)
                for offset in range(0, 2000):
                    for k in (start + offset, start - offset):
                        if first <= k <= last:
                            for candidate in _multiples(k, step):
                                if _number_ok(schema, candidate):
                                    return candidate
            return first * step
        drawn = self.rng.uniform(lo, hi)
        for candidate in (round(drawn, 2), drawn, (lo + hi) / 2):
            if _number_ok(schema, candidate):
                return candidate
        return drawn


# -- helpers --------------------------------------------------------------------------------------


class _Bound:
    """One side of a numeric range: its value and whether the value itself is excluded."""

    __slots__ = ("value", "exclusive")

    def __init__(self, value: int | float, exclusive: bool) -> None:
        self.value = value
        self.exclusive = exclusive


def _bounds(schema: Mapping[str, Any]) -> tuple[_Bound | None, _Bound | None]:
    """Return the tightest lower and upper bound of a numeric schema (draft 4 boolean form too)."""
    low: _Bound | None = None
    high: _Bound | None = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    ex_min, ex_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if (value := _number(minimum)) is not None:
        low = _Bound(value, ex_min is True)
    if (value := _number(ex_min)) is not None and (low is None or value >= low.value):
        low = _Bound(value, True)
    if (value := _number(maximum)) is not None:
        high = _Bound(value, ex_max is True)
    if (value := _number(ex_max)) is not None and (high is None or value <= high.value):
        high = _Bound(value, True)
    return low, high


def _default_range(
    lo: int | float | None, hi: int | float | None, *, span: int, floor: int
) -> tuple[int | float, int | float]:
    """Close an open range so there is something to draw from."""
    if hi is None:
        start = floor if lo is None else lo
        return start, start + span
    if lo is None:
        return (floor if floor <= hi else hi - span), hi
    return lo, hi


def _number_ok(schema: Mapping[str, Any], value: int | float) -> bool:
    """Whether ``value`` satisfies the schema's numeric bounds and ``multipleOf``."""
    low, high = _bounds(schema)
    if low is not None and (value < low.value or (low.exclusive and value == low.value)):
        return False
    if high is not None and (value > high.value or (high.exclusive and value == high.value)):
        return False
    step = _positive_number(schema.get("multipleOf"))
    return step is None or _is_multiple(value, step)


def _multiples(k: int, step: int | float) -> list[int | float]:
    """Spellings of ``k * step`` to try: float arithmetic can miss an exact multiple by one ulp."""
    if isinstance(step, int):
        return [k * step]
    product = k * step
    return [float(Decimal(k) * Decimal(repr(step))), round(product, 10), product]


def _is_multiple(value: int | float, step: int | float) -> bool:
    """``multipleOf`` exactly as ``jsonschema`` checks it (float division for float steps)."""
    if isinstance(step, float):
        quotient = value / step
        try:
            return int(quotient) == quotient
        except (OverflowError, ValueError):
            return False
    return value % step == 0


def _number(value: Any) -> int | float | None:
    """``value`` if it is a JSON number (not a boolean), else ``None``."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _positive_number(value: Any) -> int | float | None:
    """``value`` if it is a positive JSON number, else ``None``."""
    number = _number(value)
    return number if number is not None and number > 0 else None


def _as_int(value: Any, default: int) -> int:
    """``value`` if it is a non-negative integer, else ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _as_optional_int(value: Any) -> int | None:
    """``value`` if it is a non-negative integer, else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _fit_length(text: str, low: int, high: int | None, rng: random.Random) -> str:
    """Pad ``text`` with more words up to ``low`` characters and cut it at ``high``."""
    while len(text) < low:
        text = f"{text} {rng.choice(WORDS)}"
    if high is not None and len(text) > high:
        text = text[:high].rstrip() if high > 0 else ""
        if len(text) < low:
            text = text.ljust(low, "x")
    return text


def _is_null_schema(schema: Any) -> bool:
    """Whether a branch only allows null."""
    if not isinstance(schema, Mapping):
        return False
    if schema.get("type") == "null" or schema.get("type") == ["null"]:
        return True
    return "const" in schema and schema["const"] is None


def _mentions_ref(schema: Any) -> bool:
    """Whether a branch contains a ``$ref`` anywhere (so choosing it may recurse)."""
    if isinstance(schema, Mapping):
        return "$ref" in schema or any(_mentions_ref(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_mentions_ref(value) for value in schema)
    return False


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow-merge two schemas: ``properties`` are united, ``required`` concatenated, others overridden."""
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(merged.get(key), Mapping) and isinstance(value, Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        else:
            merged[key] = value
    return merged
