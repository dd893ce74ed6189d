"""Asynchronous successive halving (ASHA): which running trials go on and which stop.

Rung levels are ``min_resource * eta**k`` below ``max_resource``, then ``max_resource``
(``min_resource=1, max_resource=27, eta=3``: 1, 3, 9, 27). The first time a trial reports
at or past a rung level, its value is recorded at that rung and compared with every value
recorded there so far, its own included: it continues when it is at least the
``1 - 1/eta`` quantile (``numpy.quantile``'s linear interpolation), so about the best
``1/eta`` of the trials pass each rung. This is the stopping variant of ASHA (Li et al.
2018; Ray Tune's ``AsyncHyperBandScheduler``, Syne Tune's ``type="stopping"``): trials are
never paused and resumed, which suits trainers that run as subprocesses without checkpoints.

A caller may pass ``second_opinion`` to ``report``: a trial below a rung's cut still continues
when it says so (GP-guided Hyperband asks its model for a forecast of the final value, see
``search.forecast``). The rung records and the decisions of every other trial are the same.

A non-finite value (None, NaN, ±inf: a diverged or broken trial) stops the trial at once
and is never recorded, so it cannot make other trials look good. A trial reaching
``max_resource`` is complete. Decisions are final: a trial told to stop stays stopped even
if more reports arrive while it shuts down gracefully.

With ``brackets=B`` above 1 this is asynchronous Hyperband: bracket ``b`` (0 to ``B - 1``)
starts judging at ``levels[b]`` and keeps its own rung records, so trials in a later bracket
are never stopped on the noisy first rungs. This hedges against configurations that start
slowly and finish best (a low learning rate under a decaying schedule), which single-bracket
ASHA stops first. Each new trial joins the bracket furthest below its share; the shares are
synchronous Hyperband's trial counts, ``eta**k / (k + 1)`` for a bracket judged at ``k``
rungs below ``max_resource``, so every bracket spends about the same resource.

Plain Python, no randomness: the state is the recorded values, saved as JSON.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from search.errors import SearcherOptionError, StateDictError, TrialStateError

#: ``(trial_id, rung)`` -> whether a trial below the rung's cut should go on anyway.
SecondOpinion = Callable[[str, Mapping[str, float]], bool]


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

    def __init__(
        self,
        *,
        min_resource: int,
        max_resource: int,
        reduction_factor: int = 3,
        brackets: int = 1,
    ) -> None:
        self._levels = rung_levels(min_resource, max_resource, reduction_factor)
        self._eta = reduction_factor
        if isinstance(brackets, bool) or not isinstance(brackets, int):
            raise SearcherOptionError(f"brackets={brackets!r} must be an integer")
        if not 1 <= brackets <= len(self._levels):
            raise SearcherOptionError(
                f"brackets={brackets!r} must be between 1 and {len(self._levels)}, the number "
                f"of rung levels {list(self._levels)}"
            )
        self._brackets = brackets
        #: bracket -> level -> {trial_id: value}, in recording order. Every bracket exists,
        #: so that ``assign`` can place a trial above the ``brackets`` new trials join.
        self._rungs = _empty_rungs(self._levels)
        #: trial_id -> its bracket, from its first report.
        self._bracket_of: dict[str, int] = {}
        #: trial_id -> how many of its bracket's rung levels it has passed (been judged at).
        self._passed: dict[str, int] = {}
        #: trial_id -> its final decision (STOP or COMPLETE).
        self._final: dict[str, Decision] = {}

    @property
    def levels(self) -> tuple[int, ...]:
        return self._levels

    @property
    def reduction_factor(self) -> int:
        return self._eta

    @property
    def brackets(self) -> int:
        return self._brackets

    def rung(self, level: int) -> Mapping[str, float]:
        """The values recorded at rung ``level`` in every bracket: ``{trial_id: value}``."""
        return {t: v for rungs in self._rungs if level in rungs for t, v in rungs[level].items()}

    def bracket(self, trial_id: str) -> int | None:
        """The bracket ``trial_id`` joined at its first report (None before it)."""
        return self._bracket_of.get(trial_id)

    def assign(self, trial_id: str, bracket: int) -> None:
        """Place a trial that has not reported yet in ``bracket`` (any of ``0`` to
        ``len(levels) - 1``) instead of the one it would join: a configuration run again
        after a stop goes where it is first judged above the rung that stopped it."""
        if trial_id in self._bracket_of:
            raise TrialStateError(f"trial_id={trial_id!r} has reported; its bracket is fixed")
        if isinstance(bracket, bool) or not isinstance(bracket, int):
            raise TrialStateError(f"bracket={bracket!r} must be an integer")
        if not 0 <= bracket < len(self._levels):
            raise TrialStateError(
                f"bracket={bracket!r} must be between 0 and {len(self._levels) - 1}"
            )
        self._bracket_of[trial_id] = bracket

    def stopped_at(self, trial_id: str) -> int | None:
        """The index in ``levels`` of the rung that stopped ``trial_id`` on its value, None
        if it was not stopped that way (running, complete, or stopped as non-finite)."""
        if self._final.get(trial_id) is not Decision.STOP or not self._passed[trial_id]:
            return None
        bracket = self._bracket_of[trial_id]
        index = bracket + self._passed[trial_id] - 1  # the last rung it was judged at
        return index if trial_id in self._rungs[bracket][self._levels[index]] else None

    def decision(self, trial_id: str) -> Decision | None:
        """The final decision about ``trial_id`` (STOP, COMPLETE), or None while it runs."""
        return self._final.get(trial_id)

    def report(
        self,
        trial_id: str,
        resource: int,
        value: float | None,
        second_opinion: SecondOpinion | None = None,
    ) -> Decision:
        """Judge ``trial_id``'s ``value`` (larger is better; None if not finite) reported at
        ``resource``, at every rung level it reaches for the first time. Below a rung's cut,
        ``second_opinion(trial_id, rung)`` (``rung``: ``{trial_id: value}`` recorded at that
        level in its bracket, its own value included) may keep it going."""
        if trial_id in self._final:
            return self._final[trial_id]
        if trial_id not in self._bracket_of:
            self._bracket_of[trial_id] = self._next_bracket()
        rungs = self._rungs[self._bracket_of[trial_id]]
        levels = list(rungs)
        passed = self._passed.get(trial_id, 0)
        decision = Decision.CONTINUE
        while passed < len(levels) and resource >= levels[passed]:
            level = levels[passed]
            passed += 1
            if value is None:
                decision = Decision.STOP
                break
            rungs[level][trial_id] = value
            if level == self._levels[-1]:
                decision = Decision.COMPLETE
                break
            if value < cutoff(rungs[level].values(), self._eta) and not (
                second_opinion is not None and second_opinion(trial_id, rungs[level])
            ):
                decision = Decision.STOP
                break
        self._passed[trial_id] = passed
        if decision is not Decision.CONTINUE:
            self._final[trial_id] = decision
        return decision

    def _next_bracket(self) -> int:
        """The bracket furthest below its share of the trials so far, the new one included
        (ties to the lowest bracket: the first trial joins bracket 0)."""
        top = len(self._levels) - 1
        weights = [self._eta ** (top - b) / (top - b + 1) for b in range(self._brackets)]
        joined = [0] * self._brackets
        for bracket in self._bracket_of.values():
            if bracket < self._brackets:  # not trials placed by ``assign`` above them
                joined[bracket] += 1
        total = sum(joined) + 1
        deficits = [w / sum(weights) * total - n for w, n in zip(weights, joined, strict=True)]
        return max(range(self._brackets), key=lambda b: (deficits[b], -b))

    def state_dict(self) -> dict[str, Any]:
        return {
            "levels": list(self._levels),
            "reduction_factor": self._eta,
            "brackets": self._brackets,
            "rungs": [
                [b, level, [[t, v] for t, v in rung.items()]]
                for b, rungs in enumerate(self._rungs)
                for level, rung in rungs.items()
            ],
            "bracket_of": [[t, b] for t, b in self._bracket_of.items()],
            "passed": [[t, n] for t, n in self._passed.items()],
            "final": [[t, d.value] for t, d in self._final.items()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load a saved state; one saved before brackets existed is a one-bracket state."""
        try:
            levels = tuple(int(x) for x in state["levels"])
            eta = int(state["reduction_factor"])
            brackets = int(state.get("brackets", 1))
        except (KeyError, TypeError, ValueError) as error:
            raise StateDictError(f"successive-halving state is malformed: {error}") from error
        if levels != self._levels or eta != self._eta or brackets != self._brackets:
            raise StateDictError(
                f"successive-halving state has rung levels {list(levels)}, reduction factor "
                f"{eta} and {brackets} bracket(s); this searcher has {list(self._levels)}, "
                f"{self._eta} and {self._brackets}"
            )
        try:
            rungs = _empty_rungs(self._levels)
            for row in state["rungs"]:
                b, level, rung = row if len(row) == 3 else [0, *row]
                rungs[int(b)][int(level)].update({str(t): float(v) for t, v in rung})
            passed = {str(t): int(n) for t, n in state["passed"]}
            bracket_of = {str(t): int(b) for t, b in state.get("bracket_of", ())}
            if "bracket_of" not in state:
                bracket_of = {t: 0 for t in passed}
            final = {str(t): Decision(d) for t, d in state["final"]}
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise StateDictError(f"successive-halving state is malformed: {error}") from error
        if not all(math.isfinite(v) for r in rungs for rung in r.values() for v in rung.values()):
            raise StateDictError("successive-halving state has non-finite rung values")
        self._rungs, self._bracket_of = rungs, bracket_of
        self._passed, self._final = passed, final


def _empty_rungs(levels: tuple[int, ...]) -> list[dict[int, dict[str, float]]]:
    """For each bracket ``b``, its rung levels ``levels[b:]``, with nothing recorded."""
    return [{level: {} for level in levels[b:]} for b in range(len(levels))]


def cutoff(values: Iterable[float], eta: int) -> float:
    """The ``1 - 1/eta`` quantile of ``values`` (numpy's linear method)."""
    ordered = sorted(values)
    position = (1.0 - 1.0 / eta) * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


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
