"""The joiner's replies: Finish and Replan read back whole, whatever the answer holds."""

from __future__ import annotations

import json

import jsonschema
import pytest

from taskloom.planners.joiner import (
    Finish,
    JoinerReplyError,
    Replan,
    decision_schema,
    format_decision,
    parse_decision,
    parse_decision_json,
    shape_answer,
)

AWKWARD_ANSWERS = [
    "Paris",
    "f(x) = (a + b))",
    ")",
    "((",
    "He said \"stop\" (twice), then 'left'.",
    "line one\nline two)\n\n  indented (3)",
    "Action: Replan(not really)",
    "ends with a paren )",
    '"quoted"',
    "",
    "Ünïcödé — 東京 (Tōkyō)",
]


@pytest.mark.parametrize("answer", AWKWARD_ANSWERS)
def test_finish_answers_round_trip_whole(answer: str) -> None:
    decision = Finish(answer, thought="The results (all of them) agree.")
    assert parse_decision(format_decision(decision)) == decision


@pytest.mark.parametrize("reason", ["task 2 failed: no entry named 'Oslo (city)'", "a\nb"])
def test_replan_reasons_round_trip_whole(reason: str) -> None:
    decision = Replan(reason, thought="Something is missing.")
    assert parse_decision(format_decision(decision)) == decision


def test_a_reply_cut_off_before_its_closing_paren_keeps_everything() -> None:
    assert parse_decision("Thought: ok\nAction: Finish(The answer is (probably") == Finish(
        "The answer is (probably", "ok"
    )


def test_a_reply_without_the_action_prefix_is_still_read() -> None:
    assert parse_decision("Finish(42)") == Finish("42")


def test_a_reply_with_no_action_is_an_error() -> None:
    with pytest.raises(JoinerReplyError, match="neither Finish nor Replan"):
        parse_decision("I think it is 42.")


def test_json_replies_follow_their_schema() -> None:
    schema = decision_schema({"type": "integer"}, allow_replan=True)
    finish = {"thought": "t", "action": "finish", "answer": 42}
    replan = {"thought": "t", "action": "replan", "reason": "search failed"}
    jsonschema.validate(finish, schema)
    jsonschema.validate(replan, schema)
    assert parse_decision_json(json.dumps(finish)) == Finish(42, "t")
    assert parse_decision_json(json.dumps(replan)) == Replan("search failed", "t")
    no_replan = decision_schema(None, allow_replan=False)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(replan, no_replan)
    with pytest.raises(JoinerReplyError, match="does not parse"):
        parse_decision_json('{"action": "finish", "answer": "cut')


def test_answers_are_checked_against_the_output_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert shape_answer('{"n": 3}', schema) == {"n": 3}
    assert shape_answer("plain (text)", None) == "plain (text)"
    assert shape_answer("x", {"type": "string"}) == "x"
    with pytest.raises(JoinerReplyError, match="not valid JSON"):
        shape_answer("three", schema)
    with pytest.raises(JoinerReplyError, match="does not match"):
        shape_answer('{"n": "three"}', schema)
