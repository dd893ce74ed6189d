"""The `openamt` command line, run as a user would (a subprocess), on jobs written by hand."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.store.job_dir import JobDir
from orchestrator.store.ledger import Event, Ledger
from tests.helpers import REPO, standin_job

OPENAMT = [sys.executable, "-m", "orchestrator.cli"]


def openamt(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OPENAMT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def finished_job(tmp_path) -> Path:
    """A job directory as a finished run leaves it: spec, ledger, two trials and a failure."""
    job = standin_job(tmp_path, max_jobs=3)
    job_dir = JobDir(path=tmp_path / "runs" / "standin")
    job_dir.create()
    job_dir.spec_path.write_text(yaml.safe_dump(job))
    ledger = Ledger(job_dir=job_dir.path)
    ledger.append(Event.JOB_STARTED, run=1)
    for trial_id, x, objective in (("trial-0001", 0.1, 0.7), ("trial-0002", 0.3, 0.86)):
        ledger.append(Event.TRIAL_STARTED, trial_id=trial_id, attempt=1, config={"x": x, "y": 0.5})
        ledger.append(
            Event.TRIAL_RESULT,
            trial_id=trial_id,
            attempt=1,
            metric="validation:accuracy",
            value=objective,
            step=1,
        )
        ledger.append(
            Event.TRIAL_COMPLETED,
            trial_id=trial_id,
            attempt=1,
            status="Completed",
            objective=objective,
        )
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0003", attempt=1, config={"x": 1, "y": 0})
    ledger.append(
        Event.TRIAL_COMPLETED,
        trial_id="trial-0003",
        attempt=1,
        status="Failed",
        objective=None,
        reason="trainer exited with code 3",
    )
    ledger.append(Event.JOB_COMPLETED, reason="MaxNumberOfTrainingJobsReached")
    return job_dir.path


def test_help_shows_an_example_for_every_command():
    result = openamt("--help")
    assert result.returncode == 0
    for command in ("tune", "validate", "status", "best", "export", "report", "data"):
        assert f"openamt {command}" in result.stdout
        sub = openamt(command, "--help")
        assert sub.returncode == 0 and f"openamt {command}" in sub.stdout, command


@pytest.fixture
def job_file(tmp_path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(standin_job(tmp_path)))
    return path


def test_validate_accepts_a_good_job(job_file):
    result = openamt("validate", str(job_file))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "2 tuned hyperparameters" in result.stdout


@pytest.mark.parametrize(
    ("job_file", "fragment"),
    [
        ("bad_unknown_key.yaml", "did you mean"),
        ("bad_regex.yaml", "metric_definitions"),
        ("bad_not_a_mapping.yaml", "mapping"),
        ("bad_duplicate_parameter.yaml", "hyperparameter_ranges"),
    ],
)
def test_validate_rejects_bad_jobs_with_exit_code_2(job_file, fragment):
    result = openamt("validate", f"tests/fixtures/jobs/{job_file}")
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_checks_the_regexes_against_a_sample_log(job_file, tmp_path):
    log = tmp_path / "trial.log"
    log.write_text("[Epoch 1] train: loss=0.3\n")  # no validation line
    result = openamt("validate", str(job_file), "--sample-log", str(log))
    assert result.returncode == 2
    assert "validation:accuracy" in result.stderr
    log.write_text("[Epoch 1] train: loss=0.3 validation: accuracy=0.91\n")
    ok = openamt("validate", str(job_file), "--sample-log", str(log))
    assert ok.returncode == 0, ok.stderr


def test_status_best_and_export(finished_job, tmp_path):
    status = openamt("status", str(finished_job))
    assert status.returncode == 0, status.stderr
    assert "Completed 2" in status.stdout and "Failed 1" in status.stdout
    assert "trial-0002" in status.stdout and "MaxNumberOfTrainingJobsReached" in status.stdout

    best = openamt("best", str(finished_job), "--json")
    assert json.loads(best.stdout) == {
        "trial_id": "trial-0002",
        "objective": 0.86,
        "hyperparameters": {"x": 0.3, "y": 0.5},
    }

    export = openamt("export", str(finished_job), "--csv")
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert [(r["trial_id"], r["status"]) for r in rows] == [
        ("trial-0001", "Completed"),
        ("trial-0002", "Completed"),
        ("trial-0003", "Failed"),
    ]
    assert rows[2]["failure_reason"] == "trainer exited with code 3"
    assert rows[1]["x"] == "0.3" and rows[1]["objective"] == "0.86"
    out = tmp_path / "trials.csv"
    assert openamt("export", str(finished_job), "--csv", "--output", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 4


def test_commands_on_a_directory_that_is_not_a_job_say_so(tmp_path):
    result = openamt("status", str(tmp_path))
    assert result.returncode == 1
    assert "not an openamt job directory" in result.stderr


def test_tune_refuses_a_bad_job_before_starting_ray(tmp_path):
    job = standin_job(tmp_path, max_parallel_jobs=0)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    result = openamt("tune", str(path), "--no-metrics")
    assert result.returncode == 2
    assert "max_parallel_jobs" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing created, no trial started
