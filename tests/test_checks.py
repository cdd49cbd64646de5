"""The reply checks, in order: refusal, truncation, validity (with the user's shape restored), confidence."""

from __future__ import annotations

from dataclasses import replace

from scripted import model_reply

from nodes.catalog import NODES, Task
from nodes.checks import Accepted, Rejection, confident, judge_reply, refused, truncated
from nodes.confidence import Calibration, TokenLogprob
from nodes.provider import ModelReply
from nodes.sandbox.wire import token_logprobs


def task(node: str, **fields: object) -> Task:
    found = NODES[node]
    return found.task(found.parse(fields))


CLASSIFY = task("classify", input="charged twice", labels=["billing", "bug"], min_confidence=0.7)
EXTRACT = task(
    "extract",
    input="Ann <ann@example.com>",
    schema={
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name"],
    },
)


def test_an_acceptable_reply_is_accepted_in_the_users_shape() -> None:
    # The strict schema sent to the model makes age required and nullable; the user's has it optional.
    assert judge_reply(EXTRACT, model_reply({"name": "Ann", "age": None})) == Accepted({"name": "Ann"})


def test_refusal_and_the_content_filter_come_first() -> None:
    refusal = model_reply({"label": "billing", "confidence": 0.9}, refusal="no")
    assert judge_reply(CLASSIFY, refusal) == Rejection("refusal", ["no"])
    filtered = model_reply("", finish_reason="content_filter")
    assert refused(CLASSIFY, filtered) == Rejection("refusal", ["the content filter stopped the reply"])


def test_truncation_is_named_before_the_broken_json_it_causes() -> None:
    cut = model_reply('{"label": "bill', finish_reason="length")
    assert judge_reply(CLASSIFY, cut) == Rejection("truncated", ["the reply was cut off at the output token limit"])
    assert truncated(CLASSIFY, model_reply("{}")) is None


def test_invalid_output_is_repairable_and_says_where() -> None:
    verdict = judge_reply(EXTRACT, model_reply({"name": "Ann", "age": -3}))
    assert verdict == Rejection("invalid_output", ["$.age: -3 is less than the minimum of 0"], repairable=True)
    broken = judge_reply(EXTRACT, model_reply("Sure! {"))
    assert isinstance(broken, Rejection) and broken.repairable
    assert broken.errors == ["the reply is not valid JSON (Expecting value at line 1 column 1)"]


def test_low_confidence_keeps_the_answer_as_a_fallback() -> None:
    value = {"label": "bug", "confidence": 0.4}
    verdict = judge_reply(CLASSIFY, model_reply(value))
    assert verdict == Rejection("low_confidence", ["confidence 0.4 is below min_confidence 0.7"], fallback=value)
    assert confident(CLASSIFY, {"label": "bug", "confidence": 0.7}) is None


def test_word_limits_are_checked_after_the_schema() -> None:
    draft = task("draft", input="notes", max_words=3)
    verdict = judge_reply(draft, model_reply({"text": "one two three four"}))
    assert verdict == Rejection("invalid_output", ["$.text: has 4 words; the limit is 3"], repairable=True)


def test_checks_are_values_a_caller_can_extend() -> None:
    distrust = Rejection("low_confidence", ["bug is not trusted"])

    def never_bug(task: Task, value: object) -> Rejection | None:
        return distrust if value == {"label": "bug", "confidence": 1} else None

    answer = model_reply({"label": "bug", "confidence": 1})
    assert judge_reply(CLASSIFY, answer, value_checks=(never_bug,)) == distrust


def with_tokens(content: str, label_probability: float) -> ModelReply:
    """A reply to CLASSIFY whose tokens give its label ``label_probability``."""
    sandbox_tokens = token_logprobs(content, label_probability)
    tokens = tuple(TokenLogprob(t["token"], t["logprob"]) for t in sandbox_tokens)
    return replace(model_reply(content), token_logprobs=tokens)


def test_with_token_probabilities_min_confidence_compares_them_not_the_models_word() -> None:
    content = '{"label": "billing", "confidence": 0.97}'
    verdict = judge_reply(CLASSIFY, with_tokens(content, 0.55))
    assert isinstance(verdict, Rejection) and verdict.outcome == "low_confidence"
    assert verdict.errors == ["confidence 0.55 is below min_confidence 0.7"]
    assert verdict.fallback == {"label": "billing", "confidence": 0.55}
    assert verdict.confidence is not None and verdict.confidence.self_reported == 0.97
    accepted = judge_reply(CLASSIFY, with_tokens('{"label": "billing", "confidence": 0.3}', 0.9))
    assert isinstance(accepted, Accepted) and accepted.value == {"label": "billing", "confidence": 0.9}
    assert accepted.confidence is not None and accepted.confidence.source == "logprob"


def test_a_steps_calibration_decides_against_a_confident_token() -> None:
    # On this step, answers whose tokens said 0.9 held up in only 40% of audits.
    calibration = Calibration.fit([(0.9, agreed) for agreed in [True] * 4 + [False] * 6], min_outcomes=10)
    verdict = judge_reply(
        CLASSIFY, with_tokens('{"label": "billing", "confidence": 0.99}', 0.9), calibration=calibration
    )
    assert isinstance(verdict, Rejection) and verdict.errors == ["confidence 0.4 is below min_confidence 0.7"]
    assert verdict.confidence is not None and verdict.confidence.as_dict()["source"] == "calibrated"


def test_without_tokens_the_models_own_confidence_counts() -> None:
    verdict = judge_reply(CLASSIFY, model_reply({"label": "billing", "confidence": 0.8}))
    assert verdict == Accepted({"label": "billing", "confidence": 0.8}) and verdict.confidence is None
