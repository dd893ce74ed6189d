"""``HyperbandSearcher``: asynchronous successive halving with GP-guided configurations.

A job controller drives it like any ``Searcher`` (``suggest``, ``observe``, ``forget``,
``state_dict``), plus one call per intermediate result:

>>> decision = searcher.report("trial-7", resource=9, value=0.91)   # after epoch 9
>>> decision is Decision.STOP       # end the trial gracefully, then observe its last value

``report`` records the value and applies the ASHA rule (``successive_halving``) at rung
levels ``min_resource * eta**k`` up to ``max_resource``; NaN/inf values stop the trial and
never reach the rule. ``observe`` closes a trial, completed or stopped: a stopped trial is an
observation at the resource it reached, not a failure.

With ``guided=True`` (the default) new configurations come from a Gaussian process over
configuration and resource (``multi_fidelity_gp``) trained on every rung result of every
trial, finished, stopped or still running, plus the warm-start observations at
``max_resource``. Log expected improvement is maximised at the *target resource*: the
highest rung level that at least ``d + 2`` trials have reached, so the model scores
configurations where it has evidence instead of extrapolating to ``max_resource`` from a
few points. Running trials are pending points there. The first ``initial_design_size``
configurations are points of a scrambled Sobol sequence, which cover the space more evenly
than random draws (on the learning-curve tables, a better anytime curve in 7 of 8 problem and
parallelism cells, see benchmarks/RESULTS.md). With ``guided=False`` every configuration is a
uniform random draw (SageMaker's Hyperband). Modelling failures make that one suggestion
random, counted in ``fallback_count``.

With ``forecast_promotion=True`` the same model gives successive halving a second opinion
(``forecast``): a trial whose value would stop it at a rung goes on when the model forecasts
its final value among the best ``1/eta`` of that rung's trials. It is off by default. On the
learning-curve tables at equal epochs it helps slow starters (60 of 80 runs reached
Bayesian@30's quality with all of its epochs, against 44 without). The real digits job
budgets trials, not epochs, and there it spent 1.8 times the epochs and got to the quality
later in 4 of 5 seeds (benchmarks/RESULTS.md).

A finite space can run out of untried configurations long before the job's budget does,
with most of them stopped at the first rung, where a single noisy value decides. The search
then runs stopped configurations again, each in the bracket that first judges it one rung
above the one that stopped it (the choice by the model at the target resource, or at
random), as synchronous Hyperband samples a configuration afresh in each of its brackets.
A configuration stopped at the last rung below ``max_resource`` runs again in the last
bracket, which trains it in full; the search ends once every configuration has completed.

Randomness for suggestion ``n`` comes from ``(seed, stream, n)``, so a restored searcher
continues exactly; nothing touches global random state, thread counts or warning filters.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from botorch.exceptions.errors import BotorchError, ModelFittingError
from linear_operator.utils.errors import NanError, NotPSDError

from search import multi_fidelity_gp, rung_data
from search.enums import ObjectiveType, Strategy
from search.errors import ObservationError, SearcherOptionError, StateDictError, TrialStateError
from search.forecast import forecast_keeps
from search.parameters import CategoricalParameter
from search.sampling import draw_unseen, sobol_point
from search.searcher import Searcher
from search.space import Config, SearchSpace
from search.successive_halving import AsyncSuccessiveHalving, Decision, check_resource

logger = logging.getLogger(__name__)

#: Errors from fitting or acquisition that make one suggestion random instead.
RECOVERABLE_ERRORS: tuple[type[BaseException], ...] = (
    ModelFittingError,
    BotorchError,
    NotPSDError,
    NanError,
    torch.linalg.LinAlgError,
)
#: Random-number streams (``numpy.random.SeedSequence([seed, stream, n])``).
RANDOM_STREAM = 11
CANDIDATE_STREAM = 12
SUBSAMPLE_STREAM = 13
#: Finite spaces up to this size are scored config by config.
MAX_ENUMERATED_CONFIGS = 4096
#: The GP hyperparameters are re-fitted once the data has grown by this factor since the
#: last fit (warm-started from the last ones); in between the model is only conditioned.
REFIT_GROWTH = 1.2
#: Best configs whose neighbourhoods the acquisition search also scores.
LOCAL_ANCHORS = 8
LOCAL_STEPS = (0.02, 0.05, 0.15)
LOCAL_COPIES = 24

#: What the GP sees: "joint" every rung result, with the resource as an input; "rung"
#: only the results at the target resource (BOHB's choice, with a GP instead of a KDE).
MODELS = ("joint", "rung")
#: ``(resource, value)``: one intermediate report; value None if not finite.
Report = tuple[int, float | None]


class HyperbandSearcher(Searcher):
    """See the module docstring. Options (keyword-only):

    min_resource, max_resource: the first rung and the full budget, in the unit the
        trainer reports (epochs); ``hyperband_strategy_config`` in the job file.
    reduction_factor: ``eta``; about ``1/eta`` of the trials pass each rung (default 3).
    brackets: how many Hyperband brackets, each starting at a higher rung (default 1: ASHA);
        see ``successive_halving``.
    guided: GP-guided configurations (default) or uniform random ones.
    initial_design_size: Sobol configurations before the model takes over, reduced by
        the finite prior observations (default ``max(5, d + 1)``).
    max_model_points: most rung results the GP is fitted to (default 300): every result
        at the target resource and above, then the best and a seeded sample of the rest.
    candidates: random candidates scored per suggestion in spaces too large to enumerate.
    rung_scores: model each result by its rank among the results of its rung (as normal
        scores) rather than by its raw value warped once over all rungs (the default: on
        the four learning-curve tables it reached Bayesian@30's quality in 28 of 80 runs
        against 18, see benchmarks/RESULTS.md). A restored searcher keeps the saved choice,
        so a job started under the earlier default resumes as it ran.
    model: "joint" (default) or "rung"; see ``MODELS``.
    forecast_promotion: keep a trial below a rung's cut when the model forecasts its final
        value among the rung's best (``search.forecast``; default False); needs the joint
        GP (``guided=True``, ``model="joint"``). A restored searcher keeps the saved choice
        (off for jobs saved before it existed), so a job resumes as it ran.
    """

    strategy = Strategy.HYPERBAND

    def __init__(
        self,
        *,
        space: SearchSpace,
        objective_type: ObjectiveType | str = ObjectiveType.MAXIMIZE,
        seed: int = 0,
        prior_observations: Iterable[tuple[Mapping[str, Any], float | None]] | None = None,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
        brackets: int = 1,
        guided: bool = True,
        initial_design_size: int | None = None,
        max_model_points: int = 300,
        candidates: int = 1024,
        rung_scores: bool = False,
        model: str = "joint",
        forecast_promotion: bool = False,
    ) -> None:
        super().__init__(
            space=space,
            objective_type=objective_type,
            seed=seed,
            prior_observations=prior_observations,
        )
        if max_resource is None:
            raise SearcherOptionError(
                "max_resource is required for Hyperband: the resource (epochs) a trial gets "
                "at most, hyperband_strategy_config.max_resource in the job file"
            )
        self._halving = AsyncSuccessiveHalving(
            min_resource=min_resource,
            max_resource=max_resource,
            reduction_factor=reduction_factor,
            brackets=brackets,
        )
        if not isinstance(guided, bool):
            raise SearcherOptionError(f"guided={guided!r} must be True or False")
        if initial_design_size is None:
            initial_design_size = max(5, space.dimension + 1)
        _check_count("initial_design_size", initial_design_size, minimum=0)
        _check_count("max_model_points", max_model_points, minimum=10)
        _check_count("candidates", candidates, minimum=1)
        self._min_resource = min_resource
        self._max_resource = max_resource
        self._guided = guided
        self._initial_design_size = initial_design_size
        self._max_model_points = max_model_points
        self._candidates = candidates
        if not isinstance(rung_scores, bool):
            raise SearcherOptionError(f"rung_scores={rung_scores!r} must be True or False")
        self._rung_scores = rung_scores
        if model not in MODELS:
            raise SearcherOptionError(f"model={model!r} is not one of: {', '.join(MODELS)}")
        self._model = model
        self._forecast = _check_forecast(forecast_promotion, guided=guided, model=model)
        #: Trials that went on past a rung on the model's forecast alone, in order.
        self._kept_by_forecast: list[str] = []
        self._categorical_dims = [
            dim
            for dim, parameter in enumerate(space.parameters.values())
            if isinstance(parameter, CategoricalParameter)
        ]
        self._reports: dict[str, list[Report]] = {}
        self._hyperparameters: multi_fidelity_gp.Hyperparameters | None = None
        self._fitted_on = 0
        self._suggest_seconds: list[float] = []
        # Guards the reports and the rung state, so that ``report`` may run in another
        # thread while ``suggest`` fits the GP (it only holds the lock to copy the data).
        self._report_lock = threading.Lock()

    # ----------------------------------------------------------------- public API
    @property
    def levels(self) -> tuple[int, ...]:
        """Rung levels, ascending; the last is ``max_resource``."""
        return self._halving.levels

    @property
    def min_resource(self) -> int:
        return self._min_resource

    @property
    def max_resource(self) -> int:
        return self._max_resource

    @property
    def reduction_factor(self) -> int:
        return self._halving.reduction_factor

    @property
    def guided(self) -> bool:
        return self._guided

    @property
    def reports(self) -> Mapping[str, tuple[Report, ...]]:
        """Every intermediate report, per trial in arrival order: ``(resource, value)``."""
        with self._report_lock:
            return MappingProxyType({t: tuple(r) for t, r in self._reports.items()})

    @property
    def pending_resources(self) -> Mapping[str, int]:
        """For each running trial, the resource of its latest report (0 before any)."""
        with self._report_lock:
            reports = self._reports
            return MappingProxyType(
                {t: (reports[t][-1][0] if reports.get(t) else 0) for t in self._running()}
            )

    @property
    def suggest_seconds(self) -> tuple[float, ...]:
        """Wall seconds of each model-based suggestion (random ones are not timed)."""
        return tuple(self._suggest_seconds)

    def bracket(self, trial_id: str) -> int | None:
        """The Hyperband bracket of a trial that has reported (0 unless ``brackets`` > 1)."""
        with self._report_lock:
            return self._halving.bracket(trial_id)

    def stopped_at(self, trial_id: str) -> int | None:
        """The index in ``levels`` of the rung that stopped a trial on its value (None if
        it was not stopped that way)."""
        with self._report_lock:
            return self._halving.stopped_at(trial_id)

    @property
    def kept_by_forecast(self) -> tuple[str, ...]:
        """Trials that a rung's cut would have stopped and the model's forecast kept going."""
        with self._report_lock:
            return tuple(self._kept_by_forecast)

    def decision(self, trial_id: str) -> Decision | None:
        """The final decision about a trial (STOP or COMPLETE), None while it may go on."""
        return self._halving.decision(trial_id)

    def report(self, trial_id: str, resource: int, value: float | None) -> Decision:
        """Record a running trial's ``value`` after ``resource`` (epochs) and say whether it
        should go on. None, NaN and ±inf stop it. Reports after a STOP or COMPLETE are
        recorded (the model learns from them) and get the same decision again.

        Unlike the other calls, ``report`` may run in another thread while ``suggest`` does:
        it never waits for the GP, so a job controller gets its decision at once."""
        if trial_id not in self.pending:
            state = "already observed" if trial_id in self.observations else "not running"
            raise TrialStateError(f"trial_id={trial_id!r} is {state}; cannot report for it")
        resource = check_resource(trial_id, resource)
        stored = _finite(value, field=f"value of trial {trial_id!r} at resource {resource}")
        judged = None if stored is None else self._to_maximize(stored)
        with self._report_lock:
            if self._halving.bracket(trial_id) is None:
                bracket = self._rerun_bracket(self.space.key(self.pending[trial_id]))
                if bracket is not None:
                    self._halving.assign(trial_id, bracket)
            self._reports.setdefault(trial_id, []).append((resource, stored))
            forecast = self._forecast and self._hyperparameters is not None
            opinion = self._forecast_opinion if forecast else None
            return self._halving.report(trial_id, resource, judged, opinion)

    def _forecast_opinion(self, trial_id: str, rung: Mapping[str, float]) -> bool:
        """Whether the model, with the hyperparameters of its last fit and every result so
        far, forecasts ``trial_id`` among the best of ``rung`` (``forecast``). Runs under the
        report lock; a modelling error leaves the rung's cut to decide, counted as a fallback."""
        configs = self._configs()
        ids = [t for t in rung if t in configs]
        units = np.array([self.space.to_unit(configs[t]) for t in ids])
        try:
            x, y = self._design(self._training_points(), self._max_resource, len(self._reports))
            keep = forecast_keeps(
                multi_fidelity_gp.Predictor.of(self._fit(x, y, optimize=False)),
                units,
                ids.index(trial_id),
                self.reduction_factor,
            )
        except RECOVERABLE_ERRORS as error:
            self._fallback_count += 1
            logger.warning(
                "Hyperband forecast for trial %s failed; its rung decides (%s: %s)",
                trial_id,
                type(error).__name__,
                error,
            )
            return False
        if keep:
            self._kept_by_forecast.append(trial_id)
            logger.info("Hyperband keeps %s past a rung's cut on the model's forecast", trial_id)
        return keep

    # ------------------------------------------------------------ suggestions
    def _propose(self, trial_id: str, index: int) -> Config | None:
        seen = self._seen_keys()
        if self.space.size is not None and len(seen) >= self.space.size:
            return self._rerun(trial_id, index)
        if not self._guided:
            return self._random_config(seen, index)
        finite_priors = sum(v is not None for _, v in self.prior_observations)
        if index < self._initial_design_size - finite_priors:
            point = sobol_point(self.space, seed=self.seed, index=index)
            return draw_unseen(self.space, self._random_generator(index), seen, first_choice=point)
        return self._modelled(
            trial_id, index, seen, at_random=lambda: self._random_config(seen, index)
        )

    def _rerun(self, trial_id: str, index: int) -> Config | None:
        """A stopped configuration to run again, once the space has none left untried."""
        with self._report_lock:
            rerunnable = self._rerunnable()
        if not rerunnable:
            return None
        configs = [rerunnable[key] for key in sorted(rerunnable)]

        def at_random() -> Config:
            return dict(configs[int(self._random_generator(index).integers(len(configs)))])

        if not self._guided:
            return at_random()
        units = np.array([self.space.to_unit(c) for c in configs])
        return self._modelled(trial_id, index, set(), at_random=at_random, candidates=units)

    def _modelled(
        self,
        trial_id: str,
        index: int,
        seen: set,
        *,
        at_random: Callable[[], Config | None],
        candidates: np.ndarray | None = None,
    ) -> Config | None:
        """The model's pick (among ``candidates`` if given), or ``at_random()`` while the
        results cannot be modelled or when fitting fails (counted as a fallback)."""
        with self._report_lock:
            points = self._training_points()
        if len({round(v, 12) for *_, v in points if v is not None}) < 2:
            return at_random()
        start = time.perf_counter()
        try:
            config = self._model_proposal(points, seen, index, candidates=candidates)
        except RECOVERABLE_ERRORS as error:
            with self._report_lock:  # ``report`` counts forecast fallbacks from its thread
                self._fallback_count += 1
            logger.warning(
                "Hyperband suggestion %d for trial %s fell back to random (%s: %s)",
                index,
                trial_id,
                type(error).__name__,
                error,
            )
            return at_random()
        self._suggest_seconds.append(time.perf_counter() - start)
        return config if config is not None else at_random()

    def _stops(self) -> dict[tuple[int, ...], tuple[Mapping[str, Any], list[int | None]]]:
        """Per configuration key: its config and where each of its observed trials was
        stopped on its value (``stopped_at``; None for any other end)."""
        stops: dict[tuple[int, ...], tuple[Mapping[str, Any], list[int | None]]] = {}
        for trial_id, (config, _) in self._observed().items():
            entry = stops.setdefault(self.space.key(config), (config, []))
            entry[1].append(self._halving.stopped_at(trial_id))
        return stops

    def _rerunnable(self) -> dict[tuple[int, ...], Mapping[str, Any]]:
        """Configurations (by key) that may run again: every trial of them was stopped on
        its value (not as non-finite), none completed, none is running. A stop is always
        below the last rung, so there is always a bracket one rung higher."""
        excluded = {self.space.key(c) for c in self.pending.values()} | {
            self.space.key(c) for c, _ in self.prior_observations
        }
        return {
            key: config
            for key, (config, rungs) in self._stops().items()
            if key not in excluded and all(r is not None for r in rungs)
        }

    def _rerun_bracket(self, key: tuple[int, ...]) -> int | None:
        """For a configuration run before, the bracket one rung above where it stopped."""
        _, stops = self._stops().get(key, (None, []))
        rungs = [r for r in stops if r is not None]
        return max(rungs) + 1 if rungs else None

    def _model_proposal(
        self,
        points: list[rung_data.Point],
        seen: set,
        index: int,
        candidates: np.ndarray | None = None,
    ) -> Config | None:
        """Fit the GP to the rung results and maximise log EI at the target resource (over
        ``candidates``, unit points, if given)."""
        target_resource = rung_data.target_resource(points, self.levels, self.space.dimension)
        target = multi_fidelity_gp.fidelity(target_resource, self._max_resource)
        if self._model == "rung":
            rung = rung_data.rungs_reached(self.levels, target_resource)
            points = [p for p in points if rung_data.rungs_reached(self.levels, p[1]) == rung]
        x, y = self._design(points, target_resource, index)
        refit = self._hyperparameters is None or len(y) >= REFIT_GROWTH * self._fitted_on
        fitted = self._fit(x, y, optimize=refit)
        if refit:
            self._hyperparameters, self._fitted_on = fitted.hyperparameters, len(y)
        plain = multi_fidelity_gp.Predictor.of(fitted)
        incumbents = np.unique(x[:, :-1], axis=0)
        incumbent_mean, _ = plain.predict(multi_fidelity_gp.at_fidelity(incumbents, target))
        best = float(incumbent_mean.max())
        pending = [self.space.to_unit(c) for c in self.pending.values()]
        predictor = plain.with_pending(
            multi_fidelity_gp.at_fidelity(np.array(pending), target) if pending else x[:0]
        )
        rng = _generator(self.seed, CANDIDATE_STREAM, index)
        anchors = incumbents[np.argsort(-incumbent_mean, kind="stable")[:LOCAL_ANCHORS]]
        fixed = candidates is not None
        if candidates is None:
            candidates = self._candidate_points(seen, anchors, rng)
        if len(candidates) == 0:
            return None
        scores = multi_fidelity_gp.log_expected_improvement(
            *predictor.predict(multi_fidelity_gp.at_fidelity(candidates, target)), best
        )
        if not fixed and (self.space.size is None or self.space.size > MAX_ENUMERATED_CONFIGS):
            # A second, finer look around the most promising candidates.
            top = candidates[np.argsort(-scores, kind="stable")[:LOCAL_ANCHORS]]
            local = self._snap(_perturb(top, (0.01, 0.03), LOCAL_COPIES, rng), seen)
            if len(local):
                local_scores = multi_fidelity_gp.log_expected_improvement(
                    *predictor.predict(multi_fidelity_gp.at_fidelity(local, target)), best
                )
                candidates = np.vstack([candidates, local])
                scores = np.concatenate([scores, local_scores])
        return self.space.from_unit(candidates[int(np.argmax(scores))])

    def _fit(
        self, x: np.ndarray, y: np.ndarray, *, optimize: bool
    ) -> multi_fidelity_gp.FittedModel:
        """The GP on ``x, y``, from the last fit's hyperparameters (refitted if ``optimize``)."""
        return multi_fidelity_gp.fit(
            x,
            y,
            warp_outputs=not self._rung_scores,
            categorical_dims=self._categorical_dims,
            initial=self._hyperparameters,
            optimize=optimize,
        )

    def _candidate_points(
        self, seen: set, anchors: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Unit points (``m x d``) of untried configs: every one of a small finite space,
        else uniform draws plus perturbations of the ``anchors`` (best configs so far)."""
        size = self.space.size
        if size is not None and size <= MAX_ENUMERATED_CONFIGS:
            untried = [
                self.space.to_unit(c)
                for c in self.space.iter_grid()
                if self.space.key(c) not in seen
            ]
            return np.array(untried).reshape(-1, self.space.dimension)
        raw = np.vstack(
            [
                rng.random((self._candidates, self.space.dimension)),
                _perturb(anchors, LOCAL_STEPS, LOCAL_COPIES, rng),
            ]
        )
        return self._snap(raw, seen)

    def _snap(self, raw: np.ndarray, seen: set) -> np.ndarray:
        """Each row moved to its config's exact unit point; tried and repeated configs dropped."""
        keys: set = set()
        rows = []
        for point in np.clip(raw, 0.0, 1.0):
            config = self.space.from_unit(point)
            key = self.space.key(config)
            if key not in seen and key not in keys:
                keys.add(key)
                rows.append(self.space.to_unit(config))
        return np.array(rows).reshape(-1, self.space.dimension)

    def _random_config(self, seen: set, index: int) -> Config | None:
        return draw_unseen(self.space, self._random_generator(index), seen)

    def _random_generator(self, index: int) -> np.random.Generator:
        return _generator(self.seed, RANDOM_STREAM, index)

    # ------------------------------------------------------------ training data
    def _training_points(self) -> list[rung_data.Point]:
        """``(config, resource, value)`` for every rung result of every trial (the first
        report at or past each rung level), each observed trial's final value at its last
        resource, and the prior observations at ``max_resource``. Values as given (None:
        failed); at most one point per trial and resource."""
        configs = self._configs()
        points: dict[tuple[str, int], tuple[Mapping[str, Any], int, float | None]] = {}
        for trial_id, reports in self._reports.items():
            config = configs.get(trial_id)
            if config is None:
                continue
            passed = 0
            for resource, value in reports:
                while passed < len(self.levels) and resource >= self.levels[passed]:
                    points[(trial_id, resource)] = (config, resource, value)
                    passed += 1
        for trial_id, (config, value) in self._observed().items():
            reports = self._reports.get(trial_id)
            resource = reports[-1][0] if reports else self._max_resource
            points[(trial_id, resource)] = (config, min(resource, self._max_resource), value)
        prior_points = [(c, self._max_resource, v) for c, v in self.prior_observations]
        return prior_points + list(points.values())

    def _configs(self) -> dict[str, Mapping[str, Any]]:
        """Every observed and running trial's config."""
        return {t: c for t, (c, _) in self._observed().items()} | self._running()

    # ``report`` reads the trials while another thread's ``suggest`` or ``observe`` may add
    # to them: it iterates over copies, each taken in one step (``dict.copy`` holds the GIL).
    def _observed(self) -> dict[str, tuple[Mapping[str, Any], float | None]]:
        return self._observations.copy()

    def _running(self) -> dict[str, Mapping[str, Any]]:
        return self._pending.copy()

    def _design(
        self, points: list[rung_data.Point], target_resource: int, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's inputs and larger-is-better values (``rung_data.model_inputs``)."""
        maximized = [(c, r, None if v is None else self._to_maximize(v)) for c, r, v in points]
        return rung_data.model_inputs(
            maximized,
            space=self.space,
            levels=self.levels,
            max_resource=self._max_resource,
            rung_scores=self._rung_scores,
            max_points=self._max_model_points,
            target=target_resource,
            rng=_generator(self.seed, SUBSAMPLE_STREAM, index),
        )

    # ------------------------------------------------------------ state
    def _extra_state(self) -> dict[str, Any]:
        with self._report_lock:
            reports = [[t, [[r, v] for r, v in rows]] for t, rows in self._reports.items()]
            halving = self._halving.state_dict()
        return {
            "options": self._options(),
            "reports": reports,
            "successive_halving": halving,
            "gp_hyperparameters": self._hyperparameters,
            "gp_fitted_on": self._fitted_on,
            "suggest_seconds": list(self._suggest_seconds),
            "kept_by_forecast": list(self._kept_by_forecast),
        }

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        try:
            options = dict(extra["options"])
            reports = {
                str(t): [(int(r), None if v is None else float(v)) for r, v in rows]
                for t, rows in extra["reports"]
            }
            saved = extra["gp_hyperparameters"]
            hyperparameters = (
                None
                if saved is None
                else {str(k): [float(x) for x in v] for k, v in dict(saved).items()}
            )
            fitted_on = int(extra["gp_fitted_on"])
            seconds = [float(s) for s in extra["suggest_seconds"]]
            kept = [str(t) for t in extra.get("kept_by_forecast", ())]
            halving_state = extra["successive_halving"]
        except (KeyError, TypeError, ValueError) as error:
            raise StateDictError(f"Hyperband state is malformed: {error}") from error
        expected = self._options()
        if isinstance(options.get("rung_scores"), bool):  # a modelling choice: the saved one
            expected["rung_scores"] = options["rung_scores"]
        options.setdefault("brackets", 1)  # saved before brackets existed: one bracket
        options.setdefault("forecast_promotion", False)  # saved before forecasts existed
        if isinstance(options["forecast_promotion"], bool):  # also a modelling choice
            expected["forecast_promotion"] = options["forecast_promotion"]
        if options != expected:
            raise StateDictError(
                f"Hyperband state options {options!r} do not match this searcher's "
                f"{self._options()!r}; build the searcher as the saved one was built"
            )
        if hyperparameters and not all(
            math.isfinite(x) for values in hyperparameters.values() for x in values
        ):
            raise StateDictError("Hyperband state has non-finite GP hyperparameters")
        with self._report_lock:
            self._halving.load_state_dict(halving_state)
            self._reports = reports
        self._rung_scores = expected["rung_scores"]
        self._forecast = expected["forecast_promotion"]
        self._kept_by_forecast = kept
        self._hyperparameters = hyperparameters
        self._fitted_on = fitted_on
        self._suggest_seconds = seconds

    def _options(self) -> dict[str, Any]:
        return {
            "min_resource": self._min_resource,
            "max_resource": self._max_resource,
            "reduction_factor": self.reduction_factor,
            "brackets": self._halving.brackets,
            "guided": self._guided,
            "rung_scores": self._rung_scores,
            "model": self._model,
            "forecast_promotion": self._forecast,
        }


def _perturb(
    anchors: np.ndarray, steps: tuple[float, ...], copies: int, rng: np.random.Generator
) -> np.ndarray:
    """``copies`` Gaussian perturbations of each anchor (``k x d``) per step size."""
    if len(anchors) == 0:
        return anchors
    blocks = [
        np.repeat(anchors, copies, axis=0)
        + rng.normal(0.0, step, (len(anchors) * copies, anchors.shape[1]))
        for step in steps
    ]
    return np.vstack(blocks)


def _generator(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


def _finite(value: object, *, field: str) -> float | None:
    """``value`` as a finite float, or None for None, NaN and ±inf."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ObservationError(f"{field}={value!r} must be a real number or None")
    number = float(value)
    return number if math.isfinite(number) else None


def _check_forecast(value: object, *, guided: bool, model: str) -> bool:
    """``forecast_promotion``, which needs the joint GP to forecast with."""
    if not isinstance(value, bool):
        raise SearcherOptionError(f"forecast_promotion={value!r} must be True or False")
    if value and not (guided and model == "joint"):
        raise SearcherOptionError(
            f"forecast_promotion=True needs the joint GP (guided=True, model='joint'); this "
            f"searcher has guided={guided!r}, model={model!r}"
        )
    return value


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SearcherOptionError(f"{name}={value!r} must be an integer >= {minimum}")
