"""taskloom: a runtime for fast LLM agent programs.

Public API only; everything else lives in the subpackages.
"""

from taskloom.backends.factory import BackendName, open_backend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.client import Client
from taskloom.errors import BackendError, SpecError, SpecErrors, TaskloomError, ToolError
from taskloom.orchestrator.compile import TaskGraph, compile_program
from taskloom.orchestrator.kinds import NodeKind, node_kinds
from taskloom.orchestrator.prices import PriceTable
from taskloom.orchestrator.result import (
    BudgetOverrun,
    NodeResult,
    NodeStatus,
    RunResult,
    RunStatus,
)
from taskloom.program.budget import Budget
from taskloom.program.load import load, loads
from taskloom.program.models import (
    Defaults,
    InputSpec,
    LLMNode,
    MapNode,
    PlanNode,
    Program,
    ToolNode,
)
from taskloom.runtime import Runtime, run_program, run_sync
from taskloom.tools.registry import Tool, ToolRegistry, default_registry, tool

__all__ = [
    "BackendError",
    "BackendName",
    "Budget",
    "BudgetOverrun",
    "Client",
    "Defaults",
    "InputSpec",
    "LLMNode",
    "MapNode",
    "NodeKind",
    "NodeResult",
    "NodeStatus",
    "PlanNode",
    "PriceTable",
    "Program",
    "RunResult",
    "RunStatus",
    "Runtime",
    "ScriptedBackend",
    "SpecError",
    "SpecErrors",
    "TaskGraph",
    "TaskloomError",
    "Tool",
    "ToolError",
    "ToolNode",
    "ToolRegistry",
    "compile_program",
    "default_registry",
    "load",
    "loads",
    "node_kinds",
    "open_backend",
    "run_program",
    "run_sync",
    "tool",
]
