"""Levels, quanta, anti-starvation, and the order of waiting calls."""

from __future__ import annotations

import math

import pytest

from taskloom.orchestrator.scheduler.queues import (
    DEFAULT_BETA,
    DEFAULT_BOUNDARIES_S,
    MultiLevelQueue,
    QueueConfig,
    QueuePosition,
    exceeds_quantum,
    is_starving,
    promote_starving,
)


def test_priorities_map_to_levels_by_boundaries() -> None:
    config = QueueConfig(boundaries_s=(1.0, 4.0))
    assert config.levels == 3
    assert [config.level_for(p) for p in (0.0, 0.99, 1.0, 3.9, 4.0, 1e9)] == [0, 0, 1, 1, 2, 2]


def test_default_quanta_are_level_widths_and_the_last_level_never_demotes() -> None:
    config = QueueConfig(boundaries_s=(1.0, 4.0, 16.0))
    assert [config.quantum(level) for level in range(4)] == [1.0, 3.0, 12.0, math.inf]
    explicit = QueueConfig(boundaries_s=(1.0,), quanta_s=(0.5, 7.0))
    assert [explicit.quantum(0), explicit.quantum(1)] == [0.5, 7.0]


def test_geometric_and_single_configs() -> None:
    config = QueueConfig.geometric(levels=4, first_s=0.5, ratio=4.0, beta=3.0)
    assert config.boundaries_s == (0.5, 2.0, 8.0) and config.beta == 3.0
    single = QueueConfig.single()
    assert single.levels == 1 and single.level_for(1e9) == 0 and math.isinf(single.quantum(0))
    assert QueueConfig().boundaries_s == DEFAULT_BOUNDARIES_S
    assert QueueConfig().beta == DEFAULT_BETA


@pytest.mark.parametrize(
    "kwargs",
    [
        {"boundaries_s": (2.0, 1.0)},
        {"boundaries_s": (0.0,)},
        {"boundaries_s": (1.0,), "quanta_s": (1.0,)},
        {"boundaries_s": (1.0,), "quanta_s": (1.0, 0.0)},
        {"beta": 0.0},
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        QueueConfig(**kwargs)  # type: ignore[arg-type]


def test_a_call_exceeds_its_quantum_at_the_quantum() -> None:
    config = QueueConfig(boundaries_s=(2.0,))
    assert not exceeds_quantum(config, 0, 1.99)
    assert exceeds_quantum(config, 0, 2.0)
    assert not exceeds_quantum(config, 1, 1e9)  # the last level keeps everything


def test_starvation_is_waiting_over_service_against_beta() -> None:
    config = QueueConfig(boundaries_s=(1.0,), beta=4.0)
    assert not is_starving(config, 1, waiting_s=7.9, service_s=2.0)
    assert is_starving(config, 1, waiting_s=8.0, service_s=2.0)
    assert not is_starving(config, 0, waiting_s=1e9, service_s=1.0)  # already at the top
    assert is_starving(config, 1, waiting_s=0.1, service_s=0.0)
    off = QueueConfig(boundaries_s=(1.0,), beta=math.inf)
    assert not is_starving(off, 1, waiting_s=1e9, service_s=1.0)


def position(level: int, entered: float, name: str, rank: float = 0.0) -> QueuePosition:
    return QueuePosition(level, rank, entered, (entered, name, "t", name))


def test_queue_orders_by_level_then_entry_then_tie_break() -> None:
    queue: MultiLevelQueue[str] = MultiLevelQueue(QueueConfig(boundaries_s=(1.0,)))
    queue.push("late-top", position(0, 5.0, "late-top"))
    queue.push("low", position(1, 0.0, "low"))
    queue.push("b", position(0, 1.0, "b"))
    queue.push("a", position(0, 1.0, "a"))
    assert list(queue.in_order()) == ["a", "b", "late-top", "low"]
    assert list(queue.below_top()) == ["low"]
    assert queue.level_sizes() == [3, 1]
    assert queue.remove("b") == position(0, 1.0, "b")
    assert queue.remove("b") is None
    assert "b" not in queue and len(queue) == 3
    with pytest.raises(ValueError):
        queue.push("a", position(0, 9.0, "a"))


def test_rank_orders_inside_a_level_before_entry_time() -> None:
    queue: MultiLevelQueue[str] = MultiLevelQueue(QueueConfig.single())
    queue.push("long", position(0, 0.0, "long", rank=50.0))
    queue.push("short", position(0, 9.0, "short", rank=5.0))
    assert list(queue.in_order()) == ["short", "long"]


def test_promote_starving_moves_calls_to_the_back_of_the_top_level() -> None:
    queue: MultiLevelQueue[str] = MultiLevelQueue(QueueConfig(boundaries_s=(1.0, 2.0), beta=2.0))
    queue.push("top", position(0, 0.0, "top"))
    queue.push("starved", position(2, 0.0, "starved"))
    queue.push("patient", position(1, 0.0, "patient"))
    measures = {"starved": (10.0, 5.0), "patient": (9.9, 5.0), "top": (100.0, 1.0)}
    promoted = promote_starving(queue, 20.0, lambda item: measures[item])
    assert promoted == ["starved"]
    assert list(queue.in_order()) == ["top", "starved", "patient"]
    moved = queue.position("starved")
    assert moved is not None and moved.level == 0 and moved.entered_s == 20.0
