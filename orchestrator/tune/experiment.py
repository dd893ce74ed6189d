"""One driver run as a Ray Tune experiment: the trainable, its resources, the adapter, the stop.

Ray's experiment state is not used to resume (the job directory is), so each driver run is a
fresh experiment in a temporary folder of its own, outside the job directory and removed
afterwards: a full or damaged job directory then fails in openamt's code, with openamt's
message, never inside Tune's bookkeeping.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from ray import tune

from orchestrator.control.events import Listener
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialPlanner
from orchestrator.spec import JobSpec
from orchestrator.store.job_dir import JobDir
from orchestrator.tune.adapter import JobStopper, PlannerCallback, PlannerSearcher
from orchestrator.tune.trainables import TrialLaunch, run_script_trial

Trainable = Callable[[dict[str, Any]], None]


def script_trainable(spec: JobSpec, job_dir: JobDir) -> Trainable:
    """The script-mode trainable of `spec`, with everything job-wide bound once."""
    resources = spec.resources_per_trial
    launch = TrialLaunch(
        command=tuple(spec.trainer.argv()),
        working_dir=str(spec.trainer.working_path),
        extra_env=dict(spec.trainer.env),
        channels={name: str(path) for name, path in spec.input_paths.items()},
        metric_definitions=tuple(spec.metric_definitions),
        objective_metric_name=spec.objective_metric_name,
        job_dir=str(job_dir.path.resolve()),
        max_runtime_s=spec.max_runtime_in_seconds,
        grace_period_s=spec.stop_grace_period_in_seconds,
        max_log_bytes=spec.max_trial_log_bytes,
        num_cpus=resources.cpu,
        num_gpus=resources.gpu,
    )
    return tune.with_parameters(run_script_trial, launch=launch)


def run_experiment(
    spec: JobSpec,
    *,
    planner: TrialPlanner,
    control: JobControl,
    listeners: list[Listener],
    run_number: int,
    trainable: Trainable,
) -> None:
    """Run Tune until the planner has nothing left to start and every trial has ended."""
    searcher = PlannerSearcher(planner=planner)
    callback = PlannerCallback(
        planner=planner,
        control=control,
        searcher=searcher,
        objective_metric_name=spec.objective_metric_name,
        listeners=listeners,
    )
    with tempfile.TemporaryDirectory(prefix="openamt-tune-") as storage:
        _fit(spec, storage, searcher, callback, control, run_number, trainable)


def _fit(
    spec: JobSpec,
    storage: str,
    searcher: PlannerSearcher,
    callback: PlannerCallback,
    control: JobControl,
    run_number: int,
    trainable: Trainable,
) -> None:
    resources = spec.resources_per_trial
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": resources.cpu, "gpu": resources.gpu}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"run-{run_number}",
            storage_path=storage,
            callbacks=[callback],
            stop=JobStopper(control=control),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    tuner.fit()
