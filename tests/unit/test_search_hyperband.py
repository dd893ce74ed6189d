"""``HyperbandSearcher``: reports, decisions, the guided model, state, warm start, errors."""

from __future__ import annotations

import json
import math
import threading
import warnings

import pytest
import torch

from search import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ObservationError,
    RandomSearcher,
    SearcherOptionError,
    SearchSpace,
    StateDictError,
    TrialStateError,
    make_searcher,
    rung_data,
)
from search.hyperband import RANDOM_STREAM, HyperbandSearcher, _generator
from search.sampling import sobol_point
from search.successive_halving import Decision


def space() -> SearchSpace:
    return SearchSpace(
        {
            "lr": ContinuousParameter(1e-4, 1.0, scaling_type="Logarithmic"),
            "width": IntegerParameter(8, 256, scaling_type="Logarithmic"),
            "optimizer": CategoricalParameter(["sgd", "adam"]),
            "epochs": 27,
        }
    )


def curve(config: dict, epoch: int) -> float:
    """A learning curve: final quality peaks at lr=1e-2, width 64, adam; good
    configurations also learn fastest, so early epochs rank them roughly right."""
    distance = abs(math.log10(config["lr"]) + 2)
    quality = 0.95 - 0.075 * distance**2 - 0.05 * abs(math.log2(config["width"]) - 6) / 3
    quality -= 0.0 if config["optimizer"] == "adam" else 0.03
    return quality * (1 - math.exp(-epoch / (2 + 3 * distance)))


def build(seed: int = 0, **options) -> HyperbandSearcher:
    options = {"min_resource": 1, "max_resource": 27, **options}
    searcher = make_searcher("Hyperband", space(), seed=seed, **options)
    assert isinstance(searcher, HyperbandSearcher)
    return searcher


def run_trial(searcher: HyperbandSearcher, trial_id: str, value=curve) -> tuple[int, float]:
    """Suggest, report every epoch until told to stop, observe the last value."""
    config = searcher.suggest(trial_id)
    for epoch in range(1, 28):
        result = value(config, epoch)
        if searcher.report(trial_id, epoch, result) is not Decision.CONTINUE:
            break
    searcher.observe(trial_id, result)
    return epoch, result


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small GPs run fastest on one thread (and the host's cores are shared); the searcher
    itself never changes the setting, so the test does, and puts it back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_make_searcher_builds_it_from_the_hyperband_options() -> None:
    searcher = build(reduction_factor=3, guided=False)
    assert searcher.levels == (1, 3, 9, 27)
    assert not searcher.guided
    assert searcher.strategy.value == "Hyperband"
    # Without options, Hyperband is still SageMaker's random sampling for Ray's scheduler.
    assert type(make_searcher("Hyperband", space())) is RandomSearcher


def test_options_are_checked_by_name() -> None:
    with pytest.raises(SearcherOptionError, match="max_resource is required"):
        make_searcher("Hyperband", space(), min_resource=1)
    with pytest.raises(SearcherOptionError, match=r"'grace'.*allowed.*max_resource"):
        make_searcher("Hyperband", space(), max_resource=9, grace=1)
    with pytest.raises(SearcherOptionError, match="guided='yes' must be True or False"):
        build(guided="yes")
    with pytest.raises(SearcherOptionError, match="max_resource=1 must be an integer >= 2"):
        build(max_resource=1)


def test_trials_are_stopped_at_rungs_and_stopped_trials_are_observations() -> None:
    searcher = build(guided=False)
    ends = [run_trial(searcher, f"t{i}") for i in range(30)]
    epochs = [epoch for epoch, _ in ends]
    assert set(epochs) <= set(searcher.levels)
    assert 27 in epochs and epochs.count(1) >= 10
    assert sum(epochs) < 30 * 27 / 3
    for (epoch, value), (trial_id, (_, observed)) in zip(
        ends, searcher.observations.items(), strict=True
    ):
        assert observed == value
        decision = searcher.decision(trial_id)
        assert decision is (Decision.COMPLETE if epoch == 27 else Decision.STOP)


def test_every_report_is_kept_and_running_trials_show_their_resource() -> None:
    searcher = build(guided=False)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.report("a", 1, 0.3)
    searcher.report("a", 2, 0.4)
    assert searcher.reports["a"] == ((1, 0.3), (2, 0.4))
    assert dict(searcher.pending_resources) == {"a": 2, "b": 0}


def test_non_finite_reports_stop_the_trial_and_never_reach_the_rule() -> None:
    searcher = build(guided=False)
    searcher.suggest("a")
    searcher.suggest("b")
    assert searcher.report("a", 1, 0.2) is Decision.CONTINUE
    for bad in (math.nan, math.inf, None):
        searcher.suggest(f"bad-{bad}")
        assert searcher.report(f"bad-{bad}", 1, bad) is Decision.STOP
    assert searcher.report("b", 1, 0.1) is Decision.STOP  # judged against a alone
    assert searcher.reports["bad-nan"] == ((1, None),)


def test_reports_after_a_stop_are_kept_and_get_the_same_answer() -> None:
    searcher = build(guided=False)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.report("a", 1, 0.5)
    assert searcher.report("b", 1, 0.1) is Decision.STOP
    assert searcher.report("b", 2, 0.9) is Decision.STOP  # shutting down gracefully
    assert searcher.reports["b"][-1] == (2, 0.9)


def test_minimize_stops_the_larger_values() -> None:
    searcher = build(guided=False, objective_type="Minimize")
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.report("a", 1, 1.0)
    assert searcher.report("b", 1, 2.0) is Decision.STOP


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.report("ghost", 1, 0.5), TrialStateError, "'ghost' is not running"),
        (lambda s: s.report("a", 0, 0.5), TrialStateError, "resource=0 of trial 'a' must be >= 1"),
        (lambda s: s.report("a", 2.5, 0.5), TrialStateError, "resource=2.5 .* positive integer"),
        (lambda s: s.report("a", 1, "0.5"), ObservationError, "value of trial 'a' at resource 1"),
    ],
)
def test_bad_reports_name_the_trial_and_the_rule(call, error, message) -> None:
    searcher = build(guided=False)
    searcher.suggest("a")
    with pytest.raises(error, match=message):
        call(searcher)


def test_no_reports_after_observe_and_forget_keeps_the_evidence() -> None:
    searcher = build(guided=False)
    searcher.suggest("a")
    searcher.report("a", 1, 0.5)
    searcher.observe("a", 0.5)
    with pytest.raises(TrialStateError, match="'a' is already observed"):
        searcher.report("a", 3, 0.6)
    searcher.suggest("b")
    searcher.report("b", 1, 0.7)
    searcher.forget("b")
    assert "b" not in searcher.pending
    assert searcher.reports["b"] == ((1, 0.7),)


def test_guided_configurations_beat_random_ones_on_the_same_budget() -> None:
    """A narrow optimum that early epochs rank correctly: the model should home in."""
    plane = SearchSpace({"x": ContinuousParameter(0.0, 1.0), "y": ContinuousParameter(0.0, 1.0)})

    def bowl(config: dict, epoch: int) -> float:
        quality = 0.95 - 1.5 * ((config["x"] - 0.7) ** 2 + (config["y"] - 0.3) ** 2)
        return quality * (1 - math.exp(-epoch / 4))

    def best(guided: bool, seed: int) -> float:
        searcher = make_searcher("Hyperband", plane, seed=seed, max_resource=27, guided=guided)
        return max(run_trial(searcher, f"t{i}", value=bowl)[1] for i in range(20))

    guided = [best(True, seed) for seed in range(2)]
    random = [best(False, seed) for seed in range(2)]
    assert min(guided) > 0.94 > max(random), (guided, random)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_guided_initial_design_is_a_sobol_sequence_and_random_stays_uniform(seed) -> None:
    """The first 8 configs of a guided searcher are a scrambled Sobol net: each half of each
    dimension gets exactly 4 of them, which 8 uniform draws rarely manage in all 3 at once."""
    cube = SearchSpace({name: ContinuousParameter(0.0, 1.0) for name in "abc"})

    def first_configs(guided: bool) -> list[dict]:
        searcher = make_searcher(
            "Hyperband", cube, seed=seed, max_resource=9, guided=guided, initial_design_size=8
        )
        return [searcher.suggest(f"t{i}") for i in range(8)]

    guided = first_configs(True)
    assert guided == [cube.from_unit(sobol_point(cube, seed=seed, index=i)) for i in range(8)]
    for name in "abc":
        assert sum(config[name] < 0.5 for config in guided) == 4, (name, guided)
    # Random Hyperband: independent uniform draws, one seeded stream per suggestion.
    uniform = [cube.from_unit(_generator(seed, RANDOM_STREAM, i).random(3)) for i in range(8)]
    assert first_configs(False) == uniform != guided


def test_the_model_learns_from_stopped_and_running_trials() -> None:
    searcher = build(initial_design_size=4)
    for i in range(8):
        run_trial(searcher, f"t{i}")
    searcher.suggest("running")
    searcher.report("running", 1, 0.3)
    points = searcher._training_points()
    resources = sorted(resource for _, resource, _ in points)
    assert resources.count(1) >= 9  # every trial's first rung, the running one's too
    searcher.suggest("next")
    assert len(searcher.suggest_seconds) >= 5  # model-based since the fifth suggestion


def test_pending_trials_push_the_next_configuration_elsewhere() -> None:
    searcher = build(initial_design_size=4)
    for i in range(10):
        run_trial(searcher, f"t{i}")
    first = searcher.suggest("p1")
    second = searcher.suggest("p2")
    assert searcher.space.key(first) != searcher.space.key(second)
    assert searcher.fallback_count == 0


def test_suggest_leaves_threads_warnings_and_global_generators_alone() -> None:
    searcher = build(initial_design_size=2)
    for i in range(6):
        run_trial(searcher, f"t{i}")
    threads, filters = torch.get_num_threads(), list(warnings.filters)
    torch_state = torch.random.get_rng_state()
    searcher.suggest("x")
    assert torch.get_num_threads() == threads
    assert list(warnings.filters) == filters
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert searcher.suggest_seconds  # it was a model-based suggestion


def test_state_dict_round_trips_through_json_and_resumes_exactly() -> None:
    original = build(seed=5, initial_design_size=3)
    for i in range(8):
        run_trial(original, f"t{i}")
    original.suggest("running")
    original.report("running", 1, 0.31)
    state = json.loads(json.dumps(original.state_dict()))
    restored = build(seed=5, initial_design_size=3)
    restored.load_state_dict(state)
    assert restored.reports == original.reports
    assert dict(restored.pending_resources) == {"running": 1}
    assert restored.report("running", 3, 0.5) is original.report("running", 3, 0.5)
    for i in range(8, 12):
        assert run_trial(restored, f"t{i}") == run_trial(original, f"t{i}")
    mine, theirs = restored.state_dict(), original.state_dict()
    for state in (mine, theirs):
        del state["extra"]["suggest_seconds"]  # wall-clock timings differ
    assert mine == theirs


def test_a_restored_searcher_keeps_the_saved_value_model() -> None:
    """A job saved under rank scores (the earlier default) resumes with rank scores."""
    original = build(seed=3, initial_design_size=3, rung_scores=True)
    for i in range(8):
        run_trial(original, f"t{i}")
    restored = build(seed=3, initial_design_size=3)  # today's default: raw values
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert restored.state_dict()["extra"]["options"]["rung_scores"] is True
    for i in range(8, 11):
        assert run_trial(restored, f"t{i}") == run_trial(original, f"t{i}")


def test_brackets_shelter_slow_starters_and_survive_a_restore() -> None:
    searcher = build(seed=1, guided=False, brackets=4)
    ends = [run_trial(searcher, f"t{i}") for i in range(24)]
    last_bracket = [e for i, (e, _) in enumerate(ends) if searcher.bracket(f"t{i}") == 3]
    assert last_bracket and all(epoch == 27 for epoch in last_bracket)  # never stopped early
    assert min(epoch for epoch, _ in ends) == 1  # bracket 0 still stops at the first rung
    restored = build(seed=1, guided=False, brackets=4)
    restored.load_state_dict(json.loads(json.dumps(searcher.state_dict())))
    for i in range(24, 30):
        assert run_trial(restored, f"t{i}") == run_trial(searcher, f"t{i}")
    with pytest.raises(StateDictError, match="options .* do not match"):
        build(seed=1, guided=False).load_state_dict(searcher.state_dict())


def test_a_state_saved_before_brackets_existed_resumes_as_one_bracket() -> None:
    original = build(seed=2, guided=False)
    for i in range(10):
        run_trial(original, f"t{i}")
    state = json.loads(json.dumps(original.state_dict()))
    del state["extra"]["options"]["brackets"]
    halving = state["extra"]["successive_halving"]
    halving["rungs"] = [row[1:] for row in halving.pop("rungs") if row[0] == 0]
    del halving["brackets"], halving["bracket_of"]
    restored = build(seed=2, guided=False)
    restored.load_state_dict(state)
    for i in range(10, 14):
        assert run_trial(restored, f"t{i}") == run_trial(original, f"t{i}")


def test_reports_from_another_thread_while_suggest_runs_do_not_wait_for_it() -> None:
    searcher = build(initial_design_size=2)
    for i in range(8):
        run_trial(searcher, f"t{i}")
    searcher.suggest("running")
    answers: list[Decision] = []
    thread = threading.Thread(target=lambda: answers.append(searcher.report("running", 1, 0.9)))
    thread.start()  # may interleave with the suggestion below
    assert searcher.suggest("next") is not None
    thread.join()
    assert answers == [Decision.CONTINUE]
    assert searcher.reports["running"] == ((1, 0.9),)


def test_state_from_a_searcher_with_other_resources_is_refused() -> None:
    state = build(guided=False).state_dict()
    with pytest.raises(StateDictError, match="options .* do not match"):
        build(max_resource=81).load_state_dict(state)
    with pytest.raises(StateDictError, match="options .* do not match"):
        build(guided=True).load_state_dict(state)


def test_warm_start_counts_prior_results_at_max_resource() -> None:
    good = {"lr": 1e-2, "width": 64, "optimizer": "adam", "epochs": 27}
    priors = [
        ({**good, "lr": lr, "width": width}, curve({**good, "lr": lr, "width": width}, 27))
        for lr in (1e-3, 1e-2, 1e-1)
        for width in (16, 64, 256)
    ]
    searcher = build(prior_observations=priors)
    config = searcher.suggest("first")
    assert len(searcher.suggest_seconds) == 1  # no random initial design needed
    points = searcher._training_points()
    assert rung_data.target_resource(points, searcher.levels, searcher.space.dimension) == 27
    assert 3e-3 < config["lr"] < 3e-2


def test_a_failing_model_falls_back_to_random_and_counts_it() -> None:
    searcher = build(initial_design_size=2, rung_scores=False)
    for i, value in enumerate([1e308, -1e308]):
        searcher.suggest(f"t{i}")
        searcher.observe(f"t{i}", value)  # overflows standardisation
    assert searcher.suggest("next") is not None
    assert searcher.fallback_count == 1
    telemetry = searcher.telemetry()
    assert (telemetry.fallback_count, telemetry.suggestions) == (1, 3)


def test_a_used_up_finite_space_runs_stopped_configurations_again_one_bracket_higher() -> None:
    small = SearchSpace({"a": IntegerParameter(0, 2), "b": CategoricalParameter(["x", "y"])})
    searcher = make_searcher("Hyperband", small, max_resource=9, initial_design_size=2)
    assert searcher.levels == (1, 3, 9)

    def quality(config: dict) -> float:
        return config["a"] + (0.5 if config["b"] == "y" else 0.0)

    first_round, runs = set(), {}
    for i in range(40):
        trial_id = f"t{i}"
        config = searcher.suggest(trial_id)
        if config is None:
            break
        key = small.key(config)
        if i < 6:
            first_round.add(key)
        else:  # a rerun: of a configuration whose every trial was stopped on its value
            assert all(searcher.decision(t) is Decision.STOP for t in runs[key])
        for epoch in range(1, 10):
            decision = searcher.report(trial_id, epoch, quality(config) * epoch / 9)
            if decision is not Decision.CONTINUE:
                break
        if i >= 6:  # judged first one rung above the one that stopped it
            stopped = [searcher.stopped_at(t) for t in runs[key]]
            assert searcher.bracket(trial_id) == max(stopped) + 1
        searcher.observe(trial_id, quality(config) * epoch / 9)
        runs.setdefault(key, []).append(trial_id)
    assert len(first_round) == 6  # every configuration once before any runs again
    assert config is None, "the search ends"
    completed = {k for k, ids in runs.items() if searcher.decision(ids[-1]) is Decision.COMPLETE}
    assert completed == set(runs)  # it ended because every configuration was trained in full
    assert 6 < i < 40
