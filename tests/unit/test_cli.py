"""The `openamt` command line, run as a user would (a subprocess), on jobs written by hand."""

from __future__ import annotations

import csv
import io
import json
import os
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
    commands = ("tune", "validate", "status", "list", "best", "stop", "export", "report", "data")
    for command in commands:
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


def test_stop_on_a_job_that_is_not_running_says_so(finished_job):
    result = openamt("stop", str(finished_job))
    assert result.returncode == 0, result.stderr
    assert "job standin is not running: finished (MaxNumberOfTrainingJobsReached)" in result.stdout


@pytest.mark.parametrize(
    ("where", "message"),
    [("", "is not an openamt job directory"), ("no-such-job", "does not exist")],
)
def test_stop_on_a_path_that_is_not_a_job_is_a_clear_error(tmp_path, where, message):
    path = tmp_path / where
    result = openamt("stop", str(path))
    assert result.returncode == 1
    assert f"{path if where else tmp_path} {message}" in result.stderr
    assert "Traceback" not in result.stderr


def _list_rows(output: str) -> dict[str, list[str]]:
    """`openamt list` lines by job name, split on the two-space column gaps."""
    lines = output.splitlines()
    assert lines[0].split() == ["job", "state", "trials", "best", "note"]
    return {
        line.split()[0]: [c.strip() for c in line.split("  ") if c.strip()] for line in lines[1:]
    }


def test_list_shows_each_job_with_state_trials_and_best(finished_job):
    runs = finished_job.parent
    waiting = runs / "waiting"  # a job file written, its driver not started yet
    waiting.mkdir()
    (waiting / "job.yaml").write_text(yaml.safe_dump(standin_job(runs, max_jobs=6)))
    broken = runs / "broken"  # a spec cut short
    broken.mkdir()
    (broken / "spec.yaml").write_text("name: [standin\n")
    orphan = runs / "orphan"  # a driver began writing the directory and died before the spec
    orphan.mkdir()
    (orphan / "ledger.jsonl").write_text("")
    (runs / "data").mkdir()  # not a job: not listed
    (runs / "notes.txt").write_text("not a job either")

    result = openamt("list", str(runs))
    assert result.returncode == 0, result.stderr
    rows = _list_rows(result.stdout)
    assert set(rows) == {"standin", "waiting", "broken", "orphan"}
    assert rows["standin"] == [
        "standin",
        "Completed",
        "3 of 3",
        "validation:accuracy=0.86 (trial-0002)",
        "finished (MaxNumberOfTrainingJobsReached)",
    ]
    assert rows["waiting"][1:] == ["NotStarted", "0 of 6", "-", "not started: no driver ran it yet"]
    assert rows["broken"][1:4] == ["unreadable", "-", "-"]
    assert "spec.yaml cannot be read" in rows["broken"][4]
    assert rows["orphan"][1] == "unreadable" and "not an openamt job directory" in rows["orphan"][4]


def test_list_shows_a_running_job_and_its_driver(finished_job):
    """A job whose driver (here: this test process, holding the lock) runs it, one trial on."""
    running = finished_job.parent / "running"
    job_dir = JobDir(path=running)
    job_dir.create()
    job_dir.spec_path.write_text(yaml.safe_dump(standin_job(running, max_jobs=4)))
    ledger = Ledger(job_dir=running)
    ledger.append(Event.JOB_STARTED, run=1)
    ledger.append(Event.TRIAL_STARTED, trial_id="trial-0001", attempt=1, config={"x": 0, "y": 0})
    with job_dir.lock():
        result = openamt("list", str(finished_job.parent))
        refused = openamt("tune", str(_job_file_for(running, max_jobs=4)), "--detach")
    assert result.returncode == 0, result.stderr
    row = _list_rows(result.stdout)["running"]
    assert row[1:] == [
        "InProgress",
        "0 of 4, 1 running",
        "-",
        f"running (driver pid {os.getpid()})",
    ]
    assert refused.returncode == 1
    assert f"job running is already running (driver pid {os.getpid()})" in refused.stderr
    assert f"openamt stop {running}" in refused.stderr and "Traceback" not in refused.stderr
    assert not job_dir.driver_pid_file.exists()  # no second driver was started


def _job_file_for(job_dir: Path, **overrides) -> Path:
    """A job file whose job directory is `job_dir` (name and output_path from it)."""
    job = standin_job(
        job_dir.parent, name=job_dir.name, output_path=str(job_dir.parent), **overrides
    )
    path = job_dir.parent / f"{job_dir.name}.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_list_of_an_empty_or_missing_directory(tmp_path):
    empty = openamt("list", str(tmp_path))
    assert empty.returncode == 0 and empty.stdout.strip() == f"no jobs in {tmp_path}"
    missing = openamt("list", str(tmp_path / "runs"))
    assert missing.returncode == 1
    assert f"output_path {tmp_path / 'runs'}: no such directory" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_list_reads_runs_by_default(finished_job):
    result = openamt("list", cwd=finished_job.parent.parent)
    assert result.returncode == 0, result.stderr
    assert _list_rows(result.stdout)["standin"][1] == "Completed"


def test_detach_says_why_when_the_driver_ends_before_starting(finished_job):
    """The driver refuses a different job in the same directory before it starts Ray: the
    detaching command reports that from the driver's log instead of claiming it runs."""
    job_file = _job_file_for(finished_job, max_jobs=3, objective_type="Minimize")
    result = openamt("tune", str(job_file), "--detach", "--no-metrics")
    assert result.returncode == 1, result.stdout
    assert "the driver exited (status 1) before starting job standin" in result.stderr
    assert "different spec" in result.stderr and "objective_type" in result.stderr
    assert "runs in the background" not in result.stdout
