"""Pending-point strategies: each spreads a batch of parallel suggestions, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from search import BayesianSearcher, ContinuousParameter, SearcherOptionError, SearchSpace
from search.batch import PendingStrategy

FAST = {"num_restarts": 2, "raw_samples": 32, "mc_samples": 16, "initial_design_size": 4}


def space() -> SearchSpace:
    return SearchSpace({"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)})


def bowl(config: dict) -> float:
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2


def batch_after_warm_up(strategy: PendingStrategy, seed: int = 0) -> np.ndarray:
    searcher = BayesianSearcher(
        space=space(), objective_type="Minimize", seed=seed, pending_strategy=strategy, **FAST
    )
    for i in range(8):
        config = searcher.suggest(f"t{i}")
        searcher.observe(f"t{i}", bowl(config))
    batch = [searcher.suggest(f"p{i}") for i in range(4)]
    telemetry = searcher.telemetry()
    assert telemetry.fallback_count == telemetry.nan_picks == 0
    assert len(telemetry.expected_improvement_history) == 8  # 4 after warm-up + 4 pending
    return np.array([[c["x"], c["y"]] for c in batch])


@pytest.mark.parametrize("strategy", list(PendingStrategy))
def test_each_strategy_spreads_a_batch_reproducibly(strategy: PendingStrategy) -> None:
    points = batch_after_warm_up(strategy)
    distances = [np.linalg.norm(points[i] - points[j]) for i in range(4) for j in range(i)]
    assert min(distances) > 1e-3
    assert np.array_equal(points, batch_after_warm_up(strategy))


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(SearcherOptionError, match="pending_strategy='crowd'"):
        BayesianSearcher(space=space(), pending_strategy="crowd")
