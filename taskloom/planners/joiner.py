"""The joiner: after a plan has run, it either finishes with the answer or asks for a
new plan, and says why.

Text replies read `Action: Finish(<answer>)` or `Action: Replan(<reason>)`. The answer
is everything between `Finish(` and the last `)` of the reply, so answers holding
parentheses, quotes or newlines come through whole. JSON replies (structured outputs)
carry the answer as a JSON value, shaped by the node's output schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskloom.orchestrator.llm_call import NodeOutputError, check_structured, parse_structured
from taskloom.planners.base import History, PlanError
from taskloom.planners.llm_calls import PlanLLM
from taskloom.planners.prompts import joiner_messages

# Bounds for structured replies: small models repeat themselves inside a JSON string
# until max_tokens cuts the reply, which then does not parse.
_THOUGHT_MAX_CHARS = 150
_ANSWER_MAX_CHARS = 200


@dataclass(frozen=True)
class Finish:
    answer: Any
    thought: str = ""


@dataclass(frozen=True)
class Replan:
    reason: str
    thought: str = ""


Decision = Finish | Replan


class JoinerReplyError(PlanError):
    """The joiner's reply has neither a Finish nor a Replan action, or its answer does not
    fit the output schema."""


# ---------------------------------------------------------------- text replies

_ACTION = re.compile(r"Action\s*:\s*(?P<verb>Finish|Replan)\s*\(", re.IGNORECASE)
_BARE_ACTION = re.compile(r"\b(?P<verb>Finish|Replan)\s*\(", re.IGNORECASE)
_THOUGHT_PREFIX = re.compile(r"^\s*Thought\s*:\s*", re.IGNORECASE)


def format_decision(decision: Decision) -> str:
    """A text reply that `parse_decision` reads back to the same decision."""
    verb, payload = (
        ("Finish", decision.answer) if isinstance(decision, Finish) else ("Replan", decision.reason)
    )
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"Thought: {decision.thought}\nAction: {verb}({text})"


def parse_decision(text: str) -> Decision:
    """Read a text reply. A reply cut off before its closing `)` keeps all it has."""
    match = _ACTION.search(text) or _BARE_ACTION.search(text)
    if match is None:
        raise JoinerReplyError(
            f"the joiner's reply names neither Finish nor Replan: {text.strip()[:200]!r}"
        )
    payload = text[match.end() :]
    closing = payload.rfind(")")
    body = payload[:closing] if closing >= 0 else payload.rstrip()
    thought = _THOUGHT_PREFIX.sub("", text[: match.start()]).strip()
    if match.group("verb").lower() == "finish":
        return Finish(body, thought)
    return Replan(body, thought)


# ---------------------------------------------------------------- JSON replies


def decision_schema(
    output_schema: Mapping[str, Any] | None, *, allow_replan: bool
) -> dict[str, Any]:
    """The structured-output schema of a joiner reply; without replans left, only a
    finish fits it."""
    thought = {"type": "string", "maxLength": _THOUGHT_MAX_CHARS}
    finish = _action_schema("finish", {"thought": thought, "answer": _answer(output_schema)})
    if not allow_replan:
        return finish
    replan = _action_schema("replan", {"thought": thought, "reason": {"type": "string"}})
    return {"anyOf": [finish, replan]}


def _answer(output_schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if output_schema is not None:
        return dict(output_schema)
    return {"type": "string", "maxLength": _ANSWER_MAX_CHARS}


def _action_schema(action: str, fields: dict[str, Any]) -> dict[str, Any]:
    thought, rest = fields.pop("thought"), fields
    return {
        "type": "object",
        "properties": {"thought": thought, "action": {"type": "string", "enum": [action]}, **rest},
        "required": ["thought", "action", *rest],
        "additionalProperties": False,
    }


def parse_decision_json(text: str) -> Decision:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JoinerReplyError(
            f"the joiner's JSON reply does not parse ({exc.msg}); if it was cut off, "
            "raise max_tokens"
        ) from None
    if not isinstance(data, dict) or data.get("action") not in ("finish", "replan"):
        raise JoinerReplyError('the joiner\'s JSON reply needs "action": "finish" or "replan"')
    thought = str(data.get("thought", ""))
    if data["action"] == "replan":
        return Replan(str(data.get("reason", "")), thought)
    return Finish(data.get("answer"), thought)


# ---------------------------------------------------------------- the answer's shape


def shape_answer(answer: Any, output_schema: Mapping[str, Any] | None) -> Any:
    """Check the answer against the node's output schema; a text answer is read as JSON
    first when the schema wants something other than a string."""
    if output_schema is None:
        return answer
    try:
        if isinstance(answer, str) and output_schema.get("type") != "string":
            return parse_structured(answer, output_schema)
        return check_structured(answer, output_schema)
    except NodeOutputError as exc:
        raise JoinerReplyError(str(exc)) from None


# ---------------------------------------------------------------- the joiner


class Joiner:
    """Asks the model whether a finished plan answers the question."""

    def __init__(
        self, llm: PlanLLM, *, json_reply: bool, output_schema: Mapping[str, Any] | None
    ) -> None:
        self.llm = llm
        self.json_reply = json_reply
        self.output_schema = output_schema

    async def decide(
        self, question: str, history: History, *, allow_replan: bool, purpose: str
    ) -> Decision:
        messages = joiner_messages(
            question, history, json_reply=self.json_reply, allow_replan=allow_replan
        )
        schema = decision_schema(self.output_schema, allow_replan=allow_replan)
        request = self.llm.request(purpose, messages, schema if self.json_reply else None)
        text = await self.llm.complete(request)
        return parse_decision_json(text) if self.json_reply else parse_decision(text)
