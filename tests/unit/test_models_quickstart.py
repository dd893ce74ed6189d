"""The quickstart job file: valid for the orchestrator, and its trainer, data and regexes fit."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from orchestrator.spec import load_job_spec, validate_sample_log

REPO = Path(__file__).resolve().parents[2]
JOB_FILE = REPO / "deploy" / "jobs" / "mxnet-digits.yaml"
WORKING_DIR = (JOB_FILE.parent / "../..").resolve()


@pytest.fixture(scope="module")
def job() -> dict:
    return yaml.safe_load(JOB_FILE.read_text())


def test_job_is_the_documented_quickstart(job: dict) -> None:
    assert job["strategy"] == "Bayesian"
    assert (job["max_jobs"], job["max_parallel_jobs"]) == (12, 2)
    assert set(job["hyperparameter_ranges"]) == {"learning_rate", "momentum", "wd"}
    assert job["resources_per_trial"] == {"cpu": 1, "gpu": 0}
    assert job["trainer"]["command"] == ["python", "-m", "models.mxnet_cifar10"]
    assert job["inputs"] == {"training": "../../data/digits-cifar"}


def test_paths_are_relative_and_point_into_the_repository(job: dict) -> None:
    paths = [job["trainer"]["interpreter"], job["trainer"]["working_dir"], job["output_path"]]
    paths += list(job["inputs"].values())

    assert not [p for p in paths if Path(p).is_absolute()]
    assert WORKING_DIR == REPO  # relative to the job file, the working dir is the repository
    assert (WORKING_DIR / job["trainer"]["interpreter"]).is_file()
    assert (WORKING_DIR / "models" / "mxnet_cifar10.py").is_file()


def test_orchestrator_accepts_the_job_file() -> None:
    spec = load_job_spec(JOB_FILE)

    assert spec.name == "mxnet-digits" and spec.max_jobs == 12


def test_trial_on_digits_matches_every_metric_definition(job: dict, tmp_path: Path) -> None:
    """Prepare the data with the documented command, then run one trial's command line (two
    epochs instead of ten) and check the job's regexes against its log."""
    interpreter = str(WORKING_DIR / job["trainer"]["interpreter"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update({**job["trainer"]["env"], "CUDA_VISIBLE_DEVICES": ""})
    data_dir = tmp_path / "digits-cifar"
    prepare = [interpreter, "-m", "models.digits_cifar", "--dest", str(data_dir)]
    subprocess.run(prepare, cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    hyperparameters = {**job["hyperparameters"], "epochs": 2}
    hyperparameters.update(learning_rate=0.1, momentum=0.9, wd=0.0001)
    argv = [interpreter, *job["trainer"]["command"][1:]]
    for name, value in hyperparameters.items():
        argv += [f"--{name}", str(value)]

    completed = subprocess.run(
        argv,
        cwd=WORKING_DIR,
        env={**env, "SM_CHANNEL_TRAINING": str(data_dir), "SM_NUM_GPUS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    assert "train_images=1437 test_images=360" in completed.stdout
    for definition in job["metric_definitions"]:
        values = re.findall(definition["Regex"], completed.stdout)
        assert len(values) == 2, definition["Name"]
        assert all(float(value) >= 0 for value in values)
    accuracy = float(re.findall(r"validation: accuracy=([0-9\.]+)", completed.stdout)[-1])
    assert accuracy > 0.2  # ten digits: chance is 0.1
    spec = load_job_spec(JOB_FILE)
    assert validate_sample_log(spec, completed.stdout) == []
