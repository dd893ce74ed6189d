"""SageMaker's early-stopping rule (`early_stopping_type: Auto`), independent of Ray.

After each epoch a trial reports, compare its objective with the running averages of earlier
finished trials at the same epoch: the running average of trial j at epoch e is the mean of
its objective over epochs 1..e. If the value is worse than the median of those averages, stop
the trial. The rule needs at least `min_reference_trials` finished trials that reached epoch e,
so the first trials of a job always run to the end. Stopped trials count as finished with their
last value (SageMaker marks them "Stopped").
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Mapping

from orchestrator.store.records import TrialRecord

MIN_REFERENCE_TRIALS = 3


class MedianStoppingRule:
    """Decides, per reported epoch, whether a trial is worse than the median so far.

    Epochs may arrive with gaps (a trainer that reports faster than the driver records is
    sampled): a reference curve's running average at epoch e averages the values it reported at
    epochs up to e, and counts once the reference reached e.
    """

    def __init__(self, *, maximize: bool, min_reference_trials: int = MIN_REFERENCE_TRIALS) -> None:
        self.maximize = maximize
        self.min_reference_trials = min_reference_trials
        self._running: dict[str, list[tuple[int, float]]] = {}  # trial -> (epoch, value)
        self._reference: dict[str, _Curve] = {}  # finished trials

    def restore(self, trials: Mapping[str, TrialRecord]) -> None:
        """Rebuild the reference curves of finished trials from the ledger."""
        for record in trials.values():
            points = [(step, value) for step, value in record.history if _finite(value)]
            if record.finished and points:
                self._reference[record.trial_id] = _Curve(sorted(points))

    def record(self, trial_id: str, *, epoch: int, value: float) -> bool:
        """Record an epoch's value; True when the trial should stop now."""
        if not _finite(value):
            return False
        curve = self._running.setdefault(trial_id, [])
        if curve and epoch <= curve[-1][0]:  # a retry starts over; out-of-order steps reset too
            curve.clear()
        curve.append((epoch, value))
        references = [c.average_at(epoch) for c in self._reference.values() if c.covers(epoch)]
        if len(references) < self.min_reference_trials:
            return False
        median = statistics.median(references)
        return value < median if self.maximize else value > median

    def finish(self, trial_id: str) -> None:
        """A trial ended (completed or stopped): its curve becomes a reference."""
        curve = self._running.pop(trial_id, None)
        if curve:
            self._reference[trial_id] = _Curve(curve)

    def discard(self, trial_id: str) -> None:
        """A failed attempt: nothing to learn from its partial curve."""
        self._running.pop(trial_id, None)


class _Curve:
    """A finished trial's reported values by epoch, and their running averages."""

    def __init__(self, points: list[tuple[int, float]]) -> None:
        self._epochs = [epoch for epoch, _ in points]
        totals, total = [], 0.0
        for index, (_, value) in enumerate(points, start=1):
            total += value
            totals.append(total / index)
        self._averages = totals

    def covers(self, epoch: int) -> bool:
        """Whether the trial reported at or before `epoch` and ran at least that long."""
        return self._epochs[0] <= epoch <= self._epochs[-1]

    def average_at(self, epoch: int) -> float:
        """The mean of the values reported at epochs up to `epoch`."""
        return self._averages[bisect.bisect_right(self._epochs, epoch) - 1]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
