"""Asynchronous successive halving: rung levels and the stopping rule (no model, no torch)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from search.errors import SearcherOptionError, StateDictError
from search.successive_halving import AsyncSuccessiveHalving, Decision, rung_levels


@pytest.mark.parametrize(
    ("arguments", "levels"),
    [
        ((1, 27, 3), (1, 3, 9, 27)),
        ((3, 81, 3), (3, 9, 27, 81)),
        ((1, 10, 3), (1, 3, 9, 10)),
        ((2, 50, 2), (2, 4, 8, 16, 32, 50)),
        ((5, 6, 3), (5, 6)),
    ],
)
def test_rung_levels_grow_by_eta_and_end_at_max_resource(arguments, levels) -> None:
    assert rung_levels(*arguments) == levels


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 27, 3), "min_resource=0 must be an integer >= 1"),
        ((3, 3, 3), "max_resource=3 must be an integer >= 4"),
        ((1, 27, 1), "reduction_factor=1 must be an integer >= 2"),
        ((1, 27.0, 3), "max_resource=27.0 must be an integer"),
    ],
)
def test_bad_rung_arguments_name_the_field_and_the_rule(arguments, message) -> None:
    with pytest.raises(SearcherOptionError, match=message.replace("(", r"\(")):
        rung_levels(*arguments)


def asha() -> AsyncSuccessiveHalving:
    return AsyncSuccessiveHalving(min_resource=1, max_resource=9, reduction_factor=3)


def test_first_trial_at_a_rung_continues_and_a_worse_one_stops() -> None:
    rule = asha()
    assert rule.report("a", 1, 0.5) is Decision.CONTINUE
    assert rule.report("b", 1, 0.4) is Decision.STOP
    assert rule.report("c", 1, 0.6) is Decision.CONTINUE
    assert rule.rung(1) == {"a": 0.5, "b": 0.4, "c": 0.6}


def test_values_pass_exactly_when_at_least_the_upper_third_quantile() -> None:
    rng = np.random.default_rng(3)
    rule = AsyncSuccessiveHalving(min_resource=1, max_resource=27, reduction_factor=3)
    recorded: list[float] = []
    for i, value in enumerate(rng.random(60)):
        recorded.append(float(value))
        expected = value >= np.quantile(recorded, 2 / 3)
        decision = rule.report(f"t{i}", 1, float(value))
        assert (decision is Decision.CONTINUE) == expected


def test_about_one_in_eta_trials_passes_each_rung() -> None:
    rng = np.random.default_rng(0)
    rule = AsyncSuccessiveHalving(min_resource=1, max_resource=27, reduction_factor=3)
    passed = sum(
        rule.report(f"t{i}", 1, float(v)) is Decision.CONTINUE
        for i, v in enumerate(rng.random(600))
    )
    assert 180 <= passed <= 240  # 1/3 of 600, plus early trials that pass easily


def test_reaching_max_resource_completes_and_decisions_are_final() -> None:
    rule = asha()
    for resource in (1, 3):
        assert rule.report("a", resource, 0.9) is Decision.CONTINUE
    assert rule.report("a", 9, 0.95) is Decision.COMPLETE
    assert rule.decision("a") is Decision.COMPLETE
    rule.report("b", 1, 0.1)  # the only other trial is better: b stops
    assert rule.report("c", 1, 0.05) is Decision.STOP
    assert rule.report("c", 3, 0.99) is Decision.STOP  # still shutting down: stays stopped
    assert rule.decision("c") is Decision.STOP
    assert "c" not in rule.rung(3)


def test_a_report_past_several_rungs_is_judged_at_each_in_turn() -> None:
    rule = asha()
    rule.report("a", 1, 0.8)
    rule.report("a", 3, 0.9)
    # b first reports at 5: it passes rung 1 (cutoff 0.833) and fails rung 3 (0.883).
    assert rule.report("b", 5, 0.85) is Decision.STOP
    assert rule.rung(1)["b"] == rule.rung(3)["b"] == 0.85
    assert rule.report("c", 5, 0.95) is Decision.CONTINUE
    assert rule.rung(3)["c"] == 0.95


def test_non_finite_values_stop_the_trial_and_are_never_recorded() -> None:
    rule = asha()
    rule.report("a", 1, 0.1)
    assert rule.report("b", 1, None) is Decision.STOP
    assert rule.rung(1) == {"a": 0.1}
    assert rule.report("c", 1, 0.05) is Decision.STOP  # still judged against a alone


def test_reports_below_the_first_rung_continue_without_recording() -> None:
    rule = AsyncSuccessiveHalving(min_resource=3, max_resource=27, reduction_factor=3)
    assert rule.report("a", 1, 0.0) is Decision.CONTINUE
    assert rule.report("a", 2, 0.0) is Decision.CONTINUE
    assert rule.rung(3) == {}


def assert_round_trip(make: Callable[[], AsyncSuccessiveHalving], max_resource: int) -> None:
    """Random reports, a JSON round trip, then the restored rule decides as the original."""
    rule = make()
    rng = np.random.default_rng(max_resource)
    for i in range(30):
        rule.report(f"t{i}", int(rng.integers(1, max_resource + 1)), float(rng.random()))
    restored = make()
    restored.load_state_dict(json.loads(json.dumps(rule.state_dict())))
    for i in range(30, 60):
        resource, value = int(rng.integers(1, max_resource + 1)), float(rng.random())
        assert restored.report(f"t{i}", resource, value) is rule.report(f"t{i}", resource, value)
    assert restored.state_dict() == rule.state_dict()


def test_state_round_trips_through_json_and_continues_identically() -> None:
    assert_round_trip(asha, 9)


def test_state_from_other_rungs_is_refused() -> None:
    other = AsyncSuccessiveHalving(min_resource=1, max_resource=27, reduction_factor=3)
    with pytest.raises(StateDictError, match=r"rung levels \[1, 3, 9, 27\].*\[1, 3, 9\]"):
        asha().load_state_dict(other.state_dict())
    with pytest.raises(StateDictError, match="malformed"):
        asha().load_state_dict({"levels": [1, 3, 9]})


# -- several brackets (asynchronous Hyperband) ----------------------------------------------


def hyperband(brackets: int = 4) -> AsyncSuccessiveHalving:
    return AsyncSuccessiveHalving(
        min_resource=1, max_resource=27, reduction_factor=3, brackets=brackets
    )


def test_new_trials_join_brackets_in_synchronous_hyperbands_shares() -> None:
    rule = hyperband()
    for i in range(80):
        rule.report(f"t{i}", 1, 0.5)
    joined = [sum(rule.bracket(f"t{i}") == b for i in range(80)) for b in range(4)]
    # Shares 27/4 : 9/3 : 3/2 : 1/1 of 12.25, of 80 trials: 44.1, 19.6, 9.8, 6.5.
    assert all(abs(n - e) <= 1 for n, e in zip(joined, (44.1, 19.6, 9.8, 6.5), strict=True))
    assert rule.bracket("t0") == 0
    assert rule.bracket("never-reported") is None


def test_a_later_bracket_never_stops_a_trial_below_its_first_rung() -> None:
    rule = hyperband()
    trials = [f"t{i}" for i in range(13)]
    for i, trial in enumerate(trials):
        rule.report(trial, 1, 0.9 - i / 100)  # each worse than the one before
    last = [t for t in trials if rule.bracket(t) == 3]
    assert last, "13 trials fill every bracket"
    for resource in (1, 3, 9):
        assert rule.report(last[0], resource, 0.0) is Decision.CONTINUE
    assert rule.report(last[0], 27, 0.0) is Decision.COMPLETE
    first = [t for t in trials if rule.bracket(t) == 0]
    assert any(rule.decision(t) is Decision.STOP for t in first)


def test_each_bracket_judges_a_rung_against_its_own_records() -> None:
    rule = hyperband(brackets=2)
    ids = [f"t{i}" for i in range(6)]
    for trial in ids:
        rule.report(trial, 1, 0.2)  # bracket 0 judges at 1; bracket 1 records nothing
    in_one = [t for t in ids if rule.bracket(t) == 1]
    in_zero = [t for t in ids if rule.bracket(t) == 0]
    assert len(in_one) == 2 and len(in_zero) == 4
    rule.report(in_zero[0], 3, 0.99)  # a strong value at rung 3 of bracket 0 only
    # Bracket 1 has no other value at rung 3, so a weak one passes there.
    assert rule.report(in_one[0], 3, 0.3) is Decision.CONTINUE
    assert rule.report(in_one[1], 3, 0.1) is Decision.STOP
    assert rule.rung(3) == {in_zero[0]: 0.99, in_one[0]: 0.3, in_one[1]: 0.1}


def test_a_bracketed_state_round_trips_and_an_older_state_is_one_bracket() -> None:
    assert_round_trip(hyperband, 27)
    rng = np.random.default_rng(2)
    single = asha()
    for i in range(10):
        single.report(f"t{i}", int(rng.integers(1, 10)), float(rng.random()))
    older = single.state_dict()
    older["rungs"] = [row[1:] for row in older.pop("rungs") if row[0] == 0]  # [level, values]
    del older["brackets"], older["bracket_of"]
    loaded = asha()
    loaded.load_state_dict(json.loads(json.dumps(older)))
    assert loaded.state_dict() == single.state_dict()
    with pytest.raises(StateDictError, match=r"1 bracket\(s\).*4"):
        hyperband(brackets=4).load_state_dict(
            AsyncSuccessiveHalving(min_resource=1, max_resource=27, reduction_factor=3).state_dict()
        )


@pytest.mark.parametrize(
    ("brackets", "message"),
    [
        (0, r"brackets=0 must be between 1 and 4, the number of rung levels \[1, 3, 9, 27\]"),
        (5, r"brackets=5 must be between 1 and 4"),
        (2.0, r"brackets=2.0 must be an integer"),
    ],
)
def test_bad_bracket_counts_name_the_field_and_the_rule(brackets, message) -> None:
    with pytest.raises(SearcherOptionError, match=message):
        hyperband(brackets=brackets)
