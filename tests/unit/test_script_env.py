"""SageMaker script mode: argv formatting and the training environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.errors import OpenAMTError
from orchestrator.trial.script_env import TrainingEnvError, build_argv, build_training_env


def make_env(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    arguments: dict[str, Any] = {
        "hyperparameters": {"learning_rate": 0.1, "layers": 2, "optimizer": "adam"},
        "channels": {"training": tmp_path / "data" / "train", "validation": "rel/val"},
        "model_dir": tmp_path / "model",
        "output_data_dir": tmp_path / "output",
        "num_gpus": 0,
        "num_cpus": 2,
        "hosts": ["algo-1"],
        "current_host": "algo-1",
        "base_env": {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "3"},
        "extra_env": {"MY_FLAG": "on"},
    }
    arguments.update(overrides)
    return build_training_env(**arguments)


# --- build_argv ---------------------------------------------------------------------------


def test_argv_appends_sorted_name_value_pairs() -> None:
    argv = build_argv(["python", "train.py"], {"epochs": 3, "b": "x", "a": 1.5})
    assert argv == ["python", "train.py", "--a", "1.5", "--b", "x", "--epochs", "3"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (1e-07, "1e-07"),
        (0.30000000000000004, "0.30000000000000004"),
        (2.0, "2.0"),
        (7, "7"),
        (True, "True"),
        (False, "False"),
        ("sgd", "sgd"),
        (np.float64(0.001), "0.001"),
        (np.float32(0.5), "0.5"),
        (np.int64(4), "4"),
        (np.bool_(True), "True"),
        (np.str_("adam"), "adam"),
    ],
)
def test_values_format_exactly(value: object, text: str) -> None:
    assert build_argv(["t"], {"v": value}) == ["t", "--v", text]


def test_floats_round_trip_through_the_command_line() -> None:
    values = [0.1 + 0.2, 1 / 3, 123456.789e-30, 5e-324]
    for value in values:
        assert float(build_argv(["t"], {"v": value})[2]) == value


@pytest.mark.parametrize(
    ("hyperparameters", "words"),
    [
        ({"lr": float("nan")}, ["'lr'", "nan", "finite"]),
        ({"lr": float("inf")}, ["'lr'", "inf", "finite"]),
        ({"lr": [1, 2]}, ["'lr'", "[1, 2]", "str, int, float or bool", "list"]),
        ({"lr": None}, ["'lr'", "None", "NoneType"]),
        ({"": 1}, ["''", "1-256 characters"]),
        ({"-x": 1}, ["'-x'", "not start with '-'"]),
        ({"a b": 1}, ["'a b'", "letters, digits"]),
    ],
)
def test_bad_hyperparameters_name_field_value_and_rule(
    hyperparameters: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(TrainingEnvError) as caught:
        build_argv(["t"], hyperparameters)
    for word in words:
        assert word in str(caught.value)


def test_command_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TrainingEnvError, match="not a string"):
        build_argv("python train.py", {})  # type: ignore[arg-type]
    with pytest.raises(TrainingEnvError, match="non-empty"):
        build_argv([], {})


def test_errors_belong_to_the_package_hierarchy() -> None:
    with pytest.raises(OpenAMTError):
        build_argv(["t"], {"x": object()})


# --- build_training_env -------------------------------------------------------------------


def test_sagemaker_variables_are_all_set(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    assert env["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(tmp_path / "output")
    assert json.loads(env["SM_CHANNELS"]) == ["training", "validation"]
    assert env["SM_CHANNEL_TRAINING"] == str(tmp_path / "data" / "train")
    assert Path(env["SM_CHANNEL_VALIDATION"]).is_absolute()
    assert Path(env["SM_CHANNEL_VALIDATION"]).parts[-2:] == ("rel", "val")
    assert json.loads(env["SM_HPS"]) == {"layers": 2, "learning_rate": 0.1, "optimizer": "adam"}
    assert env["SM_HP_LEARNING_RATE"] == "0.1"
    assert json.loads(env["SM_USER_ARGS"]) == [
        "--layers",
        "2",
        "--learning_rate",
        "0.1",
        "--optimizer",
        "adam",
    ]
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert env["SM_NUM_GPUS"] == "0"
    assert env["SM_NUM_CPUS"] == "2"


def test_training_env_json_mirrors_the_variables(tmp_path: Path) -> None:
    env = make_env(tmp_path, trial_id="trial-0007")
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == json.loads(env["SM_HPS"])
    assert training_env["channel_input_dirs"]["training"] == env["SM_CHANNEL_TRAINING"]
    assert training_env["model_dir"] == env["SM_MODEL_DIR"]
    assert training_env["hosts"] == ["algo-1"]
    assert training_env["num_cpus"] == 2
    assert training_env["job_name"] == "trial-0007"


def test_hps_json_keeps_types_including_numpy_scalars(tmp_path: Path) -> None:
    hps = {"lr": np.float64(0.25), "layers": np.int64(3), "nesterov": True, "opt": "sgd"}
    env = make_env(tmp_path, hyperparameters=hps)
    assert json.loads(env["SM_HPS"]) == {"layers": 3, "lr": 0.25, "nesterov": True, "opt": "sgd"}
    assert env["SM_HP_NESTEROV"] == "True"


def test_gpus_assigned_by_ray_are_kept_and_fractions_round_up(tmp_path: Path) -> None:
    env = make_env(tmp_path, num_gpus=0.5, num_cpus=1.5)
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert env["SM_NUM_GPUS"] == "1"
    assert env["SM_NUM_CPUS"] == "2"
    assert env["OPENAMT_NUM_GPUS"] == "0.5"
    assert env["OPENAMT_NUM_CPUS"] == "1.5"


def test_openamt_twins_and_extra_env(tmp_path: Path) -> None:
    env = make_env(
        tmp_path,
        trial_id="t-1",
        job_dir=tmp_path / "job",
        extra_env={"MY_FLAG": "on", "OPENAMT_ATTEMPT": "2"},
    )
    assert env["OPENAMT_TRIAL_ID"] == "t-1"
    assert env["OPENAMT_JOB_DIR"] == str(tmp_path / "job")
    assert env["OPENAMT_ATTEMPT"] == "2"
    assert env["MY_FLAG"] == "on"
    assert env["PATH"] == "/usr/bin"


def test_trial_id_can_come_from_extra_env(tmp_path: Path) -> None:
    env = make_env(tmp_path, extra_env={"OPENAMT_TRIAL_ID": "t-9"})
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "t-9"
    assert env["OPENAMT_TRIAL_ID"] == "t-9"


def test_inherited_job_variables_are_dropped(tmp_path: Path) -> None:
    base = {"SM_CHANNEL_STALE": "/old", "OPENAMT_TRIAL_ID": "old", "HOME": "/home/u"}
    env = make_env(tmp_path, base_env=base)
    assert "SM_CHANNEL_STALE" not in env
    assert "OPENAMT_TRIAL_ID" not in env
    assert env["HOME"] == "/home/u"


def test_python_output_is_unbuffered_unless_the_job_says_otherwise(tmp_path: Path) -> None:
    assert make_env(tmp_path)["PYTHONUNBUFFERED"] == "1"
    assert make_env(tmp_path, extra_env={"PYTHONUNBUFFERED": ""})["PYTHONUNBUFFERED"] == ""


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"extra_env": {"SM_MODEL_DIR": "/x"}}, ["SM_MODEL_DIR", "'/x'", "cannot be overridden"]),
        ({"extra_env": {"CUDA_VISIBLE_DEVICES": "0"}}, ["CUDA_VISIBLE_DEVICES", "'0'"]),
        ({"extra_env": {"A": 1}}, ["A=1", "must be a string"]),
        ({"channels": {"train": "/a", "TRAIN": "/b"}}, ["'train'", "'TRAIN'", "ignoring case"]),
        ({"channels": {"bad name": "/a"}}, ["'bad name'", "1-64 characters"]),
        ({"current_host": "algo-2"}, ["current_host='algo-2'", "one of hosts"]),
        ({"hosts": []}, ["hosts=[]", "non-empty"]),
        ({"num_gpus": -1}, ["num_gpus=-1", ">= 0"]),
        ({"num_cpus": 0}, ["num_cpus=0", "> 0"]),
        ({"hyperparameters": {"lr": float("nan")}}, ["'lr'", "finite"]),
    ],
)
def test_bad_environment_inputs_name_field_value_and_rule(
    tmp_path: Path, overrides: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(TrainingEnvError) as caught:
        make_env(tmp_path, **overrides)
    for word in words:
        assert word in str(caught.value)


def test_all_values_are_strings(tmp_path: Path) -> None:
    env = make_env(tmp_path, trial_id="t", job_dir=tmp_path)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
