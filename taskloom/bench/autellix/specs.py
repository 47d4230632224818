"""Which points each command runs: workloads, rates, policies, and the sweep's factors."""

from __future__ import annotations

import argparse
import math

from taskloom.bench.autellix.points import PointSpec
from taskloom.bench.autellix.variants import Variant, standard_variant, vllm_default

WORKLOADS = ("chat", "tool-use", "tree-search", "mixed")
POLICIES = ("fcfs", "mlfq", "plas", "atlas", "sjf-oracle")
# Programs per point and rates (programs/s) from light to past saturation, per workload.
# A tree search is ~40x a chat in decode work, so it gets fewer programs and lower rates.
# The rates are spaced finely around each workload's knee on the simulated H100 (found
# with small runs first); the programs per point are as many as the shared 2-core
# machine allowed, so the first and last 10% (see WARMUP_FRACTION) can be left out.
DEFAULT_PROGRAMS = {"chat": 200, "tool-use": 300, "tree-search": 40, "mixed": 300,
                    "coding-agent": 60}
DEFAULT_RATES = {
    "chat": (1.0, 2.5, 4.0, 5.5),
    "tool-use": (4.0, 8.0, 12.0, 16.0),
    "tree-search": (0.2, 0.4, 0.6, 0.8),
    "mixed": (1.0, 1.5, 2.0, 2.25, 2.5, 3.0),
    # Sessions of minutes: light load, then fine steps up to where 60-session runs fall
    # off the KV cliff (longer runs thrash from 0.03/s on: README, coding-agent).
    "coding-agent": (0.01, 0.04, 0.05, 0.055, 0.0575, 0.06, 0.07),
}


def policy_specs(args: argparse.Namespace) -> list[PointSpec]:
    specs = []
    for workload in args.workloads:
        programs = args.programs or DEFAULT_PROGRAMS[workload]
        rates = args.rates or DEFAULT_RATES[workload]
        # Rate by rate, so that a run cut short still has the policies side by side.
        for rate in rates:
            for name in args.policies:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       seed=args.seed, engine=args.engine,
                                       mixed_coding_agent=args.mixed_coding_agent))
    return specs


def balance_specs(args: argparse.Namespace) -> list[PointSpec]:
    """Four engines: program-aware balancing against round-robin, with the same policy,
    plus plain fcfs over round-robin (vLLM behind a plain load balancer)."""
    specs = []
    for workload in args.workloads:
        programs = args.programs or args.engines * DEFAULT_PROGRAMS[workload]
        rates = args.rates or tuple(args.engines * r for r in DEFAULT_RATES[workload])
        for rate in rates:
            for name in args.policies:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       engines=args.engines, seed=args.seed, group="balance",
                                       engine=args.engine,
                                       mixed_coding_agent=args.mixed_coding_agent))
    return specs


SWEEP_BOUNDARIES: tuple[tuple[float, ...], ...] = (
    (1.0, 4.0, 16.0),
    (4.0, 16.0, 64.0),
    (8.0, 32.0),
    (2.0, 4.0, 8.0, 16.0, 32.0),
)
SWEEP_BETAS = (2.0, 8.0, 32.0, math.inf)
SWEEP_CAPS = (64, 128, 256, 512, 1024)
SWEEP_FACTORS = ("caps", "levels", "beta")


def sweep_specs(args: argparse.Namespace) -> list[PointSpec]:
    """One factor at a time (the in-flight cap, over `--caps`; levels and boundaries;
    beta) for the last policy given, next to the vLLM default. Levels and beta are swept
    at `--cap`."""
    workload = args.workloads[0]
    programs = args.programs or DEFAULT_PROGRAMS[workload]
    policy, cap = args.policies[-1], args.cap
    variants = [vllm_default()]
    if "caps" in args.factors:
        variants += [Variant(f"{policy} cap={c}", policy, max_in_flight=c) for c in args.caps]
    if "levels" in args.factors:
        variants += [
            Variant(f"{policy} cap={cap} K={len(b) + 1} {'/'.join(f'{x:g}' for x in b)}s",
                    policy, max_in_flight=cap, boundaries_s=b)
            for b in SWEEP_BOUNDARIES
        ]
    if "beta" in args.factors:
        variants += [Variant(f"{policy} cap={cap} beta={beta:g}", policy, max_in_flight=cap,
                             beta=beta) for beta in SWEEP_BETAS]
    # The first label of each setting: the default levels or beta, named again by the
    # other factors, are the same point.
    unique = list({v.setting: v for v in reversed(variants)}.values())[::-1]
    return [
        PointSpec(workload, programs, rate, variant, group="sweep", seed=args.seed,
                  engine=args.engine, mixed_coding_agent=args.mixed_coding_agent)
        for rate in args.rates or (DEFAULT_RATES[workload][-1],)
        for variant in unique
    ]
