"""Hyperparameter search spaces and searchers (Bayesian on BoTorch, random, grid).

A library with no Ray in it: the orchestrator wraps a ``Searcher`` for Ray Tune.

>>> space = SearchSpace({"lr": ContinuousParameter(1e-3, 0.5), "batch_size": 1024})
>>> searcher = make_searcher("Bayesian", space, objective_type="Maximize", seed=0)
>>> config = searcher.suggest("trial-1")     # every hyperparameter; None: nothing left
>>> searcher.observe("trial-1", 0.73)        # None (or NaN/inf): the trial failed
>>> state = searcher.state_dict()            # JSON; load_state_dict(state) resumes
>>> searcher.telemetry().fallback_count      # counters and timings, from any thread
"""

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
