"""Early stopping and completion criteria for a running job, without Ray.

`JobControl` is a listener (see `orchestrator.control.events`) that also answers the two questions
Ray Tune's stopper asks: should this trial stop after this result, and should everything stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from orchestrator.control.completion import CompletionRules
from orchestrator.control.early_stopping import MedianStoppingRule
from orchestrator.control.events import TrialEvent, TrialFinished
from orchestrator.control.planner import TrialPlanner
from orchestrator.store.records import TrialRecord
from orchestrator.trial.outcome import TrialState

log = logging.getLogger(__name__)


class JobControl:
    """Applies the median stopping rule per epoch and the completion rules per finished trial."""

    def __init__(
        self,
        *,
        planner: TrialPlanner,
        rules: CompletionRules,
        median_rule: MedianStoppingRule | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.planner = planner
        self.rules = rules
        self.median_rule = median_rule
        self.clock = clock
        self.started = clock()
        self.stop_everything = False

    def restore(self, trials: Mapping[str, TrialRecord]) -> None:
        """Replay finished trials from the ledger, in order of completion."""
        finished = sorted(
            (t for t in trials.values() if t.state.finished), key=lambda t: t.end_time or 0.0
        )
        for record in finished:
            self.rules.observe_finished(
                record.objective if record.state is not TrialState.FAILED else None
            )
        if self.median_rule is not None:
            self.median_rule.restore(trials)
        self._maybe_complete()

    def should_stop_trial(self, trial_id: str, *, epoch: int, value: float) -> bool:
        """Called per reported epoch, before the result is recorded."""
        if self.median_rule is None:
            return False
        stop = self.median_rule.record(trial_id, epoch=epoch, value=value)
        if stop:
            log.info(
                "early stopping %s at epoch %d (%.6g below the median)", trial_id, epoch, value
            )
        return stop

    def should_stop_all(self) -> bool:
        """Polled by Tune's loop: the job-level runtime limit, or a criterion already met."""
        reason = self.rules.check_time(self.clock() - self.started)
        if reason is not None:
            self._complete(reason)
        return self.stop_everything

    def listener(self, event: TrialEvent) -> None:
        if not isinstance(event, TrialFinished):
            return
        end, trial_id = event.end, event.trial_id
        if event.will_retry or end.state is TrialState.FAILED:
            if self.median_rule is not None:
                self.median_rule.discard(trial_id)
            if event.will_retry:
                return
        elif self.median_rule is not None:
            self.median_rule.finish(trial_id)
        objective = end.objective if end.state is not TrialState.FAILED else None
        self.rules.observe_finished(objective)
        self._maybe_complete()

    def _maybe_complete(self) -> None:
        history = self.planner.searcher.telemetry().expected_improvement_history
        reason = self.rules.after_trial([value for _, value in history])
        if reason is not None:
            self._complete(reason)

    def _complete(self, reason: str) -> None:
        if self.planner.stop_reason is None:
            log.info("completion criterion met: %s", reason)
        self.planner.stop_new_trials(reason)
        self.stop_everything = True
