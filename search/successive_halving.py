"""Asynchronous successive halving (ASHA): which running trials go on and which stop.

Rung levels are ``min_resource * eta**k`` below ``max_resource``, then ``max_resource``
(``min_resource=1, max_resource=27, eta=3``: 1, 3, 9, 27). The first time a trial reports
at or past a rung level, its value is recorded at that rung and compared with every value
recorded there so far, its own included: it continues when it is at least the
``1 - 1/eta`` quantile (``numpy.quantile``'s linear interpolation), so about the best
``1/eta`` of the trials pass each rung. This is the stopping variant of ASHA (Li et al.
2018; Ray Tune's ``AsyncHyperBandScheduler``, Syne Tune's ``type="stopping"``): trials are
never paused and resumed, which suits trainers that run as subprocesses without checkpoints.

A non-finite value (None, NaN, ±inf: a diverged or broken trial) stops the trial at once
and is never recorded, so it cannot make other trials look good. A trial reaching
``max_resource`` is complete. Decisions are final: a trial told to stop stays stopped even
if more reports arrive while it shuts down gracefully.

Plain Python, no randomness: the state is the recorded values, saved as JSON.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

from search.errors import SearcherOptionError, StateDictError, TrialStateError


class Decision(enum.Enum):
    """What a running trial should do after a report."""

    CONTINUE = "Continue"
    #: Stopped by successive halving (or a non-finite value): end it gracefully.
    STOP = "Stop"
    #: It reached ``max_resource``: it has had all the resource it will get.
    COMPLETE = "Complete"


def rung_levels(min_resource: int, max_resource: int, reduction_factor: int) -> tuple[int, ...]:
    """``min_resource * eta**k`` for every ``k`` below ``max_resource``, then
    ``max_resource``; raises ``SearcherOptionError`` naming a bad argument."""
    _check_int("min_resource", min_resource, minimum=1)
    _check_int("reduction_factor", reduction_factor, minimum=2)
    _check_int("max_resource", max_resource, minimum=min_resource + 1)
    levels = []
    level = min_resource
    while level < max_resource:
        levels.append(level)
        level *= reduction_factor
    return (*levels, max_resource)


class AsyncSuccessiveHalving:
    """The ASHA stopping rule over values where larger is better; see the module docstring."""

    def __init__(self, *, min_resource: int, max_resource: int, reduction_factor: int = 3) -> None:
        self._levels = rung_levels(min_resource, max_resource, reduction_factor)
        self._eta = reduction_factor
        #: level -> {trial_id: value}, in recording order.
        self._rungs: dict[int, dict[str, float]] = {level: {} for level in self._levels}
        #: trial_id -> how many rung levels it has passed (been judged at).
        self._passed: dict[str, int] = {}
        #: trial_id -> its final decision (STOP or COMPLETE).
        self._final: dict[str, Decision] = {}

    @property
    def levels(self) -> tuple[int, ...]:
        return self._levels

    @property
    def reduction_factor(self) -> int:
        return self._eta

    def rung(self, level: int) -> Mapping[str, float]:
        """The values recorded at rung ``level``: ``{trial_id: value}``."""
        return dict(self._rungs[level])

    def decision(self, trial_id: str) -> Decision | None:
        """The final decision about ``trial_id`` (STOP, COMPLETE), or None while it runs."""
        return self._final.get(trial_id)

    def report(self, trial_id: str, resource: int, value: float | None) -> Decision:
        """Judge ``trial_id``'s ``value`` (larger is better; None if not finite) reported at
        ``resource``, at every rung level it reaches for the first time."""
        if trial_id in self._final:
            return self._final[trial_id]
        passed = self._passed.get(trial_id, 0)
        decision = Decision.CONTINUE
        while passed < len(self._levels) and resource >= self._levels[passed]:
            level = self._levels[passed]
            passed += 1
            if value is None:
                decision = Decision.STOP
                break
            self._rungs[level][trial_id] = value
            if level == self._levels[-1]:
                decision = Decision.COMPLETE
                break
            if value < self._cutoff(level):
                decision = Decision.STOP
                break
        self._passed[trial_id] = passed
        if decision is not Decision.CONTINUE:
            self._final[trial_id] = decision
        return decision

    def _cutoff(self, level: int) -> float:
        """The ``1 - 1/eta`` quantile of the values at ``level`` (numpy's linear method)."""
        values = sorted(self._rungs[level].values())
        position = (1.0 - 1.0 / self._eta) * (len(values) - 1)
        below = math.floor(position)
        above = min(below + 1, len(values) - 1)
        return values[below] + (position - below) * (values[above] - values[below])

    def state_dict(self) -> dict[str, Any]:
        return {
            "levels": list(self._levels),
            "reduction_factor": self._eta,
            "rungs": [
                [level, [[t, v] for t, v in rung.items()]] for level, rung in self._rungs.items()
            ],
            "passed": [[t, n] for t, n in self._passed.items()],
            "final": [[t, d.value] for t, d in self._final.items()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        try:
            levels = tuple(int(x) for x in state["levels"])
            eta = int(state["reduction_factor"])
            rungs = {
                int(level): {str(t): float(v) for t, v in rung} for level, rung in state["rungs"]
            }
            passed = {str(t): int(n) for t, n in state["passed"]}
            final = {str(t): Decision(d) for t, d in state["final"]}
        except (KeyError, TypeError, ValueError) as error:
            raise StateDictError(f"successive-halving state is malformed: {error}") from error
        if levels != self._levels or eta != self._eta or set(rungs) != set(levels):
            raise StateDictError(
                f"successive-halving state has rung levels {list(levels)} and reduction factor "
                f"{eta}; this searcher has {list(self._levels)} and {self._eta}"
            )
        if not all(math.isfinite(v) for rung in rungs.values() for v in rung.values()):
            raise StateDictError("successive-halving state has non-finite rung values")
        self._rungs, self._passed, self._final = rungs, passed, final


def check_resource(trial_id: str, resource: object) -> int:
    """``resource`` as a positive int (a whole float such as ``3.0`` is accepted)."""
    if isinstance(resource, bool) or not isinstance(resource, int | float):
        raise TrialStateError(
            f"resource={resource!r} of trial {trial_id!r} must be a positive integer"
        )
    if isinstance(resource, float) and not (math.isfinite(resource) and resource.is_integer()):
        raise TrialStateError(
            f"resource={resource!r} of trial {trial_id!r} must be a positive integer"
        )
    if resource < 1:
        raise TrialStateError(f"resource={resource!r} of trial {trial_id!r} must be >= 1")
    return int(resource)


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SearcherOptionError(f"{name}={value!r} must be an integer >= {minimum}")
