"""Search-space construction, the job-file form, and every validation rule."""

from __future__ import annotations

import math

import pytest

from search import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ScalingType,
    SearchSpace,
    SearchSpaceError,
)


def flagship_space() -> SearchSpace:
    return SearchSpace(
        {
            "learning_rate": ContinuousParameter(0.001, 0.5, scaling_type="Logarithmic"),
            "momentum": ContinuousParameter(0.0, 0.99, scaling_type="ReverseLogarithmic"),
            "wd": ContinuousParameter(0.0, 0.001),
            "layers": IntegerParameter(2, 8),
            "optimizer": CategoricalParameter(["sgd", "nag", "adam"]),
            "batch_size": 1024,
        }
    )


def test_space_separates_tunable_and_static_parameters() -> None:
    space = flagship_space()
    assert space.tunable_names == ("learning_rate", "momentum", "wd", "layers", "optimizer")
    assert dict(space.static_values) == {"batch_size": 1024}
    assert space.dimension == 5
    assert space.size is None


def test_size_of_a_finite_space_is_the_product_of_cardinalities() -> None:
    space = SearchSpace({"a": IntegerParameter(1, 4), "b": CategoricalParameter(["x", "y", "z"])})
    assert space.size == 12


def test_from_config_round_trips_through_to_config() -> None:
    space = flagship_space()
    rebuilt = SearchSpace.from_config(space.to_config())
    assert rebuilt == space
    assert rebuilt.to_config()["learning_rate"] == {
        "type": "Continuous",
        "min_value": 0.001,
        "max_value": 0.5,
        "scaling_type": "Logarithmic",
    }
    assert rebuilt.to_config()["batch_size"] == 1024


def test_from_config_accepts_names_in_any_case_and_default_scaling() -> None:
    space = SearchSpace.from_config(
        {
            "lr": {"type": "continuous", "min_value": 1e-4, "max_value": 1.0},
            "depth": {"type": "INTEGER", "min_value": 1, "max_value": 5, "scaling_type": "linear"},
            "act": {"type": "Categorical", "values": ["relu", "tanh"]},
            "epochs": 50,
        }
    )
    lr = space.parameters["lr"]
    assert isinstance(lr, ContinuousParameter)
    assert lr.scaling_type is ScalingType.AUTO
    assert lr.resolved_scaling_type is ScalingType.LOGARITHMIC
    assert space.parameters["depth"].scaling_type is ScalingType.LINEAR
    assert space.static_values["epochs"] == 50


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.001, 0.5, ScalingType.LOGARITHMIC),  # 500x range of positive values
        (1.0, 100.0, ScalingType.LOGARITHMIC),  # exactly two decades
        (1.0, 99.0, ScalingType.LINEAR),
        (0.0, 0.001, ScalingType.LINEAR),  # includes zero
        (-1.0, 1000.0, ScalingType.LINEAR),
    ],
)
def test_auto_scaling_rule(low: float, high: float, expected: ScalingType) -> None:
    assert ContinuousParameter(low, high).resolved_scaling_type is expected


def test_auto_scaling_rule_for_integers() -> None:
    assert IntegerParameter(8, 1024).resolved_scaling_type is ScalingType.LOGARITHMIC
    assert IntegerParameter(2, 8).resolved_scaling_type is ScalingType.LINEAR


def test_contains_and_violations_explain_why_a_config_is_outside() -> None:
    space = flagship_space()
    good = {"learning_rate": 0.01, "momentum": 0.9, "wd": 0.0, "layers": 3, "optimizer": "nag"}
    assert space.contains(good)
    assert space.contains({**good, "batch_size": 1, "unrelated": "ignored"})
    bad = {**good, "learning_rate": 0.9, "layers": 2.5, "optimizer": "rmsprop"}
    del bad["wd"]
    reasons = space.violations(bad)
    assert not space.contains(bad)
    assert any("learning_rate" in r and "0.9" in r for r in reasons)
    assert any("layers" in r and "2.5" in r for r in reasons)
    assert any("optimizer" in r and "rmsprop" in r for r in reasons)
    assert any("wd" in r and "missing" in r for r in reasons)


def test_normalize_coerces_types_and_fills_static_values() -> None:
    space = flagship_space()
    config = {"learning_rate": 0.1, "momentum": 0.5, "wd": 0, "layers": 4.0, "optimizer": "sgd"}
    normal = space.normalize(config)
    assert normal == {**config, "batch_size": 1024}
    assert type(normal["layers"]) is int
    assert type(normal["wd"]) is float


def test_categorical_values_match_by_string_form_and_keep_declared_type() -> None:
    parameter = CategoricalParameter([32, 64, 128])
    assert parameter.violation("64") is None
    assert parameter.coerce("64") == 64
    assert parameter.violation("96") is not None


# ------------------------------------------------------------ validation rules
def expect_error(config: dict, *fragments: str) -> None:
    """``from_config(config)`` fails with a message holding every fragment."""
    with pytest.raises(SearchSpaceError) as caught:
        SearchSpace.from_config(config)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def continuous(low: object, high: object, scaling: str = "Linear") -> dict:
    return {"type": "Continuous", "min_value": low, "max_value": high, "scaling_type": scaling}


def test_rule_at_most_30_tunable_parameters() -> None:
    ok = {f"p{i}": continuous(0, 1) for i in range(30)}
    assert SearchSpace.from_config(ok).dimension == 30
    expect_error({**ok, "p30": continuous(0, 1)}, "31 tunable", "1 to 30")


def test_rule_at_least_one_tunable_parameter() -> None:
    expect_error({"epochs": 10}, "0 tunable", "1 to 30")


def test_rule_at_most_100_hyperparameters_in_total() -> None:
    ok = {"lr": continuous(0, 1), **{f"s{i}": i for i in range(99)}}
    assert len(SearchSpace.from_config(ok).static_values) == 99
    expect_error({**ok, "s99": 99}, "101 hyperparameters", "at most 100")


def test_rule_names_at_most_256_characters() -> None:
    assert SearchSpace.from_config({"n" * 256: continuous(0, 1)}).dimension == 1
    expect_error({"n" * 257: continuous(0, 1)}, "257 characters", "limit is 256")


def test_rule_categorical_values_at_most_256_characters() -> None:
    assert CategoricalParameter(["v" * 256]).values == ("v" * 256,)
    expect_error(
        {"opt": {"type": "Categorical", "values": ["ok", "v" * 257]}},
        "'opt'",
        "257 characters",
        "limit is 256",
    )


@pytest.mark.parametrize("count", [0, 31])
def test_rule_one_to_30_categorical_values(count: int) -> None:
    values = [f"v{i}" for i in range(count)]
    expect_error({"opt": {"type": "Categorical", "values": values}}, "'opt'", "1 to 30", str(count))


def test_rule_30_categorical_values_are_allowed() -> None:
    assert CategoricalParameter([f"v{i}" for i in range(30)]).cardinality == 30


def test_rule_no_duplicate_categorical_values() -> None:
    expect_error(
        {"opt": {"type": "Categorical", "values": ["sgd", "adam", "sgd"]}},
        "'opt'",
        "'sgd'",
        "duplicated",
    )


@pytest.mark.parametrize("kind", ["Continuous", "Integer"])
@pytest.mark.parametrize(("low", "high"), [(5, 5), (6, 5)])
def test_rule_min_value_below_max_value(kind: str, low: int, high: int) -> None:
    expect_error(
        {"x": {"type": kind, "min_value": low, "max_value": high}},
        "'x'",
        f"min_value={low}",
        "must be less than",
    )


@pytest.mark.parametrize("bound", [2.5, "3", None, True])
def test_rule_integer_bounds_are_integers(bound: object) -> None:
    expect_error(
        {"depth": {"type": "Integer", "min_value": bound, "max_value": 10}},
        "'depth'",
        f"min_value={bound!r}",
    )


def test_rule_integer_bounds_accept_integral_floats() -> None:
    assert IntegerParameter(2.0, 8.0).min_value == 2


@pytest.mark.parametrize("kind", ["Continuous", "Integer"])
@pytest.mark.parametrize("low", [0, -1])
def test_rule_logarithmic_needs_positive_min_value(kind: str, low: int) -> None:
    expect_error(
        {"lr": {"type": kind, "min_value": low, "max_value": 10, "scaling_type": "Logarithmic"}},
        "'lr'",
        f"min_value={low}",
        "> 0 for Logarithmic",
    )


def test_rule_reverse_logarithmic_needs_non_negative_min_value() -> None:
    expect_error(
        {"m": continuous(-0.1, 0.9, "ReverseLogarithmic")},
        "'m'",
        "min_value=-0.1",
        ">= 0 for ReverseLogarithmic",
    )


@pytest.mark.parametrize("high", [1.0, 1.5])
def test_rule_reverse_logarithmic_needs_max_value_below_one(high: float) -> None:
    expect_error(
        {"m": continuous(0.0, high, "ReverseLogarithmic")},
        "'m'",
        f"max_value={high}",
        "< 1 for ReverseLogarithmic",
    )


def test_rule_reverse_logarithmic_boundaries_are_allowed() -> None:
    parameter = ContinuousParameter(0.0, 0.999, scaling_type="ReverseLogarithmic")
    assert parameter.resolved_scaling_type is ScalingType.REVERSE_LOGARITHMIC


REVERSE_LOG = "reverselogarithmic"  # any letter case is accepted


def test_rule_reverse_logarithmic_only_for_continuous_parameters() -> None:
    expect_error(
        {
            "n": {
                "type": "Integer",
                "min_value": 0,
                "max_value": 5,
                "scaling_type": "reverselogarithmic",
            }
        },
        "'n'",
        "ReverseLogarithmic",
        "only supported for ContinuousParameter",
    )


@pytest.mark.parametrize("bound", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("field", ["min_value", "max_value"])
def test_rule_non_finite_bounds_rejected(bound: float, field: str) -> None:
    entry = {"type": "Continuous", "min_value": 0.0, "max_value": 1.0, field: bound}
    expect_error({"x": entry}, "'x'", f"{field}={bound!r}", "finite")


def test_non_finite_categorical_value_rejected() -> None:
    expect_error({"c": {"type": "Categorical", "values": [1.0, math.nan]}}, "'c'", "nan", "finite")


def test_unknown_scaling_type_rejected() -> None:
    expect_error(
        {"x": continuous(0, 1, "Quadratic")}, "'x'", "'Quadratic'", "Auto, Linear, Logarithmic"
    )


def test_unknown_parameter_type_rejected() -> None:
    expect_error({"x": {"type": "Float", "min_value": 0, "max_value": 1}}, "'x'", "'Float'")


def test_missing_and_unknown_fields_rejected() -> None:
    expect_error({"x": {"type": "Continuous", "min_value": 0}}, "'x'", "max_value", "missing")
    expect_error(
        {"x": {"type": "Continuous", "min_value": 0, "max_value": 1, "step": 0.1}},
        "'x'",
        "'step'",
        "unknown field",
    )


@pytest.mark.parametrize("value", [None, [1, 2], {"a": 1}])
def test_static_values_must_be_scalars(value: object) -> None:
    with pytest.raises(SearchSpaceError, match="static hyperparameter 'epochs'|'epochs'"):
        SearchSpace({"lr": ContinuousParameter(0, 1), "epochs": value})


def test_empty_name_rejected() -> None:
    expect_error({"": continuous(0, 1)}, "name ''", "non-empty")


def test_search_space_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        ContinuousParameter(1, 0)
