"""What every SageMaker estimator shares on openamt (`EstimatorBase`; see `.estimator`).

Constructors take the SDK v2's arguments in its order with its defaults; each argument is
applied, recorded or refused (`orchestrator.sagemaker.compat`). `fit(inputs)` runs one training
job with the estimator's hyperparameters: a one-trial job directory named after the job in the
output path, its log streamed while `wait=True`, `model_data` pointing at its model directory.
A `HyperparameterTuner` runs the same estimator as many trials.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from orchestrator.api.trainers import ScriptTrainer
from orchestrator.api.tuner import HyperparameterTuner as NativeTuner
from orchestrator.api.tuner import unique_job_name
from orchestrator.errors import OpenAMTError, SpecError, SpecProblem
from orchestrator.sagemaker import compat, jobs, training
from orchestrator.sagemaker.analytics import TrainingJobAnalytics
from orchestrator.sagemaker.inputs import channels
from orchestrator.sagemaker.instance_types import instance_type as find_instance_type
from orchestrator.sagemaker.s3 import local_path
from orchestrator.sagemaker.script_runner import EXIT_REGEX
from orchestrator.sagemaker.session import Session
from orchestrator.sagemaker.training_job import EXIT_METRIC, BackgroundFollower, TrainingJob
from search import CategoricalParameter

_INPUT_MODES = ("File", "FastFile")
_NOT_ARGUMENTS = ("self", "kwargs", "__class__")


def constructor_arguments(local_names: dict[str, Any]) -> dict[str, Any]:
    """A constructor's named arguments, from its `locals()` taken first thing."""
    return {k: v for k, v in local_names.items() if k not in _NOT_ARGUMENTS}


@functools.cache
def _defaults(cls: type) -> dict[str, Any]:
    """Every constructor argument's default along `cls`'s classes (the subclass's first)."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for name, parameter in inspect.signature(init).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                found[name] = parameter.default
    return found


_NO_DEPLOY = (
    "deploying models is not part of openamt: the trained model is in model_data "
    "(a directory); serve it with your own stack"
)


class EstimatorBase:
    """What every estimator shares; see the module docstring. Use `Estimator`, `MXNet` or
    `PyTorch`."""

    #: The framework whose environment trials run in (None: `OPENAMT_PYTHON`).
    _framework: str | None = None
    #: SageMaker's default job-name base for this estimator.
    _default_base_name = "training"

    def __init__(
        self,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        keep_alive_period_in_seconds: int | None = None,
        volume_size: int = 30,
        volume_kms_key: str | None = None,
        max_run: int = 24 * 60 * 60,
        input_mode: str = "File",
        output_path: str | None = None,
        output_kms_key: str | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Session | None = None,
        tags: list[dict[str, str]] | None = None,
        subnets: list[str] | None = None,
        security_group_ids: list[str] | None = None,
        model_uri: str | None = None,
        model_channel_name: str = "model",
        metric_definitions: list[dict[str, str]] | None = None,
        encrypt_inter_container_traffic: bool | None = None,
        use_spot_instances: bool = False,
        max_wait: int | None = None,
        checkpoint_s3_uri: str | None = None,
        checkpoint_local_path: str | None = None,
        rules: list[Any] | None = None,
        debugger_hook_config: Any = None,
        tensorboard_output_config: Any = None,
        enable_sagemaker_metrics: bool | None = None,
        enable_network_isolation: bool | None = None,
        profiler_config: Any = None,
        disable_profiler: bool | None = None,
        environment: dict[str, str] | None = None,
        max_retry_attempts: int | None = None,
        source_dir: str | None = None,
        git_config: dict[str, str] | None = None,
        hyperparameters: dict[str, Any] | None = None,
        container_log_level: int = logging.INFO,
        code_location: str | None = None,
        entry_point: str | None = None,
        dependencies: list[str] | None = None,
        instance_groups: list[Any] | None = None,
        training_repository_access_mode: str | None = None,
        training_repository_credentials_provider_arn: str | None = None,
        enable_infra_check: bool | None = None,
        container_entry_point: list[str] | None = None,
        container_arguments: list[str] | None = None,
        disable_output_compression: bool = False,
        enable_remote_debug: bool | None = None,
        enable_session_tag_chaining: bool | None = None,
        training_plan: str | None = None,
        instance_placement_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        arguments = constructor_arguments(locals())
        self._configure({**arguments, **getattr(self, "_class_arguments", {})}, kwargs)

    # -- construction ----------------------------------------------------------------------------
    def _configure(self, arguments: dict[str, Any], kwargs: dict[str, Any]) -> None:
        for old, new in compat.RENAMED.items():
            if old in kwargs:
                warnings.warn(f"{old} is renamed {new} (SDK v2)", DeprecationWarning, stacklevel=4)
                arguments[new] = kwargs.pop(old)
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
        defaults = _defaults(type(self))
        self._given = {
            k: v
            for k, v in arguments.items()
            if k != "sagemaker_session" and (k not in defaults or v != defaults[k])
        }
        self._recorded = compat.recorded(self._given, compat.ESTIMATOR_ARGUMENTS)
        self._arguments = arguments
        self._hyperparameters = dict(arguments.pop("hyperparameters") or {})
        for name, value in arguments.items():
            setattr(self, name, value)
        self.sagemaker_session: Session = arguments["sagemaker_session"] or Session()
        self._instance = self._check_instances(arguments)
        self._check_input_mode(arguments["input_mode"])
        self._working_dir, self._script = _script_location(
            arguments["entry_point"], arguments["source_dir"]
        )
        self.latest_training_job: TrainingJob | None = None
        self._current_job_name: str | None = None
        self.jobs: list[TrainingJob] = []

    @staticmethod
    def _check_instances(arguments: dict[str, Any]) -> Any:
        count, name = arguments["instance_count"], arguments["instance_type"]
        if count is None or name is None:
            raise ValueError(
                "Must define either instance_count and instance_type or instance_groups"
            )
        if count != 1 or isinstance(count, bool):
            raise SpecError(
                [
                    SpecProblem(
                        "instance_count",
                        count,
                        "must be 1: a trial runs on one node (multi-node training jobs are "
                        "not supported; a larger instance_type gives a trial more GPUs)",
                    )
                ]
            )
        return find_instance_type(name)

    @staticmethod
    def _check_input_mode(mode: str) -> None:
        if mode not in _INPUT_MODES:
            rule = "must be File or FastFile (the script reads files; Pipe mode is not supported)"
            raise SpecError([SpecProblem("input_mode", mode, rule)])

    # -- the SDK's methods -----------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The static hyperparameters every job of this estimator gets."""
        return dict(self._hyperparameters)

    def set_hyperparameters(self, **kwargs: Any) -> None:
        self._hyperparameters.update(kwargs)

    def fit(
        self,
        inputs: Any = None,
        wait: bool = True,
        logs: str | bool = "All",
        job_name: str | None = None,
        experiment_config: dict[str, str] | None = None,
    ) -> None:
        """Run one training job with the estimator's hyperparameters (see the module
        docstring). With `wait=True` this process runs it and prints its log (`logs="None"`
        keeps it quiet); with `wait=False` a detached driver does, and `latest_training_job`
        follows it. Raises `UnexpectedStatusException` if the job fails."""
        name = job_name or unique_job_name(self._base_name(), self._output_root())
        native = self._native_tuner(
            trainer=self._trainer(training.RunnerTrainer, static=self._hyperparameters),
            objective_metric_name=EXIT_METRIC,
            # The one trial, named as SageMaker's toolkit names it (the runner takes it out).
            hyperparameter_ranges={"sagemaker_job_name": CategoricalParameter([name])},
            strategy="Grid",
            max_jobs=1,
            kind=jobs.TRAINING_JOB,
            extra_settings={"experiment_config": experiment_config},
        )
        job_dir = Path(native.output_path) / name
        ref = jobs.TrainingJobRef(name=name, job_dir=job_dir, trial_id=None)
        channels_ = self._channels(inputs)
        if not wait:
            native.fit(channels_, name, wait=False)
            self._started(TrainingJob(ref, tuning_job=native.latest_tuning_job))
            return
        follow = logs not in ("None", False, None)
        options = training.run_options(show_progress=False)
        try:
            if follow:
                with BackgroundFollower(TrainingJob(ref)):
                    native.fit(channels_, name, wait=True, run_options=options)
            else:
                native.fit(channels_, name, wait=True, run_options=options)
        except SpecError as error:
            raise training.name_instance_type(error, self._instance) from None
        job = self._started(TrainingJob(ref, tuning_job=native.latest_tuning_job))
        description = job.check_status()
        if follow:
            status, seconds = (
                description["TrainingJobStatus"],
                description.get("TrainingTimeInSeconds"),
            )
            print(f"Training job {name}: {status}; training seconds: {seconds}")
            print(f"Model: {job.model_data}")

    @property
    def model_data(self) -> str | None:
        """The latest training job's model directory (an s3:// URI in the mirror)."""
        return None if self.latest_training_job is None else self.latest_training_job.model_data

    @property
    def training_job_analytics(self) -> TrainingJobAnalytics:
        if self._current_job_name is None:
            raise ValueError("Estimator is not associated with a TrainingJob")
        return TrainingJobAnalytics(
            self._current_job_name, sagemaker_session=self.sagemaker_session
        )

    def logs(self) -> None:
        """Print the latest training job's log, following it until the job ends."""
        self._ensure_latest_training_job().wait(logs="All")

    @classmethod
    def attach(
        cls,
        training_job_name: str,
        sagemaker_session: Session | None = None,
        model_channel_name: str = "model",
    ) -> EstimatorBase:
        """An estimator of this class bound to an existing training job (waits for it to end,
        as the SDK does). Its hyperparameters are the job's."""
        session = sagemaker_session or Session()
        ref = jobs.find_training_job(training_job_name, session)
        job = TrainingJob(ref)
        view = job.view()
        estimator_record = jobs.record(view).get("estimator")
        if not estimator_record:
            raise OpenAMTError(
                f"{training_job_name}: this job was not started by orchestrator.sagemaker; "
                "read it with orchestrator.api (HyperparameterTuner.attach) instead"
            )
        arguments = dict(estimator_record["arguments"])
        arguments.update(sagemaker_session=session, model_channel_name=model_channel_name)
        estimator = cls._from_arguments(arguments)
        record = job.trial(view)
        if record is not None:
            estimator.set_hyperparameters(
                **{k: v for k, v in record.config.items() if not k.startswith("sagemaker_")}
            )
        estimator._started(job)
        job.wait(logs="None")
        return estimator

    @classmethod
    def _from_arguments(cls, arguments: dict[str, Any]) -> EstimatorBase:
        return cls(**arguments)

    def deploy(self, *args: Any, **kwargs: Any) -> Any:
        raise OpenAMTError(_NO_DEPLOY)

    create_model = transformer = register = compile_model = deploy

    # -- what the tuner and fit share ------------------------------------------------------------
    def _ensure_latest_training_job(self) -> TrainingJob:
        if self.latest_training_job is None:
            raise ValueError("Estimator is not associated with a training job")
        return self.latest_training_job

    def _started(self, job: TrainingJob) -> TrainingJob:
        self.latest_training_job = job
        self._current_job_name = job.name
        self.jobs.append(job)
        return job

    def _python(self) -> str:
        return training.python_for(self._framework)

    def _trainer(self, kind: type[ScriptTrainer], *, static: dict[str, Any]) -> ScriptTrainer:
        env = dict(self._arguments["environment"] or {})
        dependencies = [os.path.abspath(d) for d in self._arguments["dependencies"] or []]
        if dependencies:
            env["PYTHONPATH"] = os.pathsep.join(
                [*dependencies, *filter(None, [env.get("PYTHONPATH")])]
            )
        return kind(
            self._script,
            source_dir=self._working_dir,
            python=self._python(),
            hyperparameters={k: training.static_value(v) for k, v in static.items()},
            resources_per_trial=self._instance.resources_per_trial,
            env=env,
            max_runtime_in_seconds=self._arguments["max_run"],
        )

    def _channels(self, inputs: Any) -> dict[str, str]:
        found = channels(inputs, input_mode=self._arguments["input_mode"])
        model_uri = self._arguments["model_uri"]
        if model_uri:
            found[self._arguments["model_channel_name"]] = str(
                local_path(model_uri, field="model_uri")
            )
        return found

    def _output_root(self) -> Path:
        return jobs.output_root(self.sagemaker_session, self._arguments["output_path"])

    def _base_name(self) -> str:
        return self._arguments["base_job_name"] or self._default_base_name

    def _record(self, kind: str, extra: dict[str, Any]) -> dict[str, Any]:
        """What a job of this estimator records (`recorded_settings`)."""
        python = self._python()
        framework = training.framework_record(
            self._framework, self._arguments.get("framework_version"), python
        )
        if (mismatch := training.version_mismatch(framework)) is not None:
            warnings.warn(mismatch, stacklevel=3)
        arguments = {**self._given, "hyperparameters": self._hyperparameters}
        for key in ("entry_point", "source_dir"):
            if arguments.get(key):
                arguments[key] = os.path.abspath(arguments[key])
        settings = {
            "kind": kind,
            "estimator": {
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "arguments": compat.json_like(arguments),
            },
            "instance_type": self._instance.to_record(),
            "recorded": {**self._recorded, **compat.json_like(extra)},
        }
        if framework:
            settings["framework"] = framework
        return {jobs.RECORD_KEY: {k: v for k, v in settings.items() if v not in (None, {})}}

    def _native_tuner(
        self,
        *,
        trainer: ScriptTrainer,
        objective_metric_name: str,
        kind: str,
        extra_settings: dict[str, Any],
        metric_definitions: list[dict[str, str]] | None = None,
        base_tuning_job_name: str | None = None,
        **settings: Any,
    ) -> NativeTuner:
        """The native tuner every job of this estimator runs as."""
        if kind == jobs.TRAINING_JOB:
            exit_status = {"Name": EXIT_METRIC, "Regex": EXIT_REGEX}
            own = [
                d
                for d in self._arguments["metric_definitions"] or []
                if d.get("Name") != EXIT_METRIC
            ]
            metric_definitions = [exit_status, *own]
        retries = self._arguments["max_retry_attempts"]
        extra = {k: v for k, v in extra_settings.items() if v is not None}
        return NativeTuner(
            trainer,
            objective_metric_name=objective_metric_name,
            metric_definitions=metric_definitions,
            base_tuning_job_name=base_tuning_job_name or self._base_name(),
            output_path=self._output_root(),
            retry_strategy=None if retries is None else {"maximum_retry_attempts": retries},
            recorded_settings=self._record(kind, extra),
            **settings,
        )


def _script_location(entry_point: str | None, source_dir: str | None) -> tuple[str, str]:
    """(the directory trials run in, the script relative to it), checked now."""
    if not entry_point:
        rule = (
            "openamt runs a training script: pass entry_point (and source_dir); a container "
            "image's own entrypoint cannot run here"
        )
        raise SpecError([SpecProblem("entry_point", entry_point, rule)])
    if source_dir is not None and str(source_dir).startswith("s3://"):
        rule = "must be a local directory (a sourcedir.tar.gz in S3 is not unpacked)"
        raise SpecError([SpecProblem("source_dir", source_dir, rule)])
    if source_dir is None:
        script = Path(os.path.abspath(entry_point))
        working_dir, relative = script.parent, script.name
    else:
        working_dir, relative = Path(os.path.abspath(source_dir)), str(entry_point)
    if not (working_dir / relative).is_file():
        raise SpecError(
            [SpecProblem("entry_point", entry_point, f"no such file: {working_dir / relative}")]
        )
    return str(working_dir), relative
