"""The job ledger: an append-only JSONL file of trial events, the job's source of truth.

Every event is one JSON object on one line, flushed and fsync'd before the call returns, so a
crash loses at most the line being written. Reading tolerates exactly that: a final line with no
newline (a torn write) is dropped with a warning; damage anywhere else refuses to load, because
silently skipping finished trials would repeat them.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import ResumeError

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.jsonl"


class Event(str, enum.Enum):
    """Kinds of ledger lines."""

    JOB_STARTED = "job_started"
    TRIAL_STARTED = "trial_started"
    TRIAL_RESULT = "trial_result"
    TRIAL_COMPLETED = "trial_completed"
    JOB_COMPLETED = "job_completed"
    JOB_INTERRUPTED = "job_interrupted"


class TrialState(str, enum.Enum):
    """A trial's state as the ledger knows it (the last attempt wins)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        """Completed and early-stopped trials count towards `max_jobs`; failed ones do too."""
        return self is not TrialState.RUNNING


class LedgerCorruptError(ResumeError):
    """The ledger has a damaged line before its end; resuming over it could repeat trials."""


class Ledger:
    """Appends events to `<job_dir>/ledger.jsonl`; one writer (the driver) per job."""

    def __init__(self, *, job_dir: Path) -> None:
        self.path = Path(job_dir) / LEDGER_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def append(self, event: Event, **fields: Any) -> dict[str, Any]:
        """Write one event durably and return it as written."""
        record = {"event": event.value, "time": time.time(), **fields}
        line = json.dumps(record, allow_nan=False, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def events(self) -> list[dict[str, Any]]:
        """All complete events in order."""
        return read_events(self.path)

    def _repair_torn_tail(self) -> None:
        """Cut a torn final line so the next append starts on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning(
            "ledger %s ends with a torn line (%d bytes, a crash during a write); dropping it",
            self.path,
            len(data) - keep,
        )
        with open(self.path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())


def read_events(path: Path) -> list[dict[str, Any]]:
    """Parse a ledger file; a torn last line is ignored, damage elsewhere raises."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_text(encoding="utf-8", errors="replace")
    lines = raw.split("\n")
    torn_tail = lines.pop()  # "" when the file ends with a newline
    if torn_tail:
        log.warning("ignoring torn last line of %s: %.80r", path, torn_tail)
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise LedgerCorruptError(
                f"{path}: line {number} is not valid JSON ({error.msg}); the ledger is damaged "
                "before its end. Refusing to resume over it: restore the file or move the job "
                "directory aside to start afresh."
            ) from error
        if not isinstance(record, dict) or "event" not in record:
            raise LedgerCorruptError(f"{path}: line {number} is not a ledger event: {line[:80]!r}")
        events.append(record)
    return events


@dataclass
class TrialRecord:
    """One trial folded from its events; `attempts` counts starts (retries add one)."""

    trial_id: str
    config: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    objective: float | None = None
    reason: str | None = None
    attempts: int = 0
    start_time: float | None = None
    end_time: float | None = None
    node_id: str | None = None
    will_retry: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)  # objective (step, value)

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


def summarize_trials(
    events: Iterable[Mapping[str, Any]], *, objective_metric_name: str | None = None
) -> dict[str, TrialRecord]:
    """Fold events into one record per trial, in order of first start.

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
            record.history = []
        elif kind == Event.TRIAL_RESULT.value and trial_id in trials:
            trials[trial_id].node_id = event.get("node_id") or trials[trial_id].node_id
            if objective_metric_name is None or event.get("metric") == objective_metric_name:
                trials[trial_id].history.append((event["step"], event["value"]))
        elif kind == Event.TRIAL_COMPLETED.value and trial_id in trials:
            record = trials[trial_id]
            record.will_retry = bool(event.get("will_retry"))
            record.reason = event.get("reason")
            record.end_time = event["time"]
            record.objective = event.get("objective")
            record.node_id = event.get("node_id") or record.node_id
            record.state = TrialState.RUNNING if record.will_retry else TrialState(event["status"])
    return trials


def best_trial(trials: Mapping[str, TrialRecord], *, maximize: bool) -> TrialRecord | None:
    """The finished trial with the best objective (stopped trials count with their last value)."""
    scored = [
        t
        for t in trials.values()
        if t.state in (TrialState.COMPLETED, TrialState.STOPPED) and t.objective is not None
    ]
    if not scored:
        return None
    return (max if maximize else min)(scored, key=lambda t: t.objective)
