"""Grid search: order, size, exhaustion, forget and warm start."""

from __future__ import annotations

import pytest

from search import (
    CategoricalParameter,
    ContinuousParameter,
    GridSearcher,
    IntegerParameter,
    SearchSpace,
    SearchSpaceError,
)


def grid_space() -> SearchSpace:
    return SearchSpace(
        {
            "layers": IntegerParameter(1, 3),
            "optimizer": CategoricalParameter(["sgd", "adam"]),
            "epochs": 10,
        }
    )


def test_size_is_the_number_of_configs() -> None:
    assert GridSearcher(space=grid_space()).size == 6


def test_grid_is_enumerated_in_order_then_exhausted() -> None:
    searcher = GridSearcher(space=grid_space())
    configs = []
    for i in range(6):
        config = searcher.suggest(f"t{i}")
        configs.append((config["layers"], config["optimizer"], config["epochs"]))
        searcher.observe(f"t{i}", float(i))
    assert configs == [
        (1, "sgd", 10),
        (1, "adam", 10),
        (2, "sgd", 10),
        (2, "adam", 10),
        (3, "sgd", 10),
        (3, "adam", 10),
    ]
    assert searcher.suggest("t6") is None
    assert searcher.suggest("t7") is None


def test_pending_configs_are_not_offered_twice() -> None:
    searcher = GridSearcher(space=grid_space())
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert len({(c["layers"], c["optimizer"]) for c in configs}) == 6
    assert searcher.suggest("t6") is None


def test_forgotten_config_is_offered_again() -> None:
    searcher = GridSearcher(space=grid_space())
    first = searcher.suggest("a")
    searcher.suggest("b")
    searcher.forget("a")
    assert searcher.suggest("c") == first


def test_prior_observations_are_skipped() -> None:
    priors = [({"layers": 1, "optimizer": "sgd"}, 0.5), ({"layers": 1, "optimizer": "adam"}, None)]
    searcher = GridSearcher(space=grid_space(), prior_observations=priors)
    assert searcher.suggest("a") == {"layers": 2, "optimizer": "sgd", "epochs": 10}


def test_continuous_parameters_are_rejected() -> None:
    space = SearchSpace({"lr": ContinuousParameter(0.01, 0.1), "layers": IntegerParameter(1, 3)})
    with pytest.raises(SearchSpaceError, match="'lr'.*continuous.*Grid search"):
        GridSearcher(space=space)


def test_logarithmic_integers_enumerate_every_integer() -> None:
    space = SearchSpace({"width": IntegerParameter(1, 100, scaling_type="Logarithmic")})
    searcher = GridSearcher(space=space)
    assert searcher.size == 100
    widths = [searcher.suggest(f"t{i}")["width"] for i in range(100)]
    assert widths == list(range(1, 101))
