"""Property tests of the one conversion between parameter values and the unit interval."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
)

unit = st.floats(min_value=0.0, max_value=1.0)
#: No per-example deadline: the suite shares its CPUs with trials and other tests.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def continuous_parameters(draw: st.DrawFn) -> ContinuousParameter:
    scaling = draw(st.sampled_from(["Linear", "Logarithmic", "ReverseLogarithmic", "Auto"]))
    if scaling == "Logarithmic":
        low = draw(st.floats(min_value=1e-8, max_value=1e3))
        high = low * draw(st.floats(min_value=1.001, max_value=1e6))
    elif scaling == "ReverseLogarithmic":
        low = draw(st.floats(min_value=0.0, max_value=0.9))
        high = draw(st.floats(min_value=low + 1e-3, max_value=0.999999))
    else:
        low = draw(st.floats(min_value=-1e6, max_value=1e6))
        high = low + draw(st.floats(min_value=1e-3, max_value=1e6))
    return ContinuousParameter(low, high, scaling_type=scaling)


@st.composite
def integer_parameters(draw: st.DrawFn) -> IntegerParameter:
    scaling = draw(st.sampled_from(["Linear", "Logarithmic", "Auto"]))
    low = draw(st.integers(min_value=1 if scaling == "Logarithmic" else -1000, max_value=1000))
    high = low + draw(st.integers(min_value=1, max_value=5000))
    return IntegerParameter(low, high, scaling_type=scaling)


@relaxed
@given(continuous_parameters(), unit)
def test_continuous_from_unit_stays_in_range_and_round_trips(
    parameter: ContinuousParameter, u: float
) -> None:
    value = parameter.from_unit(u)
    assert parameter.min_value <= value <= parameter.max_value
    assert parameter.violation(value) is None
    back = parameter.to_unit(value)
    assert 0.0 <= back <= 1.0
    assert math.isclose(parameter.from_unit(back), value, rel_tol=1e-9, abs_tol=1e-9)


@relaxed
@given(continuous_parameters(), unit, unit)
def test_continuous_mapping_is_monotonic(
    parameter: ContinuousParameter, a: float, b: float
) -> None:
    low, high = sorted((a, b))
    assert parameter.from_unit(low) <= parameter.from_unit(high)


@relaxed
@given(continuous_parameters())
def test_continuous_end_points_map_to_bounds(parameter: ContinuousParameter) -> None:
    assert math.isclose(parameter.from_unit(0.0), parameter.min_value, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(parameter.from_unit(1.0), parameter.max_value, rel_tol=1e-9, abs_tol=1e-12)


@relaxed
@given(st.floats(min_value=1e-6, max_value=1.0), st.floats(min_value=2.0, max_value=1e6))
def test_logarithmic_scaling_is_uniform_in_log_space(low: float, ratio: float) -> None:
    parameter = ContinuousParameter(low, low * ratio, scaling_type="Logarithmic")
    middle = parameter.from_unit(0.5)
    assert math.isclose(middle, math.sqrt(low * low * ratio), rel_tol=1e-9)


@relaxed
@given(st.floats(min_value=0.0, max_value=0.5), st.floats(min_value=0.9, max_value=0.9999))
def test_reverse_logarithmic_is_uniform_in_log_of_one_minus_value(low: float, high: float) -> None:
    parameter = ContinuousParameter(low, high, scaling_type="ReverseLogarithmic")
    middle = parameter.from_unit(0.5)
    assert math.isclose(1.0 - middle, math.sqrt((1.0 - low) * (1.0 - high)), rel_tol=1e-9)


@relaxed
@given(integer_parameters(), st.data())
def test_integer_round_trip_is_exact(parameter: IntegerParameter, data: st.DataObject) -> None:
    value = data.draw(st.integers(parameter.min_value, parameter.max_value))
    u = parameter.to_unit(value)
    assert 0.0 < u < 1.0
    assert parameter.from_unit(u) == value
    assert type(parameter.from_unit(u)) is int


@relaxed
@given(integer_parameters(), unit)
def test_integer_from_unit_gives_valid_integers(parameter: IntegerParameter, u: float) -> None:
    value = parameter.from_unit(u)
    assert type(value) is int
    assert parameter.violation(value) is None


@settings(max_examples=10, deadline=None)
@given(st.integers(-50, 50), st.integers(1, 12))
def test_linear_integers_get_equal_shares_of_the_unit_interval(low: int, span: int) -> None:
    parameter = IntegerParameter(low, low + span, scaling_type="Linear")
    grid = (np.arange(20_000) + 0.5) / 20_000
    counts = Counter(parameter.from_unit(u) for u in grid)
    assert set(counts) == set(range(low, low + span + 1))
    share = 1.0 / (span + 1)
    assert all(abs(c / len(grid) - share) < 1e-3 for c in counts.values())


def test_logarithmic_integers_get_log_uniform_shares() -> None:
    parameter = IntegerParameter(1, 100, scaling_type="Logarithmic")
    grid = (np.arange(50_000) + 0.5) / 50_000
    counts = Counter(parameter.from_unit(u) for u in grid)
    total = math.log(100.5 / 0.5)
    for value in (1, 2, 10, 100):
        expected = math.log((value + 0.5) / (value - 0.5)) / total
        assert abs(counts[value] / len(grid) - expected) < 1e-3


@relaxed
@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=30, unique=True), unit)
def test_categorical_round_trip(values: list[str], u: float) -> None:
    parameter = CategoricalParameter(values)
    value = parameter.from_unit(u)
    assert value in values
    assert parameter.from_unit(parameter.to_unit(value)) == value
    for each in values:
        assert parameter.from_unit(parameter.to_unit(each)) == each


@relaxed
@given(st.lists(unit, min_size=4, max_size=4))
def test_space_round_trip_through_the_unit_cube(point: list[float]) -> None:
    space = SearchSpace(
        {
            "lr": ContinuousParameter(1e-4, 1.0, scaling_type="Logarithmic"),
            "momentum": ContinuousParameter(0.0, 0.99, scaling_type="ReverseLogarithmic"),
            "layers": IntegerParameter(1, 6),
            "act": CategoricalParameter(["relu", "tanh", 3]),
            "epochs": 5,
        }
    )
    config = space.from_unit(np.array(point))
    assert space.contains(config)
    assert config["epochs"] == 5
    again = space.from_unit(space.to_unit(config))
    assert again["layers"] == config["layers"] and again["act"] == config["act"]
    assert math.isclose(again["lr"], config["lr"], rel_tol=1e-9)
    assert math.isclose(again["momentum"], config["momentum"], rel_tol=1e-9, abs_tol=1e-12)
    assert space.key(again) == space.key(config)
