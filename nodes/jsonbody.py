r"""Reading a request body into a safe JSON object.

Every node request starts here, so everything after it may assume a plain JSON object that any JSON
library can write back out: nested at most ``max_depth`` levels, integers of at most
:data:`MAX_INT_DIGITS` digits, finite numbers only, and strings (keys too) that are valid Unicode.
``json.loads`` alone lets through what breaks later: ``NaN`` and ``Infinity`` (not JSON, and refused
when the answer is serialised), numbers such as ``1e400`` that overflow to infinity, lone UTF-16
surrogates (``"\ud800"``, which cannot be encoded as UTF-8), and nesting deep enough to exhaust the
stack of whatever walks the value recursively next (pydantic, jsonschema, ``json.dumps``).

The refusals, each naming the place (``metadata.a[0].b``) in ``detail`` and in ``errors[].loc``:

* ``MalformedRequest`` (400): an empty body, bytes that are not JSON, a JSON value that is not an
  object, ``NaN``/``Infinity``/``-Infinity``, a lone surrogate;
* ``InvalidRequest`` (422): nesting deeper than ``max_depth``, an integer over
  :data:`MAX_INT_DIGITS` digits, a number too large to represent.

:func:`find_unsafe` is the same walk for a value parsed elsewhere (a model's reply, say).

The cost is one ``json.loads`` and one iterative walk over the parsed value. The slower paths
(re-reading to locate an over-long integer or a nesting too deep for ``json.loads`` itself) run
only for bodies that are refused anyway.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, Final

from nodes.errors import FieldIssue, InvalidRequest, MalformedRequest, ProblemError

__all__ = ["MAX_INT_DIGITS", "find_unsafe", "parse_json_object"]

Loc = tuple[str | int, ...]

# Python's own default for int/str conversion (sys.set_int_max_str_digits): longer integers are slow
# to parse and to print, and no node field needs one.
MAX_INT_DIGITS: Final = 4300
_INT_BOUND: Final = 10**MAX_INT_DIGITS

_SURROGATE = re.compile("[\ud800-\udfff]")
# The tokens that matter for nesting: strings (skipped whole, escapes included) and punctuation.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


class _NotJson:
    """Stands in for a ``NaN``/``Infinity``/``-Infinity`` literal until the walk finds its place."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _LongInt:
    """Stands in for an integer literal over :data:`MAX_INT_DIGITS` digits."""

    __slots__ = ()


def parse_json_object(raw: bytes, *, max_depth: int = 64) -> dict[str, Any]:
    """Decode a request body that must be a safe JSON object, or raise a problem naming the place.

    ``max_depth`` counts containers: the body object itself is level 1, so ``{"metadata": {}}`` nests
    two levels. Raises ``MalformedRequest`` (400) for what is not JSON, not an object, or not valid
    Unicode, and ``InvalidRequest`` (422) for JSON outside the limits above.
    """
    if not raw.strip():
        raise MalformedRequest("the request body is empty; send a JSON object")
    try:
        # What json.loads(bytes) does: UTF-8, -16 or -32, a lone surrogate passed through as one.
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
        data = _load(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise MalformedRequest(f"the request body is not valid JSON{where}; send a JSON object") from exc
    except RecursionError as exc:
        # Deeper than json.loads itself can go: find the place from the text instead.
        raise _too_deep(_deep_place(text, max_depth), max_depth) from exc
    if isinstance(data, _NotJson):
        raise _not_json((), data.literal)
    if not isinstance(data, dict):
        raise MalformedRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    problem = find_unsafe(data, max_depth=max_depth)
    if problem is not None:
        raise problem
    return data


def _load(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_NotJson)
    except json.JSONDecodeError:
        raise
    except ValueError:
        # Only an integer over the interpreter's digit limit gets here; read again to find it.
        return json.loads(text, parse_constant=_NotJson, parse_int=_bounded_int)


def _bounded_int(literal: str) -> int | _LongInt:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        return _LongInt()
    return int(literal)


def find_unsafe(value: Any, *, max_depth: int = 64) -> ProblemError | None:
    """The problem (not raised) at the first place in a parsed JSON value that breaks the rules above.

    In document order, found without recursion; ``None`` when ``value`` is safe. For values parsed
    elsewhere (a model's reply): a ``NaN`` that ``json.loads`` accepted is reported as not JSON.
    """
    if isinstance(value, dict):
        children: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        children = enumerate(value)
    else:  # a bare scalar: checked as the one item of a list, reported at the top
        problem = find_unsafe([value], max_depth=max_depth + 1)
        return None if problem is None else _problem(type(problem), (), problem.errors[0].msg)
    # One frame per open container: its remaining (key, child) pairs, and its own key in its parent.
    stack: list[tuple[Iterator[tuple[Any, Any]], str | int]] = [(children, "")]
    while stack:
        items = stack[-1][0]
        for key, child in items:
            if type(key) is str and not key.isascii() and _SURROGATE.search(key):
                return _surrogate(_loc(stack, key), key, is_key=True)
            kind = type(child)
            if kind is str:
                if not child.isascii() and _SURROGATE.search(child):
                    return _surrogate(_loc(stack, key), child, is_key=False)
            elif kind is dict or kind is list:
                if len(stack) >= max_depth:
                    return _too_deep(_loc(stack, key), max_depth)
                stack.append((iter(child.items()) if kind is dict else enumerate(child), key))
                break
            elif kind is int:
                if not -_INT_BOUND < child < _INT_BOUND:
                    return _long_int(_loc(stack, key))
            elif kind is float:
                if not math.isfinite(child):
                    return _overflow(_loc(stack, key)) if child == child else _not_json(_loc(stack, key), "NaN")
            elif kind is _NotJson:
                return _not_json(_loc(stack, key), child.literal)
            elif kind is _LongInt:
                return _long_int(_loc(stack, key))
        else:
            stack.pop()
    return None


def _loc(stack: list[tuple[Iterator[tuple[Any, Any]], str | int]], key: str | int) -> Loc:
    return tuple(_printable(part) for _, part in stack[1:]) + (_printable(key),)


def _deep_place(text: str, max_depth: int) -> Loc:
    """Where the first container deeper than ``max_depth`` opens, read from the text's tokens."""
    # One entry per open container: the key or index of the child being read next.
    path: list[str | int] = []
    in_object: list[bool] = []
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            if len(in_object) >= max_depth:
                return tuple(path)
            path.append(0)
            in_object.append(token == "{")
            expect_key = token == "{"
        elif token in ("}", "]"):
            if path:
                path.pop()
                in_object.pop()
            expect_key = False
        elif token == ",":
            if in_object and in_object[-1]:
                expect_key = True
            elif path and isinstance(path[-1], int):
                path[-1] += 1
        elif expect_key:
            path[-1] = _printable(_string(token))
            expect_key = False
    return ()


def _string(token: str) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        return token.strip('"')
    return value if isinstance(value, str) else token


def _printable(part: str | int) -> str | int:
    r"""A key as it can be shown and sent back: a lone surrogate is written as its ``\uXXXX`` escape."""
    if isinstance(part, str) and not part.isascii() and _SURROGATE.search(part):
        return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", part)
    return part


def _render(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "body"


def _problem(kind: type[ProblemError], loc: Loc, msg: str) -> ProblemError:
    return kind(f"{_render(loc)}: {msg}", errors=[FieldIssue(loc, msg)])


def _too_deep(loc: Loc, max_depth: int) -> ProblemError:
    return _problem(
        InvalidRequest,
        loc,
        f"nested more than {max_depth} levels deep; objects and arrays may nest at most "
        f"{max_depth} levels, so flatten this value or send it as a string",
    )


def _long_int(loc: Loc) -> ProblemError:
    return _problem(
        InvalidRequest,
        loc,
        f"this integer has more than {MAX_INT_DIGITS:,} digits; send a shorter number, or the digits as a string",
    )


def _overflow(loc: Loc) -> ProblemError:
    return _problem(
        InvalidRequest,
        loc,
        "this number is too large to represent (beyond ±1.8e308); send a smaller number, or the digits as a string",
    )


def _not_json(loc: Loc, literal: str) -> ProblemError:
    return _problem(MalformedRequest, loc, f"{literal} is not valid JSON; send a number, null or a string instead")


def _surrogate(loc: Loc, text: str, *, is_key: bool) -> ProblemError:
    found = _SURROGATE.search(text)
    code = f"\\u{ord(found.group()):04x}" if found else "a surrogate"
    what = "this key" if is_key else "this string"
    return _problem(
        MalformedRequest,
        loc,
        f"{what} contains a lone UTF-16 surrogate ({code}), which is not valid Unicode; send valid "
        "UTF-8 text, with characters outside the Basic Multilingual Plane as a complete surrogate pair",
    )
