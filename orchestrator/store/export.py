"""One row per trial, from the read model: the CSV of `openamt export --csv`."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from typing import IO, Any

from orchestrator.store.view import JobView
from orchestrator.trial.outcome import TrialState

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


def trial_rows(view: JobView) -> Iterable[dict[str, Any]]:
    """One flat row per trial, in trial order, with a column per tuned hyperparameter."""
    for record in view.trials.values():
        row: dict[str, Any] = {
            "trial_id": record.trial_id,
            "status": record.state.value,
            "objective": record.objective,
            "failure_reason": record.reason if record.state is TrialState.FAILED else None,
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
