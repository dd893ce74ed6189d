"""SageMaker's `HyperparameterTuningJobAnalytics` and `TrainingJobAnalytics`, by job name.

Both read the job directory through the one read model, as the native analytics does
(`orchestrator.store.analytics`); the tuning job's table is the native table with training jobs
named `<tuning job>-<trial id>`, which `TrainingJobAnalytics` and `Estimator.attach` accept.

`TrainingJobAnalytics(name).dataframe()` has SageMaker's columns `timestamp`, `metric_name`,
`value`: every value each metric took, read from the trial's log with the job's regexes. A log
has no clock, so `timestamp` counts a metric's reports (1, 2, ...) rather than seconds.
`start_time`, `end_time` and `period` (CloudWatch's) are accepted and do not apply.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from orchestrator.sagemaker import jobs
from orchestrator.sagemaker.session import Session
from orchestrator.store import analytics as native
from orchestrator.store.view import JobView, load_job_view

if TYPE_CHECKING:
    import pandas as pd


class HyperparameterTuningJobAnalytics(native.HyperparameterTuningJobAnalytics):
    """A tuning job's trials as SageMaker's table, by job name (or job directory)."""

    def __init__(
        self, hyperparameter_tuning_job_name: str | os.PathLike[str], sagemaker_session: Any = None
    ) -> None:
        session = sagemaker_session or Session()
        super().__init__(jobs.find_job_dir(hyperparameter_tuning_job_name, session))
        self._tuning_job_name = load_job_view(self.job_dir).name

    def _training_job_name(self, view: JobView, trial_id: str) -> str:
        return jobs.training_job_name(view, trial_id)

    @property
    def name(self) -> str:
        return self._tuning_job_name

    def __repr__(self) -> str:
        return f"<orchestrator.sagemaker.HyperparameterTuningJobAnalytics for {self.name}>"

    def description(self, force_refresh: bool = False) -> dict[str, Any]:
        """SageMaker's `DescribeHyperParameterTuningJob` response."""
        return describe_tuning_job(load_job_view(self.job_dir))

    def training_job_summaries(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        """SageMaker's `ListTrainingJobsForHyperParameterTuningJob` summaries."""
        view = load_job_view(self.job_dir)
        namer = functools.partial(jobs.training_job_name, view)
        return [native.training_job_summary(view, t, namer) for t in view.trials.values()]

    def export_csv(self, filename: str | os.PathLike[str]) -> None:
        self.dataframe().to_csv(filename)


def describe_tuning_job(view: JobView) -> dict[str, Any]:
    """The native description, training jobs named as this package names them."""
    namer = functools.partial(jobs.training_job_name, view)
    description = native.describe_job(view, training_job_name=namer)
    description["RecordedSettings"] = jobs.record(view).get("recorded", {})
    return description


class TrainingJobAnalytics:
    """One training job's metrics over time (see the module docstring)."""

    CLOUDWATCH_NAMESPACE = "/aws/sagemaker/TrainingJobs"

    def __init__(
        self,
        training_job_name: str,
        metric_names: list[str] | None = None,
        sagemaker_session: Any = None,
        start_time: Any = None,
        end_time: Any = None,
        period: int | None = None,
    ) -> None:
        from orchestrator.sagemaker.training_job import TrainingJob

        session = sagemaker_session or Session()
        self._job = TrainingJob(jobs.find_training_job(training_job_name, session))
        self._training_job_name = training_job_name
        self._metric_names = list(metric_names) if metric_names else None
        self._dataframe: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self._training_job_name

    def __repr__(self) -> str:
        return f"<orchestrator.sagemaker.TrainingJobAnalytics for {self.name}>"

    def clear_cache(self) -> None:
        self._dataframe = None

    def dataframe(self, force_refresh: bool = False) -> pd.DataFrame:
        """Rows of (`timestamp`, `metric_name`, `value`), metric by metric."""
        import pandas as pd

        if self._dataframe is None or force_refresh:
            definitions = self._job.metric_definitions()
            if self._metric_names is not None:
                definitions = [d for d in definitions if d.name in self._metric_names]
            trial_id = self._job.trial_id
            series = (
                native.metric_series(self._job.job_dir, trial_id, definitions)
                if trial_id is not None
                else {}
            )
            rows = [
                {"timestamp": float(step), "metric_name": name, "value": value}
                for name, values in series.items()
                for step, value in enumerate(values, start=1)
            ]
            self._dataframe = pd.DataFrame(rows, columns=["timestamp", "metric_name", "value"])
        return self._dataframe

    def export_csv(self, filename: str | os.PathLike[str]) -> None:
        self.dataframe().to_csv(filename)
