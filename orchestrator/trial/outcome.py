"""How a trial stands and how an attempt ended: the one state enum and the one end record.

`TrialState` is what the ledger, the exporter, `status`, `describe()`, the CSV and the report all
show. `TrialEnd` is what one attempt produced; the trainable sends it to the driver as the last
Tune result (`to_result`), and the driver reads it back (`from_result`), so the protocol between
the two sides is this dataclass, not a set of hand-built dictionary keys.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: A Tune result carrying this key is an attempt's final report (see `TrialEnd.to_result`).
FINAL_KEY = "openamt_final"
#: How many objective values the trainer had reported: the step schedulers see.
EPOCH_KEY = "epoch"
#: The Ray node the attempt ran on.
NODE_KEY = "openamt_node_id"
#: Which attempt of the trial reported (a straggler from an earlier attempt is ignored).
ATTEMPT_KEY = "openamt_attempt"
_END_PREFIX = "openamt_end_"


class TrialState(str, enum.Enum):
    """A trial's state; the values are SageMaker's training-job statuses (last attempt wins)."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        """Completed, stopped and failed trials all count towards `max_jobs`."""
        return self is not TrialState.RUNNING

    @property
    def scored(self) -> bool:
        """Whether a trial in this state counts with its objective (best trial, searcher)."""
        return self in (TrialState.COMPLETED, TrialState.STOPPED)


class EndCause(str, enum.Enum):
    """Who ended an attempt, which decides whether it is retried and what the job does next."""

    TRAINER = "trainer"  # the trainer exited (0 or not) or printed no objective: final
    TUNER = "tuner"  # openamt stopped it (early stopping, completion, job stop): final
    INTERRUPTED = "interrupted"  # the job was interrupted (Ctrl-C, SIGTERM): rerun on resume
    EXTERNAL = "external"  # killed from outside (signal, node or worker lost): retryable
    OPENAMT = "openamt"  # openamt itself failed (cannot write the log, ...): stops the job


@dataclass(frozen=True)
class StopRequest:
    """The driver asks a running attempt to stop: SIGTERM, a grace period, then SIGKILL."""

    reason: str
    cause: EndCause = EndCause.TUNER


@dataclass(frozen=True)
class TrialEnd:
    """How one attempt ended.

    `objective` is the last value the trainer reported for the objective metric (SageMaker's
    `FinalObjectiveValue`); None when the attempt failed or reported no finite value. `metrics`
    holds the last value of every metric; `epochs` how many objective values were reported.
    """

    state: TrialState
    objective: float | None
    reason: str | None = None
    cause: EndCause = EndCause.TRAINER
    exit_code: int | None = None
    signal: str | None = None
    duration_s: float | None = None
    node_id: str | None = None
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        """Something outside the trainer ended it: the same hyperparameters may succeed."""
        return self.cause is EndCause.EXTERNAL

    def to_result(self) -> dict[str, Any]:
        """The Tune result that carries this end: the last metrics plus the end's fields."""
        record = asdict(self)
        record["state"] = self.state.value
        record["cause"] = self.cause.value
        ended = {f"{_END_PREFIX}{name}": value for name, value in record.items()}
        return {**self.metrics, **ended, EPOCH_KEY: self.epochs, NODE_KEY: self.node_id,
                FINAL_KEY: True}  # fmt: skip

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> TrialEnd | None:
        """The end carried by a Tune result, or None when the result is not a final report."""
        if not result.get(FINAL_KEY):
            return None
        values = {f.name: result.get(f"{_END_PREFIX}{f.name}") for f in fields(cls)}
        metrics = {str(name): float(value) for name, value in (values["metrics"] or {}).items()}
        objective = values["objective"]
        return cls(
            state=TrialState(values["state"]),
            objective=float(objective) if _finite(objective) else None,
            reason=values["reason"],
            cause=EndCause(values["cause"]),
            exit_code=values["exit_code"],
            signal=values["signal"],
            duration_s=values["duration_s"],
            node_id=values["node_id"],
            epochs=int(values["epochs"] or 0),
            metrics=metrics,
        )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
