"""A model that follows the reference plan, timed by the simulated engine.

The simulator models *when* tokens come out (prefill, batching, decode steps) but
generates filler text. `ScriptedOnSim` keeps the simulator's timing and token counts
and swaps in real text: for each request it asks `ReferenceFollower` what a model that
follows the task's reference plan would write, tells the simulator to generate exactly
that many tokens (counted by the simulator's own 4-characters-per-token tokenizer), and
releases the text piece by piece as the simulator emits tokens. A planner therefore
sees its plan arrive line by line at the speed the engine would write it.

`ReferenceFollower` reads only what a model would see, its prompt: the question picks
the task, and the observations in the prompt supply the values a ReAct step writes and
the answer a joiner gives (or, where a question leaves the final choice to the model,
the observed values it chooses from). So a wrong observation would give a wrong answer,
and the accuracy it scores measures the runtime, with the model's choices held fixed.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.sim import SimBackend, SimEngineConfig, StepCostModel
from taskloom.bench.workloads.llmcompiler.tasks import WorkloadTask
from taskloom.planners.base import Task
from taskloom.planners.joiner import Finish, format_decision
from taskloom.planners.plan_format import format_call
from taskloom.planners.values import ReferenceResolutionError, as_text, resolve_args

Script = Callable[[GenerateRequest], str]

_QUESTION = re.compile(r"^Question: (?P<question>.*)$", re.MULTILINE)
_OBSERVATION = re.compile(r"^\s*Observation: (?P<value>.*)$", re.MULTILINE)
_PIECE = re.compile(r"\s*\S{1,4}")


def token_pieces(text: str) -> list[str]:
    """`text` cut where the simulator's tokenizer cuts it, whitespace kept with the piece
    after it, so the pieces join back to `text`."""
    pieces = _PIECE.findall(text)
    if not pieces:
        return [text]
    consumed = sum(len(piece) for piece in pieces)
    pieces[-1] += text[consumed:]
    return pieces


class ScriptedOnSim:
    """A backend whose answers are `script(request)`, timed by a `SimBackend`."""

    name = "sim-scripted"

    def __init__(self, config: SimEngineConfig, cost: StepCostModel, script: Script) -> None:
        self.script = script
        self._lengths: dict[str, int] = {}
        self.sim = SimBackend(config, cost, output_tokens=self._output_tokens)

    async def __aenter__(self) -> ScriptedOnSim:
        await self.sim.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.sim.__aexit__(kind, exc, tb)

    def capacity(self) -> int:
        return self.sim.capacity()

    async def close(self) -> None:
        await self.sim.close()

    def _output_tokens(self, request: GenerateRequest) -> int:
        return self._lengths.pop(request.call_id, request.sampling.max_tokens)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        text = self.script(request)
        if request.resume_text and text.startswith(request.resume_text):
            text = text[len(request.resume_text) :]
        pieces = token_pieces(text)[: request.sampling.max_tokens]
        self._lengths[request.call_id] = len(pieces)
        emitted = 0
        async with aclosing(self.sim.generate(request)) as chunks:
            async for chunk in chunks:
                upto = min(chunk.generated_tokens, len(pieces))
                new_text, emitted = "".join(pieces[emitted:upto]), upto
                yield Chunk(
                    new_text,
                    chunk.prompt_tokens,
                    chunk.generated_tokens,
                    chunk.cached_prompt_tokens,
                    chunk.finished,
                    chunk.finish_reason,
                )


class ReferenceFollower:
    """What a model that follows each task's reference plan writes, from its prompt."""

    def __init__(self, tasks: Sequence[WorkloadTask]) -> None:
        self._tasks = {task.question: task for task in tasks}

    def __call__(self, request: GenerateRequest) -> str:
        purpose = request.call_id.split("/")[-2]
        prompt = _user_text(request)
        task = self._task(prompt)
        json_reply = request.json_schema_text is not None
        if purpose.startswith("plan"):
            return task.plan_json() if json_reply else task.plan_text()
        observations = [_observed(m.group("value")) for m in _OBSERVATION.finditer(prompt)]
        if purpose.startswith("join"):
            return _joiner_reply(task, observations, json_reply)
        return _react_step(task, observations, json_reply)

    def _task(self, prompt: str) -> WorkloadTask:
        match = _QUESTION.search(prompt)
        if match is None or match.group("question") not in self._tasks:
            raise KeyError(f"no workload task asks: {prompt[:120]!r}")
        return self._tasks[match.group("question")]


def _user_text(request: GenerateRequest) -> str:
    assert request.messages is not None
    return next(m.content for m in reversed(request.messages) if m.role == "user")


def _observed(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _answer(task: WorkloadTask, observations: list[Any]) -> tuple[str, str]:
    """The answer a model following the reference plan gives, and its reason: the last
    result, or the choice the question leaves to the model, made from what was observed."""
    if task.answer_choice is not None:
        choice = task.answer_choice
        reason = f"Comparing the {choice.field} of every one, this is the {choice.prefer}."
        return choice.pick(observations), reason
    return as_text(observations[-1]) if observations else "unknown", ""


def _joiner_reply(task: WorkloadTask, observations: list[Any], json_reply: bool) -> str:
    answer, reason = _answer(task, observations)
    thought = reason or "The last result answers the question."
    if json_reply:
        return json.dumps({"thought": thought, "action": "finish", "answer": answer})
    return format_decision(Finish(answer, thought))


_STEP_THOUGHTS = {
    "search": "I need the facts about {entity}, so I will look it up.",
    "calculator": "I have all the numbers I need, so I will compute the result.",
    "choose": "I have every value I need, so I will compare them and choose.",
}


def _react_step(task: WorkloadTask, observations: list[Any], json_reply: bool) -> str:
    step = len(observations)
    if step >= len(task.plan):
        return _final_answer(*_answer(task, observations), json_reply)
    reference = task.plan[step]
    try:
        values = {number: value for number, value in enumerate(observations, 1)}
        args = resolve_args(reference.args, values)
    except ReferenceResolutionError:
        return _final_answer("unknown", "", json_reply)
    thought = _STEP_THOUGHTS[reference.tool].format(**{k: as_text(v) for k, v in args.items()})
    if json_reply:
        return json.dumps({"thought": thought, "tool": reference.tool, "args": args})
    return f"Thought: {thought}\nAction: {format_call(Task(step + 1, reference.tool, args))}"


def _final_answer(answer: str, reason: str, json_reply: bool) -> str:
    thought = reason or "I now know the final answer."
    if json_reply:
        return json.dumps({"thought": thought, "tool": "finish", "args": {"answer": answer}})
    return f"Thought: {thought}\nFinal Answer: {answer}"
