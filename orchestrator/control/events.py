"""What listeners (the exporter, the progress display, job control) hear about trials.

The Tune adapter turns Ray's callbacks into these events after the planner has recorded them;
each kind has its own typed payload, so a listener matches on the type, not on strings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from orchestrator.trial.outcome import TrialEnd


class TrialEventKind(enum.Enum):
    STARTED = "started"
    PROGRESS = "progress"
    FINISHED = "finished"


@dataclass(frozen=True)
class TrialEvent:
    """Something happened to trial `trial_id`; the subclass says what, with its own payload."""

    kind: ClassVar[TrialEventKind]
    trial_id: str


@dataclass(frozen=True)
class TrialStarted(TrialEvent):
    """An attempt of a trial got its resources and began running."""

    kind = TrialEventKind.STARTED


@dataclass(frozen=True)
class TrialProgress(TrialEvent):
    """A running trial reported its objective for the `epoch`-th time."""

    kind = TrialEventKind.PROGRESS
    objective: float
    epoch: int


@dataclass(frozen=True)
class TrialFinished(TrialEvent):
    """An attempt ended and its end is recorded; with `will_retry` another attempt follows."""

    kind = TrialEventKind.FINISHED
    end: TrialEnd
    will_retry: bool


Listener = Callable[[TrialEvent], None]
