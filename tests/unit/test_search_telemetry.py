"""Telemetry snapshots, and suggestions that leave process-wide state alone, also in threads."""

from __future__ import annotations

import json
import random
import threading
import warnings

import numpy as np
import pytest
import torch

from search import (
    BayesianSearcher,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
    SearchTelemetry,
    make_searcher,
)

FAST = {"num_restarts": 2, "raw_samples": 32, "mc_samples": 16, "initial_design_size": 3}


def space() -> SearchSpace:
    return SearchSpace(
        {
            "x": ContinuousParameter(0.0, 1.0),
            "y": ContinuousParameter(0.0, 1.0),
            "n": IntegerParameter(1, 50),
        }
    )


def loss(config: dict) -> float:
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2 + 0.001 * config["n"]


def warmed_up(seed: int = 0) -> BayesianSearcher:
    """A Bayesian searcher past its initial design, with one trial pending."""
    searcher = BayesianSearcher(space=space(), objective_type="Minimize", seed=seed, **FAST)
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        searcher.observe(f"t{i}", loss(config))
    searcher.suggest("pending")
    return searcher


@pytest.mark.parametrize("strategy", ["Random", "Grid", "Bayesian"])
def test_telemetry_counts_suggestions_and_time(strategy: str) -> None:
    grid = SearchSpace({"n": IntegerParameter(1, 50), "m": IntegerParameter(1, 3)})
    options = FAST if strategy == "Bayesian" else {}
    searcher = make_searcher(strategy, grid, seed=0, **options)
    assert searcher.telemetry() == SearchTelemetry()
    for i in range(5):
        searcher.suggest(f"t{i}")
        searcher.observe(f"t{i}", float(i))
    telemetry = searcher.telemetry()
    assert telemetry.suggestions == 5
    assert telemetry.fallback_count == telemetry.nan_picks == 0
    assert telemetry.last_suggest_seconds is not None and telemetry.last_suggest_seconds > 0
    assert telemetry.suggest_seconds_total >= telemetry.last_suggest_seconds
    assert telemetry.mean_suggest_seconds == pytest.approx(telemetry.suggest_seconds_total / 5)
    gp_based = 2 if strategy == "Bayesian" else 0
    assert len(telemetry.expected_improvement_history) == gp_based


def test_bayesian_telemetry_matches_the_searcher_and_survives_a_state_round_trip() -> None:
    searcher = warmed_up()
    telemetry = searcher.telemetry()
    assert telemetry.suggestions == 7
    assert list(telemetry.expected_improvement_history) == searcher.expected_improvement_history
    assert len(telemetry.expected_improvement_history) == 4  # 3 Sobol, then the GP
    with pytest.raises(AttributeError):
        telemetry.suggestions = 0  # type: ignore[misc]
    restored = BayesianSearcher(space=space(), objective_type="Minimize", seed=0, **FAST)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    again = restored.telemetry()
    assert again.suggestions == 7
    assert again.expected_improvement_history == telemetry.expected_improvement_history
    assert again.fallback_count == 0 and again.nan_picks == 0
    assert again.last_suggest_seconds is None  # timings are per process


def test_a_snapshot_is_not_changed_by_later_suggestions() -> None:
    searcher = warmed_up()
    before = searcher.telemetry()
    searcher.observe("pending", 0.5)
    searcher.suggest("next")
    assert before.suggestions == 7 and searcher.telemetry().suggestions == 8
    assert len(searcher.telemetry().expected_improvement_history) == 5
    assert len(before.expected_improvement_history) == 4


def test_suggest_in_a_thread_neither_disturbs_nor_is_disturbed_by_global_rngs() -> None:
    """suggest-ahead runs suggest() in a background thread while the main thread keeps
    drawing from torch's, NumPy's and Python's global generators: both must see exactly
    what they would see alone."""
    alone = warmed_up().suggest("next")

    searcher = warmed_up()
    result: dict[str, object] = {}
    snapshots: list[SearchTelemetry] = []
    thread = threading.Thread(target=lambda: result.update(config=searcher.suggest("next")))
    torch.manual_seed(2024)
    random.seed(2024)
    np.random.seed(2024)
    draws: list[tuple[float, float, float]] = []
    threads_before = torch.get_num_threads()
    filters_before = list(warnings.filters)
    thread.start()
    while thread.is_alive() or len(draws) < 50:
        draws.append((torch.rand(1).item(), random.random(), float(np.random.random())))
        snapshots.append(searcher.telemetry())
    thread.join()

    assert result["config"] == alone
    torch.manual_seed(2024)
    random.seed(2024)
    np.random.seed(2024)
    expected = [(torch.rand(1).item(), random.random(), float(np.random.random())) for _ in draws]
    assert draws == expected
    assert torch.get_num_threads() == threads_before
    assert warnings.filters == filters_before
    # Readers saw whole snapshots: the old one, then the new one.
    assert {s.suggestions for s in snapshots} <= {7, 8}
    assert searcher.telemetry().suggestions == 8


def test_global_seeds_do_not_change_suggestions() -> None:
    torch.manual_seed(1)
    random.seed(1)
    first = warmed_up().suggest("next")
    torch.manual_seed(99)
    random.seed(99)
    second = warmed_up().suggest("next")
    assert first == second
