"""User patterns on RE2: linear-time matching, the syntax it reads, and what is refused with which sentence.

The last part sends hostile patterns to a running service. A backtracking match holds the GIL inside C
for as long as it runs, so a service stuck in one would stall a test process with it: each of those
services runs in a child process, which the test stops when it does not answer in time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from support import CLIENT_KEY, TLS, Sandbox, Service, interrupted_after

from nodes.app import create_app
from nodes.loopback import LoopbackServer
from nodes.patterns import (
    FORMAT_CHECKER,
    MAX_PATTERN_CHARS,
    UnsupportedPattern,
    Validator,
    program_size,
    search,
)
from nodes.settings import Settings

CATASTROPHIC = "^(a+)+$"
#: 28 "a" and a "!": ``re`` needs seconds to refuse them against CATASTROPHIC, twice as long per extra "a".
HOSTILE_TEXT = "a" * 28 + "!"

ENGINE = "patterns run on RE2, which matches in time linear in the text"
LENGTH_HINT = "use + or * and limit the length with minLength/maxLength"


def test_catastrophic_patterns_are_matched_in_linear_time() -> None:
    with interrupted_after(1):
        assert not search(CATASTROPHIC, HOSTILE_TEXT)
        assert not search(CATASTROPHIC, "a" * 200_000 + "!")
        assert not search(r"^(\w+\s?)*$", "Billing confirmed the refund. " * 5_000)
        assert not search(r"^(a|aa)+$", "a" * 200_000 + "b")
        assert search(CATASTROPHIC, "a" * 200_000)


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        (r"^\d{3}-\d{4}$", "555-0100", True),
        (r"^[A-Z]{2}$", "US", True),
        (r"colou?r", "the colour of it", True),  # not anchored, as in JSON Schema
        ("^a$", "a\n", False),  # $ is the very end, as in ECMA-262 (re would match before the newline)
        (r"^\d$", "\u0663", False),  # \d is ASCII, as in ECMA-262
        (r"^\w+$", "Zoë", False),
        (r"^\p{L}+$", "Zoë", True),
        (r"^.$", "é", True),  # one character, not one byte
        (r"^\u00e9$", "é", True),
        (r"^[\u0041-\u005A]+$", "ABC", True),
        (r"^\u{1F600}$", "😀", True),
        (r"^\uD83D\uDE00$", "😀", True),  # a surrogate pair is one character
        (r"^\\u0041$", "\\u0041", True),  # an escaped backslash stays one, followed by "u0041"
        (r"^(?<year>\d{4})-(?P<month>\d{2})$", "2025-01", True),
        (r"(?i)^billing$", "BILLING", True),
        (r"^https?:\/\/", "https://example.com", True),  # the escaped slash of a JavaScript literal
        (r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", "alex.morgan@example.com", True),
    ],
)
def test_supported_syntax(pattern: str, text: str, matches: bool) -> None:
    assert search(pattern, text) is matches


LOOKAHEAD = (
    f"lookahead (written (?=...) or (?!...)) is not supported: {ENGINE} and has no lookaround; describe what the "
    "text may hold instead (for example ^[^x]*$ rather than ^(?!.*x))"
)
LOOKBEHIND = (
    f"lookbehind (written (?<=...) or (?<!...)) is not supported: {ENGINE} and has no lookaround; match the text "
    "before it as part of the pattern instead"
)


def backreference(shown: str) -> str:
    return (
        f"backreferences ({shown}) are not supported: {ENGINE} and so cannot refer back to what a group matched; "
        "repeat the group's pattern instead"
    )


TOO_LONG = "this pattern has 1,001 characters; patterns may have at most 1,000, so shorten it"


def invalid(error: str) -> str:
    return f'this is not a valid regular expression (RE2 says "{error}"); correct the pattern'


REFUSED = [
    ("lookahead", r"^(?=.*\d)\w+$", LOOKAHEAD),
    ("negative-lookahead", r"^(?!admin)\w+$", LOOKAHEAD),
    ("lookbehind", r"(?<=\$)\d+", LOOKBEHIND),
    ("negative-lookbehind", r"(?<!-)\d+", LOOKBEHIND),
    ("backreference", r"^(\w)\1$", backreference("\\1")),
    ("named-backreference", r"^(?<c>\w)\k<c>$", backreference("\\k<name>")),
    (
        "atomic-group",
        r"^(?>a+)b$",
        f"atomic groups (?>...) are not supported, nor needed: {ENGINE}, without backtracking; use an ordinary "
        "group (?:...)",
    ),
    (
        "possessive",
        r"^a*+b$",
        f"possessive quantifiers (*+) are not supported, nor needed: {ENGINE}, without backtracking; use the "
        "ordinary quantifier (*)",
    ),
    ("end-of-text", r"^\d+\Z", "\\Z is not supported in patterns; use $ (or \\z) for the end of the text"),
    (
        "verbose-flag",
        r"(?x) \d+",
        "the inline flags in (?x...) are not supported; patterns take only (?i), (?m), (?s) and (?U), so remove "
        "the others",
    ),
    ("comment", r"\d+(?#digits)", "comments (?#...) are not supported in patterns; remove the comment"),
    (
        "control-escape",
        r"\cJ",
        "the escape \\c is not supported in patterns; use one RE2 knows (\\d, \\w, \\s, \\b, \\p{L}, \\uhhhh, "
        "\\x{hhhh}, \\t, \\n, or a backslash before a punctuation character), or the character",
    ),
    (
        "repetition-over-1000",
        r"^a{1001}$",
        "the repetition {1001} is not supported: patterns repeat something at most 1,000 times, nested "
        f"repetitions counted together; {LENGTH_HINT}",
    ),
    (
        "nested-repetitions",
        r"^(?:a{100}){20}$",
        "the repetition {20} is not supported: patterns repeat something at most 1,000 times, nested "
        f"repetitions counted together; {LENGTH_HINT}",
    ),
    (
        "too-large-compiled",
        r"^\p{L}{1,200}$",
        "this pattern is too large once compiled, over the regular-expression engine's 2 MiB budget (a bounded "
        f"repetition such as \\p{{L}}{{1,200}} is copied once per repetition); {LENGTH_HINT}",
    ),
    ("too-long", "a" * (MAX_PATTERN_CHARS + 1), TOO_LONG),
    ("unclosed-group", "(", invalid("missing ): (")),
    ("unclosed-class", "[a-z", invalid("missing ]: [a-z")),
    ("reversed-range", "[z-a]", invalid("invalid character class range: z-a")),
    ("python-named-backreference", r"(?P<c>a)(?P=c)", invalid("invalid perl operator: (?P")),
]


@pytest.mark.parametrize(("pattern", "reason"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_refused_patterns_say_why_and_what_to_do(pattern: str, reason: str) -> None:
    for attempt in (lambda: search(pattern, "x"), lambda: program_size(pattern)):
        with pytest.raises(UnsupportedPattern) as info:
            attempt()
        assert info.value.reason == reason
        assert info.value.too_large is (reason.startswith("this pattern is too large"))


def test_pattern_limits() -> None:
    assert search("a" * MAX_PATTERN_CHARS, "a" * MAX_PATTERN_CHARS)
    assert program_size(r"^\p{L}{1,50}$") < program_size(r"^\p{L}{1,100}$")  # both within the memory budget
    assert search("(" * 500 + ")" * 500, "")  # nesting that exhausts re's parser is RE2's to handle
    with pytest.raises(UnsupportedPattern, match="lone UTF-16 surrogate"):
        search("\ud800", "x")


# -- the jsonschema validator --------------------------------------------------------------------

BENIGN = [
    ({"type": "string", "pattern": "^a$"}, "x"),
    ({"type": "string", "pattern": "^a$"}, "a"),
    ({"type": "string", "pattern": "b"}, 7),
    ({"type": "object", "patternProperties": {"^x-": {"type": "integer"}}}, {"x-a": "s", "y": "s"}),
    ({"type": "object", "patternProperties": {"^x-": True}, "additionalProperties": False}, {"x-a": 1, "y": 1, "z": 2}),
    ({"type": "object", "patternProperties": {"^x-": True}, "additionalProperties": {"type": "integer"}}, {"y": "s"}),
    ({"type": "object", "properties": {"y": True}, "additionalProperties": False}, {"y": 1, "z": 2}),
    ({"type": "object", "patternProperties": {}, "additionalProperties": False}, {"y": 1}),
    ({"type": "array", "items": {"type": "string", "pattern": "^[0-9]+$"}}, ["12", "1a", "b"]),
]


@pytest.mark.parametrize(("schema", "instance"), BENIGN)
def test_validator_words_errors_as_jsonschema_does(schema: dict[str, Any], instance: Any) -> None:
    def errors(validator: Any) -> list[tuple[list[Any], str]]:
        return sorted((list(error.absolute_path), error.message) for error in validator.iter_errors(instance))

    assert errors(Validator(schema)) == errors(Draft202012Validator(schema))


def test_validator_messages() -> None:
    assert [e.message for e in Validator({"pattern": "^a$"}).iter_errors("x")] == ["'x' does not match '^a$'"]
    lookahead = Validator({"pattern": "(?=a)"})  # refused before any schema reaches a validator; still no re
    assert [e.message for e in lookahead.iter_errors("x")] == [f"the pattern '(?=a)' cannot be checked: {LOOKAHEAD}"]


HOSTILE_SCHEMAS = [
    ("pattern", {"type": "string", "pattern": CATASTROPHIC}, HOSTILE_TEXT, False),
    ("patternProperties", {"type": "object", "patternProperties": {CATASTROPHIC: False}}, {HOSTILE_TEXT: 1}, True),
    (
        "additionalProperties",
        {"type": "object", "patternProperties": {CATASTROPHIC: True}, "additionalProperties": False},
        {HOSTILE_TEXT: 1},
        False,
    ),
    (
        "subschema-with-its-own-$schema",
        {"properties": {"s": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": CATASTROPHIC}}},
        {"s": "a" * 40 + "!"},
        False,
    ),
    (
        "$ref-to-a-root-with-$schema",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"s": {"pattern": CATASTROPHIC}, "r": {"$ref": "#"}},
        },
        {"r": {"s": "a" * 40 + "!"}},
        False,
    ),
]


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [case[1:] for case in HOSTILE_SCHEMAS],
    ids=[case[0] for case in HOSTILE_SCHEMAS],
)
def test_validator_never_backtracks(schema: dict[str, Any], instance: Any, valid: bool) -> None:
    with interrupted_after(1):
        assert Validator(schema).is_valid(instance) is valid


def test_format_checker_takes_regex_to_mean_runs_on_re2() -> None:
    assert FORMAT_CHECKER.conforms(CATASTROPHIC, "regex")
    assert not FORMAT_CHECKER.conforms("(?=a)", "regex")
    assert not FORMAT_CHECKER.conforms("a" * (MAX_PATTERN_CHARS + 1), "regex")
    assert FORMAT_CHECKER.conforms("2025-01-06", "date") and not FORMAT_CHECKER.conforms("2025-13-06", "date")


# -- hostile patterns against a running service ----------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 30
#: The extract request of the report: in the sandbox, a sentence tried against this pattern backtracked forever.
SENTENCE_ATTACK = {
    "type": "object",
    "properties": {"summary": {"type": "string", "pattern": r"^(\w+\s?)*$"}},
    "required": ["summary"],
}
REPLY_ATTACK = {
    "type": "object",
    "properties": {"summary": {"type": "string", "pattern": CATASTROPHIC}},
    "required": ["summary"],
}


def run_in_child(scenario: str, tmp_path: Path) -> dict[str, Any]:
    """Run ``scenario(db)`` of this module in a fresh interpreter; its JSON result, or a failure after the timeout."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TIERWISE_") and name not in ("OPENAI_API_KEY", "DATABASE_URL")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")]))
    code = f"import json, sys, test_patterns; print(json.dumps(test_patterns.{scenario}(sys.argv[1])))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "tierwise.db")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the service did not answer the hostile request within {CHILD_TIMEOUT_S} s")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def extract_while_checking_health(url: str, schema: dict[str, Any]) -> dict[str, Any]:
    """POST the extract and ask ``/healthz`` (2 s each) until it is answered; the answer and the health seen."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with (
        httpx.Client(base_url=url, timeout=20, verify=TLS) as caller,
        httpx.Client(base_url=url, timeout=2, verify=TLS) as prober,
        ThreadPoolExecutor(1) as pool,
    ):
        extract = pool.submit(caller.post, "/v1/nodes/extract", json={"input": "x", "schema": schema}, headers=headers)
        health: list[int | str] = []
        while not extract.done() or not health:
            try:
                health.append(prober.get("/healthz").status_code)
            except httpx.TimeoutException:
                health.append("timeout")
            time.sleep(0.02)
        response = extract.result()
    return {"status": response.status_code, "body": response.json(), "health": health}


def scenario_sandbox_upstream(db: str) -> dict[str, Any]:
    from conftest import service_settings

    with Sandbox() as sandbox:
        server = LoopbackServer(create_app(service_settings(sandbox.base_url, {"db": db})))
        try:
            return extract_while_checking_health(server.start_in_thread(), SENTENCE_ATTACK)
        finally:
            server.stop_thread()


def scenario_sandbox_mode(db: str) -> dict[str, Any]:
    server = LoopbackServer(create_app(Settings(sandbox=True, db=db, api_keys=[CLIENT_KEY])))
    try:
        return extract_while_checking_health(server.start_in_thread(), SENTENCE_ATTACK)
    finally:
        server.stop_thread()


def scenario_hostile_replies(db: str) -> dict[str, Any]:
    from conftest import service_settings

    with Sandbox() as sandbox:
        # Every model replies with a summary of 28 "a" and a "!", which ^(a+)+$ refuses.
        sandbox.configure(faults=[{"kind": "content", "content": json.dumps({"summary": HOSTILE_TEXT})}])
        server = LoopbackServer(create_app(service_settings(sandbox.base_url, {"db": db})))
        try:
            return extract_while_checking_health(server.start_in_thread(), REPLY_ATTACK)
        finally:
            server.stop_thread()


@pytest.mark.parametrize("scenario", ["scenario_sandbox_upstream", "scenario_sandbox_mode"])
def test_the_reported_extract_is_answered_while_healthz_answers(scenario: str, tmp_path: Path) -> None:
    result = run_in_child(scenario, tmp_path)
    assert result["status"] == 200, result["body"]
    assert search(r"^(\w+\s?)*$", result["body"]["output"]["summary"])
    assert set(result["health"]) == {200}


def test_a_hostile_reply_is_refused_at_once_and_healthz_answers(tmp_path: Path) -> None:
    result = run_in_child("scenario_hostile_replies", tmp_path)
    assert result["status"] == 502 and result["body"]["type"] == "/problems/run-failed", result["body"]
    refusal = f"$.summary: '{HOSTILE_TEXT}' does not match '{CATASTROPHIC}'"
    attempts = result["body"]["attempts"]
    assert [(attempt["tier"], attempt["outcome"], attempt["error"]) for attempt in attempts] == [
        (tier, "invalid_output", refusal) for tier in ("nano", "nano", "mini", "mini", "full", "full")
    ]
    assert set(result["health"]) == {200}


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [(r"^(\w)\1$", backreference("\\1")), (r"^(?=.*\d)\w+$", LOOKAHEAD), ("a" * 1001, TOO_LONG)],
    ids=["backreference", "lookahead", "too-long"],
)
def test_unsupported_patterns_are_refused_before_any_model_call(
    service: Service, sandbox: Sandbox, pattern: str, reason: str
) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}, "required": ["code"]}
    response = service.http.post("/v1/nodes/extract", json={"input": "x", "schema": schema})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "/problems/unsupported-schema"
    assert body["errors"] == [{"loc": ["schema", "properties", "code", "pattern"], "msg": reason}]
    assert body["detail"] == (
        f"The JSON Schema cannot be used for structured outputs: {reason} (at schema.properties.code.pattern)."
    )
    assert sandbox.requests() == []
