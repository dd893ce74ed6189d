"""The two places openamt plugs into Ray Tune: a `Searcher` that hands out planned trials, and a
`Callback` that records what happened to them.

Both run in the driver. All bookkeeping lives in `TrialPlanner`; these classes only translate
Ray's trial objects and results into planner calls, so a Ray API change touches this file alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from orchestrator.control.events import (
    Listener,
    TrialEvent,
    TrialFinished,
    TrialProgress,
    TrialStarted,
)
from orchestrator.control.job_control import JobControl
from orchestrator.control.planner import TrialAssignment, TrialPlanner
from orchestrator.trial.outcome import (
    EPOCH_KEY,
    FINAL_KEY,
    NODE_KEY,
    EndCause,
    TrialEnd,
    TrialState,
)

log = logging.getLogger(__name__)


class PlannerSearcher(Searcher):
    """A Ray Tune searcher whose suggestions are the planner's assignments.

    Concurrency is the planner's job (`max_parallel_jobs`), and so is saving state: Ray's
    experiment checkpoint is not used to resume, the job directory is.
    """

    def __init__(self, *, planner: TrialPlanner) -> None:
        super().__init__(metric=None, mode=None)
        self.planner = planner
        self.assignments: dict[str, TrialAssignment] = {}  # Ray trial id -> assignment

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec):
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.planner.fatal_error is not None:
            return Searcher.FINISHED
        try:
            assignment = self.planner.next_trial()
        except OSError as error:  # the job directory cannot be written: stop, stay resumable
            self.planner.fatal_error = error
            return Searcher.FINISHED
        if assignment is None:
            return Searcher.FINISHED if self.planner.done else None
        self.assignments[trial_id] = assignment
        return {
            "trial_id": assignment.trial_id,
            "attempt": assignment.attempt,
            "hyperparameters": assignment.hyperparameters,
        }

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        """Recorded by `PlannerCallback`, which sees Ray's error details."""

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save here: the job directory holds the state."""

    def restore(self, checkpoint_path: str) -> None:
        """Never called: openamt resumes from the job directory, not Ray's checkpoint."""


class PlannerCallback(Callback):
    """Feeds Ray's trial events to the planner and to listeners (metrics, progress display)."""

    def __init__(
        self,
        *,
        planner: TrialPlanner,
        searcher: PlannerSearcher,
        objective_metric_name: str,
        listeners: list[Listener],
    ) -> None:
        self.planner = planner
        self.searcher = searcher
        self.objective_metric_name = objective_metric_name
        self.listeners = listeners

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks with the experiment; listeners (metrics servers, terminals)
        stay behind — only this driver's instance uses them."""
        return {**self.__dict__, "listeners": []}

    def _trial_id(self, trial: Any) -> str | None:
        assignment = self.searcher.assignments.get(trial.trial_id)
        return assignment.trial_id if assignment else None

    def _notify(self, event: TrialEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id:
            self._notify(TrialStarted(trial_id=trial_id))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None or result.get(FINAL_KEY):
            return
        value = result.get(self.objective_metric_name)
        if value is None:
            return
        step = int(result.get(EPOCH_KEY, 0))
        with _fatal_io(self.planner):
            self.planner.record_result(
                trial_id,
                metric=self.objective_metric_name,
                value=float(value),
                step=step,
                node_id=result.get(NODE_KEY),
            )
        self._notify(TrialProgress(trial_id=trial_id, objective=float(value), epoch=step))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None:
            return
        end = _end_from_result(trial.last_result or {}, self.objective_metric_name)
        self._finish(trial_id, end)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None:
            return
        error = trial.get_error()
        message = str(error).strip().splitlines()[-1] if error else "no details from Ray"
        last = trial.last_result or {}
        where = last.get(NODE_KEY) or "an unknown node"
        end = TrialEnd(
            state=TrialState.FAILED,
            objective=None,
            reason=f"the Ray worker running the trial on {where} was lost: {message}",
            cause=EndCause.EXTERNAL,
            node_id=last.get(NODE_KEY),
        )
        self._finish(trial_id, end)

    def _finish(self, trial_id: str, end: TrialEnd) -> None:
        with _fatal_io(self.planner):
            will_retry = self.planner.record_end(trial_id, end)
            self._notify(TrialFinished(trial_id=trial_id, end=end, will_retry=will_retry))


def _end_from_result(result: dict[str, Any], objective_metric_name: str) -> TrialEnd:
    """The trainable's final report, or STOPPED with the last objective if Tune stopped it."""
    reported = TrialEnd.from_result(result)
    if reported is not None:
        return replace(reported, node_id=reported.node_id or result.get(NODE_KEY))
    value = result.get(objective_metric_name)
    objective = float(value) if value is not None and math.isfinite(value) else None
    return TrialEnd(
        state=TrialState.STOPPED,
        objective=objective,
        reason="stopped early by the scheduler",
        cause=EndCause.TUNER,
        node_id=result.get(NODE_KEY),
    )


class JobStopper(Stopper):
    """Ray Tune's stopper, answered by `JobControl`: early stopping and completion criteria."""

    def __init__(
        self, *, searcher: PlannerSearcher, control: JobControl, objective_metric_name: str
    ) -> None:
        self.searcher = searcher
        self.control = control
        self.objective_metric_name = objective_metric_name

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.objective_metric_name)
        assignment = self.searcher.assignments.get(trial_id)
        if result.get(FINAL_KEY) or value is None or assignment is None:
            return False
        return self.control.should_stop_trial(
            assignment.trial_id, epoch=int(result.get(EPOCH_KEY, 0)), value=float(value)
        )

    def stop_all(self) -> bool:
        return self.control.planner.fatal_error is not None or self.control.should_stop_all()


@contextmanager
def _fatal_io(planner: TrialPlanner) -> Iterator[None]:
    """Tune swallows exceptions raised in callbacks; keep an I/O failure for the driver to
    raise after Tune has stopped, instead of carrying on with an unwritable job directory."""
    try:
        yield
    except OSError as error:
        if planner.fatal_error is None:
            planner.fatal_error = error
