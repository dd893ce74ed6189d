"""One training job (SageMaker's `_TrainingJob`, an estimator's `latest_training_job`).

A training job is one trial: the only trial of an `Estimator.fit` job directory, or one trial of
a tuning job. Everything is read from the job directory (`load_job_view`, the trial's files), so
a training job can be followed from any process: its status, its log (streamed by `wait()`),
`describe()` in SageMaker's `DescribeTrainingJob` form, and its model directory.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from orchestrator.api.driver import TuningJob
from orchestrator.sagemaker import jobs
from orchestrator.sagemaker.exceptions import UnexpectedStatusException
from orchestrator.sagemaker.s3 import to_s3_uri
from orchestrator.sagemaker.script_runner import PLATFORM_PREFIX
from orchestrator.spec import MetricDefinition
from orchestrator.store.analytics import TRAINING_JOB_STATUS, metric_series, utc_datetime
from orchestrator.store.job_dir import JobDir
from orchestrator.store.records import TrialRecord
from orchestrator.store.stop_requests import request_stop
from orchestrator.store.view import JobView
from orchestrator.trial.outcome import StopRequest, TrialState

POLL_INTERVAL_S = 0.5
#: The objective of an `Estimator.fit` job: the runner's line after the script exits 0.
EXIT_METRIC = "openamt:training-script-exit-status"
IN_PROGRESS = "InProgress"
#: Statuses `wait()` returns on (SageMaker's, for training jobs); Failed raises.
DONE_STATUSES = ("Completed", "Stopped")


class TrainingJob:
    """A training job found by `jobs.find_training_job` (or just started by `fit`)."""

    def __init__(self, ref: jobs.TrainingJobRef, *, tuning_job: TuningJob | None = None) -> None:
        """`tuning_job` is the job's driver handle when this process started it."""
        self.name = ref.name
        self.job_dir = ref.job_dir
        self._trial_id = ref.trial_id
        self._job = tuning_job or TuningJob(job_dir=ref.job_dir)

    # -- state -----------------------------------------------------------------------------------
    def view(self) -> JobView:
        return self._job.view()

    @property
    def trial_id(self) -> str | None:
        """The trial this job is (None until a `fit` job's trial has started)."""
        if self._trial_id is None:
            self._trial_id = next(iter(self.view().trials), None)
        return self._trial_id

    def trial(self, view: JobView | None = None) -> TrialRecord | None:
        view = view or self.view()
        return view.trials.get(self.trial_id) if self.trial_id is not None else None

    def status(self, view: JobView | None = None) -> str:
        """SageMaker's `TrainingJobStatus`: InProgress, Completed, Failed or Stopped."""
        view = view or self.view()
        record = self.trial(view)
        if record is None:
            return IN_PROGRESS if view.driver_running else "Failed"
        return TRAINING_JOB_STATUS[record.state]

    @property
    def model_dir(self) -> Path | None:
        """The model directory of the trial's latest attempt (SM_MODEL_DIR)."""
        if self.trial_id is None:
            return None
        files = JobDir(path=self.job_dir).trial_files(self.trial_id)
        attempts = files.attempts()
        return files.attempt(attempts[-1]).model_dir if attempts else None

    @property
    def model_data(self) -> str | None:
        """Where the model is: an `s3://` URI inside the S3 mirror, else the directory's path.
        Not compressed (SageMaker's `disable_output_compression=True`)."""
        directory = self.model_dir
        if directory is None:
            return None
        return to_s3_uri(directory) or str(directory)

    # -- following -------------------------------------------------------------------------------
    def wait(self, logs: str | bool = "All") -> dict[str, Any]:
        """Block until the job is done, printing its log unless `logs` is "None" or False;
        returns `describe()`. Raises `UnexpectedStatusException` if it Failed."""
        follower = LogFollower(self) if logs not in ("None", False, None) else None
        while self.status() == IN_PROGRESS:
            if follower is not None:
                follower.poll()
            time.sleep(POLL_INTERVAL_S)
        if follower is not None:
            follower.poll()
        return self.check_status()

    def check_status(self) -> dict[str, Any]:
        description = self.describe()
        status = description["TrainingJobStatus"]
        if status not in DONE_STATUSES:
            reason = description.get("FailureReason") or "no reason recorded"
            raise UnexpectedStatusException(
                f"Error for Training job {self.name}: {status}. Reason: {reason}",
                allowed_statuses=DONE_STATUSES,
                actual_status=status,
            )
        return description

    def stop(self) -> None:
        """Stop the job gracefully: a `fit` job's driver, or this trial of a tuning job (the
        tuning job goes on)."""
        view = self.view()
        if jobs.is_training_job(view):
            self._job.stop()
            return
        record = self.trial(view)
        if record is None or record.state is not TrialState.RUNNING:
            return
        files = JobDir(path=self.job_dir).trial_files(record.trial_id)
        attempt = files.attempts()[-1] if files.attempts() else record.attempts
        request_stop(files.attempt(attempt), StopRequest(reason="stopped by StopTrainingJob"))

    # -- reading ---------------------------------------------------------------------------------
    def metric_definitions(self, view: JobView | None = None) -> list[MetricDefinition]:
        """The job's metric definitions but the `fit` runner's own."""
        view = view or self.view()
        return [
            MetricDefinition.model_validate(d)
            for d in view.spec.get("metric_definitions") or []
            if d.get("Name") != EXIT_METRIC
        ]

    def describe(self) -> dict[str, Any]:
        """The job as SageMaker's `DescribeTrainingJob` shows it (times are UTC datetimes)."""
        view = self.view()
        spec, recorded = view.spec, jobs.record(view)
        record = self.trial(view)
        status = self.status(view)
        definitions = self.metric_definitions(view)
        config = record.config if record is not None else {}
        hyperparameters = {
            str(k): str(v)
            for k, v in {**(spec.get("hyperparameters") or {}), **config}.items()
            if not str(k).startswith(PLATFORM_PREFIX)
        }
        arguments = (recorded.get("estimator") or {}).get("arguments") or {}
        description: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobStatus": status,
            "HyperParameters": hyperparameters,
            "AlgorithmSpecification": {
                "TrainingImage": arguments.get("image_uri"),
                "TrainingInputMode": arguments.get("input_mode", "File"),
                "MetricDefinitions": [d.model_dump(by_alias=True) for d in definitions],
            },
            "RoleArn": arguments.get("role"),
            "ResourceConfig": {
                "InstanceType": arguments.get("instance_type"),
                "InstanceCount": 1,
                "VolumeSizeInGB": arguments.get("volume_size", 30),
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": spec.get("max_runtime_in_seconds")},
            "ModelArtifacts": {"S3ModelArtifacts": self.model_data},
            "JobDirectory": str(self.job_dir),
            "RecordedSettings": recorded.get("recorded", {}),
        }
        if not jobs.is_training_job(view):
            description["TuningJobName"] = view.name
        if record is not None:
            description["TrainingStartTime"] = utc_datetime(record.start_time)
            description["TrainingEndTime"] = utc_datetime(record.end_time)
            if record.duration_s is not None:
                description["TrainingTimeInSeconds"] = int(round(record.duration_s))
            if record.state is TrialState.FAILED:
                description["FailureReason"] = record.reason
            series = metric_series(self.job_dir, record.trial_id, definitions)
            description["FinalMetricDataList"] = [
                {"MetricName": name, "Value": values[-1]}
                for name, values in series.items()
                if values
            ]
        elif status == "Failed":
            description["FailureReason"] = view.failure_reason
        return description


class LogFollower:
    """Prints a training job's log as it grows, attempt after attempt (a retry's log follows
    the failed attempt's under a header)."""

    def __init__(self, job: TrainingJob, *, out: TextIO | None = None) -> None:
        self._job = job
        self._out = out
        self._offsets: dict[int, int] = {}

    def poll(self) -> None:
        trial_id = self._job.trial_id
        if trial_id is None:
            return
        files = JobDir(path=self._job.job_dir).trial_files(trial_id)
        out = self._out or sys.stdout
        for attempt in files.attempts():
            log = files.attempt(attempt).log
            if attempt not in self._offsets:
                self._offsets[attempt] = 0
                if attempt > 1:
                    out.write(f"--- {self._job.name}: attempt {attempt} ---\n")
            try:
                with open(log, "rb") as handle:
                    handle.seek(self._offsets[attempt])
                    data = handle.read()
            except FileNotFoundError:
                continue
            if data:
                self._offsets[attempt] += len(data)
                out.write(data.decode("utf-8", errors="replace"))
        out.flush()


class BackgroundFollower:
    """A `LogFollower` in a thread, for the length of a `fit` that blocks this one."""

    def __init__(self, job: TrainingJob) -> None:
        self._follower = LogFollower(job)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openamt-log", daemon=True)

    def __enter__(self) -> BackgroundFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)
        self._follower.poll()

    def _run(self) -> None:
        while not self._done.wait(POLL_INTERVAL_S):
            self._follower.poll()
