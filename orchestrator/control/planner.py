"""Which trial runs next, and what happens when one ends — the job's bookkeeping, without Ray.

The planner owns the searcher, the ledger and the searcher-state file of one job, and keeps
them consistent in an order that survives a crash at any point:

* start:  searcher.suggest -> save searcher state -> ledger `trial_started`
* finish: ledger `trial_completed` -> searcher.observe -> save searcher state

So the ledger never names a trial the saved searcher does not know, and a completion the
searcher missed is replayed from the ledger on resume (`resume()`).

Order of work: retries of failed attempts first, then trials left running by an earlier driver,
then new suggestions until `max_jobs` trials exist. A trial id is `trial-NNNN`, never reused.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from orchestrator.control.suggest_ahead import SuggestAhead
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialEnd, TrialState
from search import Searcher

log = logging.getLogger(__name__)

INTERRUPTED_REASON = "the driver stopped before this attempt finished; restarted on resume"


@dataclass(frozen=True)
class TrialAssignment:
    """One attempt of one trial: what the trainable runs."""

    trial_id: str
    attempt: int
    hyperparameters: dict[str, Any]


class TrialPlanner:
    """Hands out trial assignments and records their ends; see the module docstring."""

    def __init__(
        self,
        *,
        searcher: Searcher,
        ledger: Ledger,
        job_dir: JobDir,
        max_jobs: int,
        max_parallel_jobs: int,
        max_retry_attempts: int = 0,
    ) -> None:
        # Every suggestion goes through suggest-ahead, which computes the next one in the
        # background when waiting for it would cost the trials more than computing it early.
        self.searcher = SuggestAhead(
            searcher,
            successor=functools.partial(next_trial_name, max_jobs=max_jobs),
            max_parallel_jobs=max_parallel_jobs,
        )
        self.ledger = ledger
        self.job_dir = job_dir
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.max_retry_attempts = max_retry_attempts
        self.running: dict[str, TrialAssignment] = {}
        self.suggest_seconds: list[float] = []
        self._queued: deque[TrialAssignment] = deque()
        self._attempts: dict[str, int] = {}
        self._retries_used: dict[str, int] = {}
        self._trial_count = 0
        self._finished: set[str] = set()
        self._exhausted = False
        self.stop_reason: str | None = None
        self.fatal_error: OSError | None = None  # the job directory could not be written

    # -- resume -------------------------------------------------------------------------
    def resume(self) -> None:
        """Reconcile searcher and ledger; queue the trials an earlier driver left running."""
        events = self.ledger.events()
        trials = summarize_trials(events)
        for event in events:
            is_completion = event["event"] == Event.TRIAL_COMPLETED.value
            if is_completion and event.get("will_retry") and not event.get("interrupted"):
                tid = event["trial_id"]
                self._retries_used[tid] = self._retries_used.get(tid, 0) + 1
        pending = dict(self.searcher.pending)
        for trial_id, record in trials.items():
            self._attempts[trial_id] = record.attempts
            if record.state.finished:
                self._finished.add(trial_id)
                if trial_id in pending:  # the crash came between ledger and searcher
                    self.searcher.observe(trial_id, _observable(record.state, record.objective))
                continue
            if trial_id not in pending and trial_id not in self.searcher.observations:
                log.warning("trial %s is in the ledger but not in the searcher state", trial_id)
            if not record.will_retry:  # the attempt was cut off by the driver's death
                self.ledger.append(
                    Event.TRIAL_COMPLETED,
                    trial_id=trial_id,
                    attempt=record.attempts,
                    status=TrialState.FAILED.value,
                    objective=None,
                    reason=INTERRUPTED_REASON,
                    retryable=True,
                    will_retry=True,
                    interrupted=True,
                )
            self._queued.append(
                TrialAssignment(
                    trial_id=trial_id,
                    attempt=record.attempts + 1,
                    hyperparameters=dict(record.config),
                )
            )
        for trial_id in list(self.searcher.pending):
            if trial_id not in trials:  # suggested, never recorded as started
                self.searcher.forget(trial_id)
        known = list(trials) + list(self.searcher.observations)
        self._trial_count = max((_trial_number(t) for t in known), default=0)
        self._save_state()

    # -- starting trials --------------------------------------------------------------------
    def next_trial(self) -> TrialAssignment | None:
        """The next attempt to start now, or None (slots full, or nothing left to start)."""
        if len(self.running) >= self.max_parallel_jobs:
            return None
        if self._queued:
            assignment = self._queued.popleft()
        elif self.stop_reason is None and not self._exhausted and self._trial_count < self.max_jobs:
            assignment = self._suggest_new()
            if assignment is None:
                return None
        else:
            return None
        self._attempts[assignment.trial_id] = assignment.attempt
        self.running[assignment.trial_id] = assignment
        self.ledger.append(
            Event.TRIAL_STARTED,
            trial_id=assignment.trial_id,
            attempt=assignment.attempt,
            config=assignment.hyperparameters,
        )
        return assignment

    def _suggest_new(self) -> TrialAssignment | None:
        trial_id = trial_name(self._trial_count + 1)
        started = time.perf_counter()
        config = self.searcher.suggest(trial_id)
        self.suggest_seconds.append(time.perf_counter() - started)
        if config is None:
            log.info("the search space is exhausted after %d trials", self._trial_count)
            self._exhausted = True
            return None
        self._trial_count += 1
        self._save_state()
        return TrialAssignment(trial_id=trial_id, attempt=1, hyperparameters=dict(config))

    # -- progress and ends --------------------------------------------------------------------
    def record_result(
        self, trial_id: str, *, metric: str, value: float, step: int, node_id: str | None = None
    ) -> None:
        assignment = self.running.get(trial_id)
        if assignment is None:
            return
        self.ledger.append(
            Event.TRIAL_RESULT,
            trial_id=trial_id,
            attempt=assignment.attempt,
            metric=metric,
            value=value if math.isfinite(value) else None,
            step=step,
            node_id=node_id,
        )

    def record_end(self, trial_id: str, end: TrialEnd) -> bool:
        """Record an attempt's end; returns True when the trial will be retried."""
        assignment = self.running.pop(trial_id, None)
        if assignment is None:
            log.warning("ignoring the end of %s, which is not running", trial_id)
            return False
        used = self._retries_used.get(trial_id, 0)
        will_retry = (
            end.state is TrialState.FAILED and end.retryable and used < self.max_retry_attempts
        )
        self.ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=trial_id,
            attempt=assignment.attempt,
            status=end.state.value,
            objective=end.objective,
            reason=end.reason,
            retryable=end.retryable,
            cause=end.cause.value,
            will_retry=will_retry,
            exit_code=end.exit_code,
            signal=end.signal,
            duration_s=end.duration_s,
            node_id=end.node_id,
        )
        if will_retry:
            self._retries_used[trial_id] = used + 1
            self._queued.append(
                TrialAssignment(
                    trial_id=trial_id,
                    attempt=assignment.attempt + 1,
                    hyperparameters=assignment.hyperparameters,
                )
            )
            return True
        self._finished.add(trial_id)
        self.searcher.observe(trial_id, _observable(end.state, end.objective))
        self._save_state()
        return False

    def stop_new_trials(self, reason: str) -> None:
        """A completion criterion fired: start nothing new (queued retries are dropped too)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._queued.clear()

    @property
    def finished_count(self) -> int:
        return len(self._finished)

    @property
    def done(self) -> bool:
        """Nothing is running and nothing more will be started."""
        if self.running or (self._queued and self.stop_reason is None):
            return False
        return self.stop_reason is not None or self._exhausted or self._trial_count >= self.max_jobs

    def close(self) -> None:
        """End of a driver run: drop a suggestion computed ahead for a trial that will not
        start (see `suggest_ahead`) and save the searcher state."""
        self.searcher.close()
        self._save_state()

    def _save_state(self) -> None:
        self.job_dir.save_searcher_state(self.searcher.state_dict())


def _observable(state: TrialState, objective: float | None) -> float | None:
    """What the searcher learns: the objective of completed and stopped trials, else nothing."""
    if state in (TrialState.COMPLETED, TrialState.STOPPED) and objective is not None:
        return objective if math.isfinite(objective) else None
    return None


def trial_name(number: int) -> str:
    return f"trial-{number:04d}"


def next_trial_name(trial_id: str, max_jobs: int | None = None) -> str | None:
    """The id the planner gives the trial after `trial_id`; None past `max_jobs` trials."""
    number = _trial_number(trial_id) + 1
    return None if max_jobs is not None and number > max_jobs else trial_name(number)


def _trial_number(trial_id: str) -> int:
    match = re.fullmatch(r"trial-(\d+)", trial_id)
    return int(match.group(1)) if match else 0
