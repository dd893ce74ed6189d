"""``BayesianSearcher``: Gaussian-process Bayesian optimisation on BoTorch.

Each suggestion after the initial (scrambled Sobol) design:

1. training data = prior observations + this job's observations, as unit-cube points
   (``n x d``) and values turned into "larger is better" (negated for ``Minimize``).
   Failed trials (None, NaN, ±inf) are imputed with the worst finite value seen, so the
   model learns to avoid regions that crash and no NaN ever reaches it. Beyond
   ``max_model_points`` observations the model sees the best half of that budget plus a
   seeded uniform sample of the rest (the optimum's neighbourhood in full detail, the
   global shape coarsely), which bounds the cost of a suggestion;
2. values are made robust to outliers on the bad side: anything worse than the lower
   Tukey fence (first quartile minus 1.5 interquartile ranges) is clipped to it, so one
   diverged run (a loss of 1e6 among losses of 0.3-2.3) cannot squash the good region
   into a sliver below the GP's noise floor. Then they are standardised, Yeo-Johnson
   transformed (lambda fitted by maximum likelihood, clipped to [-2, 4]) and
   standardised again, which evens out the remaining skew (see ``warp_outputs``);
3. the GP (see ``gp_model``) is fitted, warm-started from the previous hyperparameters;
   once there are ``REFIT_ALWAYS_BELOW`` observations, the hyperparameters are only
   re-optimised when the data has grown by ``REFIT_GROWTH`` since the last fit (the GP is
   still conditioned on all the data every time);
4. qLogNEI with the pending trials' points is optimised over the mixed space (see
   ``acquisition``); the winner is never a config already tried or pending.

Modelling failures (``ModelFittingError``, ``NotPSDError``, ...) make that one suggestion
a random one, logged and counted (``telemetry().fallback_count``); an acquisition that is
NaN or infinite everywhere does too, counted as a NaN pick (``telemetry().nan_picks``).

A suggestion touches no process-wide state: no global random generator (BoTorch gets
seeded samplers, the optimiser NumPy generators derived from ``(seed, index)``), no
warning filters, no torch thread settings. It may therefore run in a background thread
while the caller works; how many threads torch and BLAS use is the caller's choice
(one is best for GPs this small: ``torch.set_num_threads(1)`` at start-up).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import scipy.stats
import torch
from botorch.exceptions.errors import BotorchError, InputDataError, ModelFittingError
from linear_operator.utils.errors import NanError, NotPSDError

from search.acquisition import (
    AcquisitionSettings,
    Choice,
    Domain,
    choose_point,
    log_expected_improvement,
    make_acquisition,
)
from search.batch import (
    LocalPenalty,
    PendingStrategy,
    posterior_mean_and_std,
    thompson_candidates,
    thompson_pick,
)
from search.enums import ObjectiveType, Strategy
from search.errors import SearcherOptionError, StateDictError
from search.gp_model import Hyperparameters, fit_gp, hyperparameters_of
from search.parameters import CategoricalParameter
from search.rng import (
    ACQUISITION_STREAM,
    RANDOM_STREAM,
    SUBSAMPLE_STREAM,
    TORCH_STREAM,
    derived_seed,
    generator,
)
from search.sampling import Key, draw_unseen, is_exhausted, sobol_point
from search.searcher import Searcher
from search.space import Config, SearchSpace

logger = logging.getLogger(__name__)

#: Errors from model fitting or acquisition optimisation that trigger a random fallback.
RECOVERABLE_ERRORS: tuple[type[BaseException], ...] = (
    ModelFittingError,  # not a BotorchError subclass
    BotorchError,
    NotPSDError,
    NanError,
    torch.linalg.LinAlgError,
)
#: The GP needs at least this many finite observations.
MIN_MODEL_OBSERVATIONS = 2
#: Below this many observations the GP hyperparameters are re-optimised every time.
REFIT_ALWAYS_BELOW = 50
#: Above it, they are re-optimised once the observations grew by this factor.
REFIT_GROWTH = 1.1
#: Best observations around which the acquisition optimiser also searches.
ANCHOR_COUNT = 5
#: Yeo-Johnson lambda range: beyond it the transform distorts more than it helps.
YEO_JOHNSON_LAMBDA_RANGE = (-2.0, 4.0)
#: Values worse than the first quartile minus this many interquartile ranges are clipped.
OUTLIER_FENCE = 1.5
#: Fewer observations than this are not clipped (quartiles of 3 points mean little).
MIN_CLIP_OBSERVATIONS = 4

#: Fits the surrogate: ``(train_x, train_y, *, categorical_dims, initial, optimize)`` to
#: ``(model, hyperparameters)``; see ``gp_model.fit_gp``.
ModelFitter = Callable[..., tuple[Any, Hyperparameters]]


#: Marks a suggestion whose acquisition values were all NaN or infinite.
_NAN_PICK = object()


def default_initial_design_size(dimension: int) -> int:
    """Sobol points before the GP takes over: ``max(5, d + 1)``."""
    return max(5, dimension + 1)


class BayesianSearcher(Searcher):
    """GP-based Bayesian optimisation; see the module docstring.

    Options (keyword-only):
        initial_design_size: Sobol suggestions before modelling starts, reduced by the
            number of finite prior observations (default ``max(5, d + 1)``).
        raw_samples, num_restarts, mc_samples: acquisition optimisation effort (random
            candidates scored first, parents kept by the local search, MC samples).
        max_model_points: most observations the GP is fitted to (see above).
        pending_strategy: how running trials shape the next suggestion (see
            ``search.batch``; default: qLogNEI over fantasies of their outcomes).
        model_fitter: fits the surrogate (default ``gp_model.fit_gp``); an extension
            point, also used by tests to exercise the fallback path.

    ``expected_improvement_history`` holds ``(trial_id, ei)`` for every GP-based
    suggestion: the expected improvement of the suggested config over the best
    observation so far (pending trials ignored), divided by the range (max − min) of the
    observed values — both measured in the model's transformed output space (step 2
    above), so the number is dimensionless, comparable across metrics, and shrinks
    towards 0 as the search converges.
    """

    strategy = Strategy.BAYESIAN

    def __init__(
        self,
        *,
        space: SearchSpace,
        objective_type: ObjectiveType | str = ObjectiveType.MAXIMIZE,
        seed: int = 0,
        prior_observations: Iterable[tuple[Mapping[str, Any], float | None]] | None = None,
        initial_design_size: int | None = None,
        raw_samples: int = 512,
        num_restarts: int = 10,
        mc_samples: int = 64,
        max_model_points: int = 200,
        pending_strategy: PendingStrategy | str = PendingStrategy.FANTASIES,
        model_fitter: ModelFitter = fit_gp,
    ) -> None:
        super().__init__(
            space=space,
            objective_type=objective_type,
            seed=seed,
            prior_observations=prior_observations,
        )
        if initial_design_size is None:
            initial_design_size = default_initial_design_size(space.dimension)
        _check_count("initial_design_size", initial_design_size, minimum=0)
        _check_count("num_restarts", num_restarts, minimum=1)
        _check_count("raw_samples", raw_samples, minimum=num_restarts)
        _check_count("mc_samples", mc_samples, minimum=1)
        _check_count("max_model_points", max_model_points, minimum=2 * MIN_MODEL_OBSERVATIONS)
        self._initial_design_size = initial_design_size
        self._settings = AcquisitionSettings(
            raw_samples=raw_samples, num_restarts=num_restarts, mc_samples=mc_samples
        )
        self._max_model_points = max_model_points
        try:
            self._pending_strategy = PendingStrategy(pending_strategy)
        except ValueError as error:
            allowed = ", ".join(s.value for s in PendingStrategy)
            raise SearcherOptionError(
                f"pending_strategy={pending_strategy!r} is not one of: {allowed}"
            ) from error
        self._model_fitter = model_fitter
        self._categorical_dims = [
            dim
            for dim, parameter in enumerate(space.parameters.values())
            if isinstance(parameter, CategoricalParameter)
        ]
        self._ei_history: list[tuple[str, float]] = []
        self._ei_snapshot: tuple[tuple[str, float], ...] = ()
        self._hyperparameters: Hyperparameters | None = None
        self._fitted_on = 0  # observations at the last hyperparameter optimisation

    @property
    def expected_improvement_history(self) -> list[tuple[str, float]]:
        """``(trial_id, normalised expected improvement)`` per GP-based suggestion."""
        return list(self._ei_history)

    @property
    def initial_design_size(self) -> int:
        return self._initial_design_size

    def _propose(self, trial_id: str, index: int) -> Config | None:
        seen = self._seen_keys()
        if is_exhausted(self.space, seen):
            return None
        train_x, train_y, observed = self._training_data(index)
        finite_priors = sum(v is not None for _, v in self.prior_observations)
        in_initial_design = index < self._initial_design_size - finite_priors
        if in_initial_design or len(train_y) < MIN_MODEL_OBSERVATIONS:
            point = sobol_point(self.space, seed=self.seed, index=index)
            return draw_unseen(self.space, self._rng(index), seen, first_choice=point)
        try:
            proposal = self._model_proposal(train_x, train_y, observed, seen, index)
        except RECOVERABLE_ERRORS as error:
            self._fallback_count += 1
            logger.warning(
                "Bayesian suggestion %d for trial %s fell back to random (%s: %s)",
                index,
                trial_id,
                type(error).__name__,
                error,
            )
            return draw_unseen(self.space, self._rng(index), seen)
        if proposal is None:
            return None
        if proposal is _NAN_PICK:
            self._nan_picks += 1
            logger.warning(
                "Bayesian suggestion %d for trial %s is random: the acquisition was NaN "
                "or infinite everywhere",
                index,
                trial_id,
            )
            return draw_unseen(self.space, self._rng(index), seen)
        config, expected_improvement = proposal
        self._ei_history.append((trial_id, expected_improvement))
        self._ei_snapshot = (*self._ei_snapshot, (trial_id, expected_improvement))
        return config

    def _expected_improvement_snapshot(self) -> tuple[tuple[str, float], ...]:
        return self._ei_snapshot

    def _model_proposal(
        self,
        train_x: np.ndarray,
        train_y: np.ndarray,
        observed: int,
        seen: set[Key],
        index: int,
    ) -> tuple[Config, float] | object | None:
        """Fit the GP and optimise the acquisition: the config and its normalised EI,
        ``_NAN_PICK`` if every acquisition value was NaN or infinite, None if no untried
        config is left."""
        model_y = warp_outputs(train_y)
        x = torch.from_numpy(train_x)
        refit = observed < REFIT_ALWAYS_BELOW or observed >= REFIT_GROWTH * self._fitted_on
        model, hyperparameters = self._model_fitter(
            x,
            torch.from_numpy(model_y).unsqueeze(-1),
            categorical_dims=self._categorical_dims,
            initial=self._hyperparameters,
            optimize=refit or self._hyperparameters is None,
        )
        if refit or self._hyperparameters is None:
            self._hyperparameters, self._fitted_on = hyperparameters, observed
        pending = [self.space.to_unit(c) for c in self.pending.values()]
        x_pending = torch.from_numpy(np.array(pending)) if pending else None
        seed = derived_seed(self.seed, TORCH_STREAM, index)
        rng = self._rng(index, ACQUISITION_STREAM)
        anchors = train_x[np.argsort(-model_y, kind="stable")[:ANCHOR_COUNT]]
        strategy = self._pending_strategy if x_pending is not None else PendingStrategy.FANTASIES
        if strategy in (PendingStrategy.BELIEVER, PendingStrategy.THOMPSON):
            model = self._believer(model, x, model_y, x_pending)
        acquisition = make_acquisition(
            model,
            x_baseline=x,
            x_pending=x_pending if strategy is PendingStrategy.FANTASIES else None,
            mc_samples=self._settings.mc_samples,
            seed=seed,
        )
        if strategy is PendingStrategy.THOMPSON:
            candidates = thompson_candidates(self.space, rng, anchors, Domain(self.space).snap)
            picked = thompson_pick(model, candidates, self.space, seen, seed)
            if picked is None:
                return None
            choice = Choice(*picked)
        else:
            scorer = acquisition
            if strategy is PendingStrategy.PENALTY:
                best = float(model_y.max())
                scorer = LocalPenalty(acquisition, model, x_pending, best=best, rng=rng)
            choice = choose_point(
                scorer, self.space, settings=self._settings, seen=seen, rng=rng, anchors=anchors
            )
        if choice is None:
            return None
        if not math.isfinite(choice.value):
            return _NAN_PICK
        point = choice.point
        spread = float(model_y.max() - model_y.min()) or 1.0
        expected_improvement = math.exp(log_expected_improvement(acquisition, point)) / spread
        return self.space.from_unit(point), expected_improvement

    def _believer(
        self, model: Any, x: torch.Tensor, model_y: np.ndarray, x_pending: torch.Tensor
    ) -> Any:
        """The GP with the same hyperparameters, also conditioned on the pending points
        (``p x d``) at its posterior mean there."""
        mean, _ = posterior_mean_and_std(model, x_pending)
        believed, _ = self._model_fitter(
            torch.cat([x, x_pending]),
            torch.cat([torch.from_numpy(model_y), mean]).unsqueeze(-1),
            categorical_dims=self._categorical_dims,
            initial=hyperparameters_of(model),
            optimize=False,
        )
        return believed

    def _training_data(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Unit points (``n x d``) and larger-is-better values (``n``) the model sees,
        and how many completed trials they stand for. Failed trials take the worst
        finite value (and are dropped while there is none)."""
        completed = self._completed()
        finite = [self._to_maximize(v) for _, v in completed if v is not None]
        worst = min(finite) if finite else None
        rows, values = [], []
        for config, value in completed:
            if value is None and worst is None:
                continue
            rows.append(self.space.to_unit(config))
            values.append(worst if value is None else self._to_maximize(value))
        if not rows:
            return np.zeros((0, self.space.dimension)), np.zeros(0), 0
        x, y = np.array(rows, dtype=np.float64), np.array(values, dtype=np.float64)
        if len(y) > self._max_model_points:
            keep = self._subsample(y, index)
            return x[keep], y[keep], len(y)
        return x, y, len(y)

    def _subsample(self, values: np.ndarray, index: int) -> np.ndarray:
        """Indices (ascending) of the best ``max_model_points // 2`` values plus a seeded
        uniform sample of the others, ``max_model_points`` in all."""
        best_count = self._max_model_points // 2
        order = np.argsort(-values, kind="stable")
        rest = self._rng(index, SUBSAMPLE_STREAM).choice(
            order[best_count:], size=self._max_model_points - best_count, replace=False
        )
        return np.sort(np.concatenate([order[:best_count], rest]))

    def _rng(self, index: int, stream: int = RANDOM_STREAM) -> np.random.Generator:
        return generator(self.seed, stream, index)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "expected_improvement_history": [[t, v] for t, v in self._ei_history],
            "gp_hyperparameters": self._hyperparameters,
            "gp_fitted_on": self._fitted_on,
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        try:
            history = [(str(t), float(v)) for t, v in extra["expected_improvement_history"]]
            saved = extra["gp_hyperparameters"]
            hyperparameters = (
                None
                if saved is None
                else {str(k): [float(x) for x in v] for k, v in dict(saved).items()}
            )
            fitted_on = int(extra["gp_fitted_on"])
        except (KeyError, TypeError, ValueError) as error:
            raise StateDictError(f"Bayesian state is malformed: {error}") from error
        if hyperparameters and not all(
            math.isfinite(x) for values in hyperparameters.values() for x in values
        ):
            raise StateDictError("Bayesian state has non-finite GP hyperparameters")
        self._ei_history = history
        self._ei_snapshot = tuple(history)
        self._hyperparameters = hyperparameters
        self._fitted_on = fitted_on


def warp_outputs(values: np.ndarray) -> np.ndarray:
    """Larger-is-better ``values`` (``n``) as the GP sees them (``n``): the bad tail
    clipped at the lower Tukey fence, standardised, Yeo-Johnson transformed (clipped
    lambda), standardised again. The order of the values is kept (ties aside).

    Raises ``InputDataError`` (so the suggestion falls back to random, counted) when the
    values are too large to standardise: a model of overflowed numbers knows nothing.
    """
    values = clip_bad_tail(values)
    with np.errstate(over="ignore", invalid="ignore"):
        scale, centre = float(values.std()), float(values.mean())
    if not (math.isfinite(scale) and math.isfinite(centre)):
        raise InputDataError(
            f"objective values up to {float(np.abs(values).max()):.3g} overflow standardisation"
        )
    if scale == 0.0:
        return np.zeros_like(values)
    z = (values - centre) / scale
    if len(values) >= 3:
        lam = float(np.clip(scipy.stats.yeojohnson_normmax(z), *YEO_JOHNSON_LAMBDA_RANGE))
        z = scipy.stats.yeojohnson(z, lmbda=lam)
        z = (z - z.mean()) / (float(z.std()) or 1.0)
    return z


def clip_bad_tail(values: np.ndarray) -> np.ndarray:
    """``values`` (``n``, larger is better) with those below ``q1 - 1.5 (q3 - q1)`` raised
    to that fence; unchanged below ``MIN_CLIP_OBSERVATIONS`` values or when the fence is
    not finite (values too large: ``warp_outputs`` then refuses them)."""
    if len(values) < MIN_CLIP_OBSERVATIONS:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        first, third = np.percentile(values, [25.0, 75.0])
        fence = first - OUTLIER_FENCE * (third - first)
    if not math.isfinite(fence):
        return values
    return np.maximum(values, fence)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SearcherOptionError(f"{name}={value!r} must be an integer >= {minimum}")
