"""Which trial runs next, and what happens when one ends — the job's bookkeeping, without Ray.

The planner owns the searcher, the ledger and the searcher-state file of one job, and keeps
them consistent in an order that survives a crash at any point:

* assign: searcher.suggest -> save searcher state          (nothing in the ledger yet)
* start:  ledger `trial_started`, once the trial has its resources and runs
* finish: ledger `trial_completed` -> searcher.observe -> save searcher state

The ledger is written at once; the searcher state is written by a background thread, newest
first (`LatestStateWriter`), so the saved state may lag the ledger by the last changes. Resume
reconciles the two from the ledger: a started trial the saved searcher never heard of is
adopted with its recorded configuration, a completion it missed is replayed, and a suggestion
that never got to run is forgotten. Every end of an attempt is recorded once (`record_end`),
whoever ended it.

Order of work: retries of failed attempts first, then trials an earlier driver left unfinished,
then new suggestions until `max_jobs` trials exist. A trial id is `trial-NNNN`, never reused.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.control.suggest_ahead import SuggestAhead
from orchestrator.errors import OpenAMTError
from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from orchestrator.store.records import TrialRecord, summarize_trials
from orchestrator.store.state_writer import LatestStateWriter
from orchestrator.store.stop_requests import request_stop
from orchestrator.trial.outcome import EndCause, StopRequest, TrialEnd, TrialState
from search import Searcher

log = logging.getLogger(__name__)

INTERRUPTED_REASON = "the driver stopped before this attempt finished; restarted on resume"
#: A trial whose attempts were cut off this often by the driver's own death is not restarted:
#: it may be what takes the driver down.
MAX_CRASHED_ATTEMPTS = 3


class TrialInfrastructureError(OpenAMTError):
    """openamt could not run a trial (its log cannot be written, its environment not built)."""


@dataclass(frozen=True)
class TrialAssignment:
    """One attempt of one trial: what the trainable runs."""

    trial_id: str
    attempt: int
    hyperparameters: dict[str, Any]


class TrialPlanner:
    """Hands out trial assignments and records their starts and ends; see the module docstring.

    `capacity()` says how many trials the cluster can hold at once right now; the planner never
    lets more than that wait for resources, so the searcher's pending points are trials that
    run (or are about to), not a queue the cluster cannot serve.
    """

    def __init__(
        self,
        *,
        searcher: Searcher,
        ledger: Ledger,
        job_dir: JobDir,
        max_jobs: int,
        max_parallel_jobs: int,
        max_retry_attempts: int = 0,
        capacity: Callable[[], int] | None = None,
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
        self._state_writer = LatestStateWriter(job_dir.save_searcher_state)
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.max_retry_attempts = max_retry_attempts
        self.capacity = capacity
        self.assigned: dict[str, TrialAssignment] = {}  # handed out, waiting for resources
        self.running: dict[str, TrialAssignment] = {}
        self.stopping: dict[str, StopRequest] = {}
        self.suggest_seconds: list[float] = []
        self._last_objective: dict[str, float] = {}
        self._queued: deque[TrialAssignment] = deque()
        self._retries_used: dict[str, int] = {}
        self._trial_count = 0
        self._finished: set[str] = set()
        self._exhausted = False
        self.stop_reason: str | None = None
        self.job_stop: StopRequest | None = None
        self.fatal_error: Exception | None = None  # openamt itself cannot go on

    # -- resume ---------------------------------------------------------------------------------
    def resume(self) -> None:
        """Reconcile searcher and ledger; queue the trials an earlier driver left unfinished."""
        events = self.ledger.events()
        trials = summarize_trials(events)
        for event in events:
            is_completion = event["event"] == Event.TRIAL_COMPLETED.value
            if is_completion and event.get("will_retry") and not event.get("interrupted"):
                tid = event["trial_id"]
                self._retries_used[tid] = self._retries_used.get(tid, 0) + 1
        pending, observed = dict(self.searcher.pending), set(self.searcher.observations)
        for trial_id, record in trials.items():
            if trial_id not in pending and trial_id not in observed:
                # suggested and started, but the driver died before the state was written
                self.searcher.adopt(trial_id, record.config)
                pending[trial_id] = record.config
            if record.finished:
                self._finished.add(trial_id)
                if trial_id in pending:  # the crash came between ledger and searcher
                    self.searcher.observe(trial_id, _observable(record.state, record.objective))
                continue
            if record.state is TrialState.RUNNING and not record.will_retry:
                self._record_crash(record)  # the attempt was cut off by the driver's death
                if record.crashes + 1 >= MAX_CRASHED_ATTEMPTS:
                    self._give_up(record)
                    continue
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
        self.flush_state()  # the job directory has a searcher state before any trial

    def _record_crash(self, record: TrialRecord) -> None:
        self.ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=record.trial_id,
            attempt=record.attempts,
            status=TrialState.STOPPED.value,
            objective=None,
            reason=INTERRUPTED_REASON,
            cause=EndCause.INTERRUPTED.value,
            retryable=False,
            will_retry=False,
            resume=True,
            crashed=True,
        )

    def _give_up(self, record: TrialRecord) -> None:
        reason = (
            f"the driver died {record.crashes + 1} times while this trial ran; it is not "
            "restarted again (it may be what takes the driver down: see its log)"
        )
        self.ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=record.trial_id,
            attempt=record.attempts,
            status=TrialState.FAILED.value,
            objective=None,
            reason=reason,
            cause=EndCause.TRAINER.value,
            retryable=False,
            will_retry=False,
        )
        self._finished.add(record.trial_id)
        if record.trial_id in self.searcher.pending:
            self.searcher.observe(record.trial_id, None)

    # -- starting trials ------------------------------------------------------------------------
    def next_trial(self) -> TrialAssignment | None:
        """The next attempt to hand to Ray now, or None (slots full, or nothing to start)."""
        if self.stop_reason is not None or self.fatal_error is not None:
            return None
        if len(self.running) + len(self.assigned) >= self.max_parallel_jobs:
            return None
        free = None if self.capacity is None else max(1, self.capacity() - len(self.running))
        if free is not None and len(self.assigned) >= free:
            return None  # the cluster cannot run more now: do not make them pending points
        if self._queued:
            assignment = self._queued.popleft()
        elif not self._exhausted and self._trial_count < self.max_jobs:
            assignment = self._suggest_new()
            if assignment is None:
                return None
        else:
            return None
        self.assigned[assignment.trial_id] = assignment
        return assignment

    def trial_started(self, trial_id: str, *, node_id: str | None = None) -> None:
        """The attempt got its resources and runs: record the start; fence off older attempts.
        One that gets its resources only after the job began to stop is told to stop at once
        and never enters the record (it did nothing)."""
        assignment = self.assigned.get(trial_id)
        if assignment is None:
            return
        if self.job_stop is not None:
            attempt_files = self.job_dir.trial_files(trial_id).attempt(assignment.attempt)
            request_stop(attempt_files, self.job_stop)
            return
        del self.assigned[trial_id]
        self.running[trial_id] = assignment
        self.ledger.append(
            Event.TRIAL_STARTED,
            trial_id=trial_id,
            attempt=assignment.attempt,
            config=assignment.hyperparameters,
            node_id=node_id,
        )
        trial_files = self.job_dir.trial_files(trial_id)
        for older in range(1, assignment.attempt):
            request_stop(
                trial_files.attempt(older),
                StopRequest(reason=f"superseded by attempt {assignment.attempt}"),
            )

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

    # -- progress and stops ---------------------------------------------------------------------
    def record_result(
        self,
        trial_id: str,
        *,
        attempt: int | None,
        metric: str,
        value: float,
        step: int,
        node_id: str | None = None,
    ) -> None:
        """A running attempt reported; a straggler from an earlier attempt is ignored."""
        assignment = self.running.get(trial_id)
        if assignment is None or (attempt is not None and attempt != assignment.attempt):
            return
        finite = math.isfinite(value)
        if finite:
            self._last_objective[trial_id] = value
        self.ledger.append(
            Event.TRIAL_RESULT,
            trial_id=trial_id,
            attempt=assignment.attempt,
            metric=metric,
            value=value if finite else None,
            step=step,
            node_id=node_id,
        )

    def request_stop(self, trial_id: str, request: StopRequest) -> None:
        """Ask a running attempt to stop gracefully (once); its end is recorded when it ends."""
        assignment = self.running.get(trial_id)
        if assignment is None or trial_id in self.stopping:
            return
        self.stopping[trial_id] = request
        request_stop(self.job_dir.trial_files(trial_id).attempt(assignment.attempt), request)

    def stop_job(self, reason: str, request: StopRequest) -> None:
        """Start nothing new and ask every running attempt to stop."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.job_stop = request
            self._queued.clear()
        for trial_id in list(self.running):
            self.request_stop(trial_id, request)

    # -- ends -----------------------------------------------------------------------------------
    def record_end(self, trial_id: str, end: TrialEnd) -> bool:
        """Record an attempt's end, once; returns True when the trial will be retried.

        An attempt the job's interruption ended, or that openamt itself failed, says nothing
        about its hyperparameters: it is not observed and runs again when the job resumes
        (`resume` in the ledger), as does a retryable failure while the job is interrupted."""
        if trial_id in self.assigned:  # ended before it was recorded as started
            if self.job_stop is not None:
                return False  # it began after the job stopped: it never enters the record
            self.trial_started(trial_id)
        assignment = self.running.pop(trial_id, None)
        if assignment is None:
            log.warning("ignoring the end of %s, which is not running", trial_id)
            return False
        self.stopping.pop(trial_id, None)
        self._last_objective.pop(trial_id, None)
        used = self._retries_used.get(trial_id, 0)
        retries_left = end.retryable and used < self.max_retry_attempts
        interrupted = self.job_stop is not None and self.job_stop.cause is EndCause.INTERRUPTED
        will_retry = retries_left and self.stop_reason is None
        resume = end.cause in (EndCause.INTERRUPTED, EndCause.OPENAMT) or (
            retries_left and interrupted
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
            resume=resume,
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
        if end.cause is EndCause.OPENAMT and self.fatal_error is None:
            self.fatal_error = TrialInfrastructureError(f"{trial_id}: {end.reason}")
        if resume:
            return False
        self._finished.add(trial_id)
        self.searcher.observe(trial_id, _observable(end.state, end.objective))
        self._save_state()
        return False

    def end_unfinished(self, request: StopRequest) -> list[tuple[str, TrialEnd]]:
        """Record as stopped the attempts still running when Ray has let go of them (they did
        not stop within the grace period, or the driver itself was interrupted)."""
        ended = []
        for trial_id in list(self.running):
            reason = self.stopping.get(trial_id, request).reason
            end = TrialEnd(
                state=TrialState.STOPPED,
                objective=self._last_objective.get(trial_id),
                reason=f"{reason}; the driver ended it before it finished stopping",
                cause=self.stopping.get(trial_id, request).cause,
            )
            self.record_end(trial_id, end)
            ended.append((trial_id, end))
        return ended

    @property
    def finished_count(self) -> int:
        return len(self._finished)

    @property
    def done(self) -> bool:
        """Nothing is running or waiting, and nothing more will be started."""
        if self.running:
            return False
        if self.stop_reason is not None or self.fatal_error is not None:
            return True  # trials still waiting for resources will never start
        if self.assigned:
            return False
        return not self._queued and (self._exhausted or self._trial_count >= self.max_jobs)

    def close(self) -> None:
        """End of a driver run: forget suggestions that never ran (handed out but never given
        resources, or computed ahead) and save the searcher state."""
        self.searcher.close()
        for assignment in self.assigned.values():
            if assignment.attempt == 1:  # a new suggestion; later attempts run on resume
                self.searcher.forget(assignment.trial_id)
        self.assigned.clear()
        self._save_state()
        self._state_writer.close()

    def flush_state(self) -> None:
        """Return once the searcher state on disk is the newest one (see the module docstring)."""
        self._state_writer.flush()

    def _save_state(self) -> None:
        self._state_writer.submit(self.searcher.state_dict())


def _observable(state: TrialState, objective: float | None) -> float | None:
    """What the searcher learns: the objective of completed and stopped trials, else nothing."""
    if state.scored and objective is not None:
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
