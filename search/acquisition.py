"""Choosing the next point: log noisy expected improvement, optimised over a mixed space.

Running trials enter as pending points, so the acquisition already credits their likely
outcomes and the next point goes elsewhere. Integer and categorical coordinates only take
their bin centres: small fully discrete spaces are enumerated, others go through BoTorch's
alternating continuous/discrete optimiser. A point whose config was already tried is
replaced by the best of a batch of untried random configs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
from botorch.sampling import SobolQMCNormalSampler

from search.parameters import CategoricalParameter
from search.sampling import Key, draw_unseen_points
from search.space import SearchSpace

#: Fully discrete spaces up to this many configs are optimised by enumeration.
MAX_ENUMERATED_CONFIGS = 4096
#: Candidates evaluated per batch when scoring many configs at once.
EVALUATION_BATCH = 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class AcquisitionSettings:
    """Effort spent optimising the acquisition function."""

    num_restarts: int = 10
    raw_samples: int = 512
    mc_samples: int = 128
    #: L-BFGS-B iterations per restart (continuous spaces).
    max_iterations: int = 100
    #: Alternations of discrete and continuous steps (mixed spaces).
    max_alternations: int = 8


def make_acquisition(
    model: Model,
    *,
    x_baseline: torch.Tensor,
    x_pending: torch.Tensor | None,
    mc_samples: int,
    seed: int,
) -> qLogNoisyExpectedImprovement:
    """qLogNEI against the observed points ``x_baseline`` (``n x d``), with running
    trials ``x_pending`` (``p x d``) treated as already chosen."""
    return qLogNoisyExpectedImprovement(
        model=model,
        X_baseline=x_baseline,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed),
        X_pending=x_pending,
        prune_baseline=True,
    )


def optimize_acquisition(
    acquisition: qLogNoisyExpectedImprovement,
    space: SearchSpace,
    *,
    settings: AcquisitionSettings,
    seen: set[Key],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """The unit point (shape ``d``) of an untried config with the highest acquisition
    value found, or None if no untried config is left. Uses torch's global generator
    (via BoTorch), so call it inside ``isolated_global_rngs``."""
    size = space.size
    if size is not None and size <= MAX_ENUMERATED_CONFIGS:
        untried = [space.to_unit(c) for c in space.iter_grid() if space.key(c) not in seen]
        return _best_of(acquisition, np.array(untried)) if untried else None
    bounds, discrete_dims, categorical_dims, fixed = _domain(space)
    if discrete_dims or categorical_dims:
        candidate, _ = optimize_acqf_mixed_alternating(
            acq_function=acquisition,
            bounds=bounds,
            discrete_dims=discrete_dims,
            cat_dims=categorical_dims,
            fixed_features=fixed or None,
            q=1,
            num_restarts=settings.num_restarts,
            raw_samples=settings.raw_samples,
            options={"maxiter_alternating": settings.max_alternations},
        )
    else:
        candidate, _ = optimize_acqf(
            acq_function=acquisition,
            bounds=bounds,
            q=1,
            num_restarts=settings.num_restarts,
            raw_samples=settings.raw_samples,
            fixed_features=fixed or None,
            options={"maxiter": settings.max_iterations},
            retry_on_optimization_warning=False,
        )
    config = space.from_unit(candidate[0].numpy())
    if space.key(config) not in seen:
        return space.to_unit(config)
    alternatives = draw_unseen_points(space, rng, seen, settings.raw_samples)
    return _best_of(acquisition, alternatives) if len(alternatives) else None


def log_expected_improvement(acquisition: qLogNoisyExpectedImprovement, point: np.ndarray) -> float:
    """Log expected improvement of ``point`` (shape ``d``) on its own, ignoring pending
    points, in the units of the model's outputs."""
    saved_pending = acquisition.X_pending
    acquisition.set_X_pending(None)
    try:
        with torch.no_grad():
            return float(acquisition(torch.from_numpy(point).view(1, 1, -1)))
    finally:
        acquisition.set_X_pending(saved_pending)


def _best_of(acquisition: qLogNoisyExpectedImprovement, points: np.ndarray) -> np.ndarray:
    """The row of ``points`` (``m x d``) with the highest acquisition value."""
    values = []
    with torch.no_grad():
        for start in range(0, len(points), EVALUATION_BATCH):
            batch = torch.from_numpy(points[start : start + EVALUATION_BATCH]).unsqueeze(-2)
            values.append(acquisition(batch))
    return points[int(torch.cat(values).argmax())]


def _domain(
    space: SearchSpace,
) -> tuple[torch.Tensor, dict[int, list[float]], dict[int, list[float]], dict[int, float]]:
    """Bounds (``2 x d``), integer and categorical dimensions with their allowed unit
    values, and single-valued dimensions to hold fixed."""
    lower, upper = [], []
    discrete: dict[int, list[float]] = {}
    categorical: dict[int, list[float]] = {}
    fixed: dict[int, float] = {}
    for dim, parameter in enumerate(space.parameters.values()):
        grid = parameter.unit_grid()
        if grid is None:
            lower.append(0.0)
            upper.append(1.0)
            continue
        lower.append(grid[0])
        upper.append(grid[-1])
        if len(grid) == 1:
            fixed[dim] = grid[0]
        elif isinstance(parameter, CategoricalParameter):
            categorical[dim] = list(grid)
        else:
            discrete[dim] = list(grid)
    bounds = torch.tensor([lower, upper], dtype=torch.float64)
    return bounds, discrete, categorical, fixed
