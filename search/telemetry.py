"""``SearchTelemetry``: what a searcher has done so far, as one immutable snapshot.

A searcher publishes a new snapshot (by rebinding one attribute) after every change, so
another thread may call ``Searcher.telemetry()`` while a suggestion is being computed and
always gets a consistent, finished snapshot, without locks.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchTelemetry:
    """Counters and timings of one searcher. Counters continue across ``state_dict``
    round trips; timings cover this process only.

    Attributes:
        suggestions: configs handed out by ``suggest`` (a ``None`` answer not counted).
        fallback_count: suggestions that fell back to a random config because the model
            could not be fitted or the acquisition not optimised (errors, logged).
        nan_picks: suggestions where every acquisition value was NaN or infinite, so the
            pick was a random config instead of the acquisition's choice.
        suggest_seconds_total: wall time spent inside ``suggest`` in this process, GP
            hyperparameter refits included (not saved in ``state_dict``).
        last_suggest_seconds: wall time of the latest ``suggest``, or None before the first.
        expected_improvement_history: ``(trial_id, normalised expected improvement)`` for
            every GP-based suggestion (see ``BayesianSearcher``); empty for other strategies.

    Random and Grid searchers leave the model-related fields at zero.
    """

    suggestions: int = 0
    fallback_count: int = 0
    nan_picks: int = 0
    suggest_seconds_total: float = 0.0
    last_suggest_seconds: float | None = None
    expected_improvement_history: tuple[tuple[str, float], ...] = ()

    @property
    def mean_suggest_seconds(self) -> float | None:
        """Mean wall time per suggestion (refits included), or None before the first."""
        return self.suggest_seconds_total / self.suggestions if self.suggestions else None
