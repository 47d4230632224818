"""Workloads for the LLMCompiler benchmark: ParallelQA-, HotpotQA-comparison- and
Movie-Recommendation-shaped tasks over a local, deterministic knowledge base, with tool
latencies drawn from a configured distribution and a reference plan and answer per task.
"""

from taskloom.bench.workloads.llmcompiler.generators import (
    GENERATORS,
    TOOL_NAMES,
    WORKLOAD_NAMES,
    LLMCompilerWorkload,
    build_llmcompiler_workload,
    comparison_task,
    movie_task,
    parallel_qa_task,
)
from taskloom.bench.workloads.llmcompiler.knowledge import (
    Entity,
    KnowledgeBase,
    build_knowledge_base,
)
from taskloom.bench.workloads.llmcompiler.latency import (
    LOCAL_LATENCY,
    SEARCH_LATENCY,
    LatencyModel,
    ToolLatencies,
    default_latencies,
)
from taskloom.bench.workloads.llmcompiler.scripted_model import (
    ReferenceFollower,
    ScriptedOnSim,
    token_pieces,
)
from taskloom.bench.workloads.llmcompiler.tasks import AnswerChoice, WorkloadTask, answers_match
from taskloom.bench.workloads.llmcompiler.tools import choose_option, make_tools

__all__ = [
    "GENERATORS",
    "LOCAL_LATENCY",
    "SEARCH_LATENCY",
    "TOOL_NAMES",
    "WORKLOAD_NAMES",
    "AnswerChoice",
    "Entity",
    "KnowledgeBase",
    "LLMCompilerWorkload",
    "LatencyModel",
    "ReferenceFollower",
    "ScriptedOnSim",
    "ToolLatencies",
    "WorkloadTask",
    "answers_match",
    "build_knowledge_base",
    "build_llmcompiler_workload",
    "choose_option",
    "comparison_task",
    "default_latencies",
    "make_tools",
    "movie_task",
    "parallel_qa_task",
    "token_pieces",
]
