"""Job completion criteria (SageMaker's TuningJobCompletionCriteria), independent of Ray.

Each rule looks at finished trials (or the clock) and names the reason the job ends:

* `TargetObjectiveReached`: a finished trial's objective reached
  `target_objective_metric_value` (>= when maximising, <= when minimising).
* `BestObjectiveNotImproving`: the last `max_number_of_training_jobs_not_improving` finished
  trials did not improve on the best objective before them.
* `ConvergenceDetected`: the Bayesian searcher's own estimate says little is left to gain —
  the largest normalised expected improvement (expected gain over the best value, divided by
  the observed objective range) of its last `CONVERGENCE_WINDOW` GP-based suggestions is below
  `CONVERGENCE_TOLERANCE`, i.e. no recent suggestion expected to gain more than 0.1% of the
  spread of results seen. Checked after each finished trial.
* `MaxRuntimeReached`: the job has been running (summed over driver runs, so time spent
  stopped does not count) for `max_runtime_in_seconds`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

CONVERGENCE_WINDOW = 5
CONVERGENCE_TOLERANCE = 1e-3


class CompletionRules:
    """Evaluates the enabled criteria; `None` means keep going."""

    def __init__(
        self,
        *,
        maximize: bool,
        target: float | None = None,
        not_improving_trials: int | None = None,
        convergence: bool = False,
        max_runtime_s: float | None = None,
        elapsed_before_s: float = 0.0,
    ) -> None:
        self.maximize = maximize
        self.target = target
        self.not_improving_trials = not_improving_trials
        self.convergence = convergence
        self.max_runtime_s = max_runtime_s
        self.elapsed_before_s = elapsed_before_s
        self._best: float | None = None
        self._since_improvement = 0

    def observe_finished(self, objective: float | None) -> None:
        """Feed finished trials in order of completion (failed ones with None)."""
        if objective is not None and math.isfinite(objective) and self._improves(objective):
            self._best = objective
            self._since_improvement = 0
        else:
            self._since_improvement += 1

    def after_trial(self, improvement_history: Sequence[float] = ()) -> str | None:
        """The reason to stop after the latest finished trial, if any."""
        if self.target is not None and self._best is not None:
            reached = self._best >= self.target if self.maximize else self._best <= self.target
            if reached:
                return "TargetObjectiveReached"
        if (
            self.not_improving_trials is not None
            and self._best is not None
            and self._since_improvement >= self.not_improving_trials
        ):
            return "BestObjectiveNotImproving"
        recent = list(improvement_history)[-CONVERGENCE_WINDOW:]
        if self.convergence and len(recent) == CONVERGENCE_WINDOW:
            return "ConvergenceDetected" if max(recent) < CONVERGENCE_TOLERANCE else None
        return None

    def check_time(self, elapsed_this_run_s: float) -> str | None:
        if self.max_runtime_s is None:
            return None
        if self.elapsed_before_s + elapsed_this_run_s >= self.max_runtime_s:
            return "MaxRuntimeReached"
        return None

    def _improves(self, value: float) -> bool:
        if self._best is None:
            return True
        return value > self._best if self.maximize else value < self._best


def active_seconds(events: Sequence[Mapping[str, Any]]) -> float:
    """Seconds the job's drivers have run, summed over runs (gaps between runs excluded).

    A run starts at `job_started` and ends at its `job_completed`/`job_interrupted`, or, for a
    driver that was killed, at the last event it wrote.
    """
    total, run_start, last_time = 0.0, None, None
    for event in events:
        kind, when = event.get("event"), float(event.get("time", 0.0))
        if kind == "job_started":
            if run_start is not None and last_time is not None:
                total += last_time - run_start
            run_start = when
        elif kind in ("job_completed", "job_interrupted") and run_start is not None:
            total += when - run_start
            run_start = None
        last_time = when
    if run_start is not None and last_time is not None:
        total += last_time - run_start
    return total
