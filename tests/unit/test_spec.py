"""Good job specs: they load, round-trip, resolve their paths and argv, and hash stably.

Bad ones are in test_bad_input.py.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from orchestrator.errors import OpenAMTError, SpecError
from orchestrator.spec import (
    CompleteOnConvergence,
    EarlyStoppingType,
    JobSpec,
    ObjectiveType,
    Strategy,
    WarmStartType,
    check_resources,
    load_job_spec,
    parse_yaml,
    validate_sample_log,
)
from search import CategoricalParameter, ContinuousParameter, SearchSpace

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS = REPO_ROOT / "tests" / "fixtures" / "jobs"
GOOD_JOB_FILES = ["minimal.yaml", "all_features.yaml"]


def minimal() -> dict[str, Any]:
    return parse_yaml((JOBS / "minimal.yaml").read_text())


def make_executable(path: Path, text: str = "#!/bin/sh\necho hello\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def issue_example(tmp_path: Path) -> Path:
    """The README/issue job file in a project directory that has the `.venv/bin/python` it names
    (a symlink to this interpreter, so the test does not depend on how the repo was set up)."""
    interpreter = tmp_path / ".venv" / "bin" / "python"
    interpreter.parent.mkdir(parents=True)
    interpreter.symlink_to(sys.executable)
    shutil.copy(JOBS / "digits_bayes.yaml", tmp_path / "digits_bayes.yaml")
    return tmp_path / "digits_bayes.yaml"


def test_the_issue_example_loads_as_written(issue_example: Path) -> None:
    spec = load_job_spec(issue_example)
    project = issue_example.parent

    assert spec.name == "digits-bayes"
    assert spec.objective_type is ObjectiveType.MAXIMIZE
    assert spec.strategy is Strategy.BAYESIAN
    assert (spec.max_jobs, spec.max_parallel_jobs) == (12, 2)
    assert (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu) == (1.0, 0.0)
    assert spec.hyperparameters == {"epochs": 10}
    assert spec.objective_definition.pattern.search("validation: accuracy=0.93").group(1) == "0.93"
    assert spec.job_dir == project / "runs" / "digits-bayes"
    assert spec.warnings == ()


def test_argv_replaces_python_with_the_interpreter_relative_to_working_dir(
    issue_example: Path,
) -> None:
    spec = load_job_spec(issue_example)
    venv_python = issue_example.parent / ".venv" / "bin" / "python"

    argv = spec.trainer.argv()

    assert argv == [str(venv_python), "-m", "models.sklearn_digits"]
    assert argv[0] != os.path.realpath(venv_python)  # a venv's python must stay in its venv


def test_the_issue_example_without_its_interpreter_names_the_missing_trainer() -> None:
    with pytest.raises(SpecError) as caught:
        load_job_spec(JOBS / "digits_bayes.yaml")

    [problem] = caught.value.problems
    assert (problem.field, problem.value) == ("trainer.interpreter", ".venv/bin/python")
    assert "trainer not found" in problem.rule


def test_all_features_load_with_enums_in_any_case() -> None:
    spec = load_job_spec(JOBS / "all_features.yaml")

    assert spec.objective_type is ObjectiveType.MAXIMIZE  # written "maximize"
    assert spec.strategy is Strategy.HYPERBAND  # written "hyperband"
    assert spec.early_stopping_type is EarlyStoppingType.OFF  # YAML read `Off` as False
    assert spec.hyperband_strategy_config is not None
    assert (
        spec.hyperband_strategy_config.min_resource,
        spec.hyperband_strategy_config.max_resource,
    ) == (1, 9)
    criteria = spec.completion_criteria
    assert criteria is not None
    assert criteria.target_objective_metric_value == 0.95
    assert criteria.best_objective_not_improving is not None
    assert criteria.best_objective_not_improving.max_number_of_training_jobs_not_improving == 5
    assert criteria.convergence_detected is not None
    assert criteria.convergence_detected.complete_on_convergence is CompleteOnConvergence.ENABLED
    assert criteria.max_runtime_in_seconds == 86400
    assert spec.retry_strategy is not None and spec.retry_strategy.maximum_retry_attempts == 2
    assert spec.resources_per_trial.gpu == 0.5
    assert spec.max_runtime_in_seconds == 3600
    assert spec.random_seed == 7
    assert spec.trainer.env == {"OMP_NUM_THREADS": "1"}
    assert spec.trainer.working_path == REPO_ROOT
    assert spec.input_paths == {
        "training": JOBS / "data" / "cifar10",
        "validation": JOBS / "data" / "cifar10-val",
    }


def test_defaults_fill_the_optional_fields() -> None:
    spec = JobSpec.from_mapping(minimal())

    assert spec.objective_type is ObjectiveType.MAXIMIZE
    assert spec.strategy is Strategy.BAYESIAN
    assert spec.max_parallel_jobs == 1
    assert (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu) == (1.0, 0.0)
    assert spec.early_stopping_type is EarlyStoppingType.OFF
    assert (spec.random_seed, spec.output_path) == (0, "runs")
    assert spec.max_runtime_in_seconds == 86_400  # SageMaker's max_run default, per trial
    assert spec.stop_grace_period_in_seconds == 120  # SageMaker's StopTrainingJob grace
    assert spec.trainer.working_dir == "." and spec.trainer.interpreter is None
    assert spec.completion_criteria is None and spec.warm_start_config is None


@pytest.mark.parametrize("job_file", GOOD_JOB_FILES)
def test_to_mapping_round_trips(job_file: str) -> None:
    spec = load_job_spec(JOBS / job_file)

    mapping = spec.to_mapping()
    again = JobSpec.from_mapping(mapping, base_dir=spec.base_dir)

    assert again == spec
    assert again.to_mapping() == mapping
    assert parse_yaml(spec.to_yaml()) == mapping
    assert mapping["objective_type"] == "Maximize"  # enums as their SageMaker names


def test_to_mapping_keeps_paths_as_written_so_the_spec_can_move() -> None:
    mapping = load_job_spec(JOBS / "all_features.yaml").to_mapping()

    assert mapping["trainer"]["working_dir"] == "../../.."
    assert mapping["inputs"]["training"] == "data/cifar10"
    assert mapping["metric_definitions"][0] == {
        "Name": "Validation-accuracy",
        "Regex": "validation: accuracy=([0-9\\.]+)",
    }


def test_job_dir_of_a_mapping_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert JobSpec.from_mapping(minimal()).job_dir == tmp_path / "runs" / "minimal"
    elsewhere = tmp_path / "elsewhere"
    spec = JobSpec.from_mapping({**minimal(), "output_path": str(elsewhere)})
    assert spec.job_dir == elsewhere / "minimal"


def test_base_dir_overrides_the_job_files_directory(tmp_path: Path) -> None:
    spec = load_job_spec(JOBS / "minimal.yaml", base_dir=tmp_path)

    assert spec.job_dir == tmp_path / "runs" / "minimal"
    assert spec.trainer.working_path == tmp_path


def test_metric_definitions_accept_lowercase_keys_from_python() -> None:
    data = {**minimal(), "metric_definitions": [{"name": "accuracy", "regex": "acc=(\\d+)"}]}

    spec = JobSpec.from_mapping(data)

    assert spec.metric_definitions[0].name == "accuracy"
    assert spec.to_mapping()["metric_definitions"] == [{"Name": "accuracy", "Regex": "acc=(\\d+)"}]


@pytest.mark.parametrize("written", ["Minimize", "minimize", "MINIMIZE", " Minimize "])
def test_objective_type_is_case_insensitive(written: str) -> None:
    spec = JobSpec.from_mapping({**minimal(), "objective_type": written})

    assert spec.objective_type is ObjectiveType.MINIMIZE


def test_grid_takes_integer_and_categorical_ranges() -> None:
    ranges = {
        "layers": {"type": "Integer", "min_value": 1, "max_value": 4},
        "optimizer": {"type": "Categorical", "values": ["sgd", "adam"]},
    }
    spec = JobSpec.from_mapping({**minimal(), "strategy": "GRID", "hyperparameter_ranges": ranges})

    assert spec.strategy is Strategy.GRID
    assert spec.search_space().size == 8


def test_search_space_holds_static_and_tuned_hyperparameters() -> None:
    spec = load_job_spec(JOBS / "all_features.yaml")

    space = spec.search_space()

    assert isinstance(space, SearchSpace)
    assert space.tunable_names == ("learning_rate", "momentum", "wd", "layers", "optimizer")
    assert dict(space.static_values) == {"epochs": 9, "batch_size": 1024, "dataset": "cifar10"}


def test_ranges_may_be_search_parameters_from_python() -> None:
    ranges = {
        "learning_rate": ContinuousParameter(0.001, 0.5, scaling_type="Logarithmic"),
        "optimizer": CategoricalParameter(["sgd", "adam"]),
    }

    spec = JobSpec.from_mapping({**minimal(), "hyperparameter_ranges": ranges})

    assert spec.to_mapping()["hyperparameter_ranges"] == {
        "learning_rate": {
            "type": "Continuous",
            "min_value": 0.001,
            "max_value": 0.5,
            "scaling_type": "Logarithmic",
        },
        "optimizer": {"type": "Categorical", "values": ["sgd", "adam"]},
    }
    assert spec.search_space().parameters["learning_rate"] == ranges["learning_rate"]


def test_argv_without_interpreter_uses_the_default(tmp_path: Path) -> None:
    trainer = JobSpec.from_mapping(minimal(), base_dir=tmp_path).trainer
    other_python = make_executable(tmp_path / "bin" / "python3.9")

    assert trainer.argv() == [sys.executable, "-m", "models.sklearn_digits"]
    assert trainer.argv(interpreter_default=str(other_python))[0] == str(other_python)


def test_argv_treats_python3_as_the_interpreter_placeholder(tmp_path: Path) -> None:
    interpreter = make_executable(tmp_path / "env" / "bin" / "python")
    data = minimal()
    data["trainer"] = {"command": ["python3", "train.py"], "interpreter": "env/bin/python"}
    (tmp_path / "train.py").write_text("print('accuracy=1')\n")

    argv = JobSpec.from_mapping(data, base_dir=tmp_path).trainer.argv()

    assert argv == [str(interpreter), "train.py"]


def test_argv_resolves_a_relative_program_against_working_dir(tmp_path: Path) -> None:
    script = make_executable(tmp_path / "code" / "train.sh")
    data = minimal()
    data["trainer"] = {"command": ["./train.sh", "--fast"], "working_dir": "code"}

    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert spec.trainer.working_path == tmp_path / "code"
    assert spec.trainer.argv() == [str(script), "--fast"]


def test_argv_leaves_a_program_on_path_to_the_path_lookup(tmp_path: Path) -> None:
    data = minimal()
    data["trainer"] = {"command": ["sh", "-c", "echo accuracy=1"]}

    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert spec.trainer.argv() == ["sh", "-c", "echo accuracy=1"]


def test_an_interpreter_without_a_python_command_is_ignored_with_a_warning(tmp_path: Path) -> None:
    data = minimal()
    data["trainer"] = {"command": ["sh", "-c", "echo"], "interpreter": sys.executable}

    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert spec.trainer.argv()[0] == "sh"
    assert [w.field for w in spec.warnings] == ["trainer.interpreter"]


def test_check_paths_false_accepts_a_trainer_that_is_not_here() -> None:
    spec = load_job_spec(JOBS / "digits_bayes.yaml", check_paths=False)

    assert spec.trainer.interpreter == ".venv/bin/python"


def test_fingerprint_is_stable_and_tracks_trainer_static_values_and_inputs() -> None:
    base = JobSpec.from_mapping(minimal())

    def fingerprint(**changes: Any) -> str:
        return JobSpec.from_mapping({**minimal(), **changes}).fingerprint()

    assert base.fingerprint() == fingerprint()
    assert len(base.fingerprint()) == 64
    # What may change between a warm-start parent and child keeps the fingerprint.
    wider = {"layers": {"type": "Integer", "min_value": 1, "max_value": 8}}
    assert fingerprint(hyperparameter_ranges=wider, max_jobs=50, name="round-2") == (
        base.fingerprint()
    )
    # The algorithm or the data changing changes it.
    assert fingerprint(hyperparameters={"epochs": 10}) != base.fingerprint()
    assert fingerprint(trainer={"command": ["python", "-m", "models.other"]}) != (
        base.fingerprint()
    )
    assert fingerprint(inputs={"training": "data/b"}) != base.fingerprint()


def test_warm_start_parents_resolve_relative_to_the_base_dir(tmp_path: Path) -> None:
    (tmp_path / "runs" / "round-1").mkdir(parents=True)
    data = {
        **minimal(),
        "warm_start_config": {
            "parent_hyperparameter_tuning_jobs": ["runs/round-1"],
            "warm_start_type": "transferlearning",
        },
    }

    spec = JobSpec.from_mapping(data, base_dir=tmp_path)

    assert spec.warm_start_config is not None
    assert spec.warm_start_config.warm_start_type is WarmStartType.TRANSFER_LEARNING
    assert spec.parent_job_dirs == [tmp_path / "runs" / "round-1"]


def test_check_resources_accepts_what_the_cluster_has() -> None:
    spec = load_job_spec(JOBS / "all_features.yaml")  # 2 CPUs and half a GPU per trial

    check_resources(spec, {"CPU": 2.0, "GPU": 1.0, "memory": 1e9})
    check_resources(spec, {"cpu": 16, "gpu": 0.5})  # keys in any case


def test_check_resources_refuses_with_the_numbers() -> None:
    spec = load_job_spec(JOBS / "all_features.yaml")

    with pytest.raises(SpecError) as caught:
        check_resources(spec, {"CPU": 1.0})

    assert [(p.field, p.value) for p in caught.value.problems] == [
        ("resources_per_trial.cpu", 2.0),
        ("resources_per_trial.gpu", 0.5),
    ]
    message = str(caught.value)
    assert "one trial needs 2 CPUs but the cluster offers 1" in message
    assert "one trial needs 0.5 GPUs but the cluster offers 0" in message


def test_validate_sample_log_names_the_definitions_that_extract_nothing() -> None:
    spec = load_job_spec(JOBS / "all_features.yaml")
    log = "epoch 1\ntrain: loss=0.52\nvalidation: accuracy=0.81\ngarbage line\n"

    assert validate_sample_log(spec, log) == []
    [problem] = validate_sample_log(spec, "train: loss=0.5\nvalidation: acc=0.8\n")
    assert problem.field == "metric_definitions[0].Regex"
    assert problem.value == "validation: accuracy=([0-9\\.]+)"
    assert problem.rule == "metric 'Validation-accuracy' matches no line of the log"


def test_validate_sample_log_flags_a_capture_that_is_not_a_number() -> None:
    data = {**minimal(), "metric_definitions": [{"Name": "accuracy", "Regex": "accuracy=(\\S+)"}]}
    spec = JobSpec.from_mapping(data)

    [problem] = validate_sample_log(spec, "accuracy=high\n")

    assert "captures no number" in problem.rule and "'high'" in problem.rule
    assert validate_sample_log(spec, "accuracy=high\naccuracy=0.9\n") == []


def test_a_spec_cannot_change_after_validation() -> None:
    spec = JobSpec.from_mapping(minimal())

    with pytest.raises(pydantic.ValidationError):
        spec.max_jobs = 100  # type: ignore[misc]


def test_spec_error_lists_every_problem_one_per_line() -> None:
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping({**minimal(), "max_jobs": 0, "max_parallel_jobs": 0}, source="j.yaml")

    error = caught.value
    assert isinstance(error, OpenAMTError)
    lines = str(error).splitlines()
    assert lines[0] == "job spec j.yaml is invalid (2 problems):"
    assert lines[1].startswith("  - max_jobs: ") and lines[1].endswith("(got 0)")
    assert lines[2].startswith("  - max_parallel_jobs: ")


def test_spec_error_survives_pickling() -> None:
    with pytest.raises(SpecError) as caught:
        JobSpec.from_mapping({**minimal(), "max_jobs": 0}, source="j.yaml")

    copy = pickle.loads(pickle.dumps(caught.value))

    assert copy.problems == caught.value.problems
    assert str(copy) == str(caught.value)


def test_a_missing_job_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot be read"):
        load_job_spec(tmp_path / "nope.yaml")
