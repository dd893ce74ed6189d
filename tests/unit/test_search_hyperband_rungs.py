"""Asynchronous successive halving: rung levels and the stopping rule (no model, no torch)."""

from __future__ import annotations

import json

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


def test_state_round_trips_through_json_and_continues_identically() -> None:
    rule = asha()
    rng = np.random.default_rng(1)
    for i in range(20):
        rule.report(f"t{i}", int(rng.integers(1, 10)), float(rng.random()))
    restored = asha()
    restored.load_state_dict(json.loads(json.dumps(rule.state_dict())))
    for i in range(20, 40):
        resource, value = int(rng.integers(1, 10)), float(rng.random())
        assert restored.report(f"t{i}", resource, value) is rule.report(f"t{i}", resource, value)
    assert restored.state_dict() == rule.state_dict()


def test_state_from_other_rungs_is_refused() -> None:
    other = AsyncSuccessiveHalving(min_resource=1, max_resource=27, reduction_factor=3)
    with pytest.raises(StateDictError, match=r"rung levels \[1, 3, 9, 27\].*\[1, 3, 9\]"):
        asha().load_state_dict(other.state_dict())
    with pytest.raises(StateDictError, match="malformed"):
        asha().load_state_dict({"levels": [1, 3, 9]})
