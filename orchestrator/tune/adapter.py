"""The two places openamt plugs into Ray Tune: a `Searcher` that hands out planned trials, and a
`Callback` that records what happened to them; plus the `Stopper` that lets Tune end.

All run in the driver. Bookkeeping lives in `TrialPlanner` and decisions in `JobControl`; these
classes only translate Ray's trial objects and results into their calls, so a Ray API change
touches this file alone. Ray never ends a running trial on openamt's behalf: openamt asks the
trial to stop (a stop request) and records its end when the trainable reports it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import ray.exceptions
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
    ATTEMPT_KEY,
    EPOCH_KEY,
    FINAL_KEY,
    NODE_KEY,
    EndCause,
    TrialEnd,
    TrialState,
)

log = logging.getLogger(__name__)

#: Ray errors that mean the trial was lost from outside (its worker or node died, Ray's memory
#: monitor killed it): the same hyperparameters may succeed on a retry.
LOST_FROM_OUTSIDE = (
    ray.exceptions.RayActorError,
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.OutOfMemoryError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
)


class PlannerSearcher(Searcher):
    """A Ray Tune searcher whose suggestions are the planner's assignments.

    Concurrency is the planner's job (`max_parallel_jobs`), and so is saving state: Ray's
    experiment checkpoint is not used to resume, the job directory is.
    """

    def __init__(self, *, planner: TrialPlanner) -> None:
        super().__init__(metric=None, mode=None)
        self.planner = planner
        self.assignments: dict[str, TrialAssignment] = {}  # Ray trial id -> assignment

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles the search algorithm with its experiment; the planner (searcher, ledger,
        locks) stays behind — only this driver's instance uses it."""
        return {**self.__dict__, "planner": None, "assignments": {}}

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
    """Feeds Ray's trial events to the planner, job control and listeners."""

    def __init__(
        self,
        *,
        planner: TrialPlanner,
        control: JobControl,
        searcher: PlannerSearcher,
        objective_metric_name: str,
        listeners: list[Listener],
    ) -> None:
        self.planner = planner
        self.control = control
        self.searcher = searcher
        self.objective_metric_name = objective_metric_name
        self.listeners = listeners

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles callbacks with the experiment; the planner, job control and listeners
        (metrics servers, terminals) stay behind — only this driver's instance uses them."""
        return {**self.__dict__, "planner": None, "control": None, "searcher": None,
                "listeners": []}  # fmt: skip

    def _trial_id(self, trial: Any) -> str | None:
        assignment = self.searcher.assignments.get(trial.trial_id)
        return assignment.trial_id if assignment else None

    def _notify(self, event: TrialEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None:
            return
        with _fatal_io(self.planner):
            self.planner.trial_started(trial_id)
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
                attempt=result.get(ATTEMPT_KEY),
                metric=self.objective_metric_name,
                value=float(value),
                step=step,
                node_id=result.get(NODE_KEY),
            )
            request = self.control.should_stop_trial(trial_id, epoch=step, value=float(value))
            if request is not None:
                self.planner.request_stop(trial_id, request)
        self._notify(TrialProgress(trial_id=trial_id, objective=float(value), epoch=step))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None:
            return
        self._finish(trial_id, self._end_from_result(trial_id, trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = self._trial_id(trial)
        if trial_id is None:
            return
        error = trial.get_error()
        message = str(error).strip().splitlines()[-1] if error else "no details from Ray"
        last = trial.last_result or {}
        where = last.get(NODE_KEY) or "an unknown node"
        if error is None or isinstance(error, LOST_FROM_OUTSIDE):
            reason = f"the Ray worker running the trial on {where} was lost: {message}"
            cause = EndCause.EXTERNAL
        else:
            reason = f"openamt's trainable failed on {where}: {type(error).__name__}: {message}"
            cause = EndCause.OPENAMT
        end = TrialEnd(
            state=TrialState.FAILED,
            objective=None,
            reason=reason,
            cause=cause,
            node_id=last.get(NODE_KEY),
        )
        self._finish(trial_id, end)

    def _end_from_result(self, trial_id: str, result: dict[str, Any]) -> TrialEnd:
        """The trainable's final report; or, if Ray ended the trial without one (the grace
        period of a job stop ran out), STOPPED with the last objective."""
        reported = TrialEnd.from_result(result)
        if reported is not None:
            return replace(reported, node_id=reported.node_id or result.get(NODE_KEY))
        value = result.get(self.objective_metric_name)
        objective = float(value) if value is not None and math.isfinite(value) else None
        request = self.planner.stopping.get(trial_id) or self.control.stop_request
        return TrialEnd(
            state=TrialState.STOPPED,
            objective=objective,
            reason=(request.reason if request else "stopped by Ray Tune")
            + "; Ray ended it before it finished stopping",
            cause=request.cause if request else EndCause.TUNER,
            node_id=result.get(NODE_KEY),
        )

    def _finish(self, trial_id: str, end: TrialEnd) -> None:
        with _fatal_io(self.planner):
            will_retry = self.planner.record_end(trial_id, end)
            self._notify(TrialFinished(trial_id=trial_id, end=end, will_retry=will_retry))


class JobStopper(Stopper):
    """Ray Tune's stopper: never stops a trial itself (openamt asks trials to stop), and lets
    the experiment end once a job stop has ended every trial (`JobControl.may_end`)."""

    def __init__(self, *, control: JobControl) -> None:
        self.control = control

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the experiment; job control stays with this driver."""
        return {**self.__dict__, "control": None}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.control.may_end()


@contextmanager
def _fatal_io(planner: TrialPlanner) -> Iterator[None]:
    """Tune swallows exceptions raised in callbacks; keep an I/O failure for the driver to
    raise after Tune has stopped, instead of carrying on with an unwritable job directory."""
    try:
        yield
    except OSError as error:
        if planner.fatal_error is None:
            planner.fatal_error = error
