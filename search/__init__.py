"""Hyperparameter search spaces and searchers (Bayesian on BoTorch, random, grid).

A library with no Ray in it: the orchestrator wraps a ``Searcher`` for Ray Tune.

>>> space = SearchSpace({"lr": ContinuousParameter(1e-3, 0.5), "batch_size": 1024})
>>> searcher = make_searcher("Bayesian", space, objective_type="Maximize", seed=0)
>>> config = searcher.suggest("trial-1")     # every hyperparameter; None: nothing left
>>> searcher.observe("trial-1", 0.73)        # None (or NaN/inf): the trial failed
>>> state = searcher.state_dict()            # JSON; load_state_dict(state) resumes
>>> searcher.telemetry().fallback_count      # counters and timings, from any thread
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each public name and the module that defines it. They are imported on first use, so that a
# process that only needs the enums or the parameter types (a trial worker, the CLI reading a
# job) does not pay for torch, BoTorch and SciPy (about 3 s) before it starts.
_HOMES = {
    "BayesianSearcher": "search.bayesian",
    "CategoricalParameter": "search.parameters",
    "ContinuousParameter": "search.parameters",
    "Decision": "search.successive_halving",
    "GridSearcher": "search.grid_search",
    "HyperbandSearcher": "search.hyperband",
    "IntegerParameter": "search.parameters",
    "ObjectiveType": "search.enums",
    "ObservationError": "search.errors",
    "Parameter": "search.parameters",
    "RandomSearcher": "search.random_search",
    "ScalingType": "search.enums",
    "SearchError": "search.errors",
    "SearchSpace": "search.space",
    "SearchSpaceError": "search.errors",
    "SearchTelemetry": "search.telemetry",
    "Searcher": "search.searcher",
    "SearcherOptionError": "search.errors",
    "StateDictError": "search.errors",
    "Strategy": "search.enums",
    "TrialStateError": "search.errors",
    "UnknownStrategyError": "search.errors",
    "make_searcher": "search.factory",
}

__all__ = [
    "BayesianSearcher",
    "CategoricalParameter",
    "ContinuousParameter",
    "Decision",
    "GridSearcher",
    "HyperbandSearcher",
    "IntegerParameter",
    "ObjectiveType",
    "ObservationError",
    "Parameter",
    "RandomSearcher",
    "ScalingType",
    "SearchError",
    "SearchSpace",
    "SearchSpaceError",
    "SearchTelemetry",
    "Searcher",
    "SearcherOptionError",
    "StateDictError",
    "Strategy",
    "TrialStateError",
    "UnknownStrategyError",
    "make_searcher",
]

if TYPE_CHECKING:
    from search.bayesian import BayesianSearcher
    from search.enums import ObjectiveType, ScalingType, Strategy
    from search.errors import (
        ObservationError,
        SearcherOptionError,
        SearchError,
        SearchSpaceError,
        StateDictError,
        TrialStateError,
        UnknownStrategyError,
    )
    from search.factory import make_searcher
    from search.grid_search import GridSearcher
    from search.hyperband import HyperbandSearcher
    from search.parameters import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
        Parameter,
    )
    from search.random_search import RandomSearcher
    from search.searcher import Searcher
    from search.space import SearchSpace
    from search.successive_halving import Decision
    from search.telemetry import SearchTelemetry


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
