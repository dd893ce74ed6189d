"""The output transform: one diverged run must not blind the GP."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search import BayesianSearcher, ContinuousParameter, SearchSpace
from search.bayesian import clip_bad_tail, warp_outputs

OPTIMUM = (0.3, 0.7)


def smooth_loss(config: dict) -> float:
    """A 2-D bowl with losses from 0.3 (at ``OPTIMUM``) to about 2.3."""
    return 0.3 + 2.04 * ((config["x"] - OPTIMUM[0]) ** 2 + (config["y"] - OPTIMUM[1]) ** 2)


def diverged_priors(seed: int) -> list[tuple[dict, float]]:
    """14 observations of the bowl plus one finite diverged run (loss 1e6)."""
    rng = np.random.default_rng(seed)
    priors = []
    for _ in range(14):
        config = {"x": float(rng.random()), "y": float(rng.random())}
        priors.append((config, smooth_loss(config)))
    priors.append(({"x": 0.97, "y": 0.05}, 1e6))
    return priors


def test_one_diverged_value_leaves_the_good_values_spread_out() -> None:
    losses = np.array([v for _, v in diverged_priors(0)])
    warped = warp_outputs(-losses)
    good = warped[:-1]
    # Before clipping the 14 good values ended within 5e-5 of each other.
    assert good.max() - good.min() > 1.0
    assert warped[-1] == warped.min()
    assert np.array_equal(np.argsort(-losses[:-1]), np.argsort(good))  # order kept


def test_clipping_only_touches_the_bad_tail() -> None:
    values = np.array([-1e6, -2.0, -1.5, -1.0, -0.9, -0.5, 10.0])
    clipped = clip_bad_tail(values)
    assert clipped[0] > -1e6 and clipped[0] <= -2.0
    assert np.array_equal(clipped[1:], values[1:])  # a large good value stays
    assert np.array_equal(clip_bad_tail(values[:3]), values[:3])  # too few to judge


def test_after_a_diverged_run_the_next_six_suggestions_stay_near_the_optimum() -> None:
    space = SearchSpace({"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)})
    searcher = BayesianSearcher(
        space=space,
        objective_type="Minimize",
        seed=1,
        prior_observations=diverged_priors(1),
        raw_samples=128,
    )
    near = 0
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        near += math.dist((config["x"], config["y"]), OPTIMUM) < 0.15
        searcher.observe(f"t{i}", smooth_loss(config))
    assert near >= 5  # 0 of 6 before the bad tail was clipped
    assert searcher.telemetry().fallback_count == 0


@pytest.mark.parametrize("size", [1, 2, 3, 10])
def test_constant_values_warp_to_zeros(size: int) -> None:
    assert np.array_equal(warp_outputs(np.full(size, 3.0)), np.zeros(size))
