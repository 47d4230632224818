"""References and templates: the one Jinja dialect every spec string is written in.

A spec is untrusted input, so every template runs in one immutable sandbox with
`StrictUndefined`: a misspelt name fails loudly instead of rendering as "". The
compiler reads reference paths straight off the Jinja AST, so dependencies come from
exactly the syntax that will later be rendered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import jinja2
from jinja2 import nodes
from jinja2.parser import Parser

from taskloom.program import template_limits as limits
from taskloom.program.render_deadline import RenderDeadlineExceeded, call_with_deadline, loop_budget
from taskloom.program.sandbox import BoundedSandbox
from taskloom.program.template_errors import TemplateError as TemplateError  # re-exported
from taskloom.program.template_errors import (
    compile_failure,
    render_error,
    syntax_error,
    too_deep,
    unparsable,
)
from taskloom.program.template_limits import TemplateLimitError, template_limits

RefPath = tuple[str | int, ...]
_Result = TypeVar("_Result")

# One environment for the whole process: templates are cached per source string.
_ENV = BoundedSandbox(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
# Names the environment itself provides (range, dict, ...): using them is not a reference.
TEMPLATE_GLOBALS = frozenset(_ENV.globals)
# Errors a template can raise while it renders untrusted data.
_RENDER_FAILURES = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
    RecursionError,  # a recursive macro
    MemoryError,
)
_WRAPPED = re.compile(r"^\{\{[-+]?(?P<inner>.*?)[-+]?\}\}$", re.DOTALL)


# ---------------------------------------------------------------- references


def template_references(template: str) -> list[RefPath]:
    """The reference paths a template reads, in order of first use, without repeats."""
    plain = _plain_path(template.strip())
    if plain is not None:
        return [plain]
    return _references_in(_parse_template(template))


def _plain_path(text: str) -> RefPath | None:
    match = _PLAIN_PATH.match(text)
    if match is None:
        return None
    steps: list[str | int] = [match.group("root")]
    for step in _PATH_STEP.finditer(match.group("rest")):
        key, index = step.group("key"), step.group("index")
        steps.append(key if key is not None else int(index))
    return tuple(steps)


def expression_references(expr: str) -> list[RefPath]:
    """The reference paths a condition reads (bare `a > 1` or wrapped `{{ a > 1 }}`)."""
    return _references_in(_parse_expression(_unwrap_expression(expr)))


def value_references(value: Any) -> list[RefPath]:
    """The reference paths in every string inside a dict/list value (keys excluded)."""
    found: list[RefPath] = []
    for text in iter_strings(value):
        found.extend(template_references(text))
    return list(dict.fromkeys(found))


def sole_reference(template: str) -> RefPath | None:
    """The path when `template` is exactly one `{{ ref }}` and nothing else, else None.

    The compiler uses it to learn the type of what a `map` iterates over.
    """
    expression = _sole_expression(_parse_template(template))
    if expression is None:
        return None
    return _constant_path(expression)


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_strings(item)


def is_templated(value: Any) -> bool:
    """Whether any string inside `value` contains Jinja syntax (so its value is unknown
    until the run)."""
    return any(("{{" in s or "{%" in s) for s in iter_strings(value))


def _references_in(tree: nodes.Node) -> list[RefPath]:
    try:
        bound = _locally_bound_names(tree)
        return list(dict.fromkeys(_walk(tree, bound)))
    except RecursionError:
        raise too_deep(None) from None


def _locally_bound_names(tree: nodes.Node) -> frozenset[str]:
    # Names a template binds itself (for targets, set, macro params) are not references.
    # Scoping is approximated per template, which is what spec templates need.
    names = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    names.update(m.name for m in tree.find_all(nodes.Macro))
    if any(True for _ in tree.find_all(nodes.For)):
        names.add("loop")
    if any(True for _ in tree.find_all(nodes.Macro)):
        names.update({"caller", "varargs", "kwargs"})
    return frozenset(names | TEMPLATE_GLOBALS)


def _walk(node: nodes.Node, bound: frozenset[str]) -> Iterator[RefPath]:
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        yield from _walk_access_chain(node, bound)
    elif isinstance(node, nodes.Name):
        if node.ctx == "load" and node.name not in bound:
            yield (node.name,)
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        # `x.upper()` reads x; `upper` is a method, not a field of x's output.
        yield from _walk(node.node.node, bound)
        for child in _call_arguments(node):
            yield from _walk(child, bound)
    else:
        for child in node.iter_child_nodes():
            yield from _walk(child, bound)


def _walk_access_chain(node: nodes.Expr, bound: frozenset[str]) -> Iterator[RefPath]:
    keys: list[str | int] = []
    current: nodes.Node = node
    while isinstance(current, nodes.Getattr | nodes.Getitem):
        key = _constant_key(current)
        if key is None:
            # A computed index (`xs[i]`): the path stops before it; `i` is read too.
            keys.clear()
            yield from _walk(current.arg, bound)  # type: ignore[union-attr]
        else:
            keys.append(key)
        current = current.node
    if isinstance(current, nodes.Name):
        if current.name not in bound:
            yield (current.name, *reversed(keys))
    else:
        yield from _walk(current, bound)


def _constant_path(node: nodes.Node) -> RefPath | None:
    keys: list[str | int] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        key = _constant_key(node)
        if key is None:
            return None
        keys.append(key)
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        return (node.name, *reversed(keys))
    return None


def _constant_key(node: nodes.Getattr | nodes.Getitem) -> str | int | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    arg = node.arg
    if isinstance(arg, nodes.Const):
        value = arg.value
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
    return None


def _call_arguments(call: nodes.Call) -> Iterator[nodes.Node]:
    yield from (*call.args, *call.kwargs)
    yield from (extra for extra in (call.dyn_args, call.dyn_kwargs) if extra is not None)


# ---------------------------------------------------------------- parsing


@functools.lru_cache(maxsize=1024)
def _parse_template(template: str) -> nodes.Template:
    try:
        tree = _ENV.parse(template)
        limits.check_nesting(tree)  # before anything recurses over it
        return tree
    except jinja2.TemplateSyntaxError as exc:
        raise syntax_error(exc, template) from None
    except (RecursionError, TemplateLimitError, ValueError) as exc:
        raise unparsable(exc, template) from None


@functools.lru_cache(maxsize=1024)
def _parse_expression(expr: str) -> nodes.Expr:
    try:
        parser = Parser(_ENV, expr, state="variable")
        tree = parser.parse_expression()
        if not parser.stream.eos:
            parser.fail(f"unexpected '{parser.stream.current.value}' after the expression")
        limits.check_nesting(tree)
        return tree
    except jinja2.TemplateSyntaxError as exc:
        raise syntax_error(exc, expr) from None
    except (RecursionError, TemplateLimitError, ValueError) as exc:
        raise unparsable(exc, expr) from None


# What compiling a parsed template can still raise: Jinja's code generator and
# Python's compiler each have their own limits on nesting.
_COMPILE_FAILURES = (RecursionError, SyntaxError, MemoryError)


@functools.lru_cache(maxsize=1024)
def _compile_template(template: str) -> jinja2.Template:
    _parse_template(template)  # same syntax errors and nesting limit
    try:
        return _ENV.from_string(template)
    except (jinja2.TemplateError, *_COMPILE_FAILURES) as exc:
        raise compile_failure(exc, template) from None


@functools.lru_cache(maxsize=1024)
def _compile_expression(expr: str) -> jinja2.environment.TemplateExpression:
    _parse_expression(expr)  # same syntax errors, same messages
    try:
        return _ENV.compile_expression(expr, undefined_to_none=False)
    except (jinja2.TemplateError, *_COMPILE_FAILURES) as exc:
        raise compile_failure(exc, expr) from None


def _unwrap_expression(expr: str) -> str:
    """`{{ a > 1 }}` and `a > 1` mean the same condition."""
    stripped = expr.strip()
    match = _WRAPPED.match(stripped)
    if match is not None and "}}" not in match.group("inner"):
        return match.group("inner").strip()
    return stripped


def _sole_expression(tree: nodes.Template) -> nodes.Expr | None:
    # Whitespace around the one `{{ }}` is ignored: YAML block scalars add a newline.
    body = [n for n in tree.body if not _is_blank_output(n)]
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = [n for n in body[0].nodes if not _is_blank_data(n)]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return parts[0]


def _is_blank_output(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and all(_is_blank_data(n) for n in node.nodes)


def _is_blank_data(node: nodes.Node) -> bool:
    return isinstance(node, nodes.TemplateData) and not node.data.strip()


# ---------------------------------------------------------------- rendering


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Render a template to text; fails with TemplateError, never renders a blank.

    Rendering stops with TemplateError past `TemplateLimits` (size and time)."""
    text = _render_without_jinja(template, context)
    if text is not None:
        return text
    return _within_deadline(template, _render_text, template, context)


def _render_without_jinja(template: str, context: Mapping[str, Any]) -> str | None:
    """What Jinja would render `template` to, where that is certain without Jinja, or
    None. Most prompts are one of two shapes: plain text (a system prompt), which renders
    to itself, and `{{ name.key[0] }}` naming a string, which renders to that string.
    Skipping the compiled template, its context and the deadline's locks for them halves
    the cost of a simulated benchmark's renders. Anything else, and anything over
    `max_output_chars` (whose error Jinja words), goes to Jinja."""
    if "{" not in template:
        # No `{{`, `{%` or `{#`: one run of text. Jinja would only turn `\r\n` and `\r`
        # into `\n` (its newline_sequence); such text goes to Jinja.
        text = template if "\r" not in template else None
    else:
        text = _plain_path_string(template, context)
    if text is None or len(text) > template_limits().max_output_chars:
        return None
    return text


def _plain_path_string(template: str, context: Mapping[str, Any]) -> str | None:
    """The string a plain `{{ name.key[0] }}` names, if Jinja's lookup would surely find
    the same: every `.key` a key of a plain dict that is not also one of dict's
    attributes (Jinja's `x.items` is the method), every `[i]` an index within a plain
    list. None otherwise."""
    match = _PLAIN_PATH.fullmatch(template)  # not `match`: its `$` passes a last newline
    if match is None:
        return None
    value = context.get(match.group("root"), _NOT_FOUND)
    for step in _PATH_STEP.finditer(match.group("rest")):
        key, index = step.group("key"), step.group("index")
        if key is not None and type(value) is dict and key in value and not hasattr(dict, key):
            value = value[key]
        elif index is not None and type(value) is list and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value if type(value) is str else None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside dicts and lists. A string that is exactly one
    `{{ expr }}` becomes the expression's own value (a list stays a list).

    One deadline covers the whole value, however many templates it holds."""
    if isinstance(value, str) and "{{" not in value and "{%" not in value:
        return value  # nothing to render: no deadline to set
    return _within_deadline(None, _render_nested, value, context)


def evaluate_condition(expr: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a `when` condition with Jinja truthiness."""
    source = _unwrap_expression(expr)
    return bool(_within_deadline(source, _evaluate, source, context))


def _within_deadline(source: str | None, work: Callable[..., _Result], *args: Any) -> _Result:
    seconds = template_limits().max_render_seconds
    on_loop = loop_budget()
    try:
        return call_with_deadline(min(seconds, on_loop or seconds), work, *args)
    except RenderDeadlineExceeded:
        if on_loop is not None:
            raise  # render_off_loop renders it again in a worker thread
        raise TemplateError(
            f"template ran past its time limit of {seconds:g}s (max_render_seconds); "
            "look for a loop over a large range or a recursive macro",
            template=source,
        ) from None


def _render_text(template: str, context: Mapping[str, Any]) -> str:
    compiled = _compile_template(template)
    try:
        return compiled.render(dict(context))
    except _RENDER_FAILURES as exc:
        raise render_error(exc, template) from None


def _render_nested(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_string_value(value, context)
    if isinstance(value, Mapping):
        return {key: _render_nested(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render_nested(item, context) for item in value]
    return value


# `{{ name }}`, `{{ name.field }}`, `{{ name[0].field }}`: by far the most common
# template. Resolving it by plain lookups skips compiling a Jinja template per node.
_PLAIN_PATH = re.compile(
    r"^\{\{\s*(?P<root>[A-Za-z_]\w*)(?P<rest>(?:\.[A-Za-z_]\w*|\[\d+\])*)\s*\}\}$"
)
_PATH_STEP = re.compile(r"\.(?P<key>[A-Za-z_]\w*)|\[(?P<index>\d+)\]")
_NOT_FOUND = object()


def _lookup_plain_path(text: str, context: Mapping[str, Any]) -> Any:
    """The value of a plain reference through dicts and lists only, or `_NOT_FOUND`
    when the template is not one or a step is missing (Jinja then reports it)."""
    match = _PLAIN_PATH.match(text)
    if match is None:
        return _NOT_FOUND
    value = context.get(match.group("root"), _NOT_FOUND)
    for step in _PATH_STEP.finditer(match.group("rest")):
        key, index = step.group("key"), step.group("index")
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _NOT_FOUND
    return value


def _render_string_value(text: str, context: Mapping[str, Any]) -> Any:
    if "{{" not in text and "{%" not in text:
        return text
    plain = _lookup_plain_path(text.strip(), context)
    if plain is not _NOT_FOUND and not isinstance(plain, jinja2.Undefined):
        return plain
    if _sole_expression(_parse_template(text)) is None:
        return _render_text(text, context)
    match = _WRAPPED.match(text.strip())
    if match is None:  # e.g. `{{ a }}{# note #}`: render it as text
        return _render_text(text, context)
    return _evaluate(match.group("inner").strip(), context)


def _evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    compiled = _compile_expression(expr)
    try:
        value = compiled(dict(context))
        _reject_undefined(value)
        if not isinstance(value, bool | int | float | type(None)):
            # Its value is the output: it is stored and sent on as it is.
            limits.check_text_of(value, "the expression's value")
        return value
    except _RENDER_FAILURES as exc:
        raise render_error(exc, expr) from None


def _reject_undefined(value: Any) -> None:
    # A native value is not rendered, so an undefined inside it would slip through.
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises the precise "x has no attribute y" error
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_undefined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _reject_undefined(item)
