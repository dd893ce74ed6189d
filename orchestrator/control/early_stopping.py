"""SageMaker's early-stopping rule (`early_stopping_type: Auto`), independent of Ray.

After each epoch a trial reports, compare its objective with the running averages of earlier
finished trials at the same epoch: the running average of trial j at epoch e is the mean of
its objective over epochs 1..e. If the value is worse than the median of those averages, stop
the trial. The rule needs at least `min_reference_trials` finished trials that reached epoch e,
so the first trials of a job always run to the end. Stopped trials count as finished with their
last value (SageMaker marks them "Stopped").
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from orchestrator.store.records import TrialRecord

MIN_REFERENCE_TRIALS = 3


class MedianStoppingRule:
    """Decides, per reported epoch, whether a trial is worse than the median so far."""

    def __init__(self, *, maximize: bool, min_reference_trials: int = MIN_REFERENCE_TRIALS) -> None:
        self.maximize = maximize
        self.min_reference_trials = min_reference_trials
        self._running: dict[str, list[float]] = {}  # trial -> objective per epoch (1-based)
        self._reference: dict[str, list[float]] = {}  # finished trials: running averages

    def restore(self, trials: Mapping[str, TrialRecord]) -> None:
        """Rebuild the reference curves of finished trials from the ledger."""
        for record in trials.values():
            if record.state.finished and record.history:
                self._reference[record.trial_id] = _running_averages(
                    [value for _, value in sorted(record.history)]
                )

    def record(self, trial_id: str, *, epoch: int, value: float) -> bool:
        """Record an epoch's value; True when the trial should stop now."""
        curve = self._running.setdefault(trial_id, [])
        if epoch != len(curve) + 1:  # a retry starts over; out-of-order steps reset too
            curve.clear()
            if epoch != 1:
                return False
        curve.append(value)
        references = [c[epoch - 1] for c in self._reference.values() if len(c) >= epoch]
        if len(references) < self.min_reference_trials:
            return False
        median = statistics.median(references)
        return value < median if self.maximize else value > median

    def finish(self, trial_id: str) -> None:
        """A trial ended (completed or stopped): its curve becomes a reference."""
        curve = self._running.pop(trial_id, None)
        if curve:
            self._reference[trial_id] = _running_averages(curve)

    def discard(self, trial_id: str) -> None:
        """A failed attempt: nothing to learn from its partial curve."""
        self._running.pop(trial_id, None)


def _running_averages(values: list[float]) -> list[float]:
    total, averages = 0.0, []
    for index, value in enumerate(values, start=1):
        total += value
        averages.append(total / index)
    return averages
