"""Issue 8's "Bad input" cases that tests/unit/test_bad_input.py does not have yet.

Same table shape and the same check (the error names the field, the value and the rule); the
helpers come from that module so both tables judge errors alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import JobSpec
from tests.unit.test_bad_input import (
    Case,
    assert_names_field_value_and_rule,
    categorical,
    changed,
    continuous,
    minimal_job,
)

CASES = [
    # "empty categorical values": an empty string is not a value a trainer can be given.
    Case(
        "categorical-value-empty-string",
        {"hyperparameter_ranges": {"optimizer": categorical(["sgd", ""])}},
        "hyperparameter_ranges.optimizer",
        categorical(["sgd", ""]),
        "empty",
    ),
    # "log scaling with min <= 0": the table has min = 0; a negative min must fail the same way.
    Case(
        "log-scaling-min-negative",
        {"hyperparameter_ranges": {"lr": continuous(-0.1, 0.1, "Logarithmic")}},
        "hyperparameter_ranges.lr.min_value",
        -0.1,
        "must be > 0 for Logarithmic scaling",
    ),
    # "reverse-log outside [0, 1)": the table has max = 1; a max beyond 1 must fail too.
    Case(
        "reverse-log-max-above-one",
        {"hyperparameter_ranges": {"momentum": continuous(0.1, 1.5, "ReverseLogarithmic")}},
        "hyperparameter_ranges.momentum.max_value",
        1.5,
        "must be < 1 for ReverseLogarithmic scaling",
    ),
    # "max_parallel_jobs < 1": the table has 0; a negative count must fail too.
    Case(
        "max-parallel-jobs-negative",
        {"max_parallel_jobs": -2},
        "max_parallel_jobs",
        -2,
        "greater than or equal to 1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_more_bad_input_is_refused_naming_field_value_and_rule(case: Case, tmp_path: Path) -> None:
    data = changed(minimal_job(), case.changes)

    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(data, base_dir=tmp_path)

    assert_names_field_value_and_rule(caught.value, case.field, case.value, case.rule)
