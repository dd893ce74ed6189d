"""The Ray Tune function trainable that runs one script-mode trial attempt.

It runs on whatever node Ray placed the trial, starts the trainer as a subprocess
(`orchestrator.trial.process`), and reports to Tune once per objective value the trainer prints,
so schedulers and dashboards see progress. Its last report carries `openamt_final` with the
outcome; a trial that ends without it was stopped by Tune (early stopping or a completion rule).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.result import DONE

from orchestrator.trial.process import (
    MetricDefinition,
    build_argv,
    build_training_env,
    run_trial_process,
)

FINAL_KEY = "openamt_final"
EPOCH_KEY = "epoch"
NODE_KEY = "openamt_node_id"


@dataclass(frozen=True)
class TrialLaunch:
    """Everything job-wide a trial attempt needs; shipped to the worker once per job."""

    command: tuple[str, ...]
    working_dir: str
    extra_env: Mapping[str, str]
    channels: Mapping[str, str]
    metric_definitions: tuple[tuple[str, str], ...]  # (Name, Regex)
    objective_metric_name: str
    job_dir: str
    max_runtime_s: float | None = None
    grace_period_s: float = 10.0
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    report_metrics: bool = field(default=True)


def run_script_trial(config: dict[str, Any], launch: TrialLaunch) -> None:
    """Tune entry point: run one attempt of `config["trial_id"]` and report its outcome."""
    trial_id: str = config["trial_id"]
    attempt: int = config["attempt"]
    hyperparameters: dict[str, Any] = config["hyperparameters"]
    trial_dir = Path(launch.job_dir) / "trials" / trial_id
    model_dir = trial_dir / "model"
    output_dir = trial_dir / "output"
    for directory in (model_dir, output_dir):
        directory.mkdir(parents=True, exist_ok=True)
    (trial_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))

    host = socket.gethostname()
    env = build_training_env(
        hyperparameters=hyperparameters,
        channels=launch.channels,
        model_dir=str(model_dir),
        output_data_dir=str(output_dir),
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
    epochs_reported = 0
    node_id = ray.get_runtime_context().get_node_id()

    def on_metric(name: str, value: float, step: int) -> None:
        nonlocal epochs_reported
        latest[name] = value
        if name == launch.objective_metric_name:
            epochs_reported = step
            tune.report({**latest, EPOCH_KEY: step, NODE_KEY: node_id})

    outcome = run_trial_process(
        argv=build_argv(launch.command, hyperparameters),
        cwd=Path(launch.working_dir),
        env=env,
        log_path=trial_dir / "log.txt",
        metric_definitions=[
            MetricDefinition.from_mapping({"Name": n, "Regex": r})
            for n, r in launch.metric_definitions
        ],
        objective_metric_name=launch.objective_metric_name,
        on_metric=on_metric,
        max_runtime_s=launch.max_runtime_s,
        grace_period_s=launch.grace_period_s,
    )
    tune.report(
        {
            **latest,
            EPOCH_KEY: epochs_reported,
            FINAL_KEY: True,
            "openamt_state": outcome.status.value,
            "openamt_objective": outcome.objective,
            "openamt_reason": outcome.reason,
            "openamt_retryable": outcome.retryable,
            "openamt_exit_code": outcome.exit_code,
            "openamt_signal": outcome.signal,
            "openamt_duration_s": outcome.duration_s,
            NODE_KEY: node_id,
            # Tune ends the trial on this result, instead of asking the worker once more and
            # learning only then that the function has returned: one round trip less per trial.
            DONE: True,
        }
    )


def _assigned_gpu_count(requested: float) -> int:
    """GPUs the trainer may use: those Ray assigned (`CUDA_VISIBLE_DEVICES`), at least 1 if any."""
    if requested <= 0:
        return 0
    return max(1, len(ray.get_gpu_ids()))
