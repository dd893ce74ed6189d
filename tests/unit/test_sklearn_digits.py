"""The digits quickstart trainer: it learns, tuning matters, and it runs in script mode."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import sklearn_digits
from orchestrator.spec import MetricDefinition
from orchestrator.trial.outcome import TrialState
from orchestrator.trial.process import run_trial_process
from orchestrator.trial.script_env import build_argv, build_training_env

REPO = Path(__file__).resolve().parents[2]
GOOD = ["--learning_rate", "0.01", "--optimizer", "adam", "--layers", "2"]
EPOCH_LINE = re.compile(
    r"^\[Epoch (\d+)\] train: accuracy=(0\.\d{6}|1\.\d{6}) "
    r"validation: accuracy=(0\.\d{6}|1\.\d{6}) time=\d+\.\d{3}s$"
)


def validation_curve(output: str) -> list[float]:
    lines = [line for line in output.splitlines() if line.startswith("[Epoch")]
    assert all(EPOCH_LINE.match(line) for line in lines), lines
    return [float(EPOCH_LINE.match(line).group(3)) for line in lines]  # type: ignore[union-attr]


def test_good_settings_learn_and_save_a_usable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert sklearn_digits.main([*GOOD, "--model_dir", str(tmp_path)]) == 0
    elapsed = time.monotonic() - started

    curve = validation_curve(capsys.readouterr().out)
    assert len(curve) == 10
    assert curve[-1] > 0.8
    assert elapsed < 10
    with (tmp_path / "model.pkl").open("rb") as file:
        model = pickle.load(file)
    data = sklearn_digits.load_data(seed=0)
    assert model.score(data.x_val, data.y_val) == pytest.approx(curve[-1], abs=1e-6)


def test_defaults_are_clearly_worse_than_tuned(capsys: pytest.CaptureFixture[str]) -> None:
    sklearn_digits.main([])
    default_final = validation_curve(capsys.readouterr().out)[-1]
    sklearn_digits.main(GOOD)
    tuned_final = validation_curve(capsys.readouterr().out)[-1]
    assert tuned_final - default_final > 0.2


def test_same_seed_same_result(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*GOOD, "--epochs", "3", "--seed", "7"]
    sklearn_digits.main(args)
    first = validation_curve(capsys.readouterr().out)
    sklearn_digits.main(args)
    assert validation_curve(capsys.readouterr().out) == first


def test_epochs_layers_and_units_are_honoured(capsys: pytest.CaptureFixture[str]) -> None:
    args = sklearn_digits.parse_hyperparameters(
        ["--layers", "3", "--hidden_units", "16", "--optimizer", "ADAM", "--epochs", "2.0"]
    )
    model = sklearn_digits.build_model(args)
    assert model.hidden_layer_sizes == (16, 16, 16)
    assert model.solver == "adam"
    assert args.epochs == 2
    sklearn_digits.main(["--epochs", "2"])
    assert len(validation_curve(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--layers", "5"], ["--layers", "'5'", "from 1 to 4"]),
        (["--layers", "1.5"], ["--layers", "'1.5'", "integer"]),
        (["--learning_rate", "0"], ["--learning_rate", "'0'", "> 0"]),
        (["--learning_rate", "nan"], ["--learning_rate", "'nan'"]),
        (["--alpha", "-1"], ["--alpha", "'-1'", ">= 0"]),
        (["--batch_size", "x"], ["--batch_size", "'x'", "integer"]),
        (["--optimizer", "rmsprop"], ["--optimizer", "'rmsprop'", "sgd", "adam"]),
    ],
)
def test_bad_hyperparameters_name_field_value_and_rule(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        sklearn_digits.parse_hyperparameters(argv)
    assert caught.value.code == 2
    error = capsys.readouterr().err
    for word in words:
        assert word in error


def test_unknown_hyperparameters_are_reported_and_ignored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = sklearn_digits.parse_hyperparameters(["--momentum", "0.9", "--epochs", "1"])
    assert args.epochs == 1
    assert "ignoring unknown arguments ['--momentum', '0.9']" in capsys.readouterr().err


def test_imports_only_its_framework_and_the_standard_library() -> None:
    code = "import sys, models.sklearn_digits; print(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    top_level = {name.split(".")[0] for name in result.stdout.split()}
    assert not top_level & {"orchestrator", "ray", "torch", "search"}


def test_runs_as_a_script_mode_trial(tmp_path: Path) -> None:
    """The quickstart's trainer, command, regex and environment, without Ray."""
    hyperparameters = {"learning_rate": 0.01, "optimizer": "adam", "layers": 2, "epochs": 5}
    env = build_training_env(
        hyperparameters=hyperparameters,
        channels={},
        model_dir=tmp_path / "model",
        output_data_dir=tmp_path / "output",
        num_gpus=0,
        num_cpus=1,
        hosts=["algo-1"],
        current_host="algo-1",
        base_env=dict(os.environ),
        trial_id="trial-1",
    )
    reported: list[tuple[str, float, int]] = []
    outcome = run_trial_process(
        argv=build_argv([sys.executable, "-m", "models.sklearn_digits"], hyperparameters),
        cwd=REPO,
        env=env,
        log_path=tmp_path / "log.txt",
        metric_definitions=[
            MetricDefinition.model_validate(
                {"Name": "Validation-accuracy", "Regex": r"validation: accuracy=([0-9\.]+)"}
            )
        ],
        objective_metric_name="Validation-accuracy",
        on_metric=lambda *report: reported.append(report),
        max_runtime_s=120,
    )
    assert outcome.state is TrialState.COMPLETED, outcome.reason
    assert outcome.objective is not None and outcome.objective > 0.8
    assert [step for _, _, step in reported] == [1, 2, 3, 4, 5]
    assert (tmp_path / "model" / "model.pkl").is_file()
    assert outcome.duration_s < 30
