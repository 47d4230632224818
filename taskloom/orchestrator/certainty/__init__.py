"""Certainty-based early stopping and compute reallocation (Dynasor, Adaptive-Consistency).

- `answers`: reading and normalizing the answer of a sample.
- `tally`, `measures`, `rules`: vote counts, how settled they are, when to stop.
- `self_consistency`: sample, vote as samples finish, abort the rest when settled.
- `probing`: stop one long generation once its probed answers agree (Dynasor-CoT).
- `allocation`: gang admission and certainty-driven sharing of sample slots.
- `replay`: recorded samples replayed under a rule, for choosing thresholds offline.
- `node`: the `llm` node options `aggregate`, `answer`, `early_stop` and `probe`.
"""

from taskloom.orchestrator.certainty.allocation import (
    CertaintyAllocator,
    CertaintyAwareScheduler,
    FixedWidthAllocator,
    FlatCertainty,
    QueryDemand,
    SampleAllocator,
    SampleLease,
)
from taskloom.orchestrator.certainty.answers import (
    AnswerExtractor,
    boxed_answer,
    extractor_from_spec,
    last_number,
    normalize_answer,
)
from taskloom.orchestrator.certainty.measures import (
    beta_confidence,
    certaindex,
    dirichlet_confidence,
)
from taskloom.orchestrator.certainty.probing import (
    ProbedGeneration,
    ProbeResult,
    generate_with_probes,
    hedges,
    probes_agree,
)
from taskloom.orchestrator.certainty.replay import (
    HopelessCut,
    RecordedQuery,
    ReplayOutcome,
    replay,
)
from taskloom.orchestrator.certainty.rules import (
    BetaRule,
    CertaindexRule,
    DirichletRule,
    NeverStop,
    StoppingRule,
    rule_from_spec,
)
from taskloom.orchestrator.certainty.self_consistency import Sample, VoteOutcome, vote
from taskloom.orchestrator.certainty.tally import VoteTally

__all__ = [
    "AnswerExtractor",
    "BetaRule",
    "CertaindexRule",
    "CertaintyAllocator",
    "CertaintyAwareScheduler",
    "DirichletRule",
    "FixedWidthAllocator",
    "FlatCertainty",
    "HopelessCut",
    "NeverStop",
    "ProbeResult",
    "ProbedGeneration",
    "QueryDemand",
    "RecordedQuery",
    "ReplayOutcome",
    "Sample",
    "SampleAllocator",
    "SampleLease",
    "StoppingRule",
    "VoteOutcome",
    "VoteTally",
    "beta_confidence",
    "boxed_answer",
    "certaindex",
    "dirichlet_confidence",
    "extractor_from_spec",
    "generate_with_probes",
    "hedges",
    "last_number",
    "normalize_answer",
    "probes_agree",
    "replay",
    "rule_from_spec",
    "vote",
]
