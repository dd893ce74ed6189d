"""Choosing the next point: log noisy expected improvement, optimised over a mixed space.

Running trials enter as pending points, so the acquisition already credits their likely
outcomes and the next point goes elsewhere.

The optimiser is a batched evolutionary local search:

1. score ``raw_samples`` uniform points plus perturbations of the best observations;
2. keep the best ``num_restarts`` as parents; for ``local_rounds`` rounds, each parent
   spawns ``children_per_parent`` mutants (Gaussian steps shrinking by ``step_decay``
   every round on continuous and integer coordinates, from 0.2 of the unit range down
   to 0.0004 with the defaults; random re-draws on categorical ones), and the best of
   parents and children survive (6 rounds with a decay of 0.35 cost 20% less time but
   scored 1.4 points lower at 32 trials x 8 parallel, CI [-5.4, +2.7]);
3. return the best-scoring point whose config has not been tried yet, with its value
   (``choose_point``): a value that is not finite means the acquisition was NaN or
   infinite everywhere, and the caller should not trust the pick.

Every candidate is snapped to a valid point (integers and categoricals at their bin
centres), so there is no rounding after optimisation. Scoring thousands of candidates in
a few batched, gradient-free calls costs far less than BoTorch's per-step overhead in
``optimize_acqf`` (about 6 ms a call here) and handles mixed spaces with one method. An
L-BFGS-B polish of the winners was tried and dropped: it doubled the suggestion time
(0.46 s against 0.18 s at 100 observations in 3-D) without raising the benchmark scores.
Small fully discrete spaces are enumerated instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.utils import prune_inferior_points
from botorch.models.model import Model
from botorch.sampling import SobolQMCNormalSampler

from search.parameters import CategoricalParameter
from search.sampling import Key, draw_unseen_points
from search.space import SearchSpace

#: Most observed points the acquisition compares candidates against (see `make_acquisition`).
MAX_BASELINE_POINTS = 16
#: Fully discrete spaces up to this many configs are optimised by enumeration.
MAX_ENUMERATED_CONFIGS = 4096
#: Candidates scored per batched call.
EVALUATION_BATCH = 1024
#: Perturbed copies of each of the best observations added to the first batch.
ANCHOR_COPIES = 16
#: Step size (unit-cube standard deviation) of the first local-search round.
FIRST_STEP = 0.2
#: Posterior samples used to find the observations that may be the best.
PRUNING_SAMPLES = 1024


@dataclasses.dataclass(frozen=True)
class Choice:
    """The point an acquisition optimiser picked (shape ``d``) and its acquisition value
    (``-inf`` when every candidate scored NaN or infinite)."""

    point: np.ndarray
    value: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AcquisitionSettings:
    """Effort spent optimising the acquisition function."""

    raw_samples: int = 512
    num_restarts: int = 10
    mc_samples: int = 64
    local_rounds: int = 10
    step_decay: float = 0.5
    children_per_parent: int = 16


def make_acquisition(
    model: Model,
    *,
    x_baseline: torch.Tensor,
    x_pending: torch.Tensor | None,
    mc_samples: int,
    seed: int,
) -> qLogNoisyExpectedImprovement:
    """qLogNEI against the observed points ``x_baseline`` (``n x d``), with running
    trials ``x_pending`` (``p x d``) treated as already chosen.

    Only the observed points that may be the best (BoTorch's ``prune_inferior_points``)
    enter, at most ``MAX_BASELINE_POINTS`` of them, the likeliest first. Every candidate
    is scored jointly with them, so their number sets the cost: a quantised or plateaued
    objective (accuracy on a small validation set, a sleep trainer) has hundreds of
    observations tied for the best, which made one suggestion take 6 s at 300
    observations; among tied points any one tells the acquisition the incumbent's value.
    Every sampler is seeded from ``seed``: nothing draws from torch's global generator.
    """
    max_frac = min(1.0, MAX_BASELINE_POINTS / max(1, len(x_baseline)))
    pruning_sampler = SobolQMCNormalSampler(
        sample_shape=torch.Size([PRUNING_SAMPLES]), seed=seed + 1
    )
    baseline = prune_inferior_points(model, x_baseline, max_frac=max_frac, sampler=pruning_sampler)
    return qLogNoisyExpectedImprovement(
        model=model,
        X_baseline=baseline,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed),
        X_pending=x_pending,
        prune_baseline=False,
    )


def optimize_acquisition(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    *,
    settings: AcquisitionSettings,
    seen: set[Key],
    rng: np.random.Generator,
    anchors: np.ndarray,
) -> np.ndarray | None:
    """The unit point (shape ``d``) of the untried config with the highest acquisition
    value found, or None if no untried config is left. ``anchors`` (``m x d``) are the
    best observations, around which the search also looks."""
    choice = choose_point(
        acquisition, space, settings=settings, seen=seen, rng=rng, anchors=anchors
    )
    return None if choice is None else choice.point


def choose_point(
    acquisition: AcquisitionFunction,
    space: SearchSpace,
    *,
    settings: AcquisitionSettings,
    seen: set[Key],
    rng: np.random.Generator,
    anchors: np.ndarray,
) -> Choice | None:
    """Like ``optimize_acquisition``, with the winner's acquisition value."""
    size = space.size
    if size is not None and size <= MAX_ENUMERATED_CONFIGS:
        untried = [space.to_unit(c) for c in space.iter_grid() if space.key(c) not in seen]
        if not untried:
            return None
        points = np.array(untried)
        return _best(points, _score(acquisition, points))
    domain = Domain(space)
    search = _LocalSearch(acquisition, domain, settings, rng)
    search.run(anchors)
    for point, value in search.best_first():
        if space.key(space.from_unit(point)) not in seen:
            return Choice(point, value)
    alternatives = draw_unseen_points(space, rng, seen, settings.raw_samples)
    if not len(alternatives):
        return None
    return _best(alternatives, _score(acquisition, alternatives))


def _best(points: np.ndarray, scores: np.ndarray) -> Choice:
    index = int(np.argmax(scores))
    return Choice(points[index], float(scores[index]))


def log_expected_improvement(acquisition: qLogNoisyExpectedImprovement, point: np.ndarray) -> float:
    """Log expected improvement of ``point`` (shape ``d``) on its own, ignoring pending
    points, in the units of the model's outputs."""
    saved_pending = acquisition.X_pending
    acquisition.set_X_pending(None)
    try:
        return float(_score(acquisition, point.reshape(1, -1))[0])
    finally:
        acquisition.set_X_pending(saved_pending)


class Domain:
    """Per-coordinate kinds of a space's unit cube, for mutating and snapping points."""

    def __init__(self, space: SearchSpace) -> None:
        self.dimension = space.dimension
        self.continuous: list[int] = []
        self.integer: dict[int, np.ndarray] = {}
        self.categorical: dict[int, np.ndarray] = {}
        for dim, parameter in enumerate(space.parameters.values()):
            grid = parameter.unit_grid()
            if grid is None:
                self.continuous.append(dim)
            elif isinstance(parameter, CategoricalParameter):
                self.categorical[dim] = np.array(grid)
            else:
                self.integer[dim] = np.array(grid)

    def snap(self, points: np.ndarray) -> np.ndarray:
        """``points`` (``m x d``) clipped into the cube, discrete coordinates moved to
        the nearest bin centre."""
        snapped = np.clip(points, 0.0, 1.0)
        for dim, centres in (self.integer | self.categorical).items():
            nearest = np.abs(snapped[:, dim, None] - centres[None, :]).argmin(axis=1)
            snapped[:, dim] = centres[nearest]
        return snapped

    def mutate(self, parents: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
        """Mutants of ``parents`` (``m x d``): Gaussian steps of size ``step`` on ordinal
        coordinates (at least one bin for integers), random categories with probability
        ``min(0.5, 2 * step)`` per categorical coordinate."""
        children = parents.copy()
        if self.continuous:
            noise = rng.normal(0.0, step, size=(len(children), len(self.continuous)))
            children[:, self.continuous] += noise
        for dim, centres in self.integer.items():
            children[:, dim] += rng.normal(0.0, max(step, 1.0 / len(centres)), len(children))
        for dim, centres in self.categorical.items():
            redraw = rng.random(len(children)) < min(0.5, 2.0 * step)
            children[redraw, dim] = rng.choice(centres, size=int(redraw.sum()))
        return self.snap(children)


class _LocalSearch:
    """The evolutionary local search described in the module docstring;
    keeps every scored candidate so the best untried one can be picked."""

    def __init__(
        self,
        acquisition: qLogNoisyExpectedImprovement,
        domain: Domain,
        settings: AcquisitionSettings,
        rng: np.random.Generator,
    ) -> None:
        self._acquisition = acquisition
        self._domain = domain
        self._settings = settings
        self._rng = rng
        self._points: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def run(self, anchors: np.ndarray) -> None:
        settings, domain, rng = self._settings, self._domain, self._rng
        start = rng.random((settings.raw_samples, domain.dimension))
        if len(anchors):
            copies = np.repeat(anchors, ANCHOR_COPIES, axis=0)
            start = np.vstack([start, copies + rng.normal(0.0, 0.05, copies.shape)])
        parents, parent_scores = self._add(domain.snap(start))
        parents, parent_scores = _top(parents, parent_scores, settings.num_restarts)
        for round_index in range(settings.local_rounds):
            step = FIRST_STEP * settings.step_decay**round_index
            family = np.repeat(parents, settings.children_per_parent, axis=0)
            children, child_scores = self._add(domain.mutate(family, step, rng))
            parents, parent_scores = _top(
                np.vstack([parents, children]),
                np.concatenate([parent_scores, child_scores]),
                settings.num_restarts,
            )

    def best_first(self) -> list[tuple[np.ndarray, float]]:
        """Every scored point with its value, best acquisition value first."""
        points, scores = np.vstack(self._points), np.concatenate(self._scores)
        order = np.argsort(-scores, kind="stable")
        return [(points[i], float(scores[i])) for i in order]

    def _add(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = _score(self._acquisition, points)
        self._points.append(points)
        self._scores.append(scores)
        return points, scores


def _top(points: np.ndarray, scores: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")[:count]
    return points[order], scores[order]


def _score(acquisition: qLogNoisyExpectedImprovement, points: np.ndarray) -> np.ndarray:
    """Acquisition values of ``points`` (``m x d``), each scored on its own: shape ``m``;
    NaN and infinite values become ``-inf``."""
    values = []
    with torch.no_grad():
        for start in range(0, len(points), EVALUATION_BATCH):
            batch = torch.from_numpy(points[start : start + EVALUATION_BATCH]).unsqueeze(-2)
            values.append(acquisition(batch))
    scores = torch.cat(values).numpy()
    return np.where(np.isfinite(scores), scores, -np.inf)
