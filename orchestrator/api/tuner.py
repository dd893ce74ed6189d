"""The SageMaker-style Python API: a notebook written for SageMaker's tuner ports by changing
its imports.

    from orchestrator import ScriptTrainer, HyperparameterTuner
    from search import ContinuousParameter

    trainer = ScriptTrainer("cifar10.py", source_dir=".", python=".venv-mxnet/bin/python",
                            hyperparameters={"batch_size": 1024, "epochs": 50},
                            resources_per_trial={"gpu": 1})
    tuner = HyperparameterTuner(
        trainer,
        objective_metric_name="Validation-accuracy",
        hyperparameter_ranges={"learning_rate": ContinuousParameter(0.001, 0.5)},
        metric_definitions=[{"Name": "Validation-accuracy",
                             "Regex": "validation: accuracy=([0-9\\\\.]+)"}],
        max_jobs=30, max_parallel_jobs=2)
    tuner.fit(inputs={"training": "data/cifar10"}, wait=True)
    tuner.best_training_job()            # "trial-0017"
    tuner.analytics().dataframe()        # a row per trial, SageMaker's columns
    tuner = HyperparameterTuner.attach("runs/cifar10-bayes-240101-120000")

Arguments keep SageMaker's names and meaning; each becomes the job-spec field of the same name
(see `orchestrator.spec`), and the tuner validates them through `JobSpec` when it is built, so a
bad argument raises `SpecError` naming the argument, the value and the rule before anything
runs. Files (the trainer's script and interpreter, warm-start parents) are checked by `fit`.
Relative paths are relative to the current directory when the object is built (`fit` for
`inputs`); the job spec records them as absolute paths.

`fit(wait=True)` runs the job in this process and returns when it is done; Ctrl-C stops it
(resumable). `fit(wait=False)` starts a detached driver (`orchestrator.api.driver`), so the job
outlives the notebook. Resuming is fitting again with the same `job_name`.

Trainers (`ScriptTrainer`, `FunctionTrainer`) are described in `orchestrator.api.trainers`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.api.driver import TuningJob, run_function_job
from orchestrator.api.trainers import FunctionTrainer, RecordedTrainer, ScriptTrainer, Trainer
from orchestrator.errors import SpecError, SpecProblem, TunerError
from orchestrator.spec import MAX_NAME_CHARS, JobSpec
from orchestrator.store.analytics import HyperparameterTuningJobAnalytics
from orchestrator.store.job_dir import JobDir, write_atomic
from orchestrator.store.view import load_job_view
from orchestrator.trial import function as function_trial

if TYPE_CHECKING:  # the runner imports Ray and torch; fit() imports it when it runs
    from orchestrator.tune.runner import RunOptions

#: Appended to `base_tuning_job_name`; seconds, so two fits a minute apart never collide.
TIMESTAMP_FORMAT = "%y%m%d-%H%M%S"
_BASE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_BASE_NAME_RULE = (
    "letters, digits and hyphens, starting and ending with a letter or digit (SageMaker's job "
    "name rule; a timestamp is appended and the base shortened to keep 32 characters)"
)


class HyperparameterTuner:
    """SageMaker's `HyperparameterTuner` on openamt: see the module docstring.

    `completion_criteria`, `retry_strategy`, `warm_start_config` and
    `hyperband_strategy_config` take the job-file form, e.g.
    `completion_criteria={"target_objective_metric_value": 0.74}`,
    `warm_start_config={"parent_hyperparameter_tuning_jobs": ["runs/round-1"],
    "warm_start_type": "TransferLearning"}`. `random_seed=None` keeps the spec's default (0),
    so a job is repeatable unless told otherwise. `max_runtime_in_seconds` limits the whole
    job, as SageMaker's tuner argument does (`completion_criteria.max_runtime_in_seconds`);
    one trial's limit is the trainer's. `recorded_settings` (JSON-like values) are kept in the
    job's spec and not acted on (`orchestrator.sagemaker` records the SDK's role, tags, ...).
    """

    def __init__(
        self,
        trainer: ScriptTrainer | FunctionTrainer | RecordedTrainer,
        *,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, Any],
        metric_definitions: Sequence[Mapping[str, str]] | None = None,
        objective_type: str | Enum = "Maximize",
        strategy: str | Enum = "Bayesian",
        max_jobs: int = 1,
        max_parallel_jobs: int = 1,
        early_stopping_type: str | Enum = "Off",
        base_tuning_job_name: str | None = None,
        output_path: str | os.PathLike[str] = "runs",
        random_seed: int | None = None,
        completion_criteria: Mapping[str, Any] | None = None,
        retry_strategy: Mapping[str, Any] | None = None,
        warm_start_config: Mapping[str, Any] | None = None,
        hyperband_strategy_config: Mapping[str, Any] | None = None,
        max_runtime_in_seconds: int | None = None,
        recorded_settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(trainer, Trainer):
            raise SpecError(
                [
                    SpecProblem(
                        "trainer", trainer, "must be a ScriptTrainer or FunctionTrainer instance"
                    )
                ]
            )
        self.trainer = trainer
        self.objective_metric_name = objective_metric_name
        self.hyperparameter_ranges = _ranges_config(hyperparameter_ranges)
        if metric_definitions is None and isinstance(trainer, FunctionTrainer):
            metric_definitions = [function_trial.metric_definition_for(objective_metric_name)]
        self.metric_definitions = (
            None if metric_definitions is None else [dict(d) for d in metric_definitions]
        )
        self.objective_type = _enum_value(objective_type)
        self.strategy = _enum_value(strategy)
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.early_stopping_type = _enum_value(early_stopping_type)
        self.base_tuning_job_name = base_tuning_job_name
        self.output_path = os.path.abspath(os.fspath(output_path))
        self.random_seed = random_seed
        self.completion_criteria = _with_job_runtime(completion_criteria, max_runtime_in_seconds)
        self.recorded_settings = None if recorded_settings is None else dict(recorded_settings)
        self.retry_strategy = retry_strategy
        self.warm_start_config = _absolute_parents(warm_start_config)
        self.hyperband_strategy_config = hyperband_strategy_config
        self.latest_tuning_job: TuningJob | None = None
        base = self._base_name()
        self._spec(name=_timestamped(base, dt.datetime.now()), inputs={}, check_paths=False)

    # -- running ---------------------------------------------------------------------------------
    def fit(
        self,
        inputs: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
        job_name: str | None = None,
        wait: bool = True,
        *,
        run_options: RunOptions | None = None,
    ) -> None:
        """Start a tuning job (or resume the one named `job_name`).

        `inputs` maps channel names to data directories (a single path means the channel
        `training`). `run_options` is an `orchestrator.tune.runner.RunOptions` (Ray address,
        Prometheus port, progress display); with `wait=False` it becomes the driver's flags.
        """
        from orchestrator.tune.runner import RunOptions, run_job

        options = run_options if run_options is not None else RunOptions()
        if not wait and isinstance(self.trainer, FunctionTrainer):
            raise TunerError(
                "fit(wait=False) cannot run a FunctionTrainer: a Python function cannot be "
                "handed to a detached driver process. Use fit(wait=True), or a ScriptTrainer."
            )
        if function_trial.is_function_trainer(self.trainer.trainer_section()) and not isinstance(
            self.trainer, FunctionTrainer
        ):
            raise TunerError(
                "this tuner's trainer is a Python function recorded by name in an attached job; "
                "build HyperparameterTuner(FunctionTrainer(fn), ...) to run it again"
            )
        name = job_name if job_name is not None else self._unique_name()
        spec = self._spec(name=name, inputs=_channels(inputs), check_paths=True)
        for warning in spec.warnings:
            warnings.warn(f"job spec: {warning}", stacklevel=2)
        job = TuningJob(job_dir=spec.job_dir)
        job.refuse_if_running()
        JobDir(path=spec.job_dir).create()
        if not isinstance(self.trainer, FunctionTrainer):
            write_atomic(JobDir(path=spec.job_dir).job_file, spec.to_yaml())
        self.latest_tuning_job = job
        if not wait:
            job.start_driver(options)
        elif isinstance(self.trainer, FunctionTrainer):
            fn = self.trainer.fn
            job.run_here(lambda: run_function_job(spec, fn, options))
        else:
            job.run_here(lambda: run_job(spec, options))

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job's driver is done; returns `describe()`. Raises
        `TuningJobFailedError` if the driver died without finishing the job."""
        return self._job().wait(timeout=timeout)

    def stop(self, timeout: float | None = None) -> dict[str, Any]:
        """Stop the job as Ctrl-C would (resumable): SIGTERM to its driver, then wait for it
        (by default the job's grace period and a minute)."""
        return self._job().stop(timeout=timeout)

    # -- reading ---------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """SageMaker's `DescribeHyperParameterTuningJob` response for the latest job."""
        return self._job().describe()

    def best_training_job(self) -> str:
        """The trial id of the best finished trial so far (SageMaker: its training job name)."""
        return self._job().best_training_job()

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        """The latest job's analytics: `tuner.analytics().dataframe()`."""
        return HyperparameterTuningJobAnalytics(self._job().job_dir)

    @classmethod
    def attach(
        cls, tuning_job: str | os.PathLike[str], *, output_path: str | os.PathLike[str] = "runs"
    ) -> HyperparameterTuner:
        """Reopen a job, running or finished: `tuning_job` is its directory, or its name in
        `output_path`. wait/stop/describe/analytics/best_training_job work on it."""
        job_dir = _find_job_dir(Path(tuning_job), Path(output_path))
        spec = load_job_view(job_dir).spec
        trainer = RecordedTrainer(
            section=spec["trainer"],
            hyperparameters=spec.get("hyperparameters"),
            resources_per_trial=spec.get("resources_per_trial"),
            max_runtime_in_seconds=spec.get("max_runtime_in_seconds"),
        )
        tuner = cls(
            trainer,
            objective_metric_name=spec["objective_metric_name"],
            hyperparameter_ranges=spec.get("hyperparameter_ranges") or {},
            metric_definitions=spec.get("metric_definitions"),
            base_tuning_job_name=spec.get("name"),
            output_path=job_dir.parent,
            **{key: spec[key] for key in _ATTACHED_SETTINGS if key in spec},
        )
        tuner.latest_tuning_job = TuningJob(job_dir=job_dir)
        return tuner

    # -- helpers ---------------------------------------------------------------------------------
    def _job(self) -> TuningJob:
        if self.latest_tuning_job is None:
            raise TunerError(
                "no tuning job yet: call fit() first, or use HyperparameterTuner.attach"
            )
        return self.latest_tuning_job

    def _base_name(self) -> str:
        base = self.base_tuning_job_name or self.trainer.base_job_name
        if not isinstance(base, str) or not _BASE_NAME_PATTERN.fullmatch(base):
            raise SpecError([SpecProblem("base_tuning_job_name", base, _BASE_NAME_RULE)])
        return base

    def next_job_name(self) -> str:
        """The name `fit()` gives a new job: `base-YYMMDD-HHMMSS`, unique in `output_path`."""
        return self._unique_name()

    def _unique_name(self) -> str:
        return unique_job_name(self._base_name(), self.output_path)

    def _spec(self, *, name: str, inputs: dict[str, str], check_paths: bool) -> JobSpec:
        """Validate everything as a `JobSpec`; errors name this API's arguments."""
        mapping: dict[str, Any] = {
            "name": name,
            "trainer": self.trainer.trainer_section(),
            "hyperparameters": self.trainer.hyperparameters,
            "hyperparameter_ranges": self.hyperparameter_ranges,
            "objective_metric_name": self.objective_metric_name,
            "objective_type": self.objective_type,
            "metric_definitions": self.metric_definitions,
            "strategy": self.strategy,
            "max_jobs": self.max_jobs,
            "max_parallel_jobs": self.max_parallel_jobs,
            "resources_per_trial": self.trainer.resources_per_trial,
            "inputs": inputs,
            "max_runtime_in_seconds": self.trainer.max_runtime_in_seconds,
            "random_seed": self.random_seed,
            "output_path": self.output_path,
            "early_stopping_type": self.early_stopping_type,
            "hyperband_strategy_config": self.hyperband_strategy_config,
            "completion_criteria": self.completion_criteria,
            "retry_strategy": self.retry_strategy,
            "warm_start_config": self.warm_start_config,
            "recorded_settings": self.recorded_settings,
        }
        mapping = {key: value for key, value in mapping.items() if value is not None}
        try:
            return JobSpec.from_mapping(mapping, base_dir=os.getcwd(), check_paths=check_paths)
        except SpecError as error:
            renames = {"name": "job_name", **self.trainer.argument_names}
            raise _renamed(error, renames) from None


#: Spec fields `attach` hands back to the tuner unchanged (same name as the argument).
_ATTACHED_SETTINGS = (
    "objective_type",
    "strategy",
    "max_jobs",
    "max_parallel_jobs",
    "early_stopping_type",
    "random_seed",
    "completion_criteria",
    "retry_strategy",
    "warm_start_config",
    "hyperband_strategy_config",
    "recorded_settings",
)


def _renamed(error: SpecError, renames: Mapping[str, str]) -> SpecError:
    """The same problems, with job-spec field paths replaced by this API's argument names."""

    def rename(field: str) -> str:
        if field in renames:
            return renames[field]
        for spec_field, argument in renames.items():
            if field.startswith(spec_field + "."):
                return argument + field[len(spec_field) :]
        return field

    problems = [SpecProblem(rename(p.field), p.value, p.rule) for p in error.problems]
    return SpecError(problems, source=error.source)


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _ranges_config(ranges: Any) -> Any:
    """`search` parameters to their job-file form; anything else is left for the spec to judge."""
    if not isinstance(ranges, Mapping):
        return ranges
    return {
        name: declared.to_config() if hasattr(declared, "to_config") else declared
        for name, declared in ranges.items()
    }


def _with_job_runtime(
    criteria: Mapping[str, Any] | None, max_runtime_in_seconds: int | None
) -> Mapping[str, Any] | None:
    """`completion_criteria` with the job's runtime limit added (the argument wins only when
    the criteria do not set one themselves)."""
    if max_runtime_in_seconds is None:
        return criteria
    if criteria is None:
        return {"max_runtime_in_seconds": max_runtime_in_seconds}
    if not isinstance(criteria, Mapping):
        return criteria  # JobSpec reports the bad type under completion_criteria
    return {"max_runtime_in_seconds": max_runtime_in_seconds, **criteria}


def _absolute_parents(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not isinstance(config, Mapping):
        return config
    parents = config.get("parent_hyperparameter_tuning_jobs")
    if not isinstance(parents, list | tuple):
        return dict(config)
    absolute = [os.path.abspath(os.fspath(p)) if _is_path(p) else p for p in parents]
    return {**config, "parent_hyperparameter_tuning_jobs": absolute}


def _channels(inputs: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    if inputs is None:
        return {}
    if _is_path(inputs):
        return {"training": os.path.abspath(os.fspath(inputs))}
    if not isinstance(inputs, Mapping):
        raise SpecError([SpecProblem("inputs", inputs, "must map channel names to paths")])
    return {
        channel: os.path.abspath(os.fspath(path)) if _is_path(path) and path else path
        for channel, path in inputs.items()
    }


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def unique_job_name(base: str, output_path: str | os.PathLike[str]) -> str:
    """`base-YYMMDD-HHMMSS` (32 characters at most), with `-2`, `-3`, ... if a job of that name
    exists in `output_path` already."""
    now = dt.datetime.now()
    for count in itertools.count(1):
        name = _timestamped(base, now, count)
        if not (Path(output_path) / name).exists():
            return name
    raise AssertionError("unreachable")


def _timestamped(base: str, now: dt.datetime, count: int = 1) -> str:
    suffix = now.strftime(TIMESTAMP_FORMAT) + ("" if count == 1 else f"-{count}")
    return base[: MAX_NAME_CHARS - len(suffix) - 1].rstrip("-") + "-" + suffix


def _find_job_dir(tuning_job: Path, output_path: Path) -> Path:
    for candidate in (tuning_job, output_path / tuning_job):
        if JobDir(path=candidate).is_job():
            return Path(os.path.abspath(candidate))
    raise TunerError(
        f"no tuning job at {tuning_job} or {output_path / tuning_job}: pass a job directory "
        "(output_path/name) or a job name and its output_path"
    )
