"""SageMaker's `HyperparameterTuner`, with the SDK's arguments in its order, on openamt.

It is the native `orchestrator.api.HyperparameterTuner` with SageMaker's names and meanings:
the estimator gives the trainer, instance type, per-trial limit (`max_run`) and inputs;
`max_runtime_in_seconds` limits the whole tuning job; parents of a warm start are job names in
the session's output path. Jobs are found by name afterwards (`attach`, analytics), and
training jobs are named `<tuning job>-<trial id>` (`best_training_job()`).
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Mapping
from typing import Any

from orchestrator.api.driver import TuningJob
from orchestrator.api.trainers import ScriptTrainer
from orchestrator.api.tuner import HyperparameterTuner as NativeTuner
from orchestrator.errors import OpenAMTError, SpecError, TuningJobFailedError
from orchestrator.sagemaker import compat, jobs, training
from orchestrator.sagemaker.analytics import HyperparameterTuningJobAnalytics, describe_tuning_job
from orchestrator.sagemaker.estimator import EstimatorBase
from orchestrator.sagemaker.exceptions import UnexpectedStatusException
from orchestrator.sagemaker.parameter import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ParameterRange,
)
from orchestrator.sagemaker.session import Session
from orchestrator.sagemaker.tuning_configs import (
    HyperbandStrategyConfig,
    StrategyConfig,
    TuningJobCompletionCriteriaConfig,
    WarmStartConfig,
    WarmStartTypes,
)
from orchestrator.store.view import load_job_view
from search import SearchSpace

GRID_SEARCH = "Grid"
#: The SDK's tuning job statuses `wait()` returns on; a Failed job raises.
DONE_STATUSES = ("Completed", "Stopped")


class HyperparameterTuner:
    """SageMaker's tuner over one estimator (see the module docstring)."""

    TUNING_JOB_NAME_MAX_LENGTH = 32

    def __init__(
        self,
        estimator: EstimatorBase,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, ParameterRange],
        metric_definitions: list[dict[str, str]] | None = None,
        strategy: str = "Bayesian",
        objective_type: str = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        max_runtime_in_seconds: int | None = None,
        tags: list[dict[str, str]] | None = None,
        base_tuning_job_name: str | None = None,
        warm_start_config: WarmStartConfig | None = None,
        strategy_config: StrategyConfig | None = None,
        completion_criteria_config: TuningJobCompletionCriteriaConfig | None = None,
        early_stopping_type: str = "Off",
        estimator_name: str | None = None,
        random_seed: int | None = None,
        autotune: bool = False,
        hyperparameters_to_keep_static: list[str] | None = None,
    ) -> None:
        if not hyperparameter_ranges and not autotune:
            raise ValueError("Need to specify hyperparameter ranges or set autotune=True.")
        refused = {
            "tags": tags,
            "estimator_name": estimator_name,
            "autotune": autotune,
            "hyperparameters_to_keep_static": hyperparameters_to_keep_static,
        }
        self._recorded = compat.recorded(refused, compat.TUNER_ARGUMENTS)
        if not isinstance(estimator, EstimatorBase):
            raise TypeError(
                "estimator must be an orchestrator.sagemaker estimator (Estimator, MXNet, "
                f"PyTorch), got {type(estimator).__name__}"
            )
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges)
        self.metric_definitions = metric_definitions
        self.strategy = strategy
        self.objective_type = objective_type
        self.max_jobs = max_jobs
        if max_jobs is None:
            self.max_jobs = _grid_size(hyperparameter_ranges) if strategy == GRID_SEARCH else 1
        self.max_parallel_jobs = max_parallel_jobs
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.tags = tags
        self.base_tuning_job_name = base_tuning_job_name
        self.warm_start_config = warm_start_config
        self.strategy_config = strategy_config
        self.completion_criteria_config = completion_criteria_config
        self.early_stopping_type = early_stopping_type
        self.random_seed = random_seed
        self._current_job_name: str | None = None
        self.latest_tuning_job: TuningJob | None = None
        self._native()  # every argument checked now, naming the argument, before anything runs

    # -- running ---------------------------------------------------------------------------------
    def fit(
        self,
        inputs: Any = None,
        job_name: str | None = None,
        include_cls_metadata: bool | dict[str, bool] = False,
        estimator_kwargs: dict[str, dict[str, Any]] | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> None:
        """Start a tuning job (or resume the one named `job_name`); `wait=True` runs it in this
        process with live progress, `wait=False` in a detached driver that outlives it."""
        if estimator_kwargs or kwargs:
            raise TypeError(
                "estimator_kwargs and estimator fit() arguments are not supported by fit() "
                f"(got {sorted({*(estimator_kwargs or {}), *kwargs})})"
            )
        native = self._native()
        name = job_name or native.next_job_name()
        channels = self.estimator._channels(inputs)
        self._current_job_name = name
        try:
            native.fit(
                channels,
                name,
                wait=wait,
                run_options=training.run_options(show_progress=wait),
            )
        except SpecError as error:
            raise training.name_instance_type(error, self.estimator._instance) from None
        finally:
            self.latest_tuning_job = native.latest_tuning_job
        if wait:
            self._check_status(self.describe())

    def wait(self) -> None:
        """Block until the latest tuning job ends; raises `UnexpectedStatusException` if it
        failed."""
        job = self._ensure_last_tuning_job()
        try:
            description = job.wait()
        except TuningJobFailedError as error:
            raise UnexpectedStatusException(
                str(error), allowed_statuses=DONE_STATUSES, actual_status="Failed"
            ) from None
        self._check_status(description)

    def stop_tuning_job(self) -> None:
        """Stop the latest tuning job gracefully (as `openamt stop` does) and wait until its
        driver exits: running trials are stopped and recorded; fitting it again resumes it."""
        self._ensure_last_tuning_job().stop()

    # -- reading ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """SageMaker's `DescribeHyperParameterTuningJob` response (plus `JobDirectory`,
        `CompletionReason` and `RecordedSettings`)."""
        return describe_tuning_job(self._ensure_last_tuning_job().view())

    def best_training_job(self) -> str:
        """The best training job's name (`<tuning job>-<trial id>`)."""
        best = self.describe().get("BestTrainingJob")
        if best is None:
            raise Exception(  # the SDK's exception type, which notebooks catch
                f"Best training job not available for tuning job: {self._current_job_name}"
            )
        return str(best["TrainingJobName"])

    def best_estimator(self, best_training_job: Mapping[str, str] | str | None = None) -> Any:
        """An estimator attached to the best (or the given) training job: its model_data is
        that trial's model directory."""
        if best_training_job is None:
            name = self.best_training_job()
        elif isinstance(best_training_job, Mapping):
            name = best_training_job["TrainingJobName"]
        else:
            name = best_training_job
        return type(self.estimator).attach(name, sagemaker_session=self.sagemaker_session)

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        job = self._ensure_last_tuning_job()
        return HyperparameterTuningJobAnalytics(job.job_dir, self.sagemaker_session)

    def hyperparameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """The ranges in SageMaker's request form (`ContinuousParameterRanges`, ...)."""
        grouped: dict[str, list[dict[str, Any]]] = {
            f"{kind}ParameterRanges": [] for kind in ("Continuous", "Categorical", "Integer")
        }
        for name, config in _range_configs(self._hyperparameter_ranges).items():
            kind = config["type"]
            if kind == CategoricalParameter.kind:
                entry = {"Name": name, "Values": [str(v) for v in config["values"]]}
            else:
                entry = {
                    "Name": name,
                    "MinValue": str(config["min_value"]),
                    "MaxValue": str(config["max_value"]),
                    "ScalingType": config.get("scaling_type", "Auto"),
                }
            grouped[f"{kind}ParameterRanges"].append(entry)
        return grouped

    @property
    def sagemaker_session(self) -> Session:
        return self.estimator.sagemaker_session

    @classmethod
    def attach(
        cls,
        tuning_job_name: str,
        sagemaker_session: Session | None = None,
        job_details: dict[str, Any] | None = None,
        estimator_cls: str | type[EstimatorBase] | None = None,
    ) -> HyperparameterTuner:
        """A tuner bound to an existing tuning job, running or finished, from any process:
        `wait()`, `describe()`, `analytics()`, `best_training_job()` work on it."""
        session = sagemaker_session or Session()
        job_dir = jobs.find_job_dir(tuning_job_name, session)
        view = load_job_view(job_dir)
        recorded = jobs.record(view)
        if "estimator" not in recorded or jobs.is_training_job(view):
            raise OpenAMTError(
                f"{tuning_job_name}: not a tuning job started by orchestrator.sagemaker; read "
                "it with orchestrator.api.HyperparameterTuner.attach instead"
            )
        estimator_class = _estimator_class(estimator_cls or recorded["estimator"]["class"])
        arguments = {**recorded["estimator"]["arguments"], "sagemaker_session": session}
        estimator = estimator_class._from_arguments(arguments)
        spec = view.spec
        criteria = dict(spec.get("completion_criteria") or {})
        tuner = cls(
            estimator,
            spec["objective_metric_name"],
            _parameters(spec.get("hyperparameter_ranges") or {}),
            metric_definitions=spec.get("metric_definitions"),
            strategy=spec.get("strategy", "Bayesian"),
            objective_type=spec.get("objective_type", "Maximize"),
            max_jobs=spec.get("max_jobs"),
            max_parallel_jobs=spec.get("max_parallel_jobs", 1),
            max_runtime_in_seconds=criteria.pop("max_runtime_in_seconds", None),
            tags=(recorded.get("recorded") or {}).get("tags"),
            base_tuning_job_name=view.name,
            warm_start_config=WarmStartConfig.from_spec(spec.get("warm_start_config")),
            strategy_config=StrategyConfig.from_spec(spec.get("hyperband_strategy_config")),
            completion_criteria_config=TuningJobCompletionCriteriaConfig.from_spec(criteria),
            early_stopping_type=spec.get("early_stopping_type", "Off"),
            random_seed=spec.get("random_seed"),
        )
        tuner.latest_tuning_job = TuningJob(job_dir=job_dir)
        tuner._current_job_name = view.name
        return tuner

    # -- warm starts -----------------------------------------------------------------------------
    def transfer_learning_tuner(
        self, additional_parents: set[str] | None = None, estimator: EstimatorBase | None = None
    ) -> HyperparameterTuner:
        """A tuner like this one, warm-started (TransferLearning) from this job and others."""
        return self._warm_start_tuner(
            WarmStartTypes.TRANSFER_LEARNING, additional_parents, estimator or self.estimator
        )

    def identical_dataset_and_algorithm_tuner(
        self, additional_parents: set[str] | None = None
    ) -> HyperparameterTuner:
        """A tuner like this one, warm-started (IdenticalDataAndAlgorithm) from this job."""
        return self._warm_start_tuner(
            WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM, additional_parents, self.estimator
        )

    def _warm_start_tuner(
        self, kind: WarmStartTypes, additional: set[str] | None, estimator: EstimatorBase
    ) -> HyperparameterTuner:
        if self._current_job_name is None:
            raise ValueError("No tuning job available")
        return HyperparameterTuner(
            estimator,
            self.objective_metric_name,
            self._hyperparameter_ranges,
            metric_definitions=self.metric_definitions,
            strategy=self.strategy,
            objective_type=self.objective_type,
            max_jobs=self.max_jobs,
            max_parallel_jobs=self.max_parallel_jobs,
            max_runtime_in_seconds=self.max_runtime_in_seconds,
            tags=self.tags,
            base_tuning_job_name=self.base_tuning_job_name,
            warm_start_config=WarmStartConfig(kind, {self._current_job_name, *(additional or ())}),
            strategy_config=self.strategy_config,
            completion_criteria_config=self.completion_criteria_config,
            early_stopping_type=self.early_stopping_type,
            random_seed=self.random_seed,
        )

    def deploy(self, *args: Any, **kwargs: Any) -> Any:
        raise OpenAMTError(
            "deploying models is not part of openamt: best_estimator().model_data is the best "
            "trial's model directory"
        )

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> HyperparameterTuner:
        raise OpenAMTError(
            "HyperparameterTuner.create (several estimators in one tuning job) is not "
            "supported: tune one estimator per HyperparameterTuner"
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _ensure_last_tuning_job(self) -> TuningJob:
        if self.latest_tuning_job is None:
            raise ValueError("No tuning job available")
        return self.latest_tuning_job

    def _check_status(self, description: Mapping[str, Any]) -> None:
        status = description["HyperParameterTuningJobStatus"]
        if status not in DONE_STATUSES:
            reason = description.get("FailureReason") or "no reason recorded"
            raise UnexpectedStatusException(
                f"Error for HyperParameterTuning job {self._current_job_name}: {status}. "
                f"Reason: {reason}",
                allowed_statuses=DONE_STATUSES,
                actual_status=status,
            )

    def _native(self) -> NativeTuner:
        """The native tuner this tuner's job runs as (built from the estimator as it is now)."""
        estimator = self.estimator
        ranges = _range_configs(self._hyperparameter_ranges)
        static = {k: v for k, v in estimator.hyperparameters().items() if k not in ranges}
        hyperband = self.strategy_config.hyperband_strategy_config if self.strategy_config else None
        return estimator._native_tuner(
            trainer=estimator._trainer(ScriptTrainer, static=static),
            objective_metric_name=self.objective_metric_name,
            metric_definitions=self.metric_definitions
            or estimator._arguments["metric_definitions"],
            kind=jobs.TUNING_JOB,
            extra_settings=self._recorded,
            hyperparameter_ranges=ranges,
            strategy=self.strategy,
            objective_type=self.objective_type,
            max_jobs=self.max_jobs,
            max_parallel_jobs=self.max_parallel_jobs,
            max_runtime_in_seconds=self.max_runtime_in_seconds,
            early_stopping_type=self.early_stopping_type,
            random_seed=self.random_seed,
            base_tuning_job_name=self.base_tuning_job_name,
            warm_start_config=self._warm_start_section(),
            hyperband_strategy_config=None if hyperband is None else hyperband.to_spec(),
            completion_criteria=(
                None
                if self.completion_criteria_config is None
                else self.completion_criteria_config.to_spec()
            ),
        )

    def _warm_start_section(self) -> dict[str, Any] | None:
        config = self.warm_start_config
        if config is None:
            return None
        root = jobs.output_root(self.sagemaker_session)
        parents = []
        for parent in sorted(config.parents):
            try:
                parents.append(str(jobs.find_job_dir(parent, self.sagemaker_session)))
            except jobs.JobNotFoundError:
                parents.append(str(root / parent))  # the spec check reports it by field
        return {"parent_hyperparameter_tuning_jobs": parents, "warm_start_type": config.type.value}


def _range_configs(ranges: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: declared.to_config() if isinstance(declared, ParameterRange) else dict(declared)
        for name, declared in ranges.items()
    }


def _parameters(configs: Mapping[str, Any]) -> dict[str, ParameterRange]:
    """Job-spec ranges back as parameter objects (`attach`)."""
    return dict(SearchSpace.from_config(dict(configs)).parameters)


def _grid_size(ranges: Mapping[str, Any]) -> int:
    """How many configurations strategy Grid enumerates (SageMaker's max_jobs for Grid)."""
    sizes = [p.cardinality or 1 for p in _parameters(_range_configs(ranges)).values()]
    return max(1, math.prod(sizes))


@functools.cache
def _estimator_class(reference: str | type[EstimatorBase]) -> type[EstimatorBase]:
    if isinstance(reference, type):
        return reference
    module, _, name = reference.rpartition(".")
    found = getattr(importlib.import_module(module), name, None)
    if not (isinstance(found, type) and issubclass(found, EstimatorBase)):
        raise OpenAMTError(
            f"estimator_cls={reference!r} is not an orchestrator.sagemaker estimator"
        )
    return found


__all__ = [
    "CategoricalParameter",
    "ContinuousParameter",
    "HyperbandStrategyConfig",
    "HyperparameterTuner",
    "IntegerParameter",
    "StrategyConfig",
    "TuningJobCompletionCriteriaConfig",
    "WarmStartConfig",
    "WarmStartTypes",
]
