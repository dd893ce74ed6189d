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
(resumable). `fit(wait=False)` writes `<job dir>/job.yaml` and starts a detached driver,
`python -m orchestrator.cli tune <job dir>/job.yaml --no-progress`, in its own session with its
output in `<job dir>/driver.log`, so the job outlives the notebook; `wait()`, `stop()` and
`describe()` follow it, from this tuner or from any process via `attach`. Resuming is fitting
again with the same `job_name` (or `openamt tune <job dir>/job.yaml`).

Trainers:
* `ScriptTrainer(entry_point, ...)`: a SageMaker script-mode script, `entry_point` relative to
  `source_dir`; with `module=True`, `entry_point` is a module run as `python -m entry_point`
  (`ScriptTrainer("models.sklearn_digits", module=True)`).
* `FunctionTrainer(fn, ...)`: a Python function `fn(hyperparameters, report)` that calls
  `report(**{metric_name: value})` once per epoch, run inside the Ray trial
  (`orchestrator.trial.function`). It runs only with `fit(wait=True)`, since a function cannot
  be handed to a detached process; `metric_definitions` may be omitted for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import psutil

from orchestrator.trial import function as function_trial
from orchestrator.store.analytics import (
    JOB_FILE,
    HyperparameterTuningJobAnalytics,
    TuningJobStatus,
    describe_job,
    last_run_ended,
    load_tuning_job,
)
from orchestrator.errors import OpenAMTError, SpecError, SpecProblem
from orchestrator.store.job_dir import JobDir, write_atomic
from orchestrator.store.ledger import LEDGER_FILE, Event, read_events
from orchestrator.spec import MAX_NAME_CHARS, JobSpec
from orchestrator.tune.runner import RunOptions, run_job

DRIVER_LOG = "driver.log"
DRIVER_PID_FILE = "driver.pid"
LOCK_FILE = ".lock"
#: Appended to `base_tuning_job_name`; seconds, so two fits a minute apart never collide.
TIMESTAMP_FORMAT = "%y%m%d-%H%M%S"
DEFAULT_BASE_NAME = "openamt"
POLL_INTERVAL_S = 0.5
DEFAULT_STOP_TIMEOUT_S = 120.0
_BASE_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_BASE_NAME_RULE = (
    "letters, digits and hyphens, starting and ending with a letter or digit (SageMaker's job "
    "name rule; a timestamp is appended and the base shortened to keep 32 characters)"
)


class TunerError(OpenAMTError):
    """The tuner was used in a way it cannot honour (no job yet, a function trainer detached)."""


class TuningJobFailedError(TunerError):
    """The job's driver ended without recording the end of the job."""


class WaitTimeoutError(TunerError, TimeoutError):
    """`wait(timeout=...)` ran out of time; the job goes on."""


# -- trainers -----------------------------------------------------------------------------------
class _Trainer:
    """What every trainer gives the job spec: static hyperparameters, resources, runtime."""

    #: Job-spec field (dotted path) -> this trainer's argument name, for error messages.
    argument_names: Mapping[str, str] = {}

    def __init__(
        self,
        *,
        hyperparameters: Mapping[str, Any] | None,
        resources_per_trial: Mapping[str, float] | None,
        max_runtime_in_seconds: float | None,
    ) -> None:
        self.hyperparameters = dict(hyperparameters or {})
        self.resources_per_trial = (
            None
            if resources_per_trial is None
            else {str(k).lower(): v for k, v in dict(resources_per_trial).items()}
        )
        self.max_runtime_in_seconds = max_runtime_in_seconds

    def trainer_section(self) -> dict[str, Any]:
        """The job spec's `trainer:` section."""
        raise NotImplementedError

    @property
    def base_job_name(self) -> str:
        """A job name base when the tuner is given none."""
        return DEFAULT_BASE_NAME


class ScriptTrainer(_Trainer):
    """A SageMaker script-mode trainer: `python entry_point --name value ...` in `source_dir`.

    `python` is the interpreter (default: this one), a path or a name on PATH; `env` adds
    environment variables; `max_runtime_in_seconds` limits each trial (SageMaker's
    `max_run`); `resources_per_trial` is `{"cpu": 1, "gpu": 1}` (a GPU below 1 is shared).
    """

    argument_names = {
        "trainer.command[0]": "python",
        "trainer.command[1]": "entry_point",
        "trainer.command": "entry_point",
        "trainer.interpreter": "python",
        "trainer.working_dir": "source_dir",
        "trainer.env": "env",
    }

    def __init__(
        self,
        entry_point: str,
        *,
        source_dir: str | os.PathLike[str] = ".",
        python: str | os.PathLike[str] | None = None,
        module: bool = False,
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        max_runtime_in_seconds: float | None = None,
    ) -> None:
        super().__init__(
            hyperparameters=hyperparameters,
            resources_per_trial=resources_per_trial,
            max_runtime_in_seconds=max_runtime_in_seconds,
        )
        self.entry_point = str(entry_point)
        self.module = module
        self.source_dir = os.path.abspath(os.fspath(source_dir))
        self.python = None if python is None else _absolute_if_path(os.fspath(python))
        self.env = dict(env or {})

    def trainer_section(self) -> dict[str, Any]:
        program = ["-m", self.entry_point] if self.module else [self.entry_point]
        section: dict[str, Any] = {
            "command": ["python", *program],
            "working_dir": self.source_dir,
            "env": self.env,
        }
        if self.python is not None:
            section["interpreter"] = self.python
        return section

    @property
    def base_job_name(self) -> str:
        stem = self.entry_point.rsplit(".", 1)[-1] if self.module else Path(self.entry_point).stem
        return _name_base(stem)


class FunctionTrainer(_Trainer):
    """A Python function `fn(hyperparameters: dict, report) -> None` that calls
    `report(**{metric_name: value})` once per epoch; runs in the Ray trial, `fit(wait=True)`
    only. See `orchestrator.trial.function` for how it runs and how the spec records it."""

    def __init__(
        self,
        fn: function_trial.TrainerFunction,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
    ) -> None:
        if not callable(fn):
            raise SpecError(
                [SpecProblem("fn", fn, "must be a function fn(hyperparameters, report)")]
            )
        super().__init__(
            hyperparameters=hyperparameters,
            resources_per_trial=resources_per_trial,
            max_runtime_in_seconds=None,
        )
        self.fn = fn

    def trainer_section(self) -> dict[str, Any]:
        return function_trial.trainer_section(self.fn, working_dir=os.getcwd())

    @property
    def base_job_name(self) -> str:
        return _name_base(getattr(self.fn, "__name__", ""))


class RecordedTrainer(_Trainer):
    """The trainer of an existing job, as its spec records it (what `attach` gives a tuner)."""

    def __init__(
        self,
        *,
        section: Mapping[str, Any],
        hyperparameters: Mapping[str, Any] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        max_runtime_in_seconds: float | None = None,
    ) -> None:
        super().__init__(
            hyperparameters=hyperparameters,
            resources_per_trial=resources_per_trial,
            max_runtime_in_seconds=max_runtime_in_seconds,
        )
        self.section = dict(section)

    def trainer_section(self) -> dict[str, Any]:
        return dict(self.section)


# -- the tuner ----------------------------------------------------------------------------------
class HyperparameterTuner:
    """SageMaker's `HyperparameterTuner` on openamt: see the module docstring.

    `completion_criteria`, `retry_strategy`, `warm_start_config` and
    `hyperband_strategy_config` take the job-file form, e.g.
    `completion_criteria={"target_objective_metric_value": 0.74}`,
    `warm_start_config={"parent_hyperparameter_tuning_jobs": ["runs/round-1"],
    "warm_start_type": "TransferLearning"}`. `random_seed=None` keeps the spec's default (0),
    so a job is repeatable unless told otherwise.
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
    ) -> None:
        if not isinstance(trainer, _Trainer):
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
        self.completion_criteria = completion_criteria
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
            write_atomic(spec.job_dir / JOB_FILE, spec.to_yaml())
        self.latest_tuning_job = job
        if not wait:
            job.start_driver(options)
        elif isinstance(self.trainer, FunctionTrainer):
            fn = self.trainer.fn
            job.run_here(lambda: _run_function_job(spec, fn, options))
        else:
            job.run_here(lambda: run_job(spec, options))

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job's driver is done; returns `describe()`. Raises
        `TuningJobFailedError` if the driver died without finishing the job."""
        return self._job().wait(timeout=timeout)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> dict[str, Any]:
        """Stop the job as Ctrl-C would (resumable): SIGINT to its driver, then wait for it."""
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
        spec = load_tuning_job(job_dir).spec
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

    def _unique_name(self) -> str:
        """`base-YYMMDD-HHMMSS`, with `-2`, `-3`, ... if a job of that name exists already."""
        base, now = self._base_name(), dt.datetime.now()
        for count in itertools.count(1):
            name = _timestamped(base, now, count)
            if not (Path(self.output_path) / name).exists():
                return name
        raise AssertionError("unreachable")

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
)


# -- one job and its driver ---------------------------------------------------------------------
class TuningJob:
    """A job directory and the driver process running it (SageMaker's `latest_tuning_job`).

    The driver is known by pid: the one this object started (`fit(wait=False)`), else the pid
    in `driver.pid` (a detached driver) or `.lock` (any driver), whichever is newer. A pid
    counts as the job's driver while that process lives, started before it wrote the file, and
    the ledger's latest run has not recorded its end.
    """

    def __init__(self, *, job_dir: Path) -> None:
        self.job_dir = Path(job_dir)
        self._driver: subprocess.Popen[bytes] | None = None
        self._running_here = False

    @property
    def name(self) -> str:
        return self.job_dir.name

    def run_here(self, run: Callable[[], object]) -> None:
        """Run the job in this process (`fit(wait=True)`); this process is its driver."""
        self._running_here = True
        try:
            run()
        finally:
            self._running_here = False

    def start_driver(self, options: RunOptions) -> None:
        """Start `openamt tune job.yaml` detached: own session, output to `driver.log`."""
        argv = [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "tune",
            str(self.job_dir / JOB_FILE),
            "--no-progress",
            *_driver_flags(options),
        ]
        with open(self.job_dir / DRIVER_LOG, "ab") as log:
            self._driver = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=_driver_environment(),
            )
        write_atomic(self.job_dir / DRIVER_PID_FILE, f"{self._driver.pid}\n")

    def driver_pid(self) -> int | None:
        """The pid of the process running the job now, or None."""
        if self._driver is not None:
            return self._driver.pid if self._driver.poll() is None else None
        recorded = _recorded_pid(self.job_dir)
        if recorded is None:
            return None
        pid, written_at = recorded
        if pid == os.getpid():  # an in-process run of this process's, over unless it is ours
            return pid if self._running_here else None
        if not _alive(pid, started_before=written_at):
            return None
        return None if last_run_ended(read_events(self.job_dir / LEDGER_FILE)) else pid

    def refuse_if_running(self) -> None:
        if self.job_dir.exists() and (pid := self.driver_pid()) is not None:
            raise TunerError(
                f"job {self.job_dir} is being run by driver pid {pid}; attach to it "
                "(HyperparameterTuner.attach) or stop it first"
            )

    def describe(self) -> dict[str, Any]:
        view = load_tuning_job(self.job_dir)
        return describe_job(view, driver_running=self.driver_pid() is not None)

    def best_training_job(self) -> str:
        view = load_tuning_job(self.job_dir)
        best = view.best
        if best is None:
            raise TunerError(
                f"job {self.name}: no trial has finished with a value of "
                f"{view.objective_metric_name!r} yet ({len(view.trials)} trials started)"
            )
        return best.trial_id

    def wait(self, *, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.driver_pid() is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(f"job {self.name} still running after {timeout:g} s")
            time.sleep(POLL_INTERVAL_S)
        description = self.describe()
        if description["HyperParameterTuningJobStatus"] == TuningJobStatus.FAILED.value:
            raise TuningJobFailedError(
                f"job {self.name} failed: its driver ended without finishing the job. "
                f"Last lines of {self.job_dir / DRIVER_LOG}:\n{self._driver_log_tail()}"
            )
        return description

    def stop(self, *, timeout: float) -> dict[str, Any]:
        pid = self.driver_pid()
        if pid is None:
            return self.describe()
        if pid == os.getpid():
            raise TunerError(
                f"job {self.name} runs in this process (fit(wait=True)); stop it with Ctrl-C"
            )
        self._wait_until_running(pid, timeout=timeout)
        with contextlib.suppress(ProcessLookupError):  # it may have finished meanwhile
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.driver_pid() is not None:
            if time.monotonic() >= deadline:
                raise TunerError(f"job {self.name}: driver pid {pid} still running after SIGINT")
            time.sleep(POLL_INTERVAL_S)
        return self.describe()

    def _wait_until_running(self, pid: int, *, timeout: float) -> None:
        """Until the driver records its start, a SIGINT would kill it mid-import instead of
        stopping the job cleanly (and recording that)."""
        deadline = time.monotonic() + timeout
        while self.driver_pid() == pid and time.monotonic() < deadline:
            events = read_events(self.job_dir / LEDGER_FILE)
            if any(e["event"] == Event.JOB_STARTED.value and e.get("pid") == pid for e in events):
                return
            time.sleep(POLL_INTERVAL_S / 5)

    def _driver_log_tail(self, lines: int = 20) -> str:
        path = self.job_dir / DRIVER_LOG
        if not path.exists():
            return "(no driver.log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- helpers ------------------------------------------------------------------------------------
def _run_function_job(
    spec: JobSpec, fn: function_trial.TrainerFunction, options: RunOptions
) -> None:
    launch = function_trial.FunctionLaunch(
        objective_metric_name=spec.objective_metric_name, job_dir=str(spec.job_dir)
    )
    run_job(spec, options, trainable=function_trial.make_function_trainable(fn, launch=launch))


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


def _absolute_if_path(program: str) -> str:
    """A path (with a separator) made absolute; a bare name is left for the PATH lookup."""
    return os.path.abspath(program) if os.sep in program or "/" in program else program


def _name_base(text: str) -> str:
    """A job-name base from free text: runs of other characters become one hyphen."""
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-") or DEFAULT_BASE_NAME


def _timestamped(base: str, now: dt.datetime, count: int = 1) -> str:
    suffix = now.strftime(TIMESTAMP_FORMAT) + ("" if count == 1 else f"-{count}")
    return base[: MAX_NAME_CHARS - len(suffix) - 1].rstrip("-") + "-" + suffix


def _find_job_dir(tuning_job: Path, output_path: Path) -> Path:
    for candidate in (tuning_job, output_path / tuning_job):
        if (candidate / "spec.yaml").exists() or (candidate / JOB_FILE).exists():
            return Path(os.path.abspath(candidate))
    raise TunerError(
        f"no tuning job at {tuning_job} or {output_path / tuning_job}: pass a job directory "
        "(output_path/name) or a job name and its output_path"
    )


def _recorded_pid(job_dir: Path) -> tuple[int, float] | None:
    """(pid, when the file was written) from the newer of `driver.pid` and `.lock`."""
    found = []
    for name in (DRIVER_PID_FILE, LOCK_FILE):
        path = job_dir / name
        try:
            text, written_at = path.read_text().strip(), path.stat().st_mtime
        except OSError:
            continue
        if text.isdigit():
            found.append((written_at, int(text)))
    if not found:
        return None
    written_at, pid = max(found)
    return pid, written_at


def _alive(pid: int, *, started_before: float) -> bool:
    """The process lives and is not a later process that reused the pid."""
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and process.create_time() <= started_before + 1.0
        )
    except psutil.Error:
        return False


def _driver_flags(options: RunOptions) -> list[str]:
    """`RunOptions` as `openamt tune` flags (progress is always off: nobody watches it)."""
    flags: list[str] = []
    if options.address is not None:
        flags += ["--address", str(options.address)]
    if options.metrics_port is not None:
        flags += [
            "--metrics-port",
            str(options.metrics_port),
            "--metrics-host",
            options.metrics_host,
        ]
    else:
        flags.append("--no-metrics")
    if options.allow_public_metrics:
        flags.append("--metrics-public")
    if options.ray_metrics_export_port is not None:
        flags += ["--ray-metrics-export-port", str(options.ray_metrics_export_port)]
    return flags


def _driver_environment() -> dict[str, str]:
    """This environment, with this copy of openamt first on the path, so the driver runs the
    same code as the notebook even where openamt is not installed."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}
