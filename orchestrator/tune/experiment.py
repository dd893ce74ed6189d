"""One driver run as a Ray Tune experiment: the trainable, its resources, the adapter, the stop.

Ray's experiment state is not used to resume (the job directory is), so each driver run is a
fresh experiment `run-N` under the job's `ray/` folder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import tune

from orchestrator.control.events import Listener
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialPlanner
from orchestrator.spec import JobSpec, Strategy
from orchestrator.store.job_dir import JobDir
from orchestrator.trial.outcome import EPOCH_KEY
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
        num_cpus=resources.cpu,
        num_gpus=resources.gpu,
    )
    return tune.with_parameters(run_script_trial, launch=launch)


def run_experiment(
    spec: JobSpec,
    job_dir: JobDir,
    *,
    planner: TrialPlanner,
    control: JobControl,
    listeners: list[Listener],
    run_number: int,
    trainable: Trainable,
) -> None:
    """Run Tune until the planner has nothing left to start and every trial has ended."""
    resources = spec.resources_per_trial
    searcher = PlannerSearcher(planner=planner)
    callback = PlannerCallback(
        planner=planner,
        searcher=searcher,
        objective_metric_name=spec.objective_metric_name,
        listeners=listeners,
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": resources.cpu, "gpu": resources.gpu}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=_hyperband_scheduler(spec),
            num_samples=-1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"run-{run_number}",
            storage_path=str(job_dir.ray_storage.resolve()),
            callbacks=[callback],
            stop=JobStopper(
                searcher=searcher,
                control=control,
                objective_metric_name=spec.objective_metric_name,
            ),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    tuner.fit()


def _hyperband_scheduler(spec: JobSpec) -> Any:
    """Asynchronous successive halving on the epochs trials report (strategy Hyperband)."""
    if spec.strategy is not Strategy.HYPERBAND:
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    config = spec.hyperband_strategy_config
    min_resource = config.min_resource if config else 1
    max_resource = config.max_resource if config else int(spec.hyperparameters.get("epochs", 81))
    return AsyncHyperBandScheduler(
        time_attr=EPOCH_KEY,
        metric=spec.objective_metric_name,
        mode="max" if spec.maximize else "min",
        grace_period=min_resource,
        max_t=max_resource,
        reduction_factor=3,
    )
