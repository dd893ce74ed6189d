"""``make_searcher``: strategy names, options and errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from search import (
    BayesianSearcher,
    ContinuousParameter,
    GridSearcher,
    IntegerParameter,
    ObjectiveType,
    RandomSearcher,
    SearcherOptionError,
    SearchSpace,
    SearchSpaceError,
    Strategy,
    UnknownStrategyError,
    make_searcher,
)


def space() -> SearchSpace:
    return SearchSpace({"layers": IntegerParameter(1, 4), "batch_size": 64})


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Bayesian", BayesianSearcher),
        ("bayesian", BayesianSearcher),
        ("RANDOM", RandomSearcher),
        ("grid", GridSearcher),
        ("Hyperband", RandomSearcher),
        (Strategy.GRID, GridSearcher),
    ],
)
def test_strategy_names_are_case_insensitive(name: str | Strategy, expected: type) -> None:
    assert type(make_searcher(name, space())) is expected


def test_hyperband_samples_randomly_like_random_search() -> None:
    hyperband = make_searcher("Hyperband", space(), seed=4)
    random = make_searcher("Random", space(), seed=4)
    assert [hyperband.suggest(f"t{i}") for i in range(3)] == [
        random.suggest(f"t{i}") for i in range(3)
    ]


def test_unknown_strategy_names_the_value_and_the_allowed_names() -> None:
    with pytest.raises(UnknownStrategyError) as caught:
        make_searcher("Annealing", space())
    message = str(caught.value)
    assert "strategy='Annealing'" in message
    for allowed in ("Bayesian", "Random", "Grid", "Hyperband"):
        assert allowed in message
    assert isinstance(caught.value, SearchSpaceError)


def test_objective_type_is_parsed_case_insensitively() -> None:
    searcher = make_searcher("Random", space(), objective_type="minimize")
    assert searcher.objective_type is ObjectiveType.MINIMIZE
    with pytest.raises(SearchSpaceError, match="objective_type='Smallest'.*Maximize, Minimize"):
        make_searcher("Random", space(), objective_type="Smallest")


def test_options_are_passed_to_the_bayesian_searcher() -> None:
    searcher = make_searcher("Bayesian", space(), initial_design_size=2, num_restarts=3)
    assert searcher.initial_design_size == 2


def test_options_a_strategy_does_not_take_are_rejected() -> None:
    with pytest.raises(SearcherOptionError, match="'num_restarts'.*Random.*allowed: none"):
        make_searcher("Random", space(), num_restarts=3)
    with pytest.raises(SearcherOptionError, match="'restarts'.*Bayesian.*num_restarts"):
        make_searcher("Bayesian", space(), restarts=3)


def test_space_must_be_a_search_space() -> None:
    with pytest.raises(SearchSpaceError, match="must be a SearchSpace"):
        make_searcher("Random", {"lr": ContinuousParameter(0, 1)})  # type: ignore[arg-type]


def test_the_package_exports_resolve_lazily_without_loading_torch() -> None:
    code = """
import sys, search
from search import ObjectiveType, SearchSpace, ContinuousParameter
assert "torch" not in sys.modules, "search's enums and spaces must not import torch"
assert set(search.__all__) == set(search._HOMES)
for name in search.__all__:
    assert getattr(search, name).__name__ == name
assert "torch" in sys.modules  # the Bayesian searcher did
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
