"""The Ray Tune function trainables: one trial attempt of a script or of a Python function.

They run on whatever node Ray placed the trial. A script trial starts the trainer as a subprocess
(`orchestrator.trial.process`); a function trial calls the function in this worker
(`orchestrator.trial.function`). Both report to Tune once per objective value, so schedulers and
dashboards see progress, and end with one final report: the attempt's `TrialEnd`.
"""

from __future__ import annotations

import json
import math
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

from orchestrator.errors import OpenAMTError
from orchestrator.spec import MetricDefinition
from orchestrator.spec.schema import DEFAULT_GRACE_PERIOD_S, DEFAULT_MAX_LOG_BYTES
from orchestrator.store.job_dir import JobDir, write_atomic
from orchestrator.store.stop_requests import StopWatcher
from orchestrator.trial.function import (
    TUNE_STOPPED,
    FunctionLaunch,
    Recorder,
    TrainerFunction,
    TrialStopped,
)
from orchestrator.trial.outcome import (
    ATTEMPT_KEY,
    EPOCH_KEY,
    NODE_KEY,
    EndCause,
    StopRequest,
    TrialEnd,
    TrialState,
)
from orchestrator.trial.process import run_trial_process
from orchestrator.trial.script_env import build_argv, build_training_env
from orchestrator.trial.supervisors import WORKER_POOL

#: A trainer may print metrics faster than anyone can use them; Tune (and so the ledger and the
#: stopping rules) gets at most one report per trial this often, each with the latest value and
#: the exact step.
MIN_REPORT_INTERVAL_S = 0.1


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
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    num_cpus: float = 1.0
    num_gpus: float = 0.0


def run_script_trial(config: dict[str, Any], launch: TrialLaunch) -> None:
    """Tune entry point: run one attempt of `config["trial_id"]` and report its end."""
    node_id = ray.get_runtime_context().get_node_id()
    reporter = _Reporter(attempt=config["attempt"], node_id=node_id)
    try:
        end = _run_script_attempt(config, launch, reporter)
    except (OpenAMTError, OSError) as error:  # openamt's failure, not the trainer's
        end = TrialEnd(
            state=TrialState.FAILED,
            objective=None,
            reason=f"openamt could not run the trial: {error}",
            cause=EndCause.OPENAMT,
        )
    reporter.flush()
    if reporter.stopped_by_tune is not None:
        return  # Tune has ended the trial already: it takes no final report (it would block)
    _report_end(replace(end, node_id=node_id))


def _run_script_attempt(
    config: dict[str, Any], launch: TrialLaunch, reporter: _Reporter
) -> TrialEnd:
    trial_id: str = config["trial_id"]
    attempt: int = config["attempt"]
    hyperparameters: dict[str, Any] = config["hyperparameters"]
    trial_files = JobDir(path=Path(launch.job_dir)).trial_files(trial_id)
    files = trial_files.attempt(attempt)
    files.create()
    write_atomic(trial_files.hyperparameters, json.dumps(hyperparameters, indent=2))

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
    stop_watcher = StopWatcher(files)

    def on_metric(name: str, value: float, step: int) -> None:
        reporter.offer(name, value, step, objective=name == launch.objective_metric_name)

    def stop_requested() -> StopRequest | None:
        return reporter.stopped_by_tune or stop_watcher()

    return run_trial_process(
        argv=build_argv(launch.command, hyperparameters),
        cwd=Path(launch.working_dir),
        env=env,
        log_path=files.log,
        metric_definitions=launch.metric_definitions,
        objective_metric_name=launch.objective_metric_name,
        on_metric=on_metric,
        on_tick=reporter.tick,
        max_runtime_s=launch.max_runtime_s,
        grace_period_s=launch.grace_period_s,
        stop_requested=stop_requested,
        max_log_bytes=launch.max_log_bytes,
        supervisors=WORKER_POOL,  # the next trial's supervisor starts while this one runs
    )


class _Reporter:
    """Sends a trial's progress to Tune, at most every `MIN_REPORT_INTERVAL_S`.

    If Tune itself ends the trial while it reports (Ray's own scheduler), the report call
    raises SystemExit in this thread; that becomes a stop request, so the trainer still gets
    SIGTERM and its grace period instead of dying with the thread.
    """

    def __init__(
        self, *, attempt: int, node_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fixed = {ATTEMPT_KEY: attempt, NODE_KEY: node_id}
        self._clock = clock
        self._latest: dict[str, float] = {}
        self._pending: dict[str, Any] | None = None
        self._sent_at = -math.inf
        self.stopped_by_tune: StopRequest | None = None

    def offer(self, name: str, value: float, step: int, *, objective: bool) -> None:
        self._latest[name] = value
        if objective:
            self._pending = {**self._latest, EPOCH_KEY: step, **self._fixed}
            self.tick()

    def tick(self) -> None:
        if self._pending is not None and self._clock() - self._sent_at >= MIN_REPORT_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Send the pending report now (before the final one, so schedulers see it)."""
        if self._pending is None or self.stopped_by_tune is not None:
            return
        report, self._pending = self._pending, None
        self._sent_at = self._clock()
        try:
            tune.report(report)
        except SystemExit:
            self.stopped_by_tune = TUNE_STOPPED


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
    attempt: int = config["attempt"]
    hyperparameters: dict[str, Any] = dict(config["hyperparameters"])
    trial_files = JobDir(path=Path(launch.job_dir)).trial_files(trial_id)
    files = trial_files.attempt(attempt)
    files.create()
    write_atomic(trial_files.hyperparameters, json.dumps(hyperparameters, indent=2))
    stop_watcher = StopWatcher(files)

    with open(files.log, "a", encoding="utf-8") as log:
        recorder = Recorder(
            log=log,
            objective_metric_name=launch.objective_metric_name,
            on_objective=lambda latest, epoch: tune.report(
                {**latest, EPOCH_KEY: epoch, ATTEMPT_KEY: attempt}
            ),
            stop_requested=stop_watcher,
        )
        started = time.monotonic()
        error: BaseException | None = None
        try:
            fn(hyperparameters, recorder.report)
        except TrialStopped as stopped:
            error = stopped
            log.write(f"==== openamt: {stopped.request.reason} ====\n")
            if stopped.request is TUNE_STOPPED:
                return  # Tune has ended the trial already: it takes no final report
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
