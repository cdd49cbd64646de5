r"""User regular expressions (JSON Schema ``pattern`` and ``patternProperties``), matched in linear time.

A user's pattern runs against every reply the model sends back, on the event loop. Python's ``re``
backtracks: ``^(a+)+$`` against 28 ``a`` and a ``!`` takes seconds, a few more ``a`` take hours, so
one schema could stop the service. Every user pattern therefore runs on RE2 (``google-re2``), whose
matching time is linear in the text whatever the pattern, inside a memory budget. This module is in
charge of that engine and of nothing else:

* :func:`search` and :func:`program_size` compile a pattern (the 128 most recent are kept) or raise
  :class:`UnsupportedPattern`, whose ``reason`` tells a user why the pattern cannot run and what to
  write instead: lookaround, backreferences, atomic groups and possessive quantifiers (the
  constructs that need backtracking), other syntax RE2 does not read, more than
  :data:`MAX_PATTERN_CHARS` characters, or a compiled program over :data:`PATTERN_MEMORY`.
* :data:`Validator` is jsonschema's draft 2020-12 validator with ``pattern``, ``patternProperties``
  and the ``additionalProperties`` that depends on them running on RE2. It also never switches to
  another dialect's validator (which would match with ``re`` again) where a subschema names its own
  ``$schema``: a user schema is read as draft 2020-12 throughout.
* :data:`FORMAT_CHECKER` holds draft 2020-12's format checks, with ``regex`` meaning "RE2 can run it".

The syntax is RE2's, which covers what JSON Schema patterns (ECMA-262 regular expressions) usually
hold; ECMA-262's ``\uhhhh`` and ``\u{h...}`` escapes, which RE2 spells ``\x{h...}``, are rewritten
first. Like ECMA-262 and unlike ``re``, ``$`` matches only at the very end and ``\d``/``\w`` are ASCII.

jsonschema's ``unevaluatedProperties`` still evaluates a sibling ``patternProperties`` with ``re``;
``nodes.strict_schema`` refuses ``patternProperties`` wherever a user schema holds it, so no user
pattern reaches that code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

import attrs
import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator as ValidatorClass

__all__ = [
    "FORMAT_CHECKER",
    "MAX_PATTERN_CHARS",
    "PATTERN_MEMORY",
    "UnsupportedPattern",
    "Validator",
    "program_size",
    "search",
]

MAX_PATTERN_CHARS: Final = 1_000
#: RE2's memory budget for one compiled pattern, in bytes (RE2's own default is 8 MiB).
PATTERN_MEMORY: Final = 2 << 20

_OPTIONS: Final = re2.Options()
_OPTIONS.max_mem = PATTERN_MEMORY
_OPTIONS.log_errors = False  # a refused pattern is the user's to hear about, not the log's
_OPTIONS.never_capture = True  # only "does it match" is asked, which RE2 then answers without submatches

_ENGINE = "patterns run on RE2, which matches in time linear in the text"
_LENGTH_HINT = "use + or * and limit the length with minLength/maxLength"
_ESCAPES = "\\d, \\w, \\s, \\b, \\p{L}, \\uhhhh, \\x{hhhh}, \\t, \\n, or a backslash before a punctuation character"
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class UnsupportedPattern(ValueError):
    """A pattern RE2 cannot run; ``reason`` says why and what to write instead, for the user.

    ``too_large`` marks a pattern refused for its compiled size, which took a full budget to find out.
    """

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text`` (JSON Schema patterns are not anchored).

    Raises :class:`UnsupportedPattern` for a pattern RE2 cannot run. The time is linear in ``text``.
    """
    return _compiled(pattern).search(text.encode("utf-8", "surrogatepass")) is not None


def program_size(pattern: str) -> int:
    """The size of ``pattern`` compiled for RE2 (its instruction count: a measure of its cost to compile).

    Raises :class:`UnsupportedPattern` for a pattern RE2 cannot run.
    """
    return int(_compiled(pattern).programsize)


def _compiled(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UnsupportedPattern(
            f"this pattern has {len(pattern):,} characters; patterns may have at most {MAX_PATTERN_CHARS:,}, "
            "so shorten it"
        )
    try:
        return _regexp(_translated(pattern))
    except re2.error as exc:
        error = _error_text(exc)
        raise UnsupportedPattern(_explain(error), too_large=error.startswith("pattern too large")) from exc
    except UnicodeEncodeError as exc:
        raise UnsupportedPattern("this pattern holds a lone UTF-16 surrogate, which is not valid Unicode") from exc


@lru_cache(maxsize=128)
def _regexp(source: str) -> Any:
    # re2.compile keeps the 128 most recent too, but takes ten microseconds to find one (it reads every option to
    # make its key). Between the two caches at most 256 compiled patterns live: 2 x 128 x PATTERN_MEMORY at most.
    return re2.compile(source, _OPTIONS)


@lru_cache(maxsize=1024)
def _translated(pattern: str) -> str:
    r"""``pattern`` spelt for RE2: ``\uhhhh`` (a surrogate pair as one character) and ``\u{h...}`` as ``\x{h...}``."""
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] != "\\":
            out.append(pattern[index])
            index += 1
            continue
        code, end = _unicode_escape(pattern, index)
        if code is None:
            out.append(pattern[index : index + 2])  # any other escape, kept whole so "\\\\u" stays a backslash and a u
            index += 2
            continue
        if 0xD800 <= code <= 0xDBFF:
            low, after = _unicode_escape(pattern, end)
            if low is not None and 0xDC00 <= low <= 0xDFFF:
                code, end = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), after
        out.append(f"\\x{{{code:X}}}")
        index = end
    return "".join(out)


def _unicode_escape(pattern: str, index: int) -> tuple[int | None, int]:
    r"""The code point of the ``\uhhhh`` or ``\u{h...}`` escape at ``index`` and where it ends, or ``(None, index)``."""
    if not pattern.startswith("\\u", index):
        return None, index
    four = pattern[index + 2 : index + 6]
    if len(four) == 4 and set(four) <= _HEX:
        return int(four, 16), index + 6
    if pattern.startswith("{", index + 2):
        close = pattern.find("}", index + 3)
        digits = pattern[index + 3 : close]
        if close != -1 and 1 <= len(digits) <= 6 and set(digits) <= _HEX:
            return int(digits, 16), close + 1
    return None, index


def _error_text(exc: Exception) -> str:
    text = exc.args[0] if exc.args else ""
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _explain(error: str) -> str:
    """A sentence for the user from RE2's error (``"<what>: <where>"``, e.g. ``"invalid perl operator: (?="``)."""
    what, _, fragment = error.partition(": ")
    if what == "invalid perl operator":
        if fragment in ("(?=", "(?!"):
            return (
                f"lookahead (written (?=...) or (?!...)) is not supported: {_ENGINE} and has no lookaround; describe "
                "what the text may hold instead (for example ^[^x]*$ rather than ^(?!.*x))"
            )
        if fragment in ("(?<=", "(?<!"):
            return (
                f"lookbehind (written (?<=...) or (?<!...)) is not supported: {_ENGINE} and has no lookaround; match "
                "the text before it as part of the pattern instead"
            )
        if fragment == "(?>":
            return (
                f"atomic groups (?>...) are not supported, nor needed: {_ENGINE}, without backtracking; use an "
                "ordinary group (?:...)"
            )
        if fragment == "(?#":
            return "comments (?#...) are not supported in patterns; remove the comment"
        if (fragment[2:3].isalpha() and fragment[2:3] != "P") or fragment[2:3] == "-":
            return (
                f"the inline flags in {fragment}...) are not supported; patterns take only (?i), (?m), (?s) and "
                "(?U), so remove the others"
            )
    if what == "invalid escape sequence":
        if fragment == "\\k" or (fragment[1:2].isdigit() and fragment[1:2] != "0"):
            shown = "\\k<name>" if fragment == "\\k" else fragment
            return (
                f"backreferences ({shown}) are not supported: {_ENGINE} and so cannot refer back to what a group "
                "matched; repeat the group's pattern instead"
            )
        if fragment == "\\Z":
            return "\\Z is not supported in patterns; use $ (or \\z) for the end of the text"
        return f"the escape {fragment} is not supported in patterns; use one RE2 knows ({_ESCAPES}), or the character"
    if what == "bad repetition operator" and len(fragment) >= 2 and fragment.endswith("+"):
        return (
            f"possessive quantifiers ({fragment}) are not supported, nor needed: {_ENGINE}, without backtracking; "
            f"use the ordinary quantifier ({fragment[:-1]})"
        )
    if what == "invalid repetition size":
        return (
            f"the repetition {fragment} is not supported: patterns repeat something at most 1,000 times, nested "
            f"repetitions counted together; {_LENGTH_HINT}"
        )
    if what.startswith("pattern too large"):
        return (
            f"this pattern is too large once compiled, over the regular-expression engine's {PATTERN_MEMORY >> 20} "
            f"MiB budget (a bounded repetition such as \\p{{L}}{{1,200}} is copied once per repetition); {_LENGTH_HINT}"
        )
    return f'this is not a valid regular expression (RE2 says "{error}"); correct the pattern'


# -- jsonschema ----------------------------------------------------------------------------------

_STOCK: Final = Draft202012Validator.VALIDATORS


def _cannot_check(pattern: str, exc: UnsupportedPattern) -> ValidationError:
    return ValidationError(f"the pattern {pattern!r} cannot be checked: {exc.reason}")


def _pattern(validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        matched = search(pattern, instance)
    except UnsupportedPattern as exc:
        yield _cannot_check(pattern, exc)
        return
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        try:
            matching = [key for key in instance if search(pattern, key)]
        except UnsupportedPattern as exc:
            yield _cannot_check(pattern, exc)
            continue
        for key in matching:
            yield from validator.descend(instance[key], subschema, path=key, schema_path=pattern)


def _usable(pattern: str) -> bool:
    try:
        program_size(pattern)
    except UnsupportedPattern:
        return False
    return True


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    patterns = schema.get("patternProperties")
    if not patterns:  # without patterns jsonschema's own never reaches for re
        yield from _STOCK["additionalProperties"](validator, additional, instance, schema)
        return
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    usable = [pattern for pattern in patterns if _usable(pattern)]  # patternProperties reports the rest
    extras = [key for key in instance if key not in properties and not any(search(p, key) for p in usable)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        verb = "does" if len(extras) == 1 else "do"
        joined = ", ".join(repr(each) for each in sorted(extras))
        listed = ", ".join(repr(each) for each in sorted(patterns))
        yield ValidationError(f"{joined} {verb} not match any of the regexes: {listed}")


def _evolve(self: Any, **changes: Any) -> Any:
    """The ``evolve`` of jsonschema's validators, without its switch to the validator of a subschema's ``$schema``."""
    return attrs.evolve(self, **changes)


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        program_size(instance)  # an UnsupportedPattern is the format error's cause
    return True


FORMAT_CHECKER: Final = FormatChecker(formats=())
FORMAT_CHECKER.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
FORMAT_CHECKER.checks("regex", raises=UnsupportedPattern)(_is_regex)

_validator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
    format_checker=FORMAT_CHECKER,
)
_validator.evolve = _evolve
Validator: Final[type[ValidatorClass]] = _validator
