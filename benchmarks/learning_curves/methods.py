"""The compared methods, each behind the simulator's three calls (see ``simulator.py``).

Every method searches the same space: each hyperparameter of the table's grid as an
integer level ``0 .. k-1`` (learning rates and weight decays are log-spaced in the grid, so
levels are already on the scale that matters). Successive halving everywhere uses the
table's ``min_epochs`` as the first rung, ``max_epochs`` as the last and ``eta = 3``.

Methods and where they come from (each library imported only by its own method, so one
interpreter need not hold them all):
  bayesian              openamt BayesianSearcher, full fidelity (30 trials, none stopped)
  hyperband-random      openamt HyperbandSearcher, guided=False (SageMaker's Hyperband)
  hyperband-gp          openamt HyperbandSearcher, guided=True
  hyperband-gp-forecast the same with forecast_promotion=True (forecasts keep slow starters)
  optuna-tpe-hyperband  Optuna TPESampler (constant_liar, as advised for parallel trials)
                        with HyperbandPruner, ask-and-tell
  ray-asha              Ray Tune's AsyncHyperBandScheduler on uniform random configs,
                        driven through its scheduler calls without starting Tune
  synetune-asha         Syne Tune ASHA (random configurations, stopping rule)
  synetune-bohb         Syne Tune BOHB (ASHA with a kernel-density model)
  synetune-mobster      Syne Tune MOBSTER (ASHA with a GP over configuration and resource;
                        legacy_baselines of syne-tune 0.14.2, the last release that has it;
                        hyperparameters refitted every third suggestion, see below)
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
from table import CurveTable

METRIC, RESOURCE = "accuracy", "epoch"


class _Base:
    def __init__(self, table: CurveTable, seed: int) -> None:
        self.table, self.seed = table, seed
        self.sizes = dict(zip(table.grid, table.shape, strict=True))

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        return True

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        pass


# --- openamt -------------------------------------------------------------------------------
def openamt_space(table: CurveTable) -> Any:
    from search import IntegerParameter, SearchSpace

    return SearchSpace(
        {
            n: IntegerParameter(0, k - 1, scaling_type="Linear")
            for n, k in zip(table.grid, table.shape, strict=True)
        }
    )


class OpenamtBayesian(_Base):
    """Full fidelity: every trial trains ``max_epochs``; the final value is observed."""

    def __init__(self, table: CurveTable, seed: int) -> None:
        super().__init__(table, seed)
        from search import make_searcher

        self.searcher = make_searcher("Bayesian", openamt_space(table), seed=seed)

    def suggest(self, trial_id: str) -> dict[str, int] | None:
        config = self.searcher.suggest(trial_id)
        return None if config is None else {n: config[n] for n in self.sizes}

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        self.searcher.observe(trial_id, accuracy)


class OpenamtHyperband(OpenamtBayesian):
    def __init__(self, table: CurveTable, seed: int, **options: Any) -> None:
        _Base.__init__(self, table, seed)
        from search import make_searcher
        from search.successive_halving import Decision

        self._continue = Decision.CONTINUE
        self.searcher = make_searcher(
            "Hyperband",
            openamt_space(table),
            seed=seed,
            min_resource=table.min_epochs,
            max_resource=table.max_epochs,
            reduction_factor=3,
            **options,
        )

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        return self.searcher.report(trial_id, epoch, accuracy) is self._continue


# --- Optuna --------------------------------------------------------------------------------
class OptunaTpeHyperband(_Base):
    def __init__(self, table: CurveTable, seed: int) -> None:
        super().__init__(table, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=table.min_epochs, max_resource=table.max_epochs, reduction_factor=3
            ),
        )
        self.trials: dict[str, Any] = {}

    def suggest(self, trial_id: str) -> dict[str, int] | None:
        trial = self.study.ask()
        self.trials[trial_id] = trial
        return {n: trial.suggest_int(n, 0, k - 1) for n, k in self.sizes.items()}

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        trial = self.trials[trial_id]
        trial.report(accuracy, epoch)
        return not trial.should_prune()

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        trial = self.trials.pop(trial_id)
        if stopped:
            self.study.tell(trial, state=self.optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, accuracy)


# --- Ray Tune ------------------------------------------------------------------------------
class _RayTrial:
    """What Ray's ASHA scheduler reads of a trial: its id (a stand-in for Tune's Trial,
    whose construction needs a running experiment)."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


class RayAsha(_Base):
    def __init__(self, table: CurveTable, seed: int) -> None:
        super().__init__(table, seed)
        from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

        self.scheduler = AsyncHyperBandScheduler(
            time_attr=RESOURCE,
            metric=METRIC,
            mode="max",
            max_t=table.max_epochs,
            grace_period=table.min_epochs,
            reduction_factor=3,
            brackets=1,
        )
        self._continue = TrialScheduler.CONTINUE
        self.rng = np.random.default_rng(seed)
        self.trials: dict[str, _RayTrial] = {}

    def suggest(self, trial_id: str) -> dict[str, int] | None:
        self.trials[trial_id] = trial = _RayTrial(trial_id)
        self.scheduler.on_trial_add(None, trial)
        return {n: int(self.rng.integers(k)) for n, k in self.sizes.items()}

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        result = {RESOURCE: epoch, METRIC: accuracy}
        action = self.scheduler.on_trial_result(None, self.trials[trial_id], result)
        return action == self._continue

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        result = {RESOURCE: epoch, METRIC: accuracy}
        self.scheduler.on_trial_complete(None, self.trials.pop(trial_id), result)


# --- Syne Tune -----------------------------------------------------------------------------
class _SyneTune(_Base):
    """Drives a Syne Tune scheduler as its Tuner would: suggest, add, results, complete."""

    def __init__(self, table: CurveTable, seed: int) -> None:
        super().__init__(table, seed)
        from syne_tune.backend.trial_status import Trial
        from syne_tune.config_space import randint
        from syne_tune.optimizer.scheduler import SchedulerDecision

        self.Trial = Trial
        self._continue = SchedulerDecision.CONTINUE
        self.config_space = {n: randint(0, k - 1) for n, k in self.sizes.items()}
        self.trials: dict[str, Any] = {}
        self.scheduler = self._scheduler()

    def _scheduler(self) -> Any:
        raise NotImplementedError

    def _suggestion(self, number: int) -> Any:
        return self.scheduler.suggest()

    def suggest(self, trial_id: str) -> dict[str, int] | None:
        number = int(trial_id[1:])
        suggestion = self._suggestion(number)
        if suggestion is None:
            return None
        config = dict(suggestion.config)
        trial = self.Trial(trial_id=number, config=config, creation_time=datetime.datetime.now())
        self.trials[trial_id] = trial
        self.scheduler.on_trial_add(trial)
        return {n: int(config[n]) for n in self.sizes}

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool:
        result = {RESOURCE: epoch, METRIC: accuracy}
        return self.scheduler.on_trial_result(self.trials[trial_id], result) == self._continue

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None:
        trial = self.trials.pop(trial_id)
        if not stopped:
            self.scheduler.on_trial_complete(trial, {RESOURCE: epoch, METRIC: accuracy})


class SyneTuneAsha(_SyneTune):
    def _scheduler(self) -> Any:
        from syne_tune.optimizer.baselines import ASHA

        return ASHA(
            self.config_space,
            metric=METRIC,
            time_attr=RESOURCE,
            max_t=self.table.max_epochs,
            do_minimize=False,
            random_seed=self.seed,
            grace_period=self.table.min_epochs,
            reduction_factor=3,
        )


class SyneTuneBohb(_SyneTune):
    def _scheduler(self) -> Any:
        from syne_tune.optimizer.baselines import BOHB

        return BOHB(
            self.config_space,
            metric=METRIC,
            time_attr=RESOURCE,
            max_t=self.table.max_epochs,
            do_minimize=False,
            random_seed=self.seed,
            grace_period=self.table.min_epochs,
            reduction_factor=3,
        )


class SyneTuneMobster(_SyneTune):
    def _scheduler(self) -> Any:
        from syne_tune.optimizer.legacy_baselines import MOBSTER

        return MOBSTER(
            self.config_space,
            metric=METRIC,
            resource_attr=RESOURCE,
            max_t=self.table.max_epochs,
            mode="max",
            random_seed=self.seed,
            grace_period=self.table.min_epochs,
            reduction_factor=3,
            type="stopping",
            # Refit the GP hyperparameters every third suggestion once there are 30 results
            # (Syne Tune's own speed knobs; by default it refits every time below 150):
            # at every suggestion MOBSTER cost ~0.6 CPU-s each, too much for 80 runs here.
            # openamt's GP likewise refits only when its data has grown by 20%.
            search_options={"opt_skip_init_length": 30, "opt_skip_period": 3},
        )

    def _suggestion(self, number: int) -> Any:
        return self.scheduler.suggest(trial_id=number)


def _all_brackets(table: CurveTable) -> int:
    """One Hyperband bracket per rung level (the last never stops a trial early)."""
    from search.successive_halving import rung_levels

    return len(rung_levels(table.min_epochs, table.max_epochs, 3))


#: name -> (constructor, environment: "main" is the project's .venv, "synetune" and
#: "mobster" the benchmark's own environments).
METHODS: dict[str, tuple[Any, str]] = {
    "bayesian": (OpenamtBayesian, "main"),
    "hyperband-random": (lambda t, s: OpenamtHyperband(t, s, guided=False), "main"),
    "hyperband-gp": (lambda t, s: OpenamtHyperband(t, s, guided=True), "main"),
    "hyperband-gp-forecast": (
        lambda t, s: OpenamtHyperband(t, s, guided=True, forecast_promotion=True),
        "main",
    ),
    "hyperband-gp-ranks": (
        lambda t, s: OpenamtHyperband(t, s, guided=True, rung_scores=True),
        "main",
    ),
    "hyperband-gp-rung": (lambda t, s: OpenamtHyperband(t, s, guided=True, model="rung"), "main"),
    "hyperband-random-brackets": (
        lambda t, s: OpenamtHyperband(t, s, guided=False, brackets=_all_brackets(t)),
        "main",
    ),
    "hyperband-gp-brackets": (
        lambda t, s: OpenamtHyperband(t, s, guided=True, brackets=_all_brackets(t)),
        "main",
    ),
    "optuna-tpe-hyperband": (OptunaTpeHyperband, "main"),
    "ray-asha": (RayAsha, "main"),
    "synetune-asha": (SyneTuneAsha, "synetune"),
    "synetune-bohb": (SyneTuneBohb, "synetune"),
    "synetune-mobster": (SyneTuneMobster, "mobster"),
}
