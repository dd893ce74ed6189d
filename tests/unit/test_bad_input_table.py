"""Bad input that tests/unit/test_bad_input.py does not have yet: issue 8's remaining cases,
names that script mode cannot pass to a trainer, YAML documents too large, deep or alias-laden
to check, and sample logs the metric definitions extract nothing from.

Same table shape and the same check (the error names the field, the value and the rule); the
helpers come from that module so both tables judge errors alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import JobSpec, load_job_spec, parse_yaml, validate_sample_log
from orchestrator.spec.yaml_bounds import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from tests.unit.test_bad_input import (
    JOBS,
    Case,
    assert_names_field_value_and_rule,
    bad_input,
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


NAME_RULE = "1-256 characters of letters, digits, '_', '.' and '-' and must not start with"
LR = continuous(0.001, 0.1, "Logarithmic")
NAME_CASES = [
    # Names become `--name value` arguments and SM_HP_<NAME> variables (script mode).
    Case(
        "tuned-name-with-a-space",
        {"hyperparameter_ranges": {"learning rate": LR}},
        "hyperparameter_ranges.learning rate",
        "learning rate",
        NAME_RULE,
    ),
    Case(
        "static-name-like-an-option",
        {"hyperparameters": {"-x": 1}},
        "hyperparameters.-x",
        "-x",
        NAME_RULE,
    ),
    Case(
        "static-name-with-equals",
        {"hyperparameters": {"a=b": 1}},
        "hyperparameters.a=b",
        "a=b",
        NAME_RULE,
    ),
    Case(
        "tuned-name-starting-with-a-dot",
        {"hyperparameter_ranges": {".lr": LR}},
        "hyperparameter_ranges..lr",
        ".lr",
        NAME_RULE,
    ),
    Case(
        "tuned-name-not-ascii",
        {"hyperparameter_ranges": {"tasa_é": LR}},
        "hyperparameter_ranges.tasa_é",
        "tasa_é",
        NAME_RULE,
    ),
    Case("static-name-empty", {"hyperparameters": {"": 1}}, "hyperparameters.", "", NAME_RULE),
    Case(
        "static-name-too-long",
        {"hyperparameters": {"n" * 257: 1}},
        f"hyperparameters.{'n' * 257}",
        "n" * 257,
        NAME_RULE,
    ),
    Case(
        "static-and-tuned-names-differ-only-by-case",
        {"hyperparameters": {"LR": 0.1}, "hyperparameter_ranges": {"lr": LR}},
        "hyperparameter_ranges.lr",
        "lr",
        "differs from 'LR' (in hyperparameters) only by case; both would set SM_HP_LR",
    ),
    Case(
        "tuned-names-differ-only-by-case",
        {"hyperparameter_ranges": {"lr": LR, "Lr": LR}},
        "hyperparameter_ranges.Lr",
        "Lr",
        "differs from 'lr' (in hyperparameter_ranges) only by case; both would set SM_HP_LR",
    ),
    Case(
        "channel-names-differ-only-by-case",
        {"inputs": {"train": "data/a", "TRAIN": "data/b"}},
        "inputs.TRAIN",
        "TRAIN",
        "differs from 'train' only by case; both would set SM_CHANNEL_TRAIN",
    ),
]


@bad_input("job specs")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_more_bad_input_is_refused_naming_field_value_and_rule(case: Case, tmp_path: Path) -> None:
    data = changed(minimal_job(), case.changes)

    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(data, base_dir=tmp_path)

    assert_names_field_value_and_rule(caught.value, case.field, case.value, case.rule)


@bad_input("hyperparameter and channel names")
@pytest.mark.parametrize("case", NAME_CASES, ids=[case.id for case in NAME_CASES])
def test_names_script_mode_cannot_pass_are_refused(case: Case, tmp_path: Path) -> None:
    data = changed(minimal_job(), case.changes)

    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping(data, base_dir=tmp_path)

    assert_names_field_value_and_rule(caught.value, case.field, case.value, case.rule)


def test_names_script_mode_can_pass_are_accepted(tmp_path: Path) -> None:
    ranges = {"learning_rate": LR, "Model.depth": categorical([2, 4]), "wd-2": LR, "_x": LR}
    data = changed(minimal_job(), {"hyperparameter_ranges": ranges, "hyperparameters": {"9": 1}})

    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert set(spec.hyperparameter_ranges) == set(ranges) and spec.hyperparameters == {"9": 1}


def alias_bomb(levels: int, width: int = 10) -> str:
    """A job file whose anchors alias the previous anchor `width` times: width**levels nodes."""
    lines = ["name: bomb", "a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


YAML_BOUND_CASES = [
    # (id, job file text, rule): each refused naming the job file, the limit and the rule.
    ("alias-bomb-of-ten-million-nodes", alias_bomb(7), f"expands to more than {MAX_NODES:,} YAML"),
    ("alias-bomb-used-as-a-value", alias_bomb(5) + "max_jobs: *a4\n", f"more than {MAX_NODES:,}"),
    (
        "flow-nesting-5000-deep",
        "name: " + "[" * 5000 + "]" * 5000 + "\n",
        f"deeper than {MAX_DEPTH}",
    ),
    (
        "block-nesting-40-deep",
        "".join(" " * i + f"k{i}:\n" for i in range(40)) + " " * 40 + "x\n",
        f"deeper than {MAX_DEPTH} levels on line {MAX_DEPTH}",
    ),
    (
        "alias-deepens-past-the-limit",
        "a: &a " + "[" * 20 + "]" * 20 + "\nb: [[[[[[[[[[[[[[[[*a]]]]]]]]]]]]]]]]\n",
        f"deeper than {MAX_DEPTH} levels on line 2",
    ),
    (
        "recursive-sequence",
        "name: &a [1, *a]\n",
        "alias *a on line 1 refers to a node that contains",
    ),
    ("recursive-mapping", "trainer: &t {command: *t}\n", "a job spec cannot be recursive"),
    (
        "larger-than-the-file-limit",
        "name: x\n" + "#" * MAX_FILE_BYTES + "\n",
        f"larger than {MAX_FILE_BYTES:,} bytes",
    ),
    (
        "two-documents",
        "name: a\n---\nname: b\n",
        "is not valid YAML: expected a single document in the stream, but found another",
    ),
    ("undefined-alias", "name: *nowhere\n", "is not valid YAML: found undefined alias 'nowhere'"),
    (
        "tab-indentation",
        "trainer:\n\tcommand: [python]\n",
        "found character '\\t' that cannot start any token (line 2, column 1)",
    ),
]


@bad_input("YAML documents")
@pytest.mark.parametrize(
    ("text", "rule"), [c[1:] for c in YAML_BOUND_CASES], ids=[c[0] for c in YAML_BOUND_CASES]
)
def test_yaml_past_the_bounds_is_refused_naming_the_file_the_limit_and_the_rule(
    text: str, rule: str, tmp_path: Path
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(SpecError) as caught:
        load_job_spec(path)

    assert_names_field_value_and_rule(caught.value, "<job file>", str(path), rule)
    assert str(caught.value).startswith(f"job spec {path} is invalid (1 problem)")


@bad_input("YAML documents")
def test_a_job_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"name: caf\xe9\n")

    with pytest.raises(SpecError) as caught:
        load_job_spec(path)

    assert_names_field_value_and_rule(
        caught.value, "<job file>", str(path), "is not UTF-8 text: invalid continuation byte"
    )


def test_a_job_file_at_the_limits_loads(tmp_path: Path) -> None:
    """An anchor used twice, 30 levels of nesting and a file just under the byte limit are all
    fine: the bounds leave room for any real job."""
    nested = "[" * 29 + "1" + "]" * 29
    text = (
        (JOBS / "minimal.yaml").read_text()
        + "hyperparameters: {batch: &batch 64, eval_batch: *batch}\n"
        + f"inputs: {{train: data}}\nx-notes: {nested}\n"
    ).replace("x-notes", "# x-notes")
    text += "# " + "-" * (MAX_FILE_BYTES - len(text.encode()) - 3) + "\n"
    path = tmp_path / "job.yaml"
    path.write_text(text)
    assert path.stat().st_size == MAX_FILE_BYTES

    spec = load_job_spec(path)

    assert spec.hyperparameters == {"batch": 64, "eval_batch": 64}
    assert parse_yaml(f"a: {nested}\n") == {
        "a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    }


TWO_METRICS = [
    {"Name": "accuracy", "Regex": "accuracy=([0-9.]+)"},
    {"Name": "loss", "Regex": "loss=([0-9.]+)"},
]
ANY_TEXT = [{"Name": "accuracy", "Regex": "accuracy=(\\S+)"}]
OPTIONAL = [{"Name": "accuracy", "Regex": "accuracy(?:=([0-9.]+))?"}]
NO_LINE = "metric 'accuracy' matches no line of the log"
NO_NUMBER = "metric 'accuracy' matches the log but captures no number"
SAMPLE_LOG_CASES = [
    # (id, metric definitions, sample log, index of the definition flagged, rule)
    ("empty-log", TWO_METRICS, "", 0, NO_LINE),
    ("no-metric-lines", TWO_METRICS, "epoch 1 done\nepoch 2 done\n", 0, NO_LINE),
    ("one-metric-missing", TWO_METRICS, "accuracy=0.9\n", 1, "metric 'loss' matches no line"),
    ("value-on-the-next-line", TWO_METRICS, "accuracy=\n0.91 loss=0.2\n", 0, NO_LINE),
    ("binary-garbage", TWO_METRICS, "\x00\ufffd\ufffd\x1b[31m\n" * 100, 0, NO_LINE),
    ("one-line-of-a-megabyte", TWO_METRICS, "x" * 1024 * 1024 + "\n", 0, NO_LINE),
    ("capture-not-a-number", ANY_TEXT, "accuracy=high\n", 0, NO_NUMBER + " (NaN and infinity"),
    ("capture-nan", ANY_TEXT, "accuracy=nan\n", 0, "first capture: 'nan'"),
    ("capture-infinity", ANY_TEXT, "accuracy=-inf\naccuracy=Infinity\n", 0, "capture: '-inf'"),
    ("capture-group-not-taking-part", OPTIONAL, "accuracy\n", 0, "first capture: None"),
]


@bad_input("sample logs")
@pytest.mark.parametrize(
    ("definitions", "log", "index", "rule"),
    [case[1:] for case in SAMPLE_LOG_CASES],
    ids=[case[0] for case in SAMPLE_LOG_CASES],
)
def test_a_sample_log_the_metrics_extract_nothing_from_is_refused(
    definitions: list[dict[str, str]], log: str, index: int, rule: str, tmp_path: Path
) -> None:
    data = changed(minimal_job(), {"metric_definitions": definitions})
    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    problems = validate_sample_log(spec, log)

    field = f"metric_definitions[{index}].Regex"
    assert_names_field_value_and_rule(SpecError(problems), field, definitions[index]["Regex"], rule)


def test_a_sample_log_with_every_metric_passes(tmp_path: Path) -> None:
    data = changed(minimal_job(), {"metric_definitions": TWO_METRICS})
    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert validate_sample_log(spec, "garbage\r\nloss=0.2 accuracy=nan\r\naccuracy=0.9\r\n") == []
