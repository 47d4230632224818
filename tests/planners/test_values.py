"""Resolving `$N` references: typed values, paths, text interpolation, clear errors."""

from __future__ import annotations

import pytest

from taskloom.planners.base import Interpolation, Ref
from taskloom.planners.values import ReferenceResolutionError, as_text, resolve_args

RESULTS = {1: 42, 2: {"city": "Oslo", "sizes": [3, 4.5], "nested": {"k": True}}, 3: "text"}


def test_a_whole_result_keeps_its_type() -> None:
    args = resolve_args({"n": Ref(1), "d": Ref(2), "s": Ref(3)}, RESULTS)
    assert args == {"n": 42, "d": RESULTS[2], "s": "text"}
    assert isinstance(args["n"], int)


def test_paths_step_into_dicts_and_lists() -> None:
    args = resolve_args(
        {
            "a": Ref(2, ("city",)),
            "b": Ref(2, ("sizes", 1)),
            "c": [Ref(2, ("nested", "k"))],
            "d": {"deep": Ref(2, ("sizes", -1))},
        },
        RESULTS,
    )
    assert args == {"a": "Oslo", "b": 4.5, "c": [True], "d": {"deep": 4.5}}


def test_references_inside_text_are_written_as_text() -> None:
    value = Interpolation(("n=", Ref(1), ", sizes=", Ref(2, ("sizes",)), ", ", Ref(3)))
    assert resolve_args({"q": value}, RESULTS) == {"q": "n=42, sizes=[3, 4.5], text"}
    assert as_text({"a": "é"}) == '{"a": "é"}'


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (Ref(9), "$9 names task 9, which has no result"),
        (Ref(2, ("town",)), "$2 has no field 'town' (fields: city, sizes, nested)"),
        (Ref(2, ("sizes", 5)), "$2.sizes has 2 items, so it has no item [5]"),
        (Ref(1, ("x",)), "$1 is a int (42), so it has no field 'x'"),
    ],
)
def test_bad_references_say_what_is_there(ref: Ref, message: str) -> None:
    with pytest.raises(ReferenceResolutionError) as caught:
        resolve_args({"x": ref}, RESULTS)
    assert str(caught.value) == message
