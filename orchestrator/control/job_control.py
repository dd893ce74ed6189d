"""Early stopping, completion criteria and job stops for a running job, without Ray.

`JobControl` is a listener (see `orchestrator.control.events`) that also answers the two questions
Ray Tune's stopper asks: should this trial stop after this result, and may the whole experiment
end now. It never lets Ray end a trial: a trial that should stop gets a stop request (SIGTERM,
a grace period, SIGKILL of its tree) and ends by itself; a job that should stop first stops
every running trial that way, and lets Ray go only once they have all ended, or once the grace
period is over.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

from orchestrator.control.completion import CompletionRules
from orchestrator.control.early_stopping import MedianStoppingRule
from orchestrator.control.events import TrialEvent, TrialFinished
from orchestrator.control.planner import TrialPlanner
from orchestrator.store.records import TrialRecord
from orchestrator.trial.outcome import EndCause, StopRequest, TrialState
from search.errors import TrialStateError
from search.successive_halving import Decision

log = logging.getLogger(__name__)

#: How long after a job stop began the experiment may end with trials still stopping, beyond
#: the trials' own grace period.
STOP_SLACK_S = 30.0


class JobControl:
    """Applies the median stopping rule per epoch and the completion rules per finished trial,
    and carries a job-level stop (completion, runtime, interruption, fatal error) to the end."""

    def __init__(
        self,
        *,
        planner: TrialPlanner,
        rules: CompletionRules,
        median_rule: MedianStoppingRule | None = None,
        grace_period_s: float = 120.0,
        hyperband: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.planner = planner
        self.hyperband = hyperband
        self.rules = rules
        self.median_rule = median_rule
        self.grace_period_s = grace_period_s
        self.clock = clock
        self.started = clock()
        self.interruption: str | None = None  # why the driver was asked to stop
        self._completion: str | None = None
        self._stop_began: float | None = None

    def restore(self, trials: Mapping[str, TrialRecord]) -> None:
        """Replay finished trials from the ledger, in order of completion."""
        finished = sorted(
            (t for t in trials.values() if t.finished), key=lambda t: t.end_time or 0.0
        )
        for record in finished:
            self.rules.observe_finished(
                record.objective if record.state is not TrialState.FAILED else None
            )
        if self.median_rule is not None:
            self.median_rule.restore(trials)
        self._maybe_complete()

    # -- per result -----------------------------------------------------------------------------
    def should_stop_trial(self, trial_id: str, *, epoch: int, value: float) -> StopRequest | None:
        """Called per reported epoch: a stop request when the trial should stop now. A value
        that is not finite never reaches a rule (it neither stops a trial nor moves a median)."""
        if not math.isfinite(value):
            return None
        if self.hyperband:
            return self._successive_halving(trial_id, epoch=epoch, value=value)
        if self.median_rule is None:
            return None
        if not self.median_rule.record(trial_id, epoch=epoch, value=value):
            return None
        log.info("early stopping %s at epoch %d (%.6g below the median)", trial_id, epoch, value)
        return StopRequest(
            reason=f"stopped early: {value:.6g} at epoch {epoch} is worse than the median of "
            "earlier trials (early_stopping_type Auto)"
        )

    def _successive_halving(self, trial_id: str, *, epoch: int, value: float) -> StopRequest | None:
        """Asks the searcher straight away: its `report` never waits for a suggestion being
        computed, whereas asking first whether the trial is pending would (Tune's event loop
        then stalled for seconds per result while a GP was fitted)."""
        if epoch < 1:
            return None
        try:
            decision = self.planner.searcher.report(trial_id, epoch, value)
        except TrialStateError:  # not running in the searcher: already observed or forgotten
            return None
        if decision is not Decision.STOP:
            return None
        log.info("Hyperband stops %s at epoch %d (%.6g)", trial_id, epoch, value)
        return StopRequest(
            reason=f"stopped by Hyperband: {value:.6g} at epoch {epoch} is not among the best "
            "third of the trials at that rung"
        )

    # -- the whole job --------------------------------------------------------------------------
    def interrupt(self, why: str) -> None:
        """The driver got SIGINT or SIGTERM: stop every trial gracefully, stay resumable. A
        second interruption while the first is under way does not wait any more."""
        if self.interruption is not None:
            raise KeyboardInterrupt
        log.warning("%s: stopping the running trials (again to stop at once)", why)
        self.interruption = why

    @property
    def stop_request(self) -> StopRequest | None:
        """What running trials are asked when the job stops, or None while it goes on."""
        if self.interruption is not None:
            return StopRequest(
                reason=f"the job was interrupted ({self.interruption}); the trial runs again "
                "when the job resumes",
                cause=EndCause.INTERRUPTED,
            )
        if self.planner.fatal_error is not None:
            return StopRequest(
                reason=f"openamt stopped the job: {self.planner.fatal_error}",
                cause=EndCause.INTERRUPTED,
            )
        if self._completion is not None:
            return StopRequest(reason=f"the job completed ({self._completion})")
        return None

    def may_end(self) -> bool:
        """Polled by Tune's loop: True once the job is stopping and no trial is left running
        (or the trials' grace period is over)."""
        reason = self.rules.check_time(self.clock() - self.started)
        if reason is not None:
            self._complete(reason)
        request = self.stop_request
        if request is None:
            return False
        if self._stop_began is None:
            self._stop_began = self.clock()
            try:
                self.planner.stop_job(self._completion or "Interrupted", request)
            except OSError as error:  # cannot even write the stop requests: end at once
                self.planner.fatal_error = self.planner.fatal_error or error
                return True
        if not self.planner.running:
            return True
        return self.clock() - self._stop_began > self.grace_period_s + STOP_SLACK_S

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
        if end.cause in (EndCause.INTERRUPTED, EndCause.OPENAMT):
            return  # it runs again when the job resumes: not a finished trial
        objective = end.objective if end.state is not TrialState.FAILED else None
        self.rules.observe_finished(objective)
        self._maybe_complete()

    def _maybe_complete(self) -> None:
        history = self.planner.searcher.telemetry().expected_improvement_history
        reason = self.rules.after_trial([value for _, value in history])
        if reason is not None:
            self._complete(reason)

    def _complete(self, reason: str) -> None:
        if self._completion is None:
            log.info("completion criterion met: %s", reason)
            self._completion = reason
            self.planner.stop_job(reason, StopRequest(reason=f"the job completed ({reason})"))
