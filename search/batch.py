"""How running trials (pending points) shape the next suggestion: the strategies compared.

``PendingStrategy`` names them; ``BayesianSearcher`` builds the acquisition accordingly:

- ``FANTASIES``: qLogNEI with the pending points as ``X_pending``: each candidate is scored
  jointly with them over Monte-Carlo fantasies of their outcomes;
- ``BELIEVER``: the GP is conditioned on the pending points at its posterior mean (the
  "kriging believer"), which shrinks the uncertainty around them, then qLogNEI;
- ``PENALTY``: local penalisation (Gonzalez et al. 2016): log EI plus, per pending point,
  the log-probability that the candidate lies outside the ball the point excludes, from a
  Lipschitz constant of the posterior mean;
- ``THOMPSON``: one seeded joint posterior sample over a candidate set (the believer
  model, so pending points count), maximised.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np
import torch
from botorch.models.model import Model

from search.sampling import Key
from search.space import SearchSpace

#: Points at which the posterior mean's gradient is measured for the Lipschitz constant.
LIPSCHITZ_POINTS = 256
#: Candidates of one Thompson sample: uniform ones plus perturbations of the best points.
THOMPSON_UNIFORM = 768
THOMPSON_PER_ANCHOR = 48


class PendingStrategy(enum.Enum):
    FANTASIES = "fantasies"
    BELIEVER = "believer"
    PENALTY = "penalty"
    THOMPSON = "thompson"


def posterior_mean_and_std(model: Model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation (both ``m``) at ``x`` (``m x d``)."""
    with torch.no_grad():
        posterior = model.posterior(x)
    return posterior.mean.squeeze(-1), posterior.variance.clamp_min(1e-12).sqrt().squeeze(-1)


class LocalPenalty:
    """``log_acquisition(X) + sum_j log Phi((L |x - x_j| - M + mu_j) / sigma_j)`` for
    ``X`` (``m x 1 x d``): ``acquisition`` ignores the pending points ``x_pending``
    (``p x d``), the penalty keeps candidates away from them, by more where the model is
    sure they will be bad. ``best`` is the best observed (model-space) value."""

    def __init__(
        self,
        acquisition: torch.nn.Module,
        model: Model,
        x_pending: torch.Tensor,
        *,
        best: float,
        rng: np.random.Generator,
    ) -> None:
        self._acquisition = acquisition
        self._pending = x_pending
        mean, std = posterior_mean_and_std(model, x_pending)
        self._mean, self._std = mean, std
        self._best = best
        self._lipschitz = _lipschitz(model, x_pending.shape[-1], rng)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        values = self._acquisition(x)
        distance = torch.cdist(x.squeeze(-2), self._pending)  # m x p
        z = (self._lipschitz * distance - self._best + self._mean) / self._std
        return values + torch.special.log_ndtr(z).sum(-1)


def _lipschitz(model: Model, dimension: int, rng: np.random.Generator) -> float:
    """The largest gradient norm of the posterior mean over seeded uniform points."""
    x = torch.from_numpy(rng.random((LIPSCHITZ_POINTS, dimension))).requires_grad_(True)
    mean = model.posterior(x).mean.sum()
    (gradient,) = torch.autograd.grad(mean, x)
    return max(float(gradient.norm(dim=-1).max()), 1e-7)


def thompson_candidates(
    space: SearchSpace, rng: np.random.Generator, anchors: np.ndarray, snap
) -> np.ndarray:
    """Candidate unit points (``m x d``) for one Thompson sample."""
    uniform = rng.random((THOMPSON_UNIFORM, space.dimension))
    copies = np.repeat(anchors, THOMPSON_PER_ANCHOR, axis=0)
    scale = rng.choice([0.01, 0.05, 0.15], size=(len(copies), 1))
    local = copies + scale * rng.normal(size=copies.shape)
    return snap(np.vstack([uniform, local]))


def thompson_pick(
    model: Model,
    candidates: np.ndarray,
    space: SearchSpace,
    seen: set[Key],
    seed: int,
) -> tuple[np.ndarray, float] | None:
    """The untried candidate maximising one joint posterior sample drawn with a
    generator seeded by ``seed``, and its sampled value; None if every one was tried."""
    keys = [space.key(space.from_unit(point)) for point in candidates]
    fresh = _unique_untried(keys, seen)
    if not fresh:
        return None
    points = torch.from_numpy(candidates[fresh])
    with torch.no_grad():
        posterior = model.posterior(points)
        mean = posterior.mean.squeeze(-1)
        covariance = posterior.covariance_matrix.squeeze(0)
        chol = _safe_cholesky(covariance)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(len(points), generator=generator, dtype=mean.dtype)
        sample = mean + chol @ noise
    index = int(torch.argmax(sample))
    return candidates[fresh[index]], float(sample[index])


def _unique_untried(keys: Sequence[Key], seen: set[Key]) -> list[int]:
    chosen, taken = [], set()
    for index, key in enumerate(keys):
        if key not in seen and key not in taken:
            taken.add(key)
            chosen.append(index)
    return chosen


def _safe_cholesky(matrix: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(len(matrix), dtype=matrix.dtype)
    for jitter in (1e-9, 1e-7, 1e-5, 1e-3):
        factor, info = torch.linalg.cholesky_ex(matrix + jitter * eye)
        if int(info) == 0:
            return factor
    return torch.diag(torch.diagonal(matrix).clamp_min(0).sqrt())
