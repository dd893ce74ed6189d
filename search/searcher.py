"""``Searcher``: the trial bookkeeping every search strategy shares.

A searcher hands out configs for trial ids (``suggest``), learns their objective values
(``observe``) or drops them (``forget``), and saves/restores everything as JSON
(``state_dict``/``load_state_dict``). Subclasses only decide *which* config comes next
(``_propose``); randomness for suggestion ``n`` is derived from ``(seed, n)``, so a
restored searcher continues exactly as the original would have.

A failed trial is observed with value ``None``; NaN and ±inf count as failed too and are
stored as ``None``. How failures influence later suggestions is up to each strategy.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
import numbers
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from search.enums import ObjectiveType, Strategy, parse_enum
from search.errors import (
    ObservationError,
    SearcherOptionError,
    SearchSpaceError,
    StateDictError,
    TrialStateError,
)
from search.space import Config, SearchSpace
from search.telemetry import SearchTelemetry

logger = logging.getLogger(__name__)

STATE_FORMAT = "openamt.search/1"

#: ``(config, value)``; value None means the trial failed or produced no metric.
Observation = tuple[Mapping[str, Any], float | None]


class Searcher(abc.ABC):
    """Base class of all searchers; see the module docstring for the contract."""

    strategy: ClassVar[Strategy]

    def __init__(
        self,
        *,
        space: SearchSpace,
        objective_type: ObjectiveType | str = ObjectiveType.MAXIMIZE,
        seed: int = 0,
        prior_observations: Iterable[tuple[Mapping[str, Any], float | None]] | None = None,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise SearchSpaceError(f"space={space!r} must be a SearchSpace")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SearcherOptionError(f"seed={seed!r} must be a non-negative integer")
        self._space = space
        self._objective_type = parse_enum(ObjectiveType, objective_type, field="objective_type")
        self._seed = seed
        self._priors = self._accept_priors(prior_observations or ())
        self._pending: dict[str, Mapping[str, Any]] = {}
        self._observations: dict[str, tuple[Mapping[str, Any], float | None]] = {}
        self._num_suggested = 0
        self._fallback_count = 0
        self._nan_picks = 0
        self._telemetry = SearchTelemetry()

    # ----------------------------------------------------------------- public API
    @property
    def space(self) -> SearchSpace:
        return self._space

    @property
    def objective_type(self) -> ObjectiveType:
        return self._objective_type

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def fallback_count(self) -> int:
        """How many suggestions fell back to random because modelling failed."""
        return self._fallback_count

    def telemetry(self) -> SearchTelemetry:
        """The latest snapshot of this searcher's counters and timings. Safe to call from
        any thread, also while ``suggest`` runs in another one (it never blocks)."""
        return self._telemetry

    @property
    def pending(self) -> Mapping[str, Mapping[str, Any]]:
        """Suggested, not yet observed nor forgotten trials, in suggestion order."""
        return MappingProxyType(self._pending)

    @property
    def observations(self) -> Mapping[str, tuple[Mapping[str, Any], float | None]]:
        """Observed trials, in observation order: ``{trial_id: (config, value)}``."""
        return MappingProxyType(self._observations)

    @property
    def prior_observations(self) -> tuple[tuple[Mapping[str, Any], float | None], ...]:
        """Warm-start observations that fit this space (others were dropped)."""
        return self._priors

    def suggest(self, trial_id: str) -> Config | None:
        """A new config (every hyperparameter, static ones included) for ``trial_id``, or
        None when there is nothing left to try. The trial becomes pending."""
        if not isinstance(trial_id, str) or not trial_id:
            raise TrialStateError(f"trial_id={trial_id!r} must be a non-empty string")
        if trial_id in self._pending or trial_id in self._observations:
            raise TrialStateError(f"trial_id={trial_id!r} was already suggested")
        start = time.perf_counter()
        try:
            config = self._propose(trial_id, self._num_suggested)
            if config is not None:
                self._pending[trial_id] = MappingProxyType(dict(config))
                self._num_suggested += 1
        finally:
            self._publish_telemetry(seconds=time.perf_counter() - start)
        if config is None:
            logger.info("%s search has nothing left to suggest", self.strategy.value)
            return None
        logger.debug("suggested %s for trial %s", config, trial_id)
        return dict(config)

    def observe(self, trial_id: str, value: float | None) -> None:
        """Record the objective ``value`` of a pending trial (None, NaN or ±inf: failed)."""
        if trial_id not in self._pending:
            if trial_id in self._observations:
                raise TrialStateError(f"trial_id={trial_id!r} was already observed")
            raise TrialStateError(f"trial_id={trial_id!r} is not pending (unknown trial id)")
        stored = _checked_value(value, field=f"value of trial {trial_id!r}")
        if value is not None and stored is None:
            logger.info("trial %s reported %r; treating it as failed", trial_id, value)
        self._observations[trial_id] = (self._pending.pop(trial_id), stored)

    def adopt(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """Make ``trial_id`` pending with ``config``: a suggestion of this searcher that ran
        although its saved state does not know it (the driver died before the state was
        written; the job's ledger has it). It counts as a suggestion, so the next one does
        not draw the same random numbers again."""
        if not isinstance(trial_id, str) or not trial_id:
            raise TrialStateError(f"trial_id={trial_id!r} must be a non-empty string")
        if trial_id in self._pending or trial_id in self._observations:
            raise TrialStateError(f"trial_id={trial_id!r} is already known; cannot adopt it")
        self._pending[trial_id] = MappingProxyType(self._space.normalize(config))
        self._num_suggested += 1
        self._publish_telemetry()

    def forget(self, trial_id: str) -> None:
        """Drop a pending trial without an observation (it was cancelled, or never ran)."""
        if trial_id not in self._pending:
            raise TrialStateError(f"trial_id={trial_id!r} is not pending; cannot forget it")
        del self._pending[trial_id]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-serialisable data."""
        return {
            "format": STATE_FORMAT,
            "strategy": self.strategy.value,
            "space": self._space.to_config(),
            "objective_type": self._objective_type.value,
            "seed": self._seed,
            "num_suggested": self._num_suggested,
            "fallback_count": self._fallback_count,
            "nan_picks": self._nan_picks,
            "prior_observations": [[dict(c), v] for c, v in self._priors],
            "pending": [[trial_id, dict(c)] for trial_id, c in self._pending.items()],
            "observations": [[t, dict(c), v] for t, (c, v) in self._observations.items()],
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from ``state_dict()`` output. The searcher must have been built with the
        same strategy, space, objective type and seed; the saved prior observations
        replace the ones given to the constructor."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise StateDictError(f"state is not a {STATE_FORMAT!r} searcher state dict")
        expected = {
            "strategy": self.strategy.value,
            "space": self._space.to_config(),
            "objective_type": self._objective_type.value,
            "seed": self._seed,
        }
        for field, value in expected.items():
            if state.get(field) != value:
                raise StateDictError(
                    f"state field {field}={state.get(field)!r} does not match this "
                    f"searcher's {value!r}; build the searcher as the saved one was built"
                )
        try:
            priors = tuple(
                (MappingProxyType(self._space.normalize(c)), _checked_value(v, field="prior"))
                for c, v in state["prior_observations"]
            )
            pending = {t: MappingProxyType(self._space.normalize(c)) for t, c in state["pending"]}
            observations = {
                t: (MappingProxyType(self._space.normalize(c)), _checked_value(v, field=t))
                for t, c, v in state["observations"]
            }
            num_suggested = int(state["num_suggested"])
            fallback_count = int(state["fallback_count"])
            nan_picks = int(state.get("nan_picks", 0))  # absent in older states
            extra = state["extra"]
        except (KeyError, TypeError, ValueError) as error:
            raise StateDictError(f"state dict is malformed: {error}") from error
        self._load_extra_state(extra)
        self._priors = priors
        self._pending = pending
        self._observations = observations
        self._num_suggested = num_suggested
        self._fallback_count = fallback_count
        self._nan_picks = nan_picks
        self._publish_telemetry()

    # ------------------------------------------------------------ for subclasses
    @abc.abstractmethod
    def _propose(self, trial_id: str, index: int) -> Config | None:
        """The config for the ``index``-th suggestion (0-based), or None if none is left.
        Randomness must derive from ``(self.seed, index)`` only."""

    def _expected_improvement_snapshot(self) -> tuple[tuple[str, float], ...]:
        """``(trial_id, normalised EI)`` per model-based suggestion, for the telemetry."""
        return ()

    def _publish_telemetry(self, *, seconds: float | None = None) -> None:
        """Replace the telemetry snapshot by one with the current counters, adding
        ``seconds`` of suggestion time. Rebinding one attribute is atomic, so readers in
        other threads see the old snapshot or the new one, never a mix."""
        old = self._telemetry
        self._telemetry = dataclasses.replace(
            old,
            suggestions=self._num_suggested,
            fallback_count=self._fallback_count,
            nan_picks=self._nan_picks,
            suggest_seconds_total=old.suggest_seconds_total + (seconds or 0.0),
            last_suggest_seconds=old.last_suggest_seconds if seconds is None else seconds,
            expected_improvement_history=self._expected_improvement_snapshot(),
        )

    def _extra_state(self) -> dict[str, Any]:
        """Strategy-specific JSON state saved under ``"extra"``."""
        return {}

    def _load_extra_state(self, extra: Mapping[str, Any]) -> None:
        """Restore what ``_extra_state`` saved (validate before changing anything)."""
        if extra:
            raise StateDictError(f"unexpected extra state {sorted(extra)!r}")

    def _completed(self) -> list[tuple[Mapping[str, Any], float | None]]:
        """Prior observations then this job's observations, in order."""
        return [*self._priors, *self._observations.values()]

    def _seen_keys(self) -> set[tuple[int, ...]]:
        """Keys of every config already tried, pending or known from earlier jobs."""
        configs = [c for c, _ in self._completed()] + list(self._pending.values())
        return {self._space.key(c) for c in configs}

    def _to_maximize(self, value: float) -> float:
        """The value as a quantity to maximise (negated for ``Minimize`` jobs)."""
        return value if self._objective_type is ObjectiveType.MAXIMIZE else -value

    def _accept_priors(
        self, priors: Iterable[tuple[Mapping[str, Any], float | None]]
    ) -> tuple[tuple[Mapping[str, Any], float | None], ...]:
        accepted = []
        for position, item in enumerate(priors):
            try:
                config, value = item
            except (TypeError, ValueError) as error:
                raise ObservationError(
                    f"prior_observations[{position}]={item!r} must be a (config, value) pair"
                ) from error
            reasons = self._space.violations(config)
            if reasons:
                logger.warning(
                    "dropping prior observation %d %r: outside the search space (%s)",
                    position,
                    config,
                    "; ".join(reasons),
                )
                continue
            value = _checked_value(value, field=f"prior_observations[{position}] value")
            accepted.append((MappingProxyType(self._space.normalize(config)), value))
        return tuple(accepted)


def _checked_value(value: object, *, field: str) -> float | None:
    """``value`` as a finite float, or None for a failed trial (None, NaN, ±inf)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ObservationError(f"{field}={value!r} must be a real number or None")
    number = float(value)
    return number if math.isfinite(number) else None
