"""Reading a request body: what is let through unchanged, and every refusal with its status, type and place."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nodes.errors import InvalidRequest, MalformedRequest, ProblemError
from nodes.jsonbody import MAX_INT_DIGITS, find_unsafe, parse_json_object

DEEP = (
    "nested more than 64 levels deep; objects and arrays may nest at most 64 levels, so flatten this "
    "value or send it as a string"
)
LONG_INT = "this integer has more than 4,300 digits; send a shorter number, or the digits as a string"
OVERFLOW = "this number is too large to represent (beyond ±1.8e308); send a smaller number, or the digits as a string"


def surrogate(code: str, what: str = "this string") -> str:
    return (
        f"{what} contains a lone UTF-16 surrogate ({code}), which is not valid Unicode; send valid UTF-8 text, "
        "with characters outside the Basic Multilingual Plane as a complete surrogate pair"
    )


def not_json(literal: str) -> str:
    return f"{literal} is not valid JSON; send a number, null or a string instead"


def refusal(raw: bytes, **kwargs: Any) -> ProblemError:
    with pytest.raises(ProblemError) as info:
        parse_json_object(raw, **kwargs)
    problem = info.value
    # Whatever is refused must itself render as a JSON body that encodes as UTF-8.
    json.dumps(problem.to_problem(), ensure_ascii=False).encode("utf-8")
    return problem


def assert_refused(problem: ProblemError, kind: type[ProblemError], loc: tuple[str | int, ...], msg: str) -> None:
    assert type(problem) is kind
    assert problem.status == (400 if kind is MalformedRequest else 422)
    place = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(loc)) or "body"
    assert problem.detail == f"{place}: {msg}"
    assert [(issue.loc, issue.msg) for issue in problem.errors] == [(loc, msg)]


def nested(levels: int, leaf: str = "1", *, key: str | None = None) -> str:
    """``levels`` containers, the innermost holding ``leaf``: arrays, or objects under ``key``."""
    if key is None:
        return "[" * levels + leaf + "]" * levels
    return f'{{"{key}":' * levels + leaf + "}" * levels


# --- what passes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"input": "x", "labels": ["a", "b"], "metadata": {"n": 7, "f": -1.5e300, "ok": true, "none": null}}',
        '{"input": "café ✓ 日本"}'.encode(),
        b'{"input": "\\ud83d\\ude00 pair escapes are one character"}',
        "\ufeff{}".encode(),
        '{"input": "x"}'.encode("utf-16"),
        b'{"big": ' + b"9" * MAX_INT_DIGITS + b', "neg": -' + b"9" * MAX_INT_DIGITS + b"}",
        b'{"f": 1.7976931348623157e308, "tiny": 5e-324, "under": 1e-400}',
    ],
    ids=["plain", "non-ascii", "surrogate-pair", "utf-8-bom", "utf-16", "4300-digits", "float-edges"],
)
def test_valid_bodies_come_back_as_json_loads_reads_them(raw: bytes) -> None:
    assert parse_json_object(raw) == json.loads(raw)


def test_depth_exactly_at_the_limit_passes() -> None:
    body = f'{{"metadata": {nested(63)}}}'.encode()  # the body object + 63 arrays = 64 levels
    assert parse_json_object(body)["metadata"] == json.loads(nested(63))
    assert parse_json_object(b'{"a": {"b": 1}}', max_depth=2) == {"a": {"b": 1}}


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "the request body is empty; send a JSON object"),
        (b"  \n", "the request body is empty; send a JSON object"),
        (b"{not json", "the request body is not valid JSON at line 1 column 2; send a JSON object"),
        (b'{"a": 1,\n "b": }', "the request body is not valid JSON at line 2 column 7; send a JSON object"),
        (b"\xff\xfe", "the request body is not valid JSON at line 1 column 1; send a JSON object"),
        (b'{"a": "\xff"}', "the request body is not valid JSON; send a JSON object"),
        (b"[1, 2]", "the request body must be a JSON object, not list"),
        (b'"text"', "the request body must be a JSON object, not str"),
        (b"12", "the request body must be a JSON object, not int"),
    ],
    ids=["empty", "blank", "syntax", "second-line", "bom-only", "bad-utf-8", "list", "string", "number"],
)
def test_unreadable_bodies_are_400(raw: bytes, detail: str) -> None:
    problem = refusal(raw)
    assert type(problem) is MalformedRequest and problem.status == 400
    assert problem.detail == detail and problem.errors == []


# --- nesting ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [63, 100, 10_000], ids=["just-over", "walked", "beyond-json-loads"])
def test_nesting_over_the_limit_is_422_at_the_first_level_too_deep(levels: int) -> None:
    # The body object is level 1 and metadata.a level 2: the 63rd array inside a is level 65.
    problem = refusal(f'{{"metadata": {{"a": {nested(levels)}}}}}'.encode())
    assert_refused(problem, InvalidRequest, ("metadata", "a", *[0] * 62), DEEP)


@pytest.mark.parametrize("levels", [70, 10_000], ids=["walked", "beyond-json-loads"])
def test_nesting_place_follows_keys_and_indexes(levels: int) -> None:
    raw = f'{{"input": {{"k": [1, "x", {{"z": {nested(levels, key="q")}}}]}}, "labels": ["a"]}}'.encode()
    # The body, input, k and k[2] are four levels; z holds q-object 1 at level 5, so q-object 61 is level 65.
    assert_refused(refusal(raw), InvalidRequest, ("input", "k", 2, "z", *["q"] * 60), DEEP)


def test_nesting_limit_is_a_parameter() -> None:
    problem = refusal(b'{"a": {"b": {"c": 1}}}', max_depth=2)
    assert type(problem) is InvalidRequest
    assert problem.errors[0].loc == ("a", "b")
    assert problem.detail.startswith(
        "a.b: nested more than 2 levels deep; objects and arrays may nest at most 2 levels"
    )


def test_text_scan_reads_escaped_keys_and_strings_with_brackets() -> None:
    deep = nested(10_000)
    raw = f'{{"s": "[[[{{{{\\"]", "k\\"ey": {{"x": [0, "]", {deep}]}}}}'.encode()
    # The body, k"ey and x are three levels; x[2] is array 1 at level 4, so array 62 is level 65.
    assert_refused(refusal(raw), InvalidRequest, ('k"ey', "x", 2, *[0] * 61), DEEP)


# --- numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        (b'{"metadata": {"n": ' + b"9" * 5000 + b"}}", ("metadata", "n")),
        (b'{"a": [1, -' + b"1" * (MAX_INT_DIGITS + 1) + b"]}", ("a", 1)),
        (b'{"input": "x", "max_words": ' + b"7" * 100_000 + b"}", ("max_words",)),
    ],
    ids=["5000-digits", "negative-4301", "100000-digits"],
)
def test_integers_over_the_digit_limit_are_422(raw: bytes, loc: tuple[str | int, ...]) -> None:
    assert_refused(refusal(raw), InvalidRequest, loc, LONG_INT)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_400(literal: str) -> None:
    raw = f'{{"metadata": {{"a": [0, {literal}]}}}}'.encode()
    assert_refused(refusal(raw), MalformedRequest, ("metadata", "a", 1), not_json(literal))


def test_a_bare_constant_is_400_at_the_body() -> None:
    assert_refused(refusal(b"NaN"), MalformedRequest, (), not_json("NaN"))


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 400 + ".0"])
def test_numbers_that_overflow_are_422(number: str) -> None:
    raw = f'{{"schema": {{"properties": {{"a": {{"minimum": {number}}}}}}}}}'.encode()
    assert_refused(refusal(raw), InvalidRequest, ("schema", "properties", "a", "minimum"), OVERFLOW)


# --- lone surrogates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "loc", "code"),
    [
        (b'{"metadata": {"s": "\\ud800"}}', ("metadata", "s"), "\\ud800"),
        (b'{"input": "ok \\udfff then"}', ("input",), "\\udfff"),
        (b'{"labels": ["fine", "a\\ud83d"]}', ("labels", 1), "\\ud83d"),
        (b'{"input": "\\ude00\\ud83d"}', ("input",), "\\ude00"),  # the wrong way round
        (b'{"input": "\xed\xa0\x80"}', ("input",), "\\ud800"),  # a surrogate written as UTF-8 bytes
        ('{"input": "x"}'.encode("utf-16-le").replace(b"x\x00", b"\x00\xd8"), ("input",), "\\ud800"),
    ],
    ids=["metadata", "input", "label", "reversed-pair", "utf-8-bytes", "utf-16-unpaired"],
)
def test_lone_surrogates_in_strings_are_400(raw: bytes, loc: tuple[str | int, ...], code: str) -> None:
    assert_refused(refusal(raw), MalformedRequest, loc, surrogate(code))


def test_lone_surrogate_in_a_key_is_400_with_the_key_escaped() -> None:
    problem = refusal(b'{"metadata": {"a\\udc80b": 1}}')
    assert_refused(problem, MalformedRequest, ("metadata", "a\\udc80b"), surrogate("\\udc80", "this key"))
    assert problem.detail.startswith("metadata.a\\udc80b: this key contains")


def test_a_surrogate_key_on_the_path_of_a_deeper_problem_is_shown_escaped() -> None:
    problem = refusal(b'{"metadata": {"k": {"\\ud800": [NaN]}}}')
    assert type(problem) is MalformedRequest
    assert problem.errors[0].loc == ("metadata", "k", "\\ud800")  # the key itself is the first problem


def test_the_first_problem_in_document_order_is_reported() -> None:
    raw = b'{"metadata": {"a": [1, {"b": NaN}], "c": "\\ud800"}, "n": ' + b"9" * 5000 + b"}"
    assert_refused(refusal(raw), MalformedRequest, ("metadata", "a", 1, "b"), not_json("NaN"))


# --- values parsed elsewhere ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "loc", "msg"),
    [
        ({"a": [1, float("nan")]}, MalformedRequest, ("a", 1), not_json("NaN")),
        ([{"x": float("-inf")}], InvalidRequest, (0, "x"), OVERFLOW),
        ({"k": 10**MAX_INT_DIGITS}, InvalidRequest, ("k",), LONG_INT),
        (["ok", "\udc00"], MalformedRequest, (1,), surrogate("\\udc00")),
        (float("nan"), MalformedRequest, (), not_json("NaN")),
        ("\ud800", MalformedRequest, (), surrogate("\\ud800")),
    ],
    ids=["nan-float", "infinity-float", "long-int", "list-root", "bare-nan", "bare-string"],
)
def test_find_unsafe_checks_values_parsed_elsewhere(
    value: Any, kind: type[ProblemError], loc: tuple[str | int, ...], msg: str
) -> None:
    problem = find_unsafe(value)
    assert problem is not None
    assert_refused(problem, kind, loc, msg)


def test_find_unsafe_passes_safe_values_and_counts_depth_from_the_top() -> None:
    assert find_unsafe({"a": [1, 2.5, "é", None, True, {"b": []}]}) is None
    assert find_unsafe("text") is None and find_unsafe(3) is None
    assert find_unsafe(json.loads(nested(64))) is None
    problem = find_unsafe(json.loads(nested(65)))
    assert problem is not None and problem.errors[0].loc == (0,) * 64
