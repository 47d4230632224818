"""The spec language: Pydantic models, the YAML loader and the template dialect."""

from taskloom.program.load import SourceMap, load, loads
from taskloom.program.models import (
    ChatMessage,
    Defaults,
    InputSpec,
    LLMNode,
    MapNode,
    Node,
    Program,
    ToolNode,
)
from taskloom.program.refs import (
    RefPath,
    TemplateError,
    evaluate_condition,
    expression_references,
    render_template,
    render_value,
    template_references,
    value_references,
)

__all__ = [
    "ChatMessage",
    "Defaults",
    "InputSpec",
    "LLMNode",
    "MapNode",
    "Node",
    "Program",
    "RefPath",
    "SourceMap",
    "TemplateError",
    "ToolNode",
    "evaluate_condition",
    "expression_references",
    "load",
    "loads",
    "render_template",
    "render_value",
    "template_references",
    "value_references",
]
