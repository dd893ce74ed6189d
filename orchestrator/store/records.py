"""Trials folded from the ledger's events: one record per trial, the last attempt winning.

Everything that shows trials (status, describe(), analytics, the CSV, the report, the exporter
on resume) folds the same events with `summarize_trials`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.store.ledger import Event
from orchestrator.trial.outcome import EndCause, TrialState


@dataclass
class TrialRecord:
    """One trial folded from its events; `attempts` counts starts (retries add one), `crashes`
    the attempts cut off because the driver itself died."""

    trial_id: str
    config: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    objective: float | None = None
    reason: str | None = None
    cause: EndCause | None = None
    attempts: int = 0
    crashes: int = 0
    start_time: float | None = None
    end_time: float | None = None
    node_id: str | None = None
    will_retry: bool = False
    resume: bool = False  # its last end asks the next driver run to start it again
    history: list[tuple[int, float]] = field(default_factory=list)  # objective (step, value)

    @property
    def resumable(self) -> bool:
        """Whether a rerun of the job starts this trial again rather than keeping its end."""
        return self.state is TrialState.RUNNING or self.resume

    @property
    def finished(self) -> bool:
        """Whether the trial has its final end (it counts towards `max_jobs`)."""
        return not self.resumable

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


def summarize_trials(
    events: Iterable[Mapping[str, Any]], *, objective_metric_name: str | None = None
) -> dict[str, TrialRecord]:
    """Fold events into one record per trial, in trial order (`trial-0002` before `trial-0010`,
    whichever got its resources first).

    A trial whose last attempt ended with `will_retry` stays RUNNING: another attempt follows.
    `history` keeps the objective's reports of the latest attempt only, since a retry starts over.
    """
    trials: dict[str, TrialRecord] = {}
    for event in events:
        kind = event.get("event")
        trial_id = event.get("trial_id")
        if kind == Event.TRIAL_STARTED.value:
            record = trials.get(trial_id)
            if record is None:
                record = trials[trial_id] = TrialRecord(trial_id=trial_id, config=event["config"])
                record.start_time = event["time"]
            record.state = TrialState.RUNNING
            record.attempts += 1
            record.node_id = event.get("node_id")
            record.end_time = None
            record.will_retry = False
            record.resume = False
            record.history = []
        elif kind == Event.TRIAL_RESULT.value and trial_id in trials:
            trials[trial_id].node_id = event.get("node_id") or trials[trial_id].node_id
            is_objective = objective_metric_name in (None, event.get("metric"))
            if is_objective and event.get("value") is not None:  # NaN and inf are stored as null
                trials[trial_id].history.append((event["step"], event["value"]))
        elif kind == Event.TRIAL_COMPLETED.value and trial_id in trials:
            record = trials[trial_id]
            record.will_retry = bool(event.get("will_retry"))
            record.reason = event.get("reason")
            record.cause = EndCause(event["cause"]) if event.get("cause") else None
            record.crashes += 1 if event.get("crashed") else 0
            record.resume = bool(event.get("resume"))
            record.end_time = event["time"]
            record.objective = event.get("objective")
            record.node_id = event.get("node_id") or record.node_id
            record.state = TrialState.RUNNING if record.will_retry else TrialState(event["status"])
    return dict(sorted(trials.items(), key=lambda item: _trial_order(item[0])))


def _trial_order(trial_id: str) -> tuple[int, str]:
    number = trial_id.rsplit("-", 1)[-1]
    return (int(number), trial_id) if number.isdigit() else (-1, trial_id)


def best_trial(trials: Mapping[str, TrialRecord], *, maximize: bool) -> TrialRecord | None:
    """The finished trial with the best objective (stopped trials count with their last value)."""
    scored = [
        t for t in trials.values() if t.state.scored and t.finished and t.objective is not None
    ]
    if not scored:
        return None
    return (max if maximize else min)(scored, key=lambda t: t.objective)
