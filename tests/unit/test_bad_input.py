"""Bad job specs: each rule has a case, and each error names the field, the value and the rule.

One table covers the rules that apply to the spec as data; the YAML-level rules (not a
mapping, duplicate keys, syntax) and warnings have their own small tables below it.

Tests that try bad input carry `@bad_input(kind)`; `benchmarks/bad_input.py` runs them and
counts their cases per kind for the bad-input table in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from orchestrator.errors import MISSING, SpecError, SpecProblem
from orchestrator.spec import JobSpec, check_resources, load_job_spec, parse_yaml

JOBS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "jobs"
DELETE = object()
#: The kinds of bad input the table in benchmarks/RESULTS.md counts, in its order.
KINDS = (
    "job specs",
    "hyperparameter and channel names",
    "YAML documents",
    "warm-start parents",
    "sample logs",
    "CLI invocations",
)
Test = TypeVar("Test", bound=Callable[..., Any])


def bad_input(kind: str) -> Callable[[Test], Test]:
    """Mark a test as trying bad input of `kind` (one of `KINDS`); each case must be refused
    with a named error before any trial runs."""
    if kind not in KINDS:
        raise ValueError(f"bad_input kind {kind!r} is not one of {KINDS}")

    def mark(test: Test) -> Test:
        test.bad_input = kind  # type: ignore[attr-defined]
        return test

    return mark


@dataclasses.dataclass(frozen=True)
class Case:
    """Set `changes` (dotted path -> value, or DELETE) on the minimal job; expect a problem at
    `field` with `value` whose rule contains `rule`."""

    id: str
    changes: dict[str, Any]
    field: str
    value: Any
    rule: str


def continuous(low: Any, high: Any, scaling: str = "Linear") -> dict[str, Any]:
    return {"type": "Continuous", "min_value": low, "max_value": high, "scaling_type": scaling}


def categorical(values: list[Any]) -> dict[str, Any]:
    return {"type": "Categorical", "values": values}


def integer_ranges(count: int) -> dict[str, Any]:
    return {f"p{i}": {"type": "Integer", "min_value": 0, "max_value": 9} for i in range(count)}


def metrics(*regexes: str) -> list[dict[str, str]]:
    return [{"Name": f"m{i}", "Regex": regex} for i, regex in enumerate(regexes)]


def accuracy_and(*regexes: str) -> list[dict[str, str]]:
    return [{"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"}, *metrics(*regexes)]


LONG_REGEX = "accuracy=(" + "[0-9]" * 100 + ")"  # 511 characters
CASES = [
    # name
    Case("name-empty", {"name": ""}, "name", "", "must be 1-32 characters long, got 0"),
    Case("name-too-long", {"name": "a" * 33}, "name", "a" * 33, "1-32 characters long, got 33"),
    Case("name-bad-character", {"name": "my_job"}, "name", "my_job", "SageMaker's tuning job name"),
    Case("name-trailing-hyphen", {"name": "job-"}, "name", "job-", "ending with a letter or digit"),
    Case("name-missing", {"name": DELETE}, "name", MISSING, "required field is missing"),
    # hyperparameters and their ranges (rules owned by `search`)
    Case(
        "parameter-static-and-tuned",
        {"hyperparameters": {"layers": 3}},
        "hyperparameters.layers",
        3,
        "duplicate parameter name",
    ),
    Case(
        "min-above-max",
        {"hyperparameter_ranges": {"lr": continuous(0.5, 0.1)}},
        "hyperparameter_ranges.lr.min_value",
        0.5,
        "must be less than max_value",
    ),
    Case(
        "min-equals-max",
        {"hyperparameter_ranges": {"n": {"type": "Integer", "min_value": 3, "max_value": 3}}},
        "hyperparameter_ranges.n.min_value",
        3,
        "must be less than max_value",
    ),
    Case(
        "bound-not-numeric",
        {"hyperparameter_ranges": {"lr": continuous("low", 0.1)}},
        "hyperparameter_ranges.lr.min_value",
        "low",
        "must be a number",
    ),
    Case(
        "bound-not-finite",
        {"hyperparameter_ranges": {"lr": continuous(0.0, float("inf"))}},
        "hyperparameter_ranges.lr.max_value",
        float("inf"),
        "must be finite",
    ),
    Case(
        "log-scaling-min-zero",
        {"hyperparameter_ranges": {"lr": continuous(0.0, 0.1, "Logarithmic")}},
        "hyperparameter_ranges.lr.min_value",
        0.0,
        "must be > 0 for Logarithmic scaling",
    ),
    Case(
        "reverse-log-max-one",
        {"hyperparameter_ranges": {"momentum": continuous(0.0, 1.0, "ReverseLogarithmic")}},
        "hyperparameter_ranges.momentum.max_value",
        1.0,
        "must be < 1 for ReverseLogarithmic scaling",
    ),
    Case(
        "reverse-log-min-negative",
        {"hyperparameter_ranges": {"momentum": continuous(-0.1, 0.9, "ReverseLogarithmic")}},
        "hyperparameter_ranges.momentum.min_value",
        -0.1,
        "must be >= 0 for ReverseLogarithmic scaling",
    ),
    Case(
        "scaling-type-unknown",
        {"hyperparameter_ranges": {"lr": continuous(0.1, 0.5, "Quadratic")}},
        "hyperparameter_ranges.lr.scaling_type",
        "Quadratic",
        "is not one of",
    ),
    Case(
        "range-type-unknown",
        {"hyperparameter_ranges": {"lr": {"type": "Float", "min_value": 0, "max_value": 1}}},
        "hyperparameter_ranges.lr.type",
        "Float",
        "is not one of: Continuous, Integer, Categorical",
    ),
    Case(
        "categorical-empty",
        {"hyperparameter_ranges": {"optimizer": categorical([])}},
        "hyperparameter_ranges.optimizer.values",
        [],
        "must hold 1 to 30 values, got 0",
    ),
    Case(
        "categorical-too-many",
        {"hyperparameter_ranges": {"optimizer": categorical(list(range(31)))}},
        "hyperparameter_ranges.optimizer.values",
        list(range(31)),
        "must hold 1 to 30 values, got 31",
    ),
    Case(
        "categorical-duplicate",
        {"hyperparameter_ranges": {"optimizer": categorical(["sgd", "adam", "sgd"])}},
        "hyperparameter_ranges.optimizer",
        categorical(["sgd", "adam", "sgd"]),
        "value 'sgd' is duplicated in values",
    ),
    Case(
        "categorical-value-too-long",
        {"hyperparameter_ranges": {"optimizer": categorical(["sgd", "x" * 257])}},
        "hyperparameter_ranges.optimizer",
        categorical(["sgd", "x" * 257]),
        "is 257 characters long; the limit is 256",
    ),
    Case(
        "too-many-tunable",
        {"hyperparameter_ranges": integer_ranges(31)},
        "hyperparameter_ranges",
        "31 tuned, 0 static",
        "it must have 1 to 30",
    ),
    Case(
        "too-many-in-total",
        {
            "hyperparameter_ranges": integer_ranges(30),
            "hyperparameters": {f"s{i}": i for i in range(71)},
        },
        "hyperparameter_ranges",
        "30 tuned, 71 static",
        "at most 100 are allowed",
    ),
    Case(
        "no-tunable",
        {"hyperparameter_ranges": {}},
        "hyperparameter_ranges",
        "0 tuned, 0 static",
        "it must have 1 to 30",
    ),
    Case(
        "range-not-a-mapping",
        {"hyperparameter_ranges": {"lr": 0.1}},
        "hyperparameter_ranges.lr",
        0.1,
        "a fixed value belongs in hyperparameters",
    ),
    Case(
        "static-not-scalar",
        {"hyperparameters": {"sizes": [1, 2]}},
        "hyperparameters.sizes",
        [1, 2],
        "must be a string, number or boolean",
    ),
    Case(
        "grid-with-continuous",
        {"strategy": "Grid", "hyperparameter_ranges": {"lr": continuous(0.1, 0.5)}},
        "hyperparameter_ranges.lr",
        continuous(0.1, 0.5),
        "strategy Grid enumerates values; it cannot take a continuous range",
    ),
    # objective and metric definitions
    Case(
        "objective-not-defined",
        {"objective_metric_name": "Accuracy-"},
        "objective_metric_name",
        "Accuracy-",
        "must be the Name of one of the metric_definitions: accuracy; did you mean 'accuracy'?",
    ),
    Case(
        "objective-type-unknown",
        {"objective_type": "Biggest"},
        "objective_type",
        "Biggest",
        "Input should be 'Maximize' or 'Minimize'",
    ),
    Case(
        "regex-does-not-compile",
        {"metric_definitions": [{"Name": "accuracy", "Regex": "accuracy=([0-9"}]},
        "metric_definitions[0].Regex",
        "accuracy=([0-9",
        "is not a valid regular expression",
    ),
    Case(
        "regex-without-capture-group",
        {"metric_definitions": accuracy_and("loss=[0-9.]+")},
        "metric_definitions[1].Regex",
        "loss=[0-9.]+",
        "must have exactly one capture group (the metric's value), found 0",
    ),
    Case(
        "regex-with-two-capture-groups",
        {"metric_definitions": accuracy_and("loss=([0-9]+)\\.([0-9]+)")},
        "metric_definitions[1].Regex",
        "loss=([0-9]+)\\.([0-9]+)",
        "found 2",
    ),
    Case(
        "regex-too-long",
        {"metric_definitions": accuracy_and(LONG_REGEX)},
        "metric_definitions[1].Regex",
        LONG_REGEX,
        "must be at most 500 characters (SageMaker's limit), got 511",
    ),
    Case(
        "metric-name-too-long",
        {"metric_definitions": [{"Name": "m" * 256, "Regex": "m=(\\d+)"}]},
        "metric_definitions[0].Name",
        "m" * 256,
        "must be 1-255 characters (SageMaker's limit), got 256",
    ),
    Case(
        "too-many-metric-definitions",
        {"metric_definitions": accuracy_and(*[f"m{i}=(\\d+)" for i in range(20)])},
        "metric_definitions",
        21,
        "must hold 1-20 metric definitions (SageMaker's limit), got 21",
    ),
    Case("no-metric-definitions", {"metric_definitions": []}, "metric_definitions", 0, "got 0"),
    Case(
        "duplicate-metric-name",
        {"metric_definitions": [{"Name": "accuracy", "Regex": "a=(\\d)"}] * 2},
        "metric_definitions[1].Name",
        "accuracy",
        "duplicate metric name",
    ),
    # budgets and resources
    Case("max-jobs-zero", {"max_jobs": 0}, "max_jobs", 0, "greater than or equal to 1"),
    Case("max-jobs-fraction", {"max_jobs": 2.5}, "max_jobs", 2.5, "valid integer"),
    Case(
        "max-parallel-jobs-zero",
        {"max_parallel_jobs": 0},
        "max_parallel_jobs",
        0,
        "greater than or equal to 1",
    ),
    Case("strategy-unknown", {"strategy": "Genetic"}, "strategy", "Genetic", "'Bayesian'"),
    Case(
        "cpu-zero",
        {"resources_per_trial": {"cpu": 0}},
        "resources_per_trial.cpu",
        0,
        "greater than 0",
    ),
    Case(
        "gpu-negative",
        {"resources_per_trial": {"gpu": -1}},
        "resources_per_trial.gpu",
        -1,
        "greater than or equal to 0",
    ),
    Case(
        "gpu-fraction-above-one",
        {"resources_per_trial": {"gpu": 1.5}},
        "resources_per_trial.gpu",
        1.5,
        "more than one GPU must be a whole number",
    ),
    Case(
        "trial-runtime-zero",
        {"max_runtime_in_seconds": 0},
        "max_runtime_in_seconds",
        0,
        "greater than 0",
    ),
    Case("random-seed-negative", {"random_seed": -1}, "random_seed", -1, "greater than or equal"),
    Case(
        "channel-name-invalid",
        {"inputs": {"train-data": "data"}},
        "inputs.train-data",
        "train-data",
        "SM_CHANNEL_<NAME>",
    ),
    # the trainer
    Case(
        "command-as-string",
        {"trainer.command": "python -m models.x --lr 0.1"},
        "trainer.command",
        "python -m models.x --lr 0.1",
        'write it as ["python", "-m", "models.x", "--lr", "0.1"]',
    ),
    Case("command-empty", {"trainer.command": []}, "trainer.command", [], "must name the program"),
    Case(
        "trainer-not-found",
        {"trainer.command": ["no-such-trainer-7c1e", "--fast"]},
        "trainer.command[0]",
        "no-such-trainer-7c1e",
        "trainer not found",
    ),
    Case(
        "interpreter-not-found",
        {"trainer.interpreter": "envs/missing/bin/python"},
        "trainer.interpreter",
        "envs/missing/bin/python",
        "trainer not found",
    ),
    Case(
        "trainer-script-not-found",
        {"trainer.command": ["python", "missing_train.py"]},
        "trainer.command[1]",
        "missing_train.py",
        "trainer script not found",
    ),
    Case(
        "working-dir-missing",
        {"trainer.working_dir": "no/such/dir"},
        "trainer.working_dir",
        "no/such/dir",
        "is not a directory",
    ),
    Case(
        "env-value-not-a-string",
        {"trainer.env": {"OMP_NUM_THREADS": 1}},
        "trainer.env.OMP_NUM_THREADS",
        1,
        "quote it in YAML",
    ),
    Case(
        "env-name-invalid",
        {"trainer.env": {"1BAD": "x"}},
        "trainer.env.1BAD",
        "1BAD",
        "environment variable names",
    ),
    # unknown keys
    Case("unknown-key", {"max_job": 12}, "max_job", 12, "unknown key; did you mean 'max_jobs'?"),
    Case(
        "unknown-nested-key",
        {"trainer.comand": ["python"]},
        "trainer.comand",
        ["python"],
        "did you mean 'command'?",
    ),
    Case(
        "unknown-sagemaker-style-key",
        {"MaxParallelJobs": 2},
        "MaxParallelJobs",
        2,
        "did you mean 'max_parallel_jobs'?",
    ),
    Case(
        "unknown-key-in-a-list-item",
        {"metric_definitions": [{"Name": "accuracy", "Regexp": "a=(\\d)", "Regex": "a=(\\d)"}]},
        "metric_definitions[0].Regexp",
        "a=(\\d)",
        "did you mean 'Regex'?",
    ),
    Case(
        "unknown-key-without-a-guess",
        {"zzz": 1},
        "zzz",
        1,
        "unknown key; allowed keys: completion_criteria, early_stopping_type",
    ),
    # SageMaker tuning features
    Case(
        "early-stopping-unknown",
        {"early_stopping_type": "Sometimes"},
        "early_stopping_type",
        "Sometimes",
        "'Off' or 'Auto'",
    ),
    Case(
        "hyperband-with-early-stopping",
        {"strategy": "Hyperband", "early_stopping_type": "Auto"},
        "early_stopping_type",
        "Auto",
        "must be Off with strategy Hyperband",
    ),
    Case(
        "hyperband-config-without-hyperband",
        {"hyperband_strategy_config": {"min_resource": 1, "max_resource": 9}},
        "hyperband_strategy_config",
        {"min_resource": 1, "max_resource": 9},
        "only allowed with strategy Hyperband, not Bayesian",
    ),
    Case(
        "hyperband-max-not-above-min",
        {
            "strategy": "Hyperband",
            "hyperband_strategy_config": {"min_resource": 5, "max_resource": 5},
        },
        "hyperband_strategy_config.max_resource",
        5,
        "must be greater than min_resource (5)",
    ),
    Case(
        "hyperband-min-zero",
        {
            "strategy": "Hyperband",
            "hyperband_strategy_config": {"min_resource": 0, "max_resource": 5},
        },
        "hyperband_strategy_config.min_resource",
        0,
        "greater than or equal to 1",
    ),
    Case(
        "not-improving-below-three",
        {
            "completion_criteria": {
                "best_objective_not_improving": {"max_number_of_training_jobs_not_improving": 2}
            }
        },
        "completion_criteria.best_objective_not_improving.max_number_of_training_jobs_not_improving",
        2,
        "greater than or equal to 3",
    ),
    Case(
        "convergence-unknown",
        {"completion_criteria": {"convergence_detected": {"complete_on_convergence": "Maybe"}}},
        "completion_criteria.convergence_detected.complete_on_convergence",
        "Maybe",
        "'Disabled' or 'Enabled'",
    ),
    Case(
        "job-runtime-zero",
        {"completion_criteria": {"max_runtime_in_seconds": 0}},
        "completion_criteria.max_runtime_in_seconds",
        0,
        "greater than 0",
    ),
    Case(
        "target-not-finite",
        {"completion_criteria": {"target_objective_metric_value": float("inf")}},
        "completion_criteria.target_objective_metric_value",
        float("inf"),
        "finite number",
    ),
    Case(
        "retry-attempts-zero",
        {"retry_strategy": {"maximum_retry_attempts": 0}},
        "retry_strategy.maximum_retry_attempts",
        0,
        "greater than or equal to 1",
    ),
    Case(
        "retry-attempts-above-thirty",
        {"retry_strategy": {"maximum_retry_attempts": 31}},
        "retry_strategy.maximum_retry_attempts",
        31,
        "less than or equal to 30",
    ),
    Case(
        "warm-start-too-many-parents",
        {
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": [f"runs/p{i}" for i in range(6)],
                "warm_start_type": "TransferLearning",
            }
        },
        "warm_start_config.parent_hyperparameter_tuning_jobs",
        [f"runs/p{i}" for i in range(6)],
        "at most 5 items",
    ),
    Case(
        "warm-start-no-parents",
        {
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": [],
                "warm_start_type": "TransferLearning",
            }
        },
        "warm_start_config.parent_hyperparameter_tuning_jobs",
        [],
        "at least 1 item",
    ),
    Case(
        "warm-start-duplicate-parent",
        {
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": ["runs/a", "runs/a"],
                "warm_start_type": "TransferLearning",
            }
        },
        "warm_start_config.parent_hyperparameter_tuning_jobs[1]",
        "runs/a",
        "is listed twice",
    ),
    Case(
        "warm-start-parent-missing",
        {
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": ["runs/no-such-parent"],
                "warm_start_type": "IdenticalDataAndAlgorithm",
            }
        },
        "warm_start_config.parent_hyperparameter_tuning_jobs[0]",
        "runs/no-such-parent",
        "parent job directory not found",
    ),
    Case(
        "warm-start-type-unknown",
        {
            "warm_start_config": {
                "parent_hyperparameter_tuning_jobs": ["runs/a"],
                "warm_start_type": "Identical",
            }
        },
        "warm_start_config.warm_start_type",
        "Identical",
        "'IdenticalDataAndAlgorithm' or 'TransferLearning'",
    ),
]


def minimal_job() -> dict[str, Any]:
    return parse_yaml((JOBS / "minimal.yaml").read_text())


def changed(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target.setdefault(key, {})
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return data


def problem_at(error: SpecError, field: str) -> SpecProblem:
    matching = [problem for problem in error.problems if problem.field == field]
    assert matching, f"no problem at {field!r}; got:\n{error}"
    return matching[0]


def assert_names_field_value_and_rule(error: SpecError, field: str, value: Any, rule: str) -> None:
    """The problem at `field` holds `value` and `rule`, and the message shows all three."""
    problem = problem_at(error, field)
    assert problem.value == value
    assert rule in problem.rule
    line = f"  - {problem}"
    assert line in str(error).splitlines()
    assert line.startswith(f"  - {field}: ") and rule in line
    assert ("(got " in line) is (value is not MISSING)


def test_the_minimal_job_is_valid(tmp_path: Path) -> None:
    spec = JobSpec.from_mapping(minimal_job(), base_dir=tmp_path)

    assert spec.name == "minimal" and spec.warnings == ()


@bad_input("job specs")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_naming_field_value_and_rule(case: Case, tmp_path: Path) -> None:
    data = changed(minimal_job(), case.changes)

    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(data, base_dir=tmp_path)

    assert_names_field_value_and_rule(caught.value, case.field, case.value, case.rule)


YAML_CASES = [
    ("a-list", "- name: a\n- max_jobs: 2\n", "<job spec>", [{"name": "a"}, {"max_jobs": 2}]),
    ("a-scalar", "just some text\n", "<job spec>", "just some text"),
    ("empty", "# nothing here\n", "<job spec>", None),
]


@bad_input("YAML documents")
@pytest.mark.parametrize(
    ("text", "field", "value"), [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES]
)
def test_yaml_that_is_not_a_mapping_is_refused(
    text: str, field: str, value: Any, tmp_path: Path
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)

    with pytest.raises(SpecError) as caught:
        load_job_spec(path)

    assert_names_field_value_and_rule(caught.value, field, value, "must be a mapping")
    assert str(caught.value).startswith(f"job spec {path} is invalid")


@bad_input("YAML documents")
def test_a_parameter_defined_twice_in_yaml_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        load_job_spec(JOBS / "bad_duplicate_parameter.yaml")

    assert_names_field_value_and_rule(
        caught.value, "hyperparameter_ranges.layers", "layers", "duplicate key (again on line 6)"
    )


@bad_input("YAML documents")
def test_yaml_syntax_errors_name_the_file_and_the_position(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("name: [unclosed\nmax_jobs: 2\n")

    with pytest.raises(SpecError) as caught:
        load_job_spec(path)

    assert_names_field_value_and_rule(caught.value, "<job file>", str(path), "is not valid YAML")
    assert "line" in str(caught.value)


@bad_input("YAML documents")
@pytest.mark.parametrize(
    ("job_file", "field", "value", "rule"),
    [
        (
            "bad_not_a_mapping.yaml",
            "<job spec>",
            [{"name": "digits-bayes"}, {"max_jobs": 12}],
            "mapping",
        ),
        ("bad_unknown_key.yaml", "max_job", 12, "did you mean 'max_jobs'?"),
        ("bad_regex.yaml", "metric_definitions[0].Regex", "accuracy=[0-9\\.]+", "capture group"),
    ],
)
def test_the_bad_example_job_files_fail_as_labelled(
    job_file: str, field: str, value: Any, rule: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_job_spec(JOBS / job_file)

    assert_names_field_value_and_rule(caught.value, field, value, rule)


WARNING_CASES = [
    Case(
        "regex-matches-empty-string",
        {"metric_definitions": accuracy_and("loss=([0-9.]*)", "([0-9.]*)")},
        "metric_definitions[2].Regex",
        "([0-9.]*)",
        "matches the empty string, so it matches every log line",
    ),
    Case(
        "more-parallel-than-jobs",
        {"max_parallel_jobs": 8},
        "max_parallel_jobs",
        8,
        "is more than max_jobs (4); only 4 trials will run",
    ),
    Case(
        "interpreter-without-python-command",
        {"trainer.command": ["sh", "-c", "echo accuracy=1"], "trainer.interpreter": "python9"},
        "trainer.interpreter",
        "python9",
        "is ignored: the command does not start with python",
    ),
]


@pytest.mark.parametrize("case", WARNING_CASES, ids=[case.id for case in WARNING_CASES])
def test_suspicious_input_loads_with_a_warning_naming_field_value_and_rule(
    case: Case, tmp_path: Path
) -> None:
    spec = JobSpec.from_mapping(changed(minimal_job(), case.changes), base_dir=tmp_path)

    [warning] = spec.warnings
    assert (warning.field, warning.value) == (case.field, case.value)
    assert case.rule in warning.rule
    assert case.field in str(warning) and repr(case.value) in str(warning)


@bad_input("job specs")
def test_more_resources_than_the_cluster_has_are_refused_with_the_numbers(tmp_path: Path) -> None:
    data = changed(minimal_job(), {"resources_per_trial": {"cpu": 4, "gpu": 2}})
    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    with pytest.raises(SpecError) as caught:
        check_resources(spec, {"CPU": 2.0, "GPU": 1.0})

    assert_names_field_value_and_rule(
        caught.value,
        "resources_per_trial.gpu",
        2.0,
        "one trial needs 2 GPUs but the cluster offers 1",
    )
    assert "one trial needs 4 CPUs but the cluster offers 2" in str(caught.value)


@bad_input("job specs")
def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = changed(minimal_job(), {"name": "", "max_jobs": 0, "trainer.comand": ["x"]})

    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(data, base_dir=tmp_path)

    fields = {problem.field for problem in caught.value.problems}
    assert fields == {"name", "max_jobs", "trainer.comand"}
