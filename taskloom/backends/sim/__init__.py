"""The `sim` backend: a discrete-event model of a continuous-batching engine.

It runs on anyio only, so under trio's `MockClock` a thousand programs simulate in
seconds of wall time. See `SimBackend`.
"""

from taskloom.backends.sim.backend import OutputLength, SimBackend, max_tokens_output
from taskloom.backends.sim.config import QueuePolicy, SimEngineConfig
from taskloom.backends.sim.cost import CostSample, StepBatch, StepCostModel, fit_cost_model
from taskloom.backends.sim.engine import ScheduledWork, SimEngine, StepPlan
from taskloom.backends.sim.profiles import H100_LLAMA3_8B, H100_LLAMA3_8B_ENGINE
from taskloom.backends.sim.stats import SimStats
from taskloom.backends.sim.tokens import FILLER_TEXT, approx_tokens, request_tokens

__all__ = [
    "FILLER_TEXT",
    "H100_LLAMA3_8B",
    "H100_LLAMA3_8B_ENGINE",
    "CostSample",
    "OutputLength",
    "QueuePolicy",
    "ScheduledWork",
    "SimBackend",
    "SimEngine",
    "SimEngineConfig",
    "SimStats",
    "StepBatch",
    "StepCostModel",
    "StepPlan",
    "approx_tokens",
    "fit_cost_model",
    "max_tokens_output",
    "request_tokens",
]
