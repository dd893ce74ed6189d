"""The contract every searcher keeps, run over every strategy ``make_searcher`` knows."""

from __future__ import annotations

import json
import math

import pytest

from search import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ObservationError,
    Searcher,
    SearchSpace,
    SearchSpaceError,
    TrialStateError,
    make_searcher,
)

STRATEGIES = ["Bayesian", "Random", "Grid", "Hyperband"]
#: Small acquisition effort keeps Bayesian tests fast; behaviour is the same.
FAST_BAYESIAN = {"initial_design_size": 3, "num_restarts": 2, "raw_samples": 32, "mc_samples": 16}


def mixed_space() -> SearchSpace:
    return SearchSpace(
        {
            "lr": ContinuousParameter(1e-4, 0.5, scaling_type="Logarithmic"),
            "momentum": ContinuousParameter(0.0, 0.99, scaling_type="ReverseLogarithmic"),
            "layers": IntegerParameter(2, 8),
            "optimizer": CategoricalParameter(["sgd", "nag", "adam"]),
            "batch_size": 1024,
        }
    )


def discrete_space() -> SearchSpace:
    return SearchSpace(
        {
            "layers": IntegerParameter(2, 5),
            "width": IntegerParameter(16, 256, scaling_type="Logarithmic"),
            "optimizer": CategoricalParameter(["sgd", "adam"]),
            "batch_size": 1024,
        }
    )


def build(strategy: str, space: SearchSpace | None = None, seed: int = 0, **kw) -> Searcher:
    if space is None:
        space = discrete_space() if strategy == "Grid" else mixed_space()
    options = FAST_BAYESIAN if strategy == "Bayesian" else {}
    return make_searcher(strategy, space, seed=seed, **options, **kw)


def objective(config: dict) -> float:
    """A deterministic stand-in for training: smooth, with a categorical effect."""
    value = -(float(config.get("layers", 4) - 4) ** 2)
    if "lr" in config:
        value -= (math.log10(config["lr"]) + 2) ** 2
    if "width" in config:
        value -= abs(math.log2(config["width"]) - 6)
    return value + (0.5 if config["optimizer"] == "adam" else 0.0)


def run(searcher: Searcher, trials: int, start: int = 0, fail_every: int = 0) -> list[dict]:
    """Suggest/observe ``trials`` times, one trial pending while the next is suggested."""
    configs = []
    previous = None
    for i in range(start, start + trials):
        config = searcher.suggest(f"t{i}")
        assert config is not None
        configs.append(config)
        if previous is not None:
            failed = fail_every and i % fail_every == 0
            searcher.observe(previous, None if failed else objective(searcher.pending[previous]))
        previous = f"t{i}"
    return configs


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_and_calls_give_same_suggestions(strategy: str) -> None:
    first = run(build(strategy, seed=7), 8)
    second = run(build(strategy, seed=7), 8)
    assert first == second


@pytest.mark.parametrize("strategy", ["Bayesian", "Random", "Hyperband"])
def test_different_seeds_give_different_suggestions(strategy: str) -> None:
    assert run(build(strategy, seed=1), 4) != run(build(strategy, seed=2), 4)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_suggestions_are_inside_the_space_with_the_right_types(strategy: str) -> None:
    searcher = build(strategy)
    space = searcher.space
    for config in run(searcher, 8):
        assert space.contains(config), space.violations(config)
        assert config["batch_size"] == 1024
        assert set(config) == set(space.tunable_names) | {"batch_size"}
        for name, parameter in space.parameters.items():
            if isinstance(parameter, ContinuousParameter):
                assert type(config[name]) is float
            elif isinstance(parameter, IntegerParameter):
                assert type(config[name]) is int
            else:
                assert config[name] in parameter.values


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_suggestions_never_repeat(strategy: str) -> None:
    searcher = build(strategy)
    keys = [searcher.space.key(c) for c in run(searcher, 10)]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_suggestions_in_a_row_differ(strategy: str) -> None:
    searcher = build(strategy)
    run(searcher, 5)
    first = searcher.suggest("a")
    second = searcher.suggest("b")
    assert first != second
    assert list(searcher.pending)[-2:] == ["a", "b"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_finite_space_is_exhausted_without_repeats(strategy: str) -> None:
    space = SearchSpace({"a": IntegerParameter(0, 1), "b": CategoricalParameter(["x", "y"])})
    searcher = build(strategy, space=space)
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    for i in range(2):
        searcher.observe(f"t{i}", float(i))
    assert searcher.suggest("t4") is None
    assert len({space.key(c) for c in configs}) == 4
    assert "t4" not in searcher.pending


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("failure", [None, math.nan, math.inf, -math.inf])
def test_failed_observations_are_recorded_as_none(strategy: str, failure: float | None) -> None:
    searcher = build(strategy)
    searcher.suggest("ok")
    searcher.suggest("bad")
    searcher.observe("ok", 1.0)
    searcher.observe("bad", failure)
    assert searcher.observations["bad"][1] is None
    assert searcher.observations["ok"][1] == 1.0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_search_continues_after_many_failures(strategy: str) -> None:
    searcher = build(strategy)
    configs = run(searcher, 10, fail_every=2)
    assert len(configs) == 10
    assert searcher.fallback_count == 0
    assert sum(v is None for _, v in searcher.observations.values()) >= 4


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_state_dict_round_trip_mid_run_gives_the_same_next_suggestions(strategy: str) -> None:
    original = build(strategy, seed=3)
    run(original, 6, fail_every=4)
    original.suggest("extra-pending")
    state = json.loads(json.dumps(original.state_dict()))
    restored = build(strategy, seed=3)
    restored.load_state_dict(state)
    assert dict(restored.pending) == dict(original.pending)
    assert dict(restored.observations) == dict(original.observations)
    assert run(restored, 4, start=100) == run(original, 4, start=100)
    assert restored.fallback_count == original.fallback_count


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_restored_searcher_that_adopts_lost_suggestions_goes_on_as_the_original(
    strategy: str,
) -> None:
    """A driver that dies before saving its newest suggestions leaves them in the ledger
    only; the restored searcher adopts them and must then suggest what the original would."""
    original = build(strategy, seed=5)
    run(original, 4)
    state = json.loads(json.dumps(original.state_dict()))
    lost = {t: original.suggest(t) for t in ("lost-1", "lost-2")}
    restored = build(strategy, seed=5)
    restored.load_state_dict(state)
    for trial_id, config in lost.items():
        restored.adopt(trial_id, config)
    assert dict(restored.pending) == dict(original.pending)
    for searcher in (original, restored):
        searcher.observe("lost-1", objective(lost["lost-1"]))
    assert run(restored, 3, start=100) == run(original, 3, start=100)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_adopt_refuses_known_trials_and_configs_outside_the_space(strategy: str) -> None:
    searcher = build(strategy)
    config = searcher.suggest("a")
    with pytest.raises(TrialStateError, match="'a'.*already known"):
        searcher.adopt("a", config)
    outside = {**config, "layers": 99}
    with pytest.raises(SearchSpaceError, match="outside the space"):
        searcher.adopt("b", outside)
    assert "b" not in searcher.pending


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_forget_drops_a_pending_trial(strategy: str) -> None:
    searcher = build(strategy)
    searcher.suggest("a")
    searcher.forget("a")
    assert "a" not in searcher.pending
    assert "a" not in searcher.observations
    with pytest.raises(TrialStateError, match="'a'.*not pending"):
        searcher.forget("a")
    with pytest.raises(TrialStateError, match="'a'.*not pending"):
        searcher.observe("a", 1.0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_trial_bookkeeping_errors(strategy: str) -> None:
    searcher = build(strategy)
    searcher.suggest("a")
    with pytest.raises(TrialStateError, match="'a'.*already suggested"):
        searcher.suggest("a")
    with pytest.raises(TrialStateError, match="'nope'.*unknown trial id"):
        searcher.observe("nope", 1.0)
    with pytest.raises(ObservationError, match="'a'.*'high'.*real number"):
        searcher.observe("a", "high")  # type: ignore[arg-type]
    searcher.observe("a", 1.0)
    with pytest.raises(TrialStateError, match="'a'.*already observed"):
        searcher.observe("a", 2.0)
    with pytest.raises(TrialStateError, match="non-empty string"):
        searcher.suggest("")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_views_are_read_only(strategy: str) -> None:
    searcher = build(strategy)
    searcher.suggest("a")
    with pytest.raises(TypeError):
        searcher.pending["b"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        searcher.pending["a"]["layers"] = 3  # type: ignore[index]
    searcher.observe("a", 0.5)
    with pytest.raises(TypeError):
        searcher.observations["a"] = ({}, 1.0)  # type: ignore[index]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_returned_config_is_a_copy(strategy: str) -> None:
    searcher = build(strategy)
    config = searcher.suggest("a")
    config["batch_size"] = 1
    assert searcher.pending["a"]["batch_size"] == 1024
