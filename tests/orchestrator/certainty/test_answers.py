"""Answer extraction and normalization."""

from __future__ import annotations

import pytest

from taskloom.orchestrator.certainty.answers import (
    boxed_answer,
    extractor_from_spec,
    last_number,
    normalize_answer,
)
from taskloom.program.models import AnswerSpec


def test_boxed_takes_the_last_box_with_nested_braces() -> None:
    text = r"first \boxed{3} then \boxed{\frac{1}{2}} done"
    assert boxed_answer(text) == r"\frac{1}{2}"


def test_boxed_cut_off_before_it_closes_is_no_answer() -> None:
    assert boxed_answer(r"so \boxed{\frac{1}{2") is None
    assert boxed_answer("no box here") is None


def test_last_number_finds_signed_decimal_and_grouped_numbers() -> None:
    assert last_number("from 3 to -4.5") == "-4.5"
    assert last_number("it costs 1,250 dollars") == "1,250"
    assert last_number("no digits") is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("$1000$", "1000"),
        (" 42. ", "42"),
        ("0.50", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac{6}{4}", "1.5"),
        (r"\frac{2}{6}", "1/3"),
        ("-0", "0"),
        (r"\text{Paris}", "paris"),
        ("New   York", "new york"),
        (r"\left( 2, 3 \right)", "( 2, 3 )"),
        ("12,5", "12,5"),
        ("1,250,000.5", "1250000.5"),
        ("50\\%", "50"),
    ],
)
def test_normalization_makes_formatting_variants_equal(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


def test_regex_prefers_the_answer_group_then_group_one_then_the_match() -> None:
    named = extractor_from_spec(AnswerSpec(kind="regex", pattern=r"(x)=(?P<answer>\d+)"))
    first = extractor_from_spec(AnswerSpec(kind="regex", pattern=r"answer: (\w+)"))
    whole = extractor_from_spec(AnswerSpec(kind="regex", pattern=r"\d+"))
    assert named("x=1 and x=22") == "22"
    assert first("answer: Blue, no, answer: Red") == "red"  # normalized: lower case
    assert whole("12 then 13") == "13"


def test_json_field_reads_a_dotted_path() -> None:
    extract = extractor_from_spec(AnswerSpec(kind="json_field", field="result.values.1"))
    assert extract('{"result": {"values": [1, "2.50"]}}') == "2.5"
    assert extract('{"result": {}}') is None
    assert extract("not json") is None


def test_answers_that_fail_to_parse_are_none() -> None:
    for spec in (
        AnswerSpec(kind="boxed"),
        AnswerSpec(kind="last_number"),
        AnswerSpec(kind="regex", pattern=r"A: (\d+)"),
        AnswerSpec(kind="json_field", field="a"),
    ):
        assert extractor_from_spec(spec)("I am not sure.") is None


def test_empty_answer_counts_as_none_and_normalize_can_be_off() -> None:
    assert extractor_from_spec(AnswerSpec(kind="boxed"))(r"\boxed{ }") is None
    raw = extractor_from_spec(AnswerSpec(kind="boxed", normalize=False))
    assert raw(r"\boxed{ 1,000 }") == "1,000"


def test_spec_refuses_options_of_another_kind_and_bad_patterns() -> None:
    with pytest.raises(ValueError, match="pattern"):
        AnswerSpec(kind="boxed", pattern="x")
    with pytest.raises(ValueError, match="field"):
        AnswerSpec(kind="json_field")
    with pytest.raises(ValueError, match="valid regex"):
        AnswerSpec(kind="regex", pattern="(")
