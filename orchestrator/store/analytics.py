"""A tuning job read back the way SageMaker shows one: `DescribeHyperParameterTuningJob`'s dict
and `HyperparameterTuningJobAnalytics(...).dataframe()`'s table.

    analytics = HyperparameterTuningJobAnalytics("runs/cifar10-bayes")
    df = analytics.dataframe()      # a row per trial, SageMaker's columns
    df.sort_values("FinalObjectiveValue", ascending=False).head()

Everything here renders the one read model (`orchestrator.store.view`), so it agrees with
`openamt status`, the CSV and the report, on running, stopped and finished jobs alike. A
training job's name is its trial id unless the caller names trials otherwise
(`orchestrator.sagemaker` names them `<tuning job>-<trial id>`, resolvable on their own).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.spec import MetricDefinition
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event
from orchestrator.store.records import TrialRecord
from orchestrator.store.view import JobView, TuningJobStatus, load_job_view
from orchestrator.trial.metrics import MetricParser
from orchestrator.trial.outcome import TrialState

#: How trials are named in a description or table: a trial id to a training job name.
Namer = Callable[[str], str]

if TYPE_CHECKING:
    import pandas as pd

#: SageMaker's `TrainingJobStatus` for each trial state.
TRAINING_JOB_STATUS = {
    TrialState.RUNNING: "InProgress",
    TrialState.COMPLETED: "Completed",
    TrialState.FAILED: "Failed",
    TrialState.STOPPED: "Stopped",
}

#: `dataframe()` columns after the tuned hyperparameters (SageMaker's order).
DATAFRAME_COLUMNS = (
    "TrainingJobName",
    "TrainingJobStatus",
    "FinalObjectiveValue",
    "TrainingStartTime",
    "TrainingEndTime",
    "TrainingElapsedTimeSeconds",
)


def _trial_id(trial_id: str) -> str:
    return trial_id


def describe_job(view: JobView, *, training_job_name: Namer = _trial_id) -> dict[str, Any]:
    """The job as SageMaker's `DescribeHyperParameterTuningJob` response shows it, plus
    `JobDirectory` and `CompletionReason` (why the job ended: MaxNumberOfTrainingJobsReached,
    a completion criterion, ...). Times are timezone-aware UTC datetimes, as boto3 returns."""
    spec = view.spec
    status = view.status
    completion = view.completion
    description: dict[str, Any] = {
        "HyperParameterTuningJobName": spec.get("name"),
        "HyperParameterTuningJobStatus": status.value,
        "JobDirectory": str(view.path),
        "HyperParameterTuningJobConfig": {
            "Strategy": spec.get("strategy", "Bayesian"),
            "HyperParameterTuningJobObjective": {
                "Type": view.objective_type.value,
                "MetricName": view.objective_metric_name,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": spec.get("max_jobs"),
                "MaxParallelTrainingJobs": spec.get("max_parallel_jobs", 1),
            },
            "TrainingJobEarlyStoppingType": spec.get("early_stopping_type", "Off"),
        },
        "TrainingJobStatusCounters": _status_counters(view),
        "ObjectiveStatusCounters": _objective_counters(view),
        "CreationTime": utc_datetime(view.events[0]["time"]) if view.events else None,
        "CompletionReason": completion["reason"] if completion else None,
    }
    config = description["HyperParameterTuningJobConfig"]
    if spec.get("random_seed") is not None:
        config["RandomSeed"] = spec["random_seed"]
    max_runtime = (spec.get("completion_criteria") or {}).get("max_runtime_in_seconds")
    if max_runtime is not None:
        config["ResourceLimits"]["MaxRuntimeInSeconds"] = max_runtime
    if spec.get("completion_criteria"):
        config["TuningJobCompletionCriteria"] = _completion_criteria(spec["completion_criteria"])
    warm_start = spec.get("warm_start_config")
    if warm_start:
        description["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": Path(parent).name}
                for parent in warm_start["parent_hyperparameter_tuning_jobs"]
            ],
            "WarmStartType": warm_start["warm_start_type"],
        }
    best = view.best
    if best is not None:
        description["BestTrainingJob"] = training_job_summary(view, best, training_job_name)
    last = view.last_job_event
    if status is not TuningJobStatus.IN_PROGRESS and last is not None:
        description["HyperParameterTuningEndTime"] = utc_datetime(last["time"])
    if status is TuningJobStatus.FAILED:
        description["FailureReason"] = view.failure_reason
    return description


def _completion_criteria(criteria: dict[str, Any]) -> dict[str, Any]:
    """SageMaker's `TuningJobCompletionCriteria` from the job spec's section."""
    shown: dict[str, Any] = {}
    if criteria.get("target_objective_metric_value") is not None:
        shown["TargetObjectiveMetricValue"] = criteria["target_objective_metric_value"]
    not_improving = criteria.get("best_objective_not_improving") or {}
    if not_improving.get("max_number_of_training_jobs_not_improving") is not None:
        shown["BestObjectiveNotImproving"] = {
            "MaxNumberOfTrainingJobsNotImproving": not_improving[
                "max_number_of_training_jobs_not_improving"
            ]
        }
    convergence = criteria.get("convergence_detected") or {}
    if convergence.get("complete_on_convergence") is not None:
        shown["ConvergenceDetected"] = {
            "CompleteOnConvergence": convergence["complete_on_convergence"]
        }
    return shown


def _status_counters(view: JobView) -> dict[str, int]:
    """SageMaker's `TrainingJobStatusCounters`: a retried attempt counts as a RetryableError,
    a trial that failed for good as a NonRetryableError."""
    states = Counter(t.state for t in view.trials.values())
    retried = sum(
        1 for e in view.events if e["event"] == Event.TRIAL_COMPLETED.value and e.get("will_retry")
    )
    return {
        "Completed": states[TrialState.COMPLETED],
        "InProgress": states[TrialState.RUNNING],
        "RetryableError": retried,
        "NonRetryableError": states[TrialState.FAILED],
        "Stopped": states[TrialState.STOPPED],
    }


def _objective_counters(view: JobView) -> dict[str, int]:
    succeeded = pending = failed = 0
    for trial in view.trials.values():
        if trial.state is TrialState.RUNNING:
            pending += 1
        elif trial.objective is not None:
            succeeded += 1
        else:
            failed += 1
    return {"Succeeded": succeeded, "Pending": pending, "Failed": failed}


def training_job_summary(
    view: JobView, trial: TrialRecord, training_job_name: Namer = _trial_id
) -> dict[str, Any]:
    """SageMaker's `HyperParameterTrainingJobSummary` of one trial."""
    return {
        "TrainingJobName": training_job_name(trial.trial_id),
        "TrainingJobStatus": TRAINING_JOB_STATUS[trial.state],
        "TunedHyperParameters": {name: trial.config.get(name) for name in view.tuned_names},
        "FinalHyperParameterTuningJobObjectiveMetric": {
            "Type": view.objective_type.value,
            "MetricName": view.objective_metric_name,
            "Value": trial.objective,
        },
        "TrainingStartTime": utc_datetime(trial.start_time),
        "TrainingEndTime": utc_datetime(trial.end_time),
    }


def utc_datetime(timestamp: float | None) -> dt.datetime | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)


class HyperparameterTuningJobAnalytics:
    """SageMaker's analytics object for one job directory (running or finished)."""

    def __init__(self, job_dir: str | Path) -> None:
        self.job_dir = Path(job_dir)
        self._dataframe: pd.DataFrame | None = None
        load_job_view(self.job_dir)  # fail now, not at the first dataframe(), if it is no job

    def _training_job_name(self, view: JobView, trial_id: str) -> str:
        """How a trial is named in the table (its id; subclasses may qualify it)."""
        return trial_id

    @property
    def name(self) -> str:
        """The tuning job's name."""
        return str(load_job_view(self.job_dir).spec.get("name"))

    @property
    def tuning_ranges(self) -> dict[str, Any]:
        """The tuned hyperparameters' ranges, in the job-file form."""
        return dict(load_job_view(self.job_dir).spec.get("hyperparameter_ranges") or {})

    def dataframe(self, force_refresh: bool = False) -> pd.DataFrame:
        """A row per trial in trial order: one column per tuned hyperparameter, then
        `DATAFRAME_COLUMNS`. Cached like SageMaker's; `force_refresh=True` rereads the job."""
        if self._dataframe is None or force_refresh:
            view = load_job_view(self.job_dir)
            namer = functools.partial(self._training_job_name, view)
            self._dataframe = trials_dataframe(view, training_job_name=namer)
        return self._dataframe

    def clear_cache(self) -> None:
        """Forget the cached table, so the next `dataframe()` rereads the job."""
        self._dataframe = None


def trials_dataframe(view: JobView, *, training_job_name: Namer = _trial_id) -> pd.DataFrame:
    """The `dataframe()` table of a loaded job."""
    import pandas as pd

    rows = []
    for trial in view.trials.values():
        row: dict[str, Any] = {name: trial.config.get(name) for name in view.tuned_names}
        elapsed = trial.duration_s
        row.update(
            {
                "TrainingJobName": training_job_name(trial.trial_id),
                "TrainingJobStatus": TRAINING_JOB_STATUS[trial.state],
                "FinalObjectiveValue": trial.objective,
                "TrainingStartTime": utc_datetime(trial.start_time),
                "TrainingEndTime": utc_datetime(trial.end_time),
                "TrainingElapsedTimeSeconds": elapsed,
            }
        )
        rows.append(row)
    columns = [*view.tuned_names, *DATAFRAME_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("TrainingStartTime", "TrainingEndTime"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ("FinalObjectiveValue", "TrainingElapsedTimeSeconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def metric_series(
    job_dir: str | Path, trial_id: str, definitions: Sequence[MetricDefinition]
) -> dict[str, list[float]]:
    """Every value each metric took in the trial's latest attempt, in the order it was printed,
    read from the attempt's log with the job's parser (so it matches what the trial reported;
    the log keeps its head and tail up to `max_trial_log_bytes`)."""
    trial = JobDir(path=Path(job_dir)).trial_files(trial_id)
    series: dict[str, list[float]] = {definition.name: [] for definition in definitions}
    attempts = trial.attempts()
    if not attempts:
        return series
    parser = MetricParser(definitions=definitions)
    try:
        with open(trial.attempt(attempts[-1]).log, encoding="utf-8", errors="replace") as log:
            for chunk in iter(lambda: log.read(1 << 16), ""):
                for name, value in parser.feed(chunk):
                    series[name].append(value)
    except FileNotFoundError:
        return series
    for name, value in parser.finish():
        series[name].append(value)
    return series
