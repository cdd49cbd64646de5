"""Is a model's reply acceptable? JSON parsing and JSON Schema validation of the output.

The errors are written for the repair turn: the model reads them and tries again, so each one names
the place (``$.address.city``) and says what is wrong in plain words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import protocols
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from nodes.jsonbody import find_unsafe
from nodes.patterns import Validator

_CODE_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(?P<body>.*?)\n?\s*```\s*$", re.DOTALL)
MAX_REPORTED_ERRORS = 10
UNUSABLE = "nested too deeply, or an integer too long; send a flatter JSON object with ordinary numbers"


@dataclass(frozen=True)
class Checked:
    """The outcome of checking one reply: the parsed value, or the reasons it was refused."""

    value: Any
    errors: list[str]

    @property
    def ok(self) -> bool:
        """True when the reply parsed and satisfied the schema."""
        return not self.errors


def parse_json(content: str) -> Any:
    """Parse ``content`` as JSON, tolerating one surrounding Markdown code fence (JSON-mode habit)."""
    fenced = _CODE_FENCE.match(content)
    return json.loads(fenced.group("body") if fenced else content)


def json_path(path: Any) -> str:
    """Render a jsonschema error path as ``$.a[0].b``."""
    rendered = "$"
    for part in path:
        rendered += f"[{part}]" if isinstance(part, int) else f".{part}"
    return rendered


def _never_fetch(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


LOCAL_ONLY: Registry[Any] = Registry(retrieve=_never_fetch)  # type: ignore[call-arg]
"""References resolve inside the schema only: nothing is fetched while an answer is checked."""


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> protocols.Validator:
    return Validator(json.loads(schema_text), registry=LOCAL_ONLY)


def validator_for(schema: Mapping[str, Any]) -> protocols.Validator:
    """A validator for ``schema``, shared by every equal schema (a task keeps its own: ``Task.validators``).

    Draft 2020-12, with ``pattern`` and ``patternProperties`` matched by RE2 in linear time (``nodes.patterns``).
    """
    return _validator(json.dumps(schema, sort_keys=True))


def schema_errors(value: Any, schema: Mapping[str, Any] | protocols.Validator) -> list[str]:
    """Every way ``value`` breaks ``schema`` (or a validator's), as ``$.path: message`` lines, shallowest first."""
    validator = validator_for(schema) if isinstance(schema, Mapping) else schema
    found = sorted(validator.iter_errors(value), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    messages = [f"{json_path(error.absolute_path)}: {error.message}" for error in found[:MAX_REPORTED_ERRORS]]
    if len(found) > MAX_REPORTED_ERRORS:
        messages.append(f"... and {len(found) - MAX_REPORTED_ERRORS} more")
    return messages


def check_reply(content: str | None, schema: Mapping[str, Any] | protocols.Validator) -> Checked:
    """Parse ``content`` and validate it against ``schema`` (or a validator of it)."""
    if content is None or not content.strip():
        return Checked(None, ["the reply was empty; a JSON object was expected"])
    try:
        value = parse_json(content)
    except json.JSONDecodeError as exc:
        return Checked(None, [f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"])
    except (RecursionError, ValueError):  # deeper than json.loads can go; an integer over Python's digit limit
        return Checked(None, [f"the reply is not usable JSON: {UNUSABLE}"])
    # NaN, lone surrogates, deep nesting: JSON that validation would recurse on or the answer could not carry.
    unsafe = find_unsafe(value)
    if unsafe is not None:
        [issue] = unsafe.errors
        return Checked(None, [f"{json_path(issue.loc)}: {issue.msg}"])
    return Checked(value, schema_errors(value, schema))
