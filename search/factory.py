"""``make_searcher``: build a searcher from SageMaker-style strategy names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from search.bayesian import BayesianSearcher
from search.enums import ObjectiveType, Strategy, parse_enum
from search.errors import SearcherOptionError, UnknownStrategyError
from search.grid_search import GridSearcher
from search.hyperband import HyperbandSearcher
from search.random_search import RandomSearcher
from search.searcher import Searcher
from search.space import SearchSpace

_SEARCHER_TYPES: dict[Strategy, type[Searcher]] = {
    Strategy.BAYESIAN: BayesianSearcher,
    Strategy.RANDOM: RandomSearcher,
    Strategy.GRID: GridSearcher,
    # SageMaker's Hyperband samples configurations at random; its early-stopping
    # scheduler lives in the orchestrator.
    Strategy.HYPERBAND: RandomSearcher,
}
_OPTIONS: dict[type[Searcher], frozenset[str]] = {
    BayesianSearcher: frozenset(
        {
            "initial_design_size",
            "raw_samples",
            "num_restarts",
            "mc_samples",
            "max_model_points",
        }
    ),
    RandomSearcher: frozenset(),
    GridSearcher: frozenset(),
    HyperbandSearcher: frozenset(
        {
            "min_resource",
            "max_resource",
            "reduction_factor",
            "brackets",
            "guided",
            "initial_design_size",
            "max_model_points",
            "candidates",
            "rung_scores",
            "model",
            "forecast_promotion",
        }
    ),
}


def make_searcher(
    strategy: Strategy | str,
    space: SearchSpace,
    *,
    objective_type: ObjectiveType | str = "Maximize",
    seed: int = 0,
    prior_observations: Iterable[tuple[Mapping[str, Any], float | None]] | None = None,
    **options: Any,
) -> Searcher:
    """Build the searcher for ``strategy``: ``Bayesian``, ``Random``, ``Grid`` or
    ``Hyperband`` (case-insensitive). Hyperband with options (``max_resource`` at least)
    gives a ``HyperbandSearcher``; without, a ``RandomSearcher`` for Ray's scheduler.

    ``options`` are strategy-specific (see ``BayesianSearcher``); an option the strategy
    does not take raises ``SearcherOptionError``, an unknown strategy
    ``UnknownStrategyError``.
    """
    kind = parse_enum(Strategy, strategy, field="strategy", error_type=UnknownStrategyError)
    searcher_type = _SEARCHER_TYPES[kind]
    if kind is Strategy.HYPERBAND and options:
        # Given its resources, Hyperband runs successive halving in the searcher
        # (``report``) with GP-guided (or, guided=False, random) configurations.
        searcher_type = HyperbandSearcher
    if unknown := set(options) - _OPTIONS[searcher_type]:
        allowed = sorted(_OPTIONS[searcher_type]) or "none"
        raise SearcherOptionError(
            f"option(s) {sorted(unknown)!r} not accepted by the {kind.value} strategy; "
            f"allowed: {allowed}"
        )
    return searcher_type(
        space=space,
        objective_type=objective_type,
        seed=seed,
        prior_observations=prior_observations,
        **options,
    )
