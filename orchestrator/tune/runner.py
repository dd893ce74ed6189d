"""Run one tuning job on Ray Tune, from a validated `JobSpec` to a finished (or resumable) job.

A rerun of the same job resumes it: the planner reconciles the searcher with the ledger, and a
fresh Tune experiment runs only what is left. Ray's own experiment state is not needed for that,
so damage to it cannot lose trials.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.control.completion import CompletionRules, active_seconds
from orchestrator.control.early_stopping import MedianStoppingRule
from orchestrator.errors import OpenAMTError, ResumeError
from orchestrator.monitor.exporter import DEFAULT_METRICS_PORT
from orchestrator.control.job_control import JobControl
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger, TrialRecord, best_trial, summarize_trials
from orchestrator.tune.ray_metrics import publish_service_discovery
from orchestrator.spec import JobSpec, check_resources
from orchestrator.control.suggest_ahead import SuggestAhead
from orchestrator.tune.trainables import EPOCH_KEY
from orchestrator.control.planner import TrialPlanner, next_trial_name
from orchestrator.store.warm_start import parent_observations

log = logging.getLogger(__name__)

#: Spec fields that may change between runs of one job; anything else must match.
RESUMABLE_CHANGES = frozenset({"max_jobs", "max_parallel_jobs", "output_path"})


class JobInterrupted(OpenAMTError):
    """The driver was asked to stop (Ctrl-C / SIGTERM); the job is resumable."""


@dataclass(frozen=True)
class RunOptions:
    """How to run a job, as opposed to what the job is (the spec)."""

    address: str | None = None  # None: start Ray embedded in this process
    metrics_port: int | None = DEFAULT_METRICS_PORT  # None: no exporter; 0: any free port
    metrics_host: str = "127.0.0.1"
    allow_public_metrics: bool = False
    show_progress: bool = True
    ray_metrics_export_port: int | None = None


@dataclass(frozen=True)
class JobResult:
    """What a finished run of the driver leaves behind."""

    job_dir: Path
    reason: str
    trials: dict[str, TrialRecord]
    best: TrialRecord | None


def run_job(
    spec: JobSpec,
    options: RunOptions = RunOptions(),
    *,
    trainable: Callable[[dict[str, Any]], None] | None = None,
) -> JobResult:
    """Run (or resume) the job described by `spec` until it completes.

    `trainable` replaces the script-mode trial (the Python API's function trainers): it gets
    the planner's config (`trial_id`, `attempt`, `hyperparameters`) and must report like
    `orchestrator.tune.trainables.run_script_trial`.
    """
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    with job_dir.lock():
        _write_or_check_spec(job_dir, spec)
        ledger = Ledger(job_dir=job_dir.path)
        planner = _make_planner(spec, job_dir, ledger)
        planner.resume()
        control = _make_control(spec, ledger, planner)
        if planner.done:
            return _finish(spec, job_dir, ledger, planner, reason=_completion_reason(planner))
        listeners, close_listeners = _make_listeners(spec, ledger, planner, options)
        listeners.insert(0, control.listener)
        try:
            with _ray_session(options), _interrupts_raise():
                _check_cluster(spec)
                run_number = _count_runs(ledger) + 1
                ledger.append(Event.JOB_STARTED, run=run_number, pid=os.getpid())
                control.started = control.clock()
                _run_tune(spec, job_dir, planner, control, listeners, run_number, trainable)
                if planner.fatal_error is not None:
                    raise planner.fatal_error
                planner.close()
        except KeyboardInterrupt as interrupt:
            ledger.append(Event.JOB_INTERRUPTED, finished=planner.finished_count)
            raise JobInterrupted(
                f"interrupted; {planner.finished_count} trials are finished and recorded in "
                f"{job_dir.path}. Rerun the same command to resume."
            ) from interrupt
        finally:
            close_listeners()
        return _finish(spec, job_dir, ledger, planner, reason=_completion_reason(planner))


def _make_planner(spec: JobSpec, job_dir: JobDir, ledger: Ledger) -> TrialPlanner:
    from search import make_searcher

    searcher = make_searcher(
        spec.strategy.value,
        spec.search_space(),
        objective_type=spec.objective_type.value,
        seed=spec.random_seed,
        prior_observations=parent_observations(spec) or None,
    )
    state = job_dir.load_searcher_state()
    if state is not None:
        searcher.load_state_dict(state)
    elif ledger.events():
        raise ResumeError(
            f"{job_dir.searcher_state_path} is missing but the ledger has trials; restore the "
            "file or move the job directory aside to start afresh"
        )
    retry = spec.retry_strategy.maximum_retry_attempts if spec.retry_strategy else 0
    return TrialPlanner(
        searcher=SuggestAhead(
            searcher,
            successor=functools.partial(next_trial_name, max_jobs=spec.max_jobs),
            max_parallel_jobs=spec.max_parallel_jobs,
        ),
        ledger=ledger,
        job_dir=job_dir,
        max_jobs=spec.max_jobs,
        max_parallel_jobs=spec.max_parallel_jobs,
        max_retry_attempts=retry,
    )


def _make_control(spec: JobSpec, ledger: Ledger, planner: TrialPlanner) -> JobControl:
    criteria = spec.completion_criteria
    not_improving = criteria.best_objective_not_improving if criteria else None
    convergence = criteria.convergence_detected if criteria else None
    maximize = spec.objective_type.value == "Maximize"
    events = ledger.events()
    control = JobControl(
        planner=planner,
        rules=CompletionRules(
            maximize=maximize,
            target=criteria.target_objective_metric_value if criteria else None,
            not_improving_trials=(
                not_improving.max_number_of_training_jobs_not_improving if not_improving else None
            ),
            convergence=bool(
                convergence and convergence.complete_on_convergence.value == "Enabled"
            ),
            max_runtime_s=criteria.max_runtime_in_seconds if criteria else None,
            elapsed_before_s=active_seconds(events),
        ),
        median_rule=(
            MedianStoppingRule(maximize=maximize)
            if spec.early_stopping_type.value == "Auto"
            else None
        ),
    )
    control.restore(summarize_trials(events, objective_metric_name=spec.objective_metric_name))
    return control


def _write_or_check_spec(job_dir: JobDir, spec: JobSpec) -> None:
    """First run: record the spec. Later runs: refuse a different job in the same directory."""
    from orchestrator.store.job_dir import write_atomic

    current = spec.to_mapping()
    if job_dir.spec_path.exists():
        recorded = yaml.safe_load(job_dir.spec_path.read_text(encoding="utf-8")) or {}
        changed = sorted(
            key
            for key in set(recorded) | set(current)
            if key not in RESUMABLE_CHANGES and recorded.get(key) != current.get(key)
        )
        if changed:
            raise ResumeError(
                f"{job_dir.path} holds a job with a different spec (changed: "
                f"{', '.join(changed)}). Use another name or output_path for a new job; only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming."
            )
    write_atomic(job_dir.spec_path, yaml.safe_dump(current, sort_keys=False))


def _make_listeners(
    spec: JobSpec, ledger: Ledger, planner: TrialPlanner, options: RunOptions
) -> tuple[list[Callable[[str, str, dict[str, Any]], None]], Callable[[], None]]:
    from orchestrator.monitor.progress import ProgressDisplay

    listeners: list[Callable[[str, str, dict[str, Any]], None]] = []
    closers: list[Callable[[], None]] = []
    trials = summarize_trials(ledger.events())
    if options.metrics_port is not None:
        from orchestrator.monitor.listener import start_job_metrics

        listener, close = start_job_metrics(
            spec=spec,
            planner=planner,
            trials=trials,
            host=options.metrics_host,
            port=options.metrics_port,
            allow_public=options.allow_public_metrics,
        )
        listeners.append(listener)
        closers.append(close)
    if options.show_progress:
        display = ProgressDisplay(spec=spec, trials=trials)
        listeners.append(display.update)
        closers.append(display.close)

    def close_all() -> None:
        for close in reversed(closers):
            close()

    return listeners, close_all


@contextmanager
def _ray_session(options: RunOptions) -> Iterator[None]:
    import ray

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # The ledger is the record: Tune's per-trial JSON/CSV/TensorBoard loggers and frequent
    # experiment checkpoints only cost time per trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "300")
    # A failed trial is recorded in the ledger with its reason; Tune's traceback on the
    # terminal for the same failure only buries the progress display.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Without per-trial result files Tune's end-of-run summary has nothing to read; the
    # ledger is the summary, so its "Failed to fetch metrics" warning is noise.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Tune's own experiment snapshot is not used to resume; failing to save it (a full disk)
    # is reported by openamt once, as the ledger's or state file's write error.
    logging.getLogger("ray.tune.execution.experiment_state").setLevel(logging.CRITICAL)
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address is None:
        kwargs["include_dashboard"] = False
        if options.ray_metrics_export_port is not None:
            kwargs["_metrics_export_port"] = options.ray_metrics_export_port
    else:
        kwargs["address"] = options.address
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**kwargs)
    discovery = None
    if started_here and options.address is None and options.metrics_port is not None:
        discovery = publish_service_discovery()
    try:
        yield
    finally:
        if discovery is not None:
            discovery.unlink(missing_ok=True)
        if started_here:
            ray.shutdown()


@contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: stop, record, stay resumable."""
    if sys.platform == "win32" or not _in_main_thread():
        yield
        return

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _check_cluster(spec: JobSpec) -> None:
    """Refuse trials no node can hold, before any starts, with the numbers."""
    import ray

    largest: dict[str, float] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for name, amount in node.get("Resources", {}).items():
            key = name.lower()
            largest[key] = max(largest.get(key, 0.0), float(amount))
    check_resources(spec, largest)


def _run_tune(
    spec: JobSpec,
    job_dir: JobDir,
    planner: TrialPlanner,
    control: JobControl,
    listeners: list[Callable[[str, str, dict[str, Any]], None]],
    run_number: int,
    trial_function: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    from ray import tune

    from orchestrator.tune.adapter import JobStopper, PlannerCallback, PlannerSearcher
    from orchestrator.tune.trainables import TrialLaunch, run_script_trial

    resources = spec.resources_per_trial
    launch = TrialLaunch(
        command=tuple(spec.trainer.argv()),
        working_dir=str(spec.trainer.working_path),
        extra_env=dict(spec.trainer.env),
        channels={name: str(path) for name, path in spec.input_paths.items()},
        metric_definitions=tuple((m.name, m.regex) for m in spec.metric_definitions),
        objective_metric_name=spec.objective_metric_name,
        job_dir=str(job_dir.path.resolve()),
        max_runtime_s=spec.max_runtime_in_seconds,
        num_cpus=resources.cpu,
        num_gpus=resources.gpu,
    )
    searcher = PlannerSearcher(planner=planner)
    callback = PlannerCallback(
        planner=planner,
        searcher=searcher,
        objective_metric_name=spec.objective_metric_name,
        listeners=listeners,
    )
    if trial_function is None:
        trial_function = tune.with_parameters(run_script_trial, launch=launch)
    trainable = tune.with_resources(trial_function, {"cpu": resources.cpu, "gpu": resources.gpu})
    # Tune keeps one trial pending at a time for searchers of its own; with more, all of
    # `max_parallel_jobs` can wait for resources at once (and an autoscaler sees them all).
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(spec.max_parallel_jobs)
    tuner = tune.Tuner(
        trainable,
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
    if spec.strategy.value != "Hyperband":
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    config = spec.hyperband_strategy_config
    min_resource = config.min_resource if config else 1
    max_resource = config.max_resource if config else int(spec.hyperparameters.get("epochs", 81))
    return AsyncHyperBandScheduler(
        time_attr=EPOCH_KEY,
        metric=spec.objective_metric_name,
        mode="max" if spec.objective_type.value == "Maximize" else "min",
        grace_period=min_resource,
        max_t=max_resource,
        reduction_factor=3,
    )


def _count_runs(ledger: Ledger) -> int:
    return sum(1 for e in ledger.events() if e["event"] == Event.JOB_STARTED.value)


def _completion_reason(planner: TrialPlanner) -> str:
    if planner.stop_reason:
        return planner.stop_reason
    if planner.finished_count >= planner.max_jobs:
        return "MaxNumberOfTrainingJobsReached"
    return "SearchSpaceExhausted"


def _finish(
    spec: JobSpec, job_dir: JobDir, ledger: Ledger, planner: TrialPlanner, *, reason: str
) -> JobResult:
    trials = summarize_trials(ledger.events(), objective_metric_name=spec.objective_metric_name)
    best = best_trial(trials, maximize=spec.objective_type.value == "Maximize")
    events = ledger.events()
    already = events and events[-1]["event"] == Event.JOB_COMPLETED.value
    if not already or events[-1].get("reason") != reason:
        ledger.append(
            Event.JOB_COMPLETED,
            reason=reason,
            best_trial_id=best.trial_id if best else None,
            best_objective=best.objective if best else None,
        )
    return JobResult(job_dir=job_dir.path, reason=reason, trials=trials, best=best)
