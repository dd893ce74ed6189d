"""Read a job directory back: its spec, its trials, the best one, and a CSV of all of them.

Works on running and finished jobs alike, since it only reads the ledger and spec files.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from orchestrator.errors import OpenAMTError
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, TrialRecord, best_trial, read_events, summarize_trials

CSV_FIXED_COLUMNS = (
    "trial_id",
    "status",
    "objective",
    "failure_reason",
    "attempts",
    "start_time",
    "end_time",
    "duration_s",
    "node_id",
)


@dataclass(frozen=True)
class JobView:
    """A snapshot of a job directory."""

    path: Path
    spec: dict[str, Any]
    trials: dict[str, TrialRecord]
    events: list[dict[str, Any]]

    @property
    def maximize(self) -> bool:
        return str(self.spec.get("objective_type", "Maximize")).lower() == "maximize"

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
    def completion(self) -> dict[str, Any] | None:
        """The last `job_completed` event, if the latest run finished."""
        for event in reversed(self.events):
            if event["event"] == Event.JOB_STARTED.value:
                return None
            if event["event"] == Event.JOB_COMPLETED.value:
                return event
        return None


def load_job(path: Path) -> JobView:
    """Load a job directory; a clear error if it is not one."""
    job_dir = JobDir(path=Path(path))
    if not job_dir.spec_path.exists():
        raise OpenAMTError(
            f"{path} is not an openamt job directory (no spec.yaml); "
            "pass the directory `openamt tune` printed (output_path/name)"
        )
    spec = yaml.safe_load(job_dir.spec_path.read_text(encoding="utf-8")) or {}
    events = read_events(job_dir.path / "ledger.jsonl")
    trials = summarize_trials(events, objective_metric_name=spec.get("objective_metric_name"))
    return JobView(path=job_dir.path, spec=spec, trials=trials, events=events)


def trial_rows(view: JobView) -> Iterable[dict[str, Any]]:
    """One flat row per trial, in trial order, with a column per tuned hyperparameter."""
    for record in view.trials.values():
        row: dict[str, Any] = {
            "trial_id": record.trial_id,
            "status": record.state.value,
            "objective": record.objective,
            "failure_reason": record.reason if record.state.value == "Failed" else None,
            "attempts": record.attempts,
            "start_time": _iso(record.start_time),
            "end_time": _iso(record.end_time),
            "duration_s": round(record.duration_s, 3) if record.duration_s is not None else None,
            "node_id": record.node_id,
        }
        for name in view.tuned_names:
            row[name] = record.config.get(name)
        yield row


def write_csv(view: JobView, out: IO[str]) -> int:
    """Write every trial as CSV; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=[*CSV_FIXED_COLUMNS, *view.tuned_names])
    writer.writeheader()
    count = 0
    for row in trial_rows(view):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        count += 1
    return count


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).isoformat(timespec="seconds")
