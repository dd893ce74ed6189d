"""Replaying a learning-curve table as parallel, asynchronous trials with their real costs.

``workers`` trials run at once. A trial of configuration ``c`` finishes epoch ``e`` at its
start time plus the measured seconds of ``c``'s first ``e`` epochs; each epoch's accuracy
is reported to the method the moment it is "measured" (events in time order), and the
method says whether the trial goes on. A worker whose trial ends (stopped, or at
``max_epochs``) asks the method for the next configuration at once, so every suggestion
sees the trials still running elsewhere, exactly as in a real asynchronous job. Searcher
time is not simulated: the table's seconds are training time only.

The run ends when the epochs trained by all trials together reach ``budget_epochs`` or
when ``max_trials`` trials have been started and finished. The trace records, after every
report, the cumulative epochs, the cumulative training seconds (what GPU-hours measure) and
the best accuracy reported so far by any trial at any epoch.

A method is anything with ``suggest(trial_id) -> levels | None``,
``report(trial_id, epoch, accuracy) -> bool`` (True: go on) and
``finish(trial_id, epoch, accuracy, stopped)``; see ``methods.py``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from table import CurveTable


class Method(Protocol):
    def suggest(self, trial_id: str) -> dict[str, int] | None: ...

    def report(self, trial_id: str, epoch: int, accuracy: float) -> bool: ...

    def finish(self, trial_id: str, epoch: int, accuracy: float, stopped: bool) -> None: ...


@dataclass
class Trace:
    """Cumulative epochs, training seconds and best accuracy so far, after each report."""

    epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    trials: int = 0
    stopped: int = 0
    rows: list[int] = field(default_factory=list)

    def compact(self) -> dict[str, list]:
        """Only the reports that improved the best (plus the last): enough to plot."""
        keep = [i for i in range(len(self.best)) if i == 0 or self.best[i] > self.best[i - 1]]
        if self.best and keep[-1] != len(self.best) - 1:
            keep.append(len(self.best) - 1)
        return {
            "epochs": [self.epochs[i] for i in keep],
            "seconds": [round(self.seconds[i], 3) for i in keep],
            "best": [self.best[i] for i in keep],
            "total_epochs": self.epochs[-1] if self.epochs else 0,
            "trials": self.trials,
            "stopped": self.stopped,
            "distinct_configs": len(set(self.rows)),
        }


def simulate(
    table: CurveTable,
    method: Method,
    *,
    workers: int,
    budget_epochs: int,
    max_trials: int | None = None,
) -> Trace:
    """Run ``method`` on ``table`` with ``workers`` parallel trials; see the module docstring."""
    trace = Trace()
    events: list[tuple[float, int, str, int]] = []  # (time, tie-break, trial, epoch)
    rows: dict[str, int] = {}
    order = 0
    epochs_used = 0
    seconds_used = 0.0
    best = -np.inf
    started = 0

    def start(now: float) -> bool:
        nonlocal order, started
        if max_trials is not None and started >= max_trials:
            return False
        trial_id = f"t{started}"
        levels = method.suggest(trial_id)
        if levels is None:
            return False
        started += 1
        rows[trial_id] = row = table.row(levels)
        trace.rows.append(row)
        heapq.heappush(events, (now + table.seconds[row, 0], order, trial_id, 1))
        order += 1
        return True

    for _ in range(workers):
        if not start(0.0):
            break
    while events and epochs_used < budget_epochs:
        now, _, trial_id, epoch = heapq.heappop(events)
        row = rows[trial_id]
        accuracy = float(table.accuracy[row, epoch - 1])
        epochs_used += 1
        seconds_used += float(table.seconds[row, epoch - 1])
        best = max(best, accuracy)
        trace.epochs.append(epochs_used)
        trace.seconds.append(seconds_used)
        trace.best.append(best)
        go_on = method.report(trial_id, epoch, accuracy)
        if go_on and epoch < table.max_epochs:
            heapq.heappush(events, (now + table.seconds[row, epoch], order, trial_id, epoch + 1))
            order += 1
            continue
        trace.trials += 1
        trace.stopped += epoch < table.max_epochs
        method.finish(trial_id, epoch, accuracy, stopped=epoch < table.max_epochs)
        if epochs_used < budget_epochs:
            start(now)
    return trace
