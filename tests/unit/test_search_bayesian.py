"""Behaviour specific to the Bayesian searcher."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from botorch.exceptions.errors import ModelFittingError
from linear_operator.utils.errors import NotPSDError

from search import (
    BayesianSearcher,
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearcherOptionError,
    SearchSpace,
)
from search.gp_model import fit_gp

FAST = {"num_restarts": 2, "raw_samples": 32, "mc_samples": 16}


def quadratic_space() -> SearchSpace:
    return SearchSpace({"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)})


def bowl(config: dict) -> float:
    """Minimum 0 at (0.3, 0.7)."""
    return (config["x"] - 0.3) ** 2 + (config["y"] - 0.7) ** 2


def drive(searcher: BayesianSearcher, objective, trials: int) -> list[float]:
    values = []
    for i in range(trials):
        config = searcher.suggest(f"t{i}")
        values.append(objective(config))
        searcher.observe(f"t{i}", values[-1])
    return values


def test_initial_design_size_default_and_validation() -> None:
    space = quadratic_space()
    assert BayesianSearcher(space=space).initial_design_size == 5
    six = SearchSpace({f"x{i}": ContinuousParameter(0, 1) for i in range(6)})
    assert BayesianSearcher(space=six).initial_design_size == 7
    with pytest.raises(SearcherOptionError, match="num_restarts=0.*>= 1"):
        BayesianSearcher(space=space, num_restarts=0)
    with pytest.raises(SearcherOptionError, match="seed=-1"):
        BayesianSearcher(space=space, seed=-1)


def test_minimize_finds_the_bottom_of_a_bowl() -> None:
    searcher = BayesianSearcher(
        space=quadratic_space(), objective_type="Minimize", seed=0, initial_design_size=4, **FAST
    )
    values = drive(searcher, bowl, 14)
    assert min(values[4:]) < 0.01 < min(values[:4])
    assert searcher.fallback_count == 0


def test_minimize_is_maximize_of_the_negated_value() -> None:
    minimizing = BayesianSearcher(space=quadratic_space(), objective_type="minimize", **FAST)
    maximizing = BayesianSearcher(space=quadratic_space(), objective_type="MAXIMIZE", **FAST)
    for i in range(8):
        a, b = minimizing.suggest(f"t{i}"), maximizing.suggest(f"t{i}")
        assert a == b
        minimizing.observe(f"t{i}", bowl(a))
        maximizing.observe(f"t{i}", -bowl(b))


def test_expected_improvement_is_recorded_for_model_based_suggestions() -> None:
    searcher = BayesianSearcher(space=quadratic_space(), initial_design_size=4, **FAST)
    drive(searcher, lambda c: -bowl(c), 10)
    history = searcher.expected_improvement_history
    assert [trial for trial, _ in history] == [f"t{i}" for i in range(4, 10)]
    assert all(math.isfinite(ei) and ei >= 0.0 for _, ei in history)
    assert history[-1][1] < history[0][1]  # converging on a smooth bowl
    state = json.loads(json.dumps(searcher.state_dict()))
    restored = BayesianSearcher(space=quadratic_space(), initial_design_size=4, **FAST)
    restored.load_state_dict(state)
    assert restored.expected_improvement_history == history


def test_categorical_effect_is_learned() -> None:
    space = SearchSpace(
        {"x": ContinuousParameter(0.0, 1.0), "kind": CategoricalParameter(["a", "b", "c", "d"])}
    )
    searcher = BayesianSearcher(space=space, seed=1, initial_design_size=6, **FAST)

    def objective(config: dict) -> float:
        return (2.0 if config["kind"] == "c" else 0.0) - (config["x"] - 0.5) ** 2

    drive(searcher, objective, 16)
    late = [c["kind"] for c, _ in list(searcher.observations.values())[10:]]
    assert late.count("c") >= 4


def test_integer_only_space_is_searched_without_repeats() -> None:
    space = SearchSpace({"n": IntegerParameter(1, 12), "m": IntegerParameter(1, 3)})
    searcher = BayesianSearcher(space=space, initial_design_size=3, **FAST)
    values = drive(searcher, lambda c: -abs(c["n"] - 9) - abs(c["m"] - 2), 15)
    keys = [space.key(c) for c, _ in searcher.observations.values()]
    assert len(set(keys)) == 15
    assert max(values) == 0


def test_pending_points_spread_parallel_suggestions() -> None:
    searcher = BayesianSearcher(space=quadratic_space(), initial_design_size=4, **FAST)
    drive(searcher, lambda c: -bowl(c), 8)
    batch = [searcher.suggest(f"p{i}") for i in range(3)]
    points = np.array([[c["x"], c["y"]] for c in batch])
    distances = [np.linalg.norm(points[i] - points[j]) for i in range(3) for j in range(i)]
    assert min(distances) > 1e-3


def test_failed_trials_reach_the_model_as_the_worst_value() -> None:
    seen: list[torch.Tensor] = []

    def recording_fit(train_x, train_y, **kwargs):
        seen.append(train_y.clone())
        return fit_gp(train_x, train_y, **kwargs)

    searcher = BayesianSearcher(
        space=quadratic_space(), initial_design_size=5, model_fitter=recording_fit, **FAST
    )
    for i, value in enumerate([1.0, None, 3.0, math.nan, math.inf]):
        searcher.suggest(f"t{i}")
        searcher.observe(f"t{i}", value)
    searcher.suggest("next")
    assert len(seen) == 1
    standardised = seen[0].squeeze(-1)
    assert torch.isfinite(standardised).all()
    worst = standardised[0]  # the value 1.0 is the worst finite one (Maximize)
    assert torch.allclose(standardised[[1, 3, 4]], worst.expand(3))
    assert standardised[2] > worst


def test_all_failed_trials_keep_the_space_filling_design() -> None:
    searcher = BayesianSearcher(space=quadratic_space(), initial_design_size=2, **FAST)
    for i in range(5):
        assert searcher.suggest(f"t{i}") is not None
        searcher.observe(f"t{i}", None)
    assert searcher.fallback_count == 0
    assert searcher.expected_improvement_history == []


@pytest.mark.parametrize("error", [ModelFittingError("no fit"), NotPSDError("not PSD")])
def test_modelling_failures_fall_back_to_random_and_are_counted(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_fit(*args, **kwargs):
        raise error

    searcher = BayesianSearcher(
        space=quadratic_space(), initial_design_size=2, model_fitter=failing_fit, **FAST
    )
    with caplog.at_level(logging.WARNING, logger="search.bayesian"):
        values = drive(searcher, bowl, 5)
    assert len(values) == 5
    assert searcher.fallback_count == 3
    assert searcher.state_dict()["fallback_count"] == 3
    assert "fell back to random" in caplog.text and type(error).__name__ in caplog.text


def test_objectives_too_large_to_standardise_fall_back_to_random(
    caplog: pytest.LogCaptureFixture,
) -> None:
    searcher = BayesianSearcher(space=quadratic_space(), initial_design_size=2, **FAST)
    with caplog.at_level(logging.WARNING, logger="search.bayesian"):
        values = drive(searcher, lambda c: 1.7e308 * (c["x"] + 0.1), 5)
    assert all(math.isfinite(v) for v in values)
    assert searcher.fallback_count == 3
    assert "InputDataError" in caplog.text and "overflow" in caplog.text


def test_warm_start_uses_prior_observations_and_drops_outsiders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rng = np.random.default_rng(0)
    priors = []
    for _ in range(6):
        config = {"x": float(rng.random()), "y": float(rng.random())}
        priors.append((config, -bowl(config)))
    outsider = {"x": 2.0, "y": 0.5}
    priors.append((outsider, 1.0))
    priors.append(({"x": 0.1}, 1.0))
    with caplog.at_level(logging.WARNING, logger="search"):
        searcher = BayesianSearcher(
            space=quadratic_space(), prior_observations=priors, initial_design_size=5, **FAST
        )
    assert len(searcher.prior_observations) == 6
    assert "'x': 2.0" in caplog.text and "outside" in caplog.text
    assert "'y' is missing" in caplog.text
    searcher.suggest("first")
    # Enough priors: the very first suggestion is already model-based.
    assert [t for t, _ in searcher.expected_improvement_history] == ["first"]
    prior_keys = {searcher.space.key(c) for c, _ in searcher.prior_observations}
    assert searcher.space.key(searcher.pending["first"]) not in prior_keys


def test_suggesting_leaves_global_random_state_and_threads_untouched() -> None:
    searcher = BayesianSearcher(space=quadratic_space(), initial_design_size=2, **FAST)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    drive(searcher, bowl, 4)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
