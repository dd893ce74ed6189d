"""The one read model of a job directory: its spec, its trials, its status and its best trial.

`openamt status|best|export|report`, `describe()`, `analytics()` and the warm start of a child job
all read a job through `load_job_view`, so they cannot disagree. It only reads files, so it works
on running, stopped and finished jobs alike, from any process. A job started by
`HyperparameterTuner.fit(wait=False)` has a `job.yaml` before its driver writes `spec.yaml`;
either one is enough to read the job.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import OpenAMTError
from orchestrator.store.driver import running_driver_pid
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, last_job_event, read_events
from orchestrator.store.records import TrialRecord, best_trial, summarize_trials
from orchestrator.trial.outcome import EndCause, TrialState
from search import ObjectiveType
from search.enums import find_member


class TuningJobStatus(str, enum.Enum):
    """SageMaker's `HyperParameterTuningJobStatus` values that apply to an openamt job."""

    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    STOPPED = "Stopped"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobView:
    """A snapshot of a job directory."""

    path: Path
    spec: dict[str, Any]
    events: list[dict[str, Any]]
    trials: dict[str, TrialRecord]
    driver_pid: int | None

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.path.name))

    @property
    def objective_type(self) -> ObjectiveType:
        value = self.spec.get("objective_type", ObjectiveType.MAXIMIZE.value)
        return find_member(ObjectiveType, value) or ObjectiveType.MAXIMIZE

    @property
    def maximize(self) -> bool:
        return self.objective_type is ObjectiveType.MAXIMIZE

    @property
    def objective_metric_name(self) -> str:
        return str(self.spec.get("objective_metric_name", "objective"))

    @property
    def tuned_names(self) -> list[str]:
        return list((self.spec.get("hyperparameter_ranges") or {}).keys())

    @property
    def best(self) -> TrialRecord | None:
        return best_trial(self.trials, maximize=self.maximize)

    @property
    def driver_running(self) -> bool:
        return self.driver_pid is not None

    @property
    def last_job_event(self) -> dict[str, Any] | None:
        return last_job_event(self.events)

    @property
    def completion(self) -> dict[str, Any] | None:
        """The `job_completed` event of the latest run, if that run finished the job."""
        last = self.last_job_event
        return last if last is not None and last["event"] == Event.JOB_COMPLETED.value else None

    @property
    def status(self) -> TuningJobStatus:
        """InProgress while a driver runs it; else how the last run ended. A run that recorded no
        end (its driver died) is Failed: its `driver.log` says why, and rerunning resumes it."""
        if self.driver_running:
            return TuningJobStatus.IN_PROGRESS
        if self.completion is not None:
            failed = self.completion.get("failure_reason")
            return TuningJobStatus.FAILED if failed else TuningJobStatus.COMPLETED
        last = self.last_job_event
        if last is not None and last["event"] == Event.JOB_INTERRUPTED.value:
            return TuningJobStatus.STOPPED
        return TuningJobStatus.FAILED

    @property
    def status_text(self) -> str:
        """The status in words, with what to do next."""
        status = self.status
        if status is TuningJobStatus.IN_PROGRESS:
            return f"running (driver pid {self.driver_pid})"
        if status is TuningJobStatus.COMPLETED:
            return f"finished ({self.completion['reason']})"  # type: ignore[index]
        if status is TuningJobStatus.STOPPED:
            return "stopped; rerun `openamt tune` with the same job file to resume"
        if self.completion is not None:
            return f"failed: {self.completion.get('failure_reason')}"
        if not self.events:
            return "not started: no driver ran it yet"
        return "its driver ended without finishing the job; rerun the same command to resume"

    @property
    def failure_reason(self) -> str | None:
        """Why the job failed, when its status is Failed."""
        if self.status is not TuningJobStatus.FAILED:
            return None
        if self.completion is not None:
            return str(self.completion.get("failure_reason"))
        return (
            "the driver stopped without recording the end of the job; see driver.log in the "
            "job directory. Rerunning the job resumes it."
        )


def load_job_view(path: str | Path) -> JobView:
    """Read a job directory; a clear error if it is not one."""
    job_dir = JobDir(path=Path(path))
    spec = read_spec(job_dir)
    events = read_events(job_dir.ledger_path)
    trials = summarize_trials(events, objective_metric_name=spec.get("objective_metric_name"))
    driver_pid = running_driver_pid(job_dir, events=events)
    if driver_pid is None:
        trials = {trial_id: _as_left_by_a_dead_driver(t) for trial_id, t in trials.items()}
    return JobView(
        path=job_dir.path, spec=spec, events=events, trials=trials, driver_pid=driver_pid
    )


def _as_left_by_a_dead_driver(record: TrialRecord) -> TrialRecord:
    """With no driver, nothing runs: a trial the record still has running was cut off (its
    driver was killed) and is shown stopped, to run again when the job resumes."""
    if record.state is not TrialState.RUNNING:
        return record
    return replace(
        record,
        state=TrialState.STOPPED,
        cause=EndCause.INTERRUPTED,
        resume=True,
        reason="its driver ended while it ran; it runs again when the job is resumed",
    )


def read_spec(job_dir: JobDir) -> dict[str, Any]:
    """The job's spec as recorded: `spec.yaml` once a driver ran, else the waiting `job.yaml`."""
    for path in (job_dir.spec_path, job_dir.job_file):
        if not path.exists():
            continue
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise OpenAMTError(f"{path} cannot be read: {error}") from None
        if not isinstance(spec, dict):
            raise OpenAMTError(f"{path} must hold a mapping (the job spec)")
        return spec
    if not job_dir.path.is_dir():
        raise OpenAMTError(f"job directory {job_dir.path} does not exist")
    raise OpenAMTError(
        f"{job_dir.path} is not an openamt job directory (it has no {job_dir.spec_path.name}); "
        "pass the directory `openamt tune` printed (output_path/name)"
    )
