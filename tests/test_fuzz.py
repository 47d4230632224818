"""Hostile input, fuzzed (issue 13): 500 generated specs, templates and tool
arguments, each of which must either work or fail with taskloom's own located error,
within 2 s of CPU and 256 MiB.

The strategies, the worker that runs and measures each case, and the tally live in
benchmarks/fuzz.py, which runs the same properties on 20,000 cases; the cases here
are hypothesis's derandomized sequence, so every run sees the same ones.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("hypothesis")


def _load_fuzz_module() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package; load the one we share by path.
    path = Path(__file__).parent.parent / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("taskloom_benchmarks_fuzz", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz_module()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    root = fuzz.make_tool_root(tmp_path_factory.mktemp("fuzz_root"))
    with fuzz.CaseRunner(root) as case_runner:
        yield case_runner


# A case that hangs costs its whole CPU limit, on a machine that may be shared.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("prop", "count"), [("spec", 250), ("template", 125), ("tool", 125)])
def test_hostile_input_fails_only_with_a_taskloom_error_in_bounded_time_and_memory(
    runner: object, prop: str, count: int
) -> None:
    tally = fuzz.PropertyTally()
    fuzz.run_property(prop, count, runner, tally, seed=None)
    assert tally.cases == count + len(fuzz.KNOWN_CASES[prop])
    problems = tally.problems()
    assert not problems, f"{len(problems)} problems in {count} {prop} cases:\n" + "\n".join(
        problems
    )


def test_shards_of_one_run_add_up() -> None:
    spec_shard = fuzz.PropertyTally(cases=3, ok=1, errors=2, located=2, max_cpu_s=0.5)
    other = fuzz.PropertyTally(cases=2, errors=1, located=1, tracebacks=1, max_cpu_s=0.9,
                               traceback_kinds={"ValueError at x": {"count": 1, "example": {}}})
    reports = [
        {"cases": 3, "interrupted": False, "seed": 0, "elapsed_s": 4.0, "limits": {},
         "python": "3.11", "properties": {"spec": asdict(spec_shard)}},
        {"cases": 2, "interrupted": True, "seed": 1, "elapsed_s": 7.0, "limits": {},
         "python": "3.11", "properties": {"spec": asdict(other)}},
    ]
    merged = fuzz.merge_reports(reports, ["a.json", "b.json"])
    spec = merged["properties"]["spec"]
    assert merged["cases"] == 5 and merged["interrupted"] is True
    assert (spec["cases"], spec["ok"], spec["errors"], spec["tracebacks"]) == (5, 1, 3, 1)
    assert spec["max_cpu_s"] == 0.9
    assert spec["traceback_kinds"]["ValueError at x"]["count"] == 1
    assert [shard["seed"] for shard in merged["shards"]] == [0, 1]
