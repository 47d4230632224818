"""The SJF oracle counts a program's decode work, maps included."""

from __future__ import annotations

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.bench.autellix.oracle import program_oracle, program_tokens
from taskloom.bench.workloads import build_workload
from taskloom.program.models import LLMNode, MapNode, Program


def test_a_map_over_samples_counts_each_sample() -> None:
    program = Program(name="p", nodes={
        "expand": LLMNode(prompt="ideas", n=3, max_tokens=10),
        "judge": MapNode(over="{{ expand }}", node=LLMNode(prompt="{{ item }}", max_tokens=5)),
    })
    assert program_tokens(program) == 3 * 10 + 3 * 5


def test_the_oracle_subtracts_what_earlier_calls_asked_for() -> None:
    workload = build_workload("chat", 1, 0)
    total = program_tokens(workload.programs[0].program)
    remaining = program_oracle(workload)

    def request(max_tokens: int) -> GenerateRequest:
        return GenerateRequest(call_id="c", prompt="x", program_id="p00000",
                               sampling=SamplingParams(max_tokens=max_tokens))

    assert remaining(request(7)) == total
    assert remaining(request(3)) == total - 7
