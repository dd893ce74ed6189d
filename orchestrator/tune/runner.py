"""Run one tuning job on Ray Tune, from a validated `JobSpec` to a finished (or resumable) job.

A rerun of the same job resumes it: the planner reconciles the searcher with the ledger, and a
fresh Tune experiment runs only what is left. Ray's own experiment state is not needed for that,
so damage to it cannot lose trials.

However the run ends — every trial done, a completion criterion, the job's runtime, Ctrl-C or
SIGTERM (even for a driver started with SIGINT ignored), a fatal I/O error — every running trial
is stopped the same graceful way and its end recorded once, so no trial is left `Running` in the
record once the driver has exited.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.control.events import Listener, TrialFinished
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialPlanner
from orchestrator.control.setup import make_control, make_planner
from orchestrator.errors import JobInterrupted
from orchestrator.monitor.server import DEFAULT_METRICS_PORT
from orchestrator.spec import JobSpec
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import TrialRecord, best_trial, summarize_trials
from orchestrator.store.spec_record import record_spec
from orchestrator.trial.outcome import StopRequest, TrialState
from orchestrator.tune.session import (
    TUNE_ENVIRONMENT,
    SessionOptions,
    check_cluster,
    process_settings,
    ray_session,
    stop_signals,
)

log = logging.getLogger(__name__)

#: A job whose every finished trial failed ends with this reason, Failed (as SageMaker's does).
ALL_FAILED = "AllTrainingJobsFailed"


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
    failure: str | None = None  # why the whole job failed (every trial failed), if it did

    @property
    def failed(self) -> bool:
        return self.failure is not None


def run_job(
    spec: JobSpec,
    options: RunOptions = RunOptions(),
    *,
    trainable: Callable[[dict[str, Any]], None] | None = None,
) -> JobResult:
    """Run (or resume) the job described by `spec` until it completes.

    `trainable` replaces the script-mode trial (the Python API's function trainers): it gets
    the planner's config (`trial_id`, `attempt`, `hyperparameters`) and must report like
    `orchestrator.tune.trainables.run_script_trial`. Raises `JobInterrupted` after SIGINT or
    SIGTERM (the job is resumable) and openamt's own fatal errors (an unwritable job directory).
    """
    job_dir = JobDir(path=spec.job_dir)
    job_dir.create()
    with job_dir.lock():
        record_spec(job_dir, spec)
        ledger = Ledger(job_dir=job_dir.path)
        planner = make_planner(spec, job_dir, ledger)
        planner.resume()
        control = make_control(spec, ledger, planner)
        if planner.done:
            return _finish(spec, job_dir, ledger, planner)
        listeners, close_listeners = _make_listeners(spec, ledger, planner, options)
        listeners.insert(0, control.listener)
        try:
            _run(spec, job_dir, ledger, planner, control, listeners, options, trainable)
        except BaseException:
            _quietly(planner.flush_state)  # the state is written under the job's lock, never after
            raise
        finally:
            close_listeners()
        if control.interruption is not None:
            _quietly(planner.close)
            ledger.append(
                Event.JOB_INTERRUPTED,
                finished=planner.finished_count,
                reason=control.interruption,
            )
            raise JobInterrupted(
                f"interrupted ({control.interruption}); {planner.finished_count} trials are "
                f"finished and recorded in {job_dir.path}. Rerun the same command to resume."
            )
        if planner.fatal_error is not None:
            _quietly(planner.close)
            raise planner.fatal_error
        planner.close()
        return _finish(spec, job_dir, ledger, planner)


def _run(
    spec: JobSpec,
    job_dir: JobDir,
    ledger: Ledger,
    planner: TrialPlanner,
    control: JobControl,
    listeners: list[Listener],
    options: RunOptions,
    trainable: Callable[[dict[str, Any]], None] | None,
) -> None:
    """One Tune experiment in a Ray session, then the record of whatever Ray let go of."""
    session = SessionOptions(
        address=options.address,
        ray_metrics_export_port=options.ray_metrics_export_port,
        publish_ray_metrics=options.metrics_port is not None,
    )
    environment = {
        **TUNE_ENVIRONMENT,
        # Tune keeps one trial pending at a time for searchers of its own; with more, all of
        # `max_parallel_jobs` can wait for resources at once (and an autoscaler sees them all).
        "TUNE_MAX_PENDING_TRIALS_PG": str(spec.max_parallel_jobs),
    }
    with process_settings(environment), ray_session(session), stop_signals(control.interrupt):
        capacity = planner.capacity = check_cluster(spec)
        try:
            _run_in_session(spec, job_dir, ledger, planner, control, listeners, trainable)
        finally:
            capacity.close()  # no call into Ray once it shuts down


def _run_in_session(
    spec: JobSpec,
    job_dir: JobDir,
    ledger: Ledger,
    planner: TrialPlanner,
    control: JobControl,
    listeners: list[Listener],
    trainable: Callable[[dict[str, Any]], None] | None,
) -> None:
    """The job's run inside the Ray session: start, the Tune experiment, what Ray let go of."""
    run_number = sum(1 for e in ledger.events() if e["event"] == Event.JOB_STARTED.value) + 1
    ledger.append(Event.JOB_STARTED, run=run_number, pid=os.getpid())
    control.started = control.clock()
    from orchestrator.tune.experiment import run_experiment, script_trainable

    try:
        run_experiment(
            spec,
            planner=planner,
            control=control,
            listeners=listeners,
            run_number=run_number,
            trainable=trainable or script_trainable(spec, job_dir),
        )
    except KeyboardInterrupt:  # interrupted twice: do not wait for the trials any more
        control.interruption = control.interruption or "interrupted twice"
    request = control.stop_request or StopRequest(reason="the driver ended")
    _record_unfinished(planner, listeners, request)


def _record_unfinished(
    planner: TrialPlanner, listeners: list[Listener], request: StopRequest
) -> None:
    """Trials Ray let go of without an end (a grace period that ran out, a second Ctrl-C):
    record them as stopped now, so none stays `Running` in the record."""
    try:
        for trial_id, end in planner.end_unfinished(request):
            for listener in listeners:
                listener(TrialFinished(trial_id=trial_id, end=end, will_retry=False))
    except OSError as error:
        planner.fatal_error = planner.fatal_error or error


def _quietly(save: Callable[[], None]) -> None:
    """Save the searcher state on the way out of a failed run (`planner.close`, or
    `planner.flush_state` after a crash); its own error must not hide the first."""
    try:
        save()
    except OSError as error:
        log.warning("could not save the searcher state while stopping: %s", error)


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


def _completion_reason(planner: TrialPlanner) -> str:
    if planner.stop_reason:
        return planner.stop_reason
    if planner.finished_count >= planner.max_jobs:
        return "MaxNumberOfTrainingJobsReached"
    return "SearchSpaceExhausted"


def _finish(spec: JobSpec, job_dir: JobDir, ledger: Ledger, planner: TrialPlanner) -> JobResult:
    events = ledger.events()
    trials = summarize_trials(events, objective_metric_name=spec.objective_metric_name)
    best = best_trial(trials, maximize=spec.maximize)
    reason, failure = _completion_reason(planner), _all_failed(trials)
    if failure is not None:
        reason = ALL_FAILED
    already = events and events[-1]["event"] == Event.JOB_COMPLETED.value
    if not already or events[-1].get("reason") != reason:
        ledger.append(
            Event.JOB_COMPLETED,
            reason=reason,
            failure_reason=failure,
            best_trial_id=best.trial_id if best else None,
            best_objective=best.objective if best else None,
        )
    return JobResult(job_dir=job_dir.path, reason=reason, trials=trials, best=best, failure=failure)


def _all_failed(trials: dict[str, TrialRecord]) -> str | None:
    """Why the job failed, when every trial that finished failed; else None."""
    finished = [t for t in trials.values() if t.finished]
    if not finished or any(t.state is not TrialState.FAILED for t in finished):
        return None
    reasons = Counter((t.reason or "no reason recorded").split("\n", 1)[0] for t in finished)
    common, count = reasons.most_common(1)[0]
    return f"all {len(finished)} trials failed; the most common reason ({count} of them): {common}"
