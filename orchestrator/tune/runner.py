"""Run one tuning job on Ray Tune, from a validated `JobSpec` to a finished (or resumable) job.

A rerun of the same job resumes it: the planner reconciles the searcher with the ledger, and a
fresh Tune experiment runs only what is left. Ray's own experiment state is not needed for that,
so damage to it cannot lose trials.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.control.completion import CompletionRules, active_seconds
from orchestrator.control.early_stopping import MedianStoppingRule
from orchestrator.control.events import Listener
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialPlanner
from orchestrator.errors import JobInterrupted, ResumeError
from orchestrator.monitor.server import DEFAULT_METRICS_PORT
from orchestrator.spec import (
    CompleteOnConvergence,
    EarlyStoppingType,
    JobSpec,
)
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import TrialRecord, best_trial, summarize_trials
from orchestrator.store.warm_start import parent_observations
from orchestrator.tune.session import (
    TUNE_ENVIRONMENT,
    SessionOptions,
    check_cluster,
    interrupts_raise,
    process_settings,
    ray_session,
)

log = logging.getLogger(__name__)

#: Spec fields that may change between runs of one job; anything else must match.
RESUMABLE_CHANGES = frozenset({"max_jobs", "max_parallel_jobs", "output_path"})


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
        session = SessionOptions(
            address=options.address,
            ray_metrics_export_port=options.ray_metrics_export_port,
            publish_ray_metrics=options.metrics_port is not None,
        )
        # Tune keeps one trial pending at a time for searchers of its own; with more, all of
        # `max_parallel_jobs` can wait for resources at once (and an autoscaler sees them all).
        environment = {
            **TUNE_ENVIRONMENT,
            "TUNE_MAX_PENDING_TRIALS_PG": str(spec.max_parallel_jobs),
        }
        try:
            with process_settings(environment), ray_session(session), interrupts_raise():
                check_cluster(spec)
                run_number = _count_runs(ledger) + 1
                ledger.append(Event.JOB_STARTED, run=run_number, pid=os.getpid())
                control.started = control.clock()
                from orchestrator.tune.experiment import run_experiment, script_trainable

                run_experiment(
                    spec,
                    job_dir,
                    planner=planner,
                    control=control,
                    listeners=listeners,
                    run_number=run_number,
                    trainable=trainable or script_trainable(spec, job_dir),
                )
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
        prior_observations=parent_observations(spec, job_dir) or None,
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
        searcher=searcher,
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
    maximize = spec.maximize
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
                convergence and convergence.complete_on_convergence is CompleteOnConvergence.ENABLED
            ),
            max_runtime_s=criteria.max_runtime_in_seconds if criteria else None,
            elapsed_before_s=active_seconds(events),
        ),
        median_rule=(
            MedianStoppingRule(maximize=maximize)
            if spec.early_stopping_type is EarlyStoppingType.AUTO
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
) -> tuple[list[Listener], Callable[[], None]]:
    from orchestrator.monitor.progress import ProgressDisplay

    listeners: list[Listener] = []
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
    best = best_trial(trials, maximize=spec.maximize)
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
