"""Resume after the driver dies: nothing lost, nothing repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.store.ledger import Event, read_events
from orchestrator.store.records import summarize_trials
from orchestrator.trial.outcome import TrialState
from tests.helpers import standin_job

OPENAMT = [sys.executable, "-m", "orchestrator.cli"]


def _write_job(tmp_path: Path, **overrides) -> Path:
    job = standin_job(tmp_path, **overrides)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _start_driver(job: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*OPENAMT, "tune", str(job), "--no-progress", "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_completions(ledger: Path, count: int, *, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [e for e in read_events(ledger) if e["event"] == Event.TRIAL_COMPLETED.value]
        if len(done) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} trials completed within {timeout} s")


def _assert_exactly_max_jobs(job_dir: Path, max_jobs: int) -> None:
    events = read_events(job_dir / "ledger.jsonl")
    trials = summarize_trials(events)
    finished = [t for t in trials.values() if t.state.finished]
    assert len(finished) == len(trials) == max_jobs
    assert all(t.state is TrialState.COMPLETED for t in finished)
    configs = [json.dumps(t.config, sort_keys=True) for t in trials.values()]
    assert len(set(configs)) == len(configs), "a configuration ran twice as two trials"
    state = json.loads((job_dir / "searcher_state.json").read_text())
    observed = _observed_ids(state)
    assert observed == set(trials), "the searcher's observations differ from the ledger"


def _observed_ids(state: dict) -> set[str]:
    """Trial ids the saved searcher has observed (rows of [trial_id, config, value])."""
    return {trial_id for trial_id, _config, _value in state["observations"]}


@pytest.mark.slow
def test_sigkill_of_the_driver_then_rerun_finishes_exactly_max_jobs(tmp_path):
    max_jobs = 8
    job = _write_job(
        tmp_path,
        strategy="Bayesian",
        max_jobs=max_jobs,
        hyperparameters={"epochs": 3, "sleep": 0.3},
    )
    job_dir = tmp_path / "runs" / "standin"
    for kills in (2, 5):  # kill twice, at different points
        driver = _start_driver(job)
        _wait_for_completions(job_dir / "ledger.jsonl", kills)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    final = subprocess.run(
        [*OPENAMT, "tune", str(job), "--no-progress", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert "best trial: trial-" in final.stdout
    _assert_exactly_max_jobs(job_dir, max_jobs)
    interrupted = [e for e in read_events(job_dir / "ledger.jsonl") if e.get("crashed")]
    assert interrupted, "the killed drivers' running attempts were not recorded as interrupted"


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_job_resumes(tmp_path):
    max_jobs = 5
    job = _write_job(tmp_path, max_jobs=max_jobs, hyperparameters={"epochs": 3, "sleep": 0.3})
    job_dir = tmp_path / "runs" / "standin"
    driver = _start_driver(job)
    _wait_for_completions(job_dir / "ledger.jsonl", 1)
    driver.send_signal(signal.SIGINT)
    output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, output
    assert "Rerun the same command to resume" in output
    events = read_events(job_dir / "ledger.jsonl")
    assert events[-1]["event"] == Event.JOB_INTERRUPTED.value
    final = subprocess.run(
        [*OPENAMT, "tune", str(job), "--no-progress", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    _assert_exactly_max_jobs(job_dir, max_jobs)
