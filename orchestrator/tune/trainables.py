"""The Ray Tune function trainables: one trial attempt of a script or of a Python function.

They run on whatever node Ray placed the trial. A script trial starts the trainer as a subprocess
(`orchestrator.trial.process`); a function trial calls the function in this worker
(`orchestrator.trial.function`). Both report to Tune once per objective value, so schedulers and
dashboards see progress, and end with one final report: the attempt's `TrialEnd`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.result import DONE

from orchestrator.spec import MetricDefinition
from orchestrator.store.job_dir import JobDir
from orchestrator.trial.function import FunctionLaunch, Recorder, TrainerFunction
from orchestrator.trial.outcome import EPOCH_KEY, NODE_KEY, TrialEnd
from orchestrator.trial.process import run_trial_process
from orchestrator.trial.script_env import build_argv, build_training_env


@dataclass(frozen=True)
class TrialLaunch:
    """Everything job-wide a script trial attempt needs; shipped to the worker once per job."""

    command: tuple[str, ...]
    working_dir: str
    extra_env: Mapping[str, str]
    channels: Mapping[str, str]
    metric_definitions: tuple[MetricDefinition, ...]
    objective_metric_name: str
    job_dir: str
    max_runtime_s: float | None = None
    grace_period_s: float = 10.0
    num_cpus: float = 1.0
    num_gpus: float = 0.0


def run_script_trial(config: dict[str, Any], launch: TrialLaunch) -> None:
    """Tune entry point: run one attempt of `config["trial_id"]` and report its end."""
    trial_id: str = config["trial_id"]
    attempt: int = config["attempt"]
    hyperparameters: dict[str, Any] = config["hyperparameters"]
    files = JobDir(path=Path(launch.job_dir)).trial_files(trial_id)
    for directory in (files.model_dir, files.output_dir):
        directory.mkdir(parents=True, exist_ok=True)
    files.hyperparameters.write_text(json.dumps(hyperparameters, indent=2))

    host = socket.gethostname()
    env = build_training_env(
        hyperparameters=hyperparameters,
        channels=launch.channels,
        model_dir=str(files.model_dir),
        output_data_dir=str(files.output_dir),
        num_gpus=_assigned_gpu_count(launch.num_gpus),
        num_cpus=max(1, int(launch.num_cpus)),
        hosts=[host],
        current_host=host,
        base_env=os.environ,
        extra_env={
            **launch.extra_env,
            "OPENAMT_TRIAL_ID": trial_id,
            "OPENAMT_ATTEMPT": str(attempt),
            "OPENAMT_JOB_DIR": launch.job_dir,
        },
    )
    latest: dict[str, float] = {}
    node_id = ray.get_runtime_context().get_node_id()

    def on_metric(name: str, value: float, step: int) -> None:
        latest[name] = value
        if name == launch.objective_metric_name:
            tune.report({**latest, EPOCH_KEY: step, NODE_KEY: node_id})

    end = run_trial_process(
        argv=build_argv(launch.command, hyperparameters),
        cwd=Path(launch.working_dir),
        env=env,
        log_path=files.log,
        metric_definitions=launch.metric_definitions,
        objective_metric_name=launch.objective_metric_name,
        on_metric=on_metric,
        max_runtime_s=launch.max_runtime_s,
        grace_period_s=launch.grace_period_s,
    )
    _report_end(replace(end, node_id=node_id))


def make_function_trainable(
    fn: TrainerFunction, *, launch: FunctionLaunch
) -> Callable[[dict[str, Any]], None]:
    """The Tune trainable for a function trainer: takes the planner's config
    (`trial_id`, `attempt`, `hyperparameters`), like `run_script_trial` with its launch bound."""

    def openamt_function_trial(config: dict[str, Any]) -> None:
        run_function_trial(config, fn=fn, launch=launch)

    return openamt_function_trial


def run_function_trial(
    config: dict[str, Any], *, fn: TrainerFunction, launch: FunctionLaunch
) -> None:
    """Tune entry point: run one attempt of `config["trial_id"]` and report its end."""
    trial_id: str = config["trial_id"]
    hyperparameters: dict[str, Any] = dict(config["hyperparameters"])
    files = JobDir(path=Path(launch.job_dir)).trial_files(trial_id)
    files.directory.mkdir(parents=True, exist_ok=True)
    files.hyperparameters.write_text(json.dumps(hyperparameters, indent=2))

    with open(files.log, "a", encoding="utf-8") as log:
        recorder = Recorder(
            log=log,
            objective_metric_name=launch.objective_metric_name,
            on_objective=lambda latest, epoch: tune.report({**latest, EPOCH_KEY: epoch}),
        )
        started = time.monotonic()
        error: Exception | None = None
        try:
            fn(hyperparameters, recorder.report)
        except Exception as raised:  # any error of the trainer's own fails the attempt
            error = raised
            log.write(traceback.format_exc())
        duration_s = time.monotonic() - started
    end = recorder.end(error, duration_s=duration_s)
    _report_end(replace(end, node_id=ray.get_runtime_context().get_node_id()))


def _report_end(end: TrialEnd) -> None:
    # DONE: Tune ends the trial on this result, instead of asking the worker once more and
    # learning only then that the function has returned: one round trip less per trial.
    tune.report({**end.to_result(), DONE: True})


def _assigned_gpu_count(requested: float) -> int:
    """GPUs the trainer may use: those Ray assigned (`CUDA_VISIBLE_DEVICES`), at least 1 if any."""
    if requested <= 0:
        return 0
    return max(1, len(ray.get_gpu_ids()))
