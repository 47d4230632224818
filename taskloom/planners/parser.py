"""Streaming plan parsers: text in pieces, tasks out the moment each one is complete.

Both parsers take the LLM's output in arbitrary pieces (`feed`) and return the tasks
completed by each piece; `close` flushes what is left when the stream ends. The text
parser completes a task at the end of its line; the JSON parser at the `}` that closes
the task's object. How the text was cut never changes the tasks.

A plan the runtime cannot run does not raise: the offending task comes out with `error`
set (unknown tool, `$N` to itself or a later task, arguments that do not parse), so it
becomes a failed observation the joiner can see and act on.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from taskloom.naming import did_you_mean
from taskloom.planners.base import JOIN_TOOL, Ref, Task, iter_refs
from taskloom.planners.plan_format import MAX_PLAN_TASKS, string_value
from taskloom.tools.registry import Tool

_TASK_LINE = re.compile(r"^\s*(?P<index>\d+)\s*[.):]\s*(?P<body>.*?)\s*$")
_THOUGHT_LINE = re.compile(r"^\s*Thought\s*:\s*(?P<text>.*?)\s*$", re.IGNORECASE)
_CALL_HEAD = re.compile(r"^(?P<tool>[A-Za-z_][\w.:-]*)\s*\(")
_END_MARKERS = ("<END_OF_PLAN>", "<END>")
_REF_MARK = "__ref_{}__"
_REF_MARK_NAME = re.compile(r"^__ref_(\d+)__$")
_LITERAL_NAMES: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "none": None,
    "True": True,
    "False": False,
    "None": None,
}


class ArgumentSyntaxError(ValueError):
    """The arguments of a call are not plan syntax."""


class PlanParser(Protocol):
    """What the planner needs from either parser."""

    @property
    def done(self) -> bool:
        """True once the plan has ended (`join()` or the closing bracket)."""
        ...

    def feed(self, text: str) -> list[Task]: ...

    def close(self) -> list[Task]: ...


# ---------------------------------------------------------------- shared task checks


class _TaskChecker:
    """Checks each task against the tools and the tasks before it."""

    def __init__(self, tools: Mapping[str, Tool], max_tasks: int) -> None:
        self.tools = tools
        self.max_tasks = max_tasks
        self.seen: set[int] = set()

    def check(self, task: Task) -> Task:
        error = task.error or self._problem(task)
        self.seen.add(task.index)
        if error is None:
            return task
        return Task(task.index, task.tool, task.args, task.thought, task.source, error)

    def _problem(self, task: Task) -> str | None:
        if task.index in self.seen:
            return f"task number {task.index} is used twice; number tasks 1, 2, 3, ..."
        if task.is_join:
            return None
        if len(self.seen) >= self.max_tasks:
            return f"a plan holds at most {self.max_tasks} tasks"
        if task.tool not in self.tools:
            hint = did_you_mean(task.tool, list(self.tools)) or (
                f"the tools are: {', '.join(self.tools) or 'none'}"
            )
            return f"unknown tool '{task.tool}'; {hint}"
        return self._reference_problem(task)

    def _reference_problem(self, task: Task) -> str | None:
        for ref in iter_refs(task.args):
            if ref.task == task.index:
                return (
                    f"{ref} refers to task {task.index} itself; a task can only use earlier results"
                )
            if ref.task > task.index:
                return f"{ref} refers to task {ref.task}, which comes later; use only earlier tasks"
            if ref.task not in self.seen:
                return f"{ref} refers to task {ref.task}, but no task {ref.task} came before it"
        return None


# ---------------------------------------------------------------- the text format


class TextPlanParser:
    """Parses `N. tool(arg=value, ...)` lines; `Thought:` lines annotate the next task,
    other prose is ignored, and `N. join()` ends the plan."""

    def __init__(self, tools: Sequence[Tool], *, max_tasks: int = MAX_PLAN_TASKS) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._checker = _TaskChecker(self._tools, max_tasks)
        self._pending = ""
        self._thought = ""
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, text: str) -> list[Task]:
        if self._done:
            return []
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        return self._lines(lines)

    def close(self) -> list[Task]:
        rest, self._pending = self._pending, ""
        return [] if self._done else self._lines([rest])

    def _lines(self, lines: list[str]) -> list[Task]:
        tasks: list[Task] = []
        for line in lines:
            if self._done:
                break
            task = self._line(line)
            if task is not None:
                tasks.append(task)
                self._done = task.is_join and task.error is None
        return tasks

    def _line(self, line: str) -> Task | None:
        thought = _THOUGHT_LINE.match(line)
        if thought is not None:
            self._thought = thought.group("text")
            return None
        match = _TASK_LINE.match(_strip_end_markers(line))
        if match is None:
            return None  # prose between tasks
        task, self._thought = self._task(int(match.group("index")), match.group("body"), line), ""
        return self._checker.check(task)

    def _task(self, index: int, body: str, line: str) -> Task:
        head = _CALL_HEAD.match(body)
        if head is None:
            return _broken(
                index, line, self._thought, "expected `tool(arguments)` after the number"
            )
        name = head.group("tool")
        try:
            inner, rest = _split_call(body, head.end())
            if rest.strip() and not rest.strip().startswith("#"):
                raise ArgumentSyntaxError(f"unexpected text after the call: {rest.strip()!r}")
            args = {} if name == JOIN_TOOL else parse_arguments(inner, self._tools.get(name))
        except ArgumentSyntaxError as exc:
            return _broken(index, line, self._thought, str(exc), tool=name)
        return Task(index, name, args, self._thought, line.strip())


def _broken(index: int, line: str, thought: str, why: str, tool: str = "") -> Task:
    return Task(index, tool, {}, thought, line.strip(), f"cannot parse `{line.strip()}`: {why}")


def _strip_end_markers(line: str) -> str:
    for marker in _END_MARKERS:
        line = line.replace(marker, "")
    return line


def _split_call(body: str, start: int) -> tuple[str, str]:
    """The text inside the call's parentheses and what follows the closing one."""
    depth, quote, escaped = 1, "", False
    for position in range(start, len(body)):
        char = body[position]
        if quote:
            escaped = char == "\\" and not escaped
            if char == quote and not escaped:
                quote = ""
            continue
        if char in "\"'":
            quote, escaped = char, False
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return body[start:position], body[position + 1 :]
    raise ArgumentSyntaxError("the call is not closed with ')'")


# ---------------------------------------------------------------- arguments


def parse_arguments(text: str, tool: Tool | None) -> dict[str, Any]:
    """`"Oslo", limit=3, near=$1.city` -> {"query": "Oslo", "limit": 3, "near": Ref(1, ...)}.

    Values are JSON or Python literals and `$N` references. Positional values are matched
    to the tool's parameters in the order its schema lists them.
    """
    try:
        call = ast.parse(f"f({_mark_references(text)})", mode="eval").body
    except SyntaxError as exc:
        raise ArgumentSyntaxError(f"the arguments do not parse ({exc.msg})") from None
    assert isinstance(call, ast.Call)
    args: dict[str, Any] = {}
    names = _parameter_names(tool)
    if len(call.args) > len(names):
        raise ArgumentSyntaxError(
            f"{len(call.args)} positional values, but the tool takes {len(names)} arguments"
        )
    for name, node in zip(names, call.args, strict=False):
        args[name] = _literal(node)
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ArgumentSyntaxError("`**` is not allowed in a plan")
        args[keyword.arg] = _literal(keyword.value)
    return args


def _parameter_names(tool: Tool | None) -> list[str]:
    if tool is None:
        return []
    return list((tool.input_schema.get("properties") or {}).keys())


def _mark_references(text: str) -> str:
    """Turn `$N` outside strings into a Python name, so `ast` can read the arguments."""
    out: list[str] = []
    quote, escaped, position = "", False, 0
    while position < len(text):
        char = text[position]
        if quote:
            escaped = char == "\\" and not escaped
            if char == quote and not escaped:
                quote = ""
        elif char in "\"'":
            quote, escaped = char, False
        elif char == "$":
            digits = re.match(r"\d+", text[position + 1 :])
            if digits is not None:
                out.append(_REF_MARK.format(digits.group(0)))
                position += 1 + len(digits.group(0))
                continue
        out.append(char)
        position += 1
    return "".join(out)


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return string_value(node.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        return _dict_literal(node)
    if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
        return _name_or_reference(node)
    raise ArgumentSyntaxError(f'`{ast.unparse(node)}` is not a value; quote text, e.g. "..."')


def _dict_literal(node: ast.Dict) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            raise ArgumentSyntaxError("dictionary keys must be quoted strings")
        result[key.value] = _literal(value)
    return result


def _name_or_reference(node: ast.expr) -> Any:
    path: list[str | int] = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            path.append(node.attr)
        else:
            path.append(_subscript_key(node.slice))
        node = node.value
    if isinstance(node, ast.Name):
        marked = _REF_MARK_NAME.match(node.id)
        if marked is not None:
            return Ref(int(marked.group(1)), tuple(reversed(path)))
        if not path and node.id in _LITERAL_NAMES:
            return _LITERAL_NAMES[node.id]
        raise ArgumentSyntaxError(
            f'`{node.id}` is not a value; quote text ("{node.id}") or refer to a result as $N'
        )
    raise ArgumentSyntaxError(f"`{ast.unparse(node)}` is not a value")


def _subscript_key(node: ast.expr) -> str | int:
    value = _literal(node) if isinstance(node, ast.Constant | ast.UnaryOp) else None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    raise ArgumentSyntaxError("an index into a result must be a number or a quoted key")


# ---------------------------------------------------------------- the JSON format


class JsonPlanParser:
    """Parses `{"tasks": [{"id": 1, "tool": "...", "args": {...}}, ...]}` (or a bare
    list of tasks), completing each task at the `}` that closes its object."""

    def __init__(self, tools: Sequence[Tool], *, max_tasks: int = MAX_PLAN_TASKS) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._checker = _TaskChecker(self._tools, max_tasks)
        self._text: list[str] = []
        self._stack: list[str] = []
        self._quote = self._escaped = False
        self._task_start: int | None = None
        self._offset = 0
        self._count = 0
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, text: str) -> list[Task]:
        tasks: list[Task] = []
        for char in text:
            if self._done:
                break
            self._text.append(char)
            finished = self._scan(char)
            if finished is not None:
                tasks.append(self._task(finished))
            self._offset += 1
        return tasks

    def close(self) -> list[Task]:
        if self._done:
            return []
        text = "".join(self._text)
        self._done = True
        if self._task_start is not None:
            why = "the plan was cut off inside this task (raise max_tokens)"
        elif self._count == 0:
            why = "the plan is not a JSON object with a list of tasks"
        else:
            return []
        return [self._checker.check(Task(self._count + 1, "", {}, "", text.strip(), why))]

    def _scan(self, char: str) -> str | None:
        """Advance over one character; return a task object's text when it just closed."""
        if self._quote:
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                self._quote = False
            return None
        if char == '"':
            self._quote = True
        elif char in "{[":
            if char == "{" and self._at_task_level():
                self._task_start = self._offset
            self._stack.append(char)
        elif char in "}]" and self._stack:
            self._stack.pop()
            if char == "}" and self._task_start is not None and self._at_task_level():
                start, self._task_start = self._task_start, None
                return "".join(self._text[start:])
            self._done = not self._stack
        return None

    def _at_task_level(self) -> bool:
        return self._stack in (["{", "["], ["["])

    def _task(self, text: str) -> Task:
        self._count += 1
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            task = Task(self._count, "", {}, "", text, f"task is not valid JSON ({exc.msg})")
            return self._checker.check(task)
        return self._checker.check(_json_task(data, self._count, text))


def _json_task(data: Any, position: int, text: str) -> Task:
    index = data.get("id", position) if isinstance(data, dict) else position
    if not isinstance(index, int) or isinstance(index, bool):
        index = position
    tool = data.get("tool") if isinstance(data, dict) else None
    args = data.get("args", {}) if isinstance(data, dict) else None
    thought = data.get("thought", "") if isinstance(data, dict) else ""
    if not isinstance(tool, str) or not isinstance(args, dict):
        why = 'a task is {"id": N, "tool": "name", "args": {...}}'
        return Task(index, str(tool or ""), {}, "", text, why)
    return Task(index, tool, _json_args(args), str(thought), text)


def _json_args(value: Any) -> Any:
    if isinstance(value, str):
        return string_value(value)
    if isinstance(value, dict):
        return {str(key): _json_args(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_args(item) for item in value]
    return value
