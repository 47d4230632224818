"""A point's id is the same spelled from its spec and from its record."""

from __future__ import annotations

from dataclasses import asdict

from taskloom.bench.autellix.points import PointSpec
from taskloom.bench.autellix.store import record_id, spec_id
from taskloom.bench.autellix.variants import Variant


def test_a_record_read_back_is_recognised_as_already_run() -> None:
    variant = Variant("plas K=3", "plas", boundaries_s=(1.0, 4.0), beta=8.0)
    spec = PointSpec("mixed", 30, 2.5, variant, engines=2, seed=3, group="sweep")
    record = {"group": "sweep", "engine": "h100", "variant": asdict(variant) | {
        "boundaries_s": [1.0, 4.0]},  # JSON gives lists back
        "row": {"workload": "mixed", "programs": 30, "rate": 2.5, "engines": 2, "seed": 3}}
    assert record_id(record) == spec_id(spec)
