"""The methods compared, each behind one ask/tell interface, configured as their authors
recommend (defaults unless their documentation says otherwise).

Every method runs synchronous batches of ``parallel`` trials: ask for ``parallel``
configs, evaluate them all, tell all results. Each method builds its batch its own way:
openamt suggests one config after another with the earlier ones pending; Optuna asks
with the earlier trials RUNNING (TPE's constant liar, GPSampler's running-trial
handling); HEBO suggests the whole batch at once (its MACE Pareto-front batch); Syne
Tune's BoTorch searcher fantasises over its pending trials; the plain BoTorch reference
optimises qLogNEI jointly over the batch.

Failed evaluations (the trainer crashed) are reported the way each library takes them:
openamt and Syne Tune get a failure, Optuna a FAIL state, HEBO a NaN (which it drops),
plain BoTorch drops the point.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from search import SearchSpace, make_searcher
from search.telemetry import SearchTelemetry

Config = dict[str, Any]


class Method(abc.ABC):
    """One optimiser for one run (problem, seed), minimising."""

    def __init__(self, space_config: dict[str, Any], *, seed: int, deterministic: bool) -> None:
        self.space_config = space_config
        self.space = SearchSpace.from_config(space_config)
        self.seed = seed
        self.deterministic = deterministic

    @abc.abstractmethod
    def ask(self, count: int) -> list[Config]:
        """``count`` configs to evaluate next, as openamt configs (SageMaker values)."""

    @abc.abstractmethod
    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        """The values of the last batch, in ask order (None: the trainer crashed)."""

    def ask_one(self) -> tuple[str, Config] | None:
        """One config to evaluate while the earlier ones asked for still run, with a token
        for ``tell_one``; None when the method has nothing left to suggest. Only methods
        that run asynchronously (``ASYNCHRONOUS``) have it."""
        raise NotImplementedError(f"{type(self).__name__} runs synchronous batches only")

    def tell_one(self, token: str, value: float | None) -> None:
        """The value of the config ``ask_one`` returned with ``token``."""
        raise NotImplementedError(f"{type(self).__name__} runs synchronous batches only")

    def telemetry(self) -> SearchTelemetry | None:
        """openamt's counters (fallbacks, NaN picks, timings); None for peers."""
        return None


# ------------------------------------------------------------------- openamt
class OpenAMT(Method):
    def __init__(self, space_config: dict[str, Any], *, strategy: str, **kwargs: Any) -> None:
        super().__init__(space_config, **kwargs)
        self._searcher = make_searcher(
            strategy, self.space, objective_type="Minimize", seed=self.seed
        )
        self._ids: list[str] = []
        self._count = 0

    def ask(self, count: int) -> list[Config]:
        configs = []
        for _ in range(count):
            trial_id, config = self._suggest_next()
            if config is None:
                break
            self._ids.append(trial_id)
            configs.append(config)
        return configs

    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        for trial_id, (_, value) in zip(self._ids, results, strict=True):
            self._searcher.observe(trial_id, value)
        self._ids = []

    def ask_one(self) -> tuple[str, Config] | None:
        trial_id, config = self._suggest_next()
        return None if config is None else (trial_id, config)

    def _suggest_next(self) -> tuple[str, Config | None]:
        """The next trial id and the searcher's suggestion for it (None: nothing left)."""
        trial_id = f"t{self._count}"
        self._count += 1
        return trial_id, self._searcher.suggest(trial_id)

    def tell_one(self, token: str, value: float | None) -> None:
        self._searcher.observe(token, value)

    def telemetry(self) -> SearchTelemetry:
        return self._searcher.telemetry()


# -------------------------------------------------------------------- Optuna
def _is_reverse_log(entry: dict[str, Any]) -> bool:
    return entry.get("scaling_type") == "ReverseLogarithmic"


class Optuna(Method):
    """``TPESampler(multivariate=True, constant_liar=True)`` or ``GPSampler``
    (``deterministic_objective=True`` on noise-free problems). A reverse-logarithmic
    parameter ``v`` is asked as ``1 - v`` on a log scale, as an Optuna user would write it."""

    def __init__(self, space_config: dict[str, Any], *, sampler: str, **kwargs: Any) -> None:
        super().__init__(space_config, **kwargs)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if sampler == "tpe":
            chosen = optuna.samplers.TPESampler(
                seed=self.seed, multivariate=True, constant_liar=True
            )
        else:
            chosen = optuna.samplers.GPSampler(
                seed=self.seed, deterministic_objective=self.deterministic
            )
        self._study = optuna.create_study(direction="minimize", sampler=chosen)
        self._distributions = self._make_distributions()
        self._trials: list[Any] = []

    def _make_distributions(self) -> dict[str, Any]:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        distributions: dict[str, Any] = {}
        for name, entry in self.space_config.items():
            log = entry.get("scaling_type") == "Logarithmic"
            if entry["type"] == "Categorical":
                distributions[name] = CategoricalDistribution(entry["values"])
            elif entry["type"] == "Integer":
                distributions[name] = IntDistribution(
                    entry["min_value"], entry["max_value"], log=log
                )
            elif _is_reverse_log(entry):
                distributions[name] = FloatDistribution(
                    1.0 - entry["max_value"], 1.0 - entry["min_value"], log=True
                )
            else:
                distributions[name] = FloatDistribution(
                    entry["min_value"], entry["max_value"], log=log
                )
        return distributions

    def ask(self, count: int) -> list[Config]:
        self._trials = [self._study.ask(self._distributions) for _ in range(count)]
        return [self._config(trial.params) for trial in self._trials]

    def _config(self, params: dict[str, Any]) -> Config:
        config = dict(params)
        for name, entry in self.space_config.items():
            if _is_reverse_log(entry):
                config[name] = min(entry["max_value"], max(entry["min_value"], 1.0 - params[name]))
        return config

    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        from optuna.trial import TrialState

        for trial, (_, value) in zip(self._trials, results, strict=True):
            if value is None:
                self._study.tell(trial, state=TrialState.FAIL)
            else:
                self._study.tell(trial, value)


# ---------------------------------------------------------------------- HEBO
class Hebo(Method):
    """HEBO with its defaults (GP, MACE acquisition, NSGA-II); batches come from
    ``suggest(n_suggestions=k)``. Reverse-log parameters are asked as ``1 - v`` (log)."""

    def __init__(self, space_config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(space_config, **kwargs)
        import torch
        from hebo.design_space.design_space import DesignSpace
        from hebo.optimizers.hebo import HEBO

        # HEBO draws from the global generators; this process runs one method at a time.
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        parameters = []
        for name, entry in space_config.items():
            if entry["type"] == "Categorical":
                parameters.append({"name": name, "type": "cat", "categories": entry["values"]})
                continue
            log = entry.get("scaling_type") == "Logarithmic"
            low, high = entry["min_value"], entry["max_value"]
            if entry["type"] == "Integer":
                kind = "pow_int" if log else "int"
            elif _is_reverse_log(entry):
                kind, low, high = "pow", 1.0 - high, 1.0 - low
            else:
                kind = "pow" if log else "num"
            parameters.append({"name": name, "type": kind, "lb": low, "ub": high})
        self._optimizer = HEBO(DesignSpace().parse(parameters), scramble_seed=self.seed)
        self._batch: Any = None

    def ask(self, count: int) -> list[Config]:
        self._batch = self._optimizer.suggest(n_suggestions=count)
        return [self._config(row) for row in self._batch.to_dict(orient="records")]

    def _config(self, row: dict[str, Any]) -> Config:
        config: Config = {}
        for name, entry in self.space_config.items():
            value = row[name]
            if entry["type"] == "Integer":
                value = int(round(float(value)))
            elif entry["type"] == "Continuous":
                value = float(value)
                if _is_reverse_log(entry):
                    value = 1.0 - value
                value = min(entry["max_value"], max(entry["min_value"], value))
            config[name] = value
        return config

    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        values = np.array([[math.nan if v is None else v] for _, v in results])
        self._optimizer.observe(self._batch, values)


# ----------------------------------------------------------------- Syne Tune
class SyneTuneBoTorch(Method):
    """Syne Tune's ``BoTorchSearcher`` with its defaults; pending trials are fantasised."""

    def __init__(self, space_config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(space_config, **kwargs)
        from syne_tune import config_space as cs
        from syne_tune.optimizer.schedulers.searchers.botorch.botorch_searcher import (
            BoTorchSearcher,
        )

        domains: dict[str, Any] = {}
        for name, entry in space_config.items():
            if entry["type"] == "Categorical":
                domains[name] = cs.choice(entry["values"])
                continue
            low, high = entry["min_value"], entry["max_value"]
            log = entry.get("scaling_type") == "Logarithmic"
            if entry["type"] == "Integer":
                domains[name] = cs.lograndint(low, high) if log else cs.randint(low, high)
            elif _is_reverse_log(entry):
                domains[name] = cs.reverseloguniform(low, high)
            else:
                domains[name] = cs.loguniform(low, high) if log else cs.uniform(low, high)
        self._searcher = BoTorchSearcher(domains, random_seed=self.seed)
        self._ids: list[int] = []

    def ask(self, count: int) -> list[Config]:
        configs = []
        for _ in range(count):
            self._ids.append(self._searcher.num_suggestions())
            configs.append(self._config(self._searcher.suggest()))
        return configs

    def _config(self, config: dict[str, Any]) -> Config:
        out: Config = {}
        for name, entry in self.space_config.items():
            value = config[name]
            if entry["type"] == "Integer":
                value = int(value)
            elif entry["type"] == "Continuous":
                value = min(entry["max_value"], max(entry["min_value"], float(value)))
            out[name] = value
        return out

    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        for trial_id, (config, value) in zip(self._ids, results, strict=True):
            if value is None:
                self._searcher.evaluation_failed(trial_id)
            else:
                self._searcher.on_trial_complete(trial_id, config, value)
        self._ids = []


# ------------------------------------------------------------ plain BoTorch
class PlainBoTorch(Method):
    """The textbook BoTorch loop: Sobol for ``max(5, 2d)`` trials (Ax's default), then a
    default ``SingleTaskGP`` (Standardize outcome transform) fitted with
    ``fit_gpytorch_mll`` and qLogNEI optimised jointly over the batch by ``optimize_acqf``
    (10 restarts, 512 raw samples), on openamt's unit cube (integers and categoricals
    rounded to their bins). Crashed points are dropped."""

    def __init__(self, space_config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(space_config, **kwargs)
        import torch

        torch.manual_seed(self.seed)
        self._sobol = torch.quasirandom.SobolEngine(
            self.space.dimension, scramble=True, seed=self.seed
        )
        self._initial = max(5, 2 * self.space.dimension)
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._asked = 0
        self._failed: list[np.ndarray] = []

    def ask(self, count: int) -> list[Config]:
        import torch

        if self._asked < self._initial or len(self._y) < 2:
            points = self._sobol.draw(count, dtype=torch.float64).numpy()
        else:
            points = self._optimize(count)
        self._asked += count
        return [self.space.from_unit(p) for p in points]

    def _optimize(self, count: int) -> np.ndarray:
        import torch
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.optim import optimize_acqf
        from gpytorch.mlls import ExactMarginalLogLikelihood

        x = torch.tensor(np.array(self._x), dtype=torch.float64)
        y = -torch.tensor(self._y, dtype=torch.float64).unsqueeze(-1)
        model = SingleTaskGP(x, y, outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acquisition = qLogNoisyExpectedImprovement(model=model, X_baseline=x)
        bounds = torch.stack([torch.zeros(x.shape[-1]), torch.ones(x.shape[-1])]).double()
        candidates, _ = optimize_acqf(
            acquisition, bounds=bounds, q=count, num_restarts=10, raw_samples=512
        )
        return candidates.detach().numpy()

    def tell(self, results: Sequence[tuple[Config, float | None]]) -> None:
        for config, value in results:
            if value is not None:
                self._x.append(self.space.to_unit(config))
                self._y.append(value)


def build(name: str, space_config: dict[str, Any], *, seed: int, deterministic: bool) -> Method:
    """The method called ``name`` (see ``METHODS``) for one run."""
    common = {"seed": seed, "deterministic": deterministic}
    if name == "openamt":
        return OpenAMT(space_config, strategy="Bayesian", **common)
    if name == "random":
        return OpenAMT(space_config, strategy="Random", **common)
    if name in ("optuna-tpe", "optuna-gp"):
        return Optuna(space_config, sampler=name.split("-")[1], **common)
    if name == "hebo":
        return Hebo(space_config, **common)
    if name == "synetune-botorch":
        return SyneTuneBoTorch(space_config, **common)
    if name == "botorch":
        return PlainBoTorch(space_config, **common)
    raise ValueError(f"method={name!r} is not one of {METHODS}")


#: The methods that take the asynchronous settings (``ask_one`` and ``tell_one``).
ASYNCHRONOUS = ("openamt", "random")

METHODS = (
    "openamt",
    "random",
    "optuna-tpe",
    "optuna-gp",
    "hebo",
    "synetune-botorch",
    "botorch",
)
